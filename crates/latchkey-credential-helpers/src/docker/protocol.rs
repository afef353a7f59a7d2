//! The docker-credential-helpers contract on stdin and stdout.
//!
//! - `store` reads `{"ServerURL":..,"Username":..,"Secret":..}`; unknown fields are ignored,
//!   a missing server URL or username is refused with the reference's messages
//!   ([`MISSING_SERVER_URL`], [`MISSING_USERNAME`]), which docker recognises.
//! - `get` and `erase` read a server URL (surrounding white space ignored); `get` prints
//!   `{"ServerURL":..,"Username":..,"Secret":..}` with the URL as it was asked for.
//! - `list` prints `{"URL":"username",...}`.
//! - Any failure prints one line on stdout (where docker reads it) and exits 1; a missing
//!   entry is exactly [`NOT_FOUND`].

use std::collections::BTreeMap;

use latchkey_proto::Secret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What docker expects when there is no entry (it then falls back, or says "not logged in").
pub const NOT_FOUND: &str = "credentials not found in native keychain";
/// What docker expects for a request without a server URL.
pub const MISSING_SERVER_URL: &str = "no credentials server URL";
/// What docker expects for `store` without a username.
pub const MISSING_USERNAME: &str = "no credentials username";

/// What is wrong with docker's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The input is not valid JSON (or not the object expected).
    #[error(
        "the credentials on stdin are not valid JSON ({what} at line {line}, column {column})"
    )]
    NotJson {
        /// What kind of problem (`syntax`, `data`, `end of input`).
        what: &'static str,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// The input is not a JSON object.
    #[error("the credentials on stdin are not a JSON object")]
    NotObject,
    /// The input is not UTF-8.
    #[error("the input is not UTF-8")]
    NotUtf8,
    /// No server URL.
    #[error("{MISSING_SERVER_URL}")]
    MissingServerUrl,
    /// No username.
    #[error("{MISSING_USERNAME}")]
    MissingUsername,
    /// No secret.
    #[error("no credentials secret")]
    MissingSecret,
}

/// What `store` is given.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    /// The registry, as docker names it.
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    /// The username (`<token>` for an identity token).
    #[serde(rename = "Username", default)]
    pub username: String,
    /// The password or token.
    #[serde(rename = "Secret", default)]
    pub secret: Secret,
}

/// Parses `store`'s input.
pub fn parse_credentials(input: &[u8]) -> Result<Credentials, CredentialsError> {
    // A derived struct also reads a JSON array, by position: only an object is docker's.
    if input.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CredentialsError::NotObject);
    }
    // serde_json's messages can quote the input ("invalid type: string ..."): only the kind
    // and position are kept.
    let credentials: Credentials =
        serde_json::from_slice(input).map_err(|e| CredentialsError::NotJson {
            what: match e.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected data",
                serde_json::error::Category::Eof => "end of input",
            },
            line: e.line(),
            column: e.column(),
        })?;
    if credentials.server_url.trim().is_empty() {
        return Err(CredentialsError::MissingServerUrl);
    }
    if credentials.username.is_empty() {
        return Err(CredentialsError::MissingUsername);
    }
    if credentials.secret.is_empty() {
        return Err(CredentialsError::MissingSecret);
    }
    Ok(credentials)
}

/// Parses `get`'s and `erase`'s input: a server URL.
pub fn parse_server_url(input: &[u8]) -> Result<String, CredentialsError> {
    let text = std::str::from_utf8(input).map_err(|_| CredentialsError::NotUtf8)?;
    let url = text.trim();
    if url.is_empty() {
        return Err(CredentialsError::MissingServerUrl);
    }
    Ok(url.to_owned())
}

#[derive(Serialize)]
struct Reply<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

/// `get`'s answer, one JSON line, in memory that is wiped when dropped.
pub fn render_credentials(server_url: &str, username: &str, secret: &Secret) -> Zeroizing<String> {
    let reply = Reply {
        server_url,
        username,
        secret: secret.expose(),
    };
    // Allocated once at the most escaping can take (6 bytes a character), so writing never
    // moves the secret and leaves a copy behind.
    let most = (server_url.len() + username.len() + secret.len()) * 6 + 64;
    let mut bytes = Zeroizing::new(Vec::with_capacity(most));
    // Writing strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *bytes, &reply);
    bytes.push(b'\n');
    // serde_json writes UTF-8.
    Zeroizing::new(String::from_utf8(std::mem::take(&mut *bytes)).unwrap_or_default())
}

/// `list`'s answer, one JSON line.
pub fn render_list(entries: &BTreeMap<String, String>) -> String {
    let mut text = serde_json::to_string(entries).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_input() {
        let c = parse_credentials(
            br#"{"ServerURL":"https://r.example.com","Username":"alice","Secret":"pw","Extra":1}"#,
        )
        .unwrap();
        assert_eq!(c.server_url, "https://r.example.com");
        assert_eq!(c.username, "alice");
        assert_eq!(c.secret.expose(), "pw");
    }

    #[test]
    fn bad_store_input_is_refused_without_quoting_it() {
        let err = parse_credentials(br#"{"ServerURL":"r","Username":"u","Secret":"hunter2""#)
            .unwrap_err();
        assert!(matches!(err, CredentialsError::NotJson { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        let err = parse_credentials(br#"{"ServerURL":"r","Username":"u","Secret":["hunter2"]}"#)
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = parse_credentials(br#"{"ServerURL":"hunter2","Username":5}"#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(
            parse_credentials(b"hunter2"),
            Err(CredentialsError::NotObject)
        ));
        assert!(matches!(
            parse_credentials(b"{hunter2"),
            Err(CredentialsError::NotJson { .. })
        ));
        assert!(matches!(
            parse_credentials(br#" ["r","u","hunter2"]"#),
            Err(CredentialsError::NotObject)
        ));
        assert!(matches!(
            parse_credentials(br#"{"Username":"u","Secret":"s"}"#),
            Err(CredentialsError::MissingServerUrl)
        ));
        assert!(matches!(
            parse_credentials(br#"{"ServerURL":"r","Secret":"s"}"#),
            Err(CredentialsError::MissingUsername)
        ));
        assert!(matches!(
            parse_credentials(br#"{"ServerURL":"r","Username":"u"}"#),
            Err(CredentialsError::MissingSecret)
        ));
        assert_eq!(
            CredentialsError::MissingServerUrl.to_string(),
            MISSING_SERVER_URL
        );
        assert_eq!(
            CredentialsError::MissingUsername.to_string(),
            MISSING_USERNAME
        );
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            parse_server_url(b"  r.example.com\n").unwrap(),
            "r.example.com"
        );
        assert_eq!(
            parse_server_url(b" \n"),
            Err(CredentialsError::MissingServerUrl)
        );
        assert_eq!(parse_server_url(b"\xff"), Err(CredentialsError::NotUtf8));
    }

    #[test]
    fn answers() {
        let text = render_credentials("r.example.com", "alice", &Secret::from("p\"w"));
        assert_eq!(
            text.as_str(),
            "{\"ServerURL\":\"r.example.com\",\"Username\":\"alice\",\"Secret\":\"p\\\"w\"}\n"
        );
        let mut entries = BTreeMap::new();
        assert_eq!(render_list(&entries), "{}\n");
        entries.insert("https://r.example.com".to_owned(), "alice".to_owned());
        assert_eq!(
            render_list(&entries),
            "{\"https://r.example.com\":\"alice\"}\n"
        );
    }
}
