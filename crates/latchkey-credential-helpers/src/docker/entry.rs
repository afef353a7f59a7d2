//! Which latchkey entries a docker server URL maps to: service `docker:` plus the normalised
//! URL, one entry per username (the account).
//!
//! Normalising follows the reference helpers: a URL without a scheme
//! (`registry.example.com:5000`) is read as a host, and as https; only `http` and `https` are
//! accepted; a URL must name a host; the query is dropped. Beyond that: the host is
//! lower-cased, a default port (`:443` for https) and an empty path (`/`) are dropped, a
//! fragment is dropped, and a URL with a username or password in it is refused (a secret
//! must never become part of an entry's name). Control characters anywhere are refused
//! before parsing, since URL parsing would silently strip tabs and line breaks.

use latchkey_core::EntryKey;

/// The prefix of every service this helper uses.
pub const SERVICE_PREFIX: &str = "docker:";

/// Why a server URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL holds a control character.
    #[error("the server URL holds a control character")]
    ControlCharacter,
    /// The URL cannot be parsed.
    #[error("the server URL is not a valid URL")]
    Unparsable,
    /// The scheme is neither http nor https.
    #[error("unsupported scheme in the server URL (only http and https)")]
    Scheme,
    /// The URL names no host.
    #[error("no hostname in the server URL")]
    NoHost,
    /// The URL carries a username or password.
    #[error("the server URL carries a username or password")]
    Credentials,
    /// The resulting entry name is not valid (too long, hidden characters).
    #[error("the server URL does not make a valid entry name: {0}")]
    Name(#[from] latchkey_core::KeyError),
}

/// A server URL, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Normalises `raw` (surrounding white space is ignored).
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw = raw.trim();
        if raw.chars().any(char::is_control) {
            return Err(UrlError::ControlCharacter);
        }
        // URL parsing maps `\` to `/` and reads `https:///host` as `https://host`: neither
        // is what the reference helpers accept.
        if raw.contains('\\') {
            return Err(UrlError::Unparsable);
        }
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("https", raw.strip_prefix("//").unwrap_or(raw)),
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(UrlError::NoHost);
        }
        let with_scheme = format!("{scheme}://{rest}");
        let url = url::Url::parse(&with_scheme).map_err(|_| UrlError::Unparsable)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(UrlError::NoHost)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let mut text = format!("{}://{}", url.scheme(), host);
        if let Some(port) = url.port() {
            text.push_str(&format!(":{port}"));
        }
        if url.path() != "/" {
            text.push_str(url.path());
        }
        latchkey_core::check_service(&format!("{SERVICE_PREFIX}{text}"))?;
        Ok(Self(text))
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The service of this URL's entries.
    pub fn service(&self) -> String {
        format!("{SERVICE_PREFIX}{}", self.0)
    }

    /// The entry of `username` at this URL.
    pub fn key(&self, username: &str) -> Result<EntryKey, UrlError> {
        Ok(EntryKey::new(&self.service(), Some(username))?)
    }

    /// The URL of a service this helper uses, if `service` is one.
    pub fn from_service(service: &str) -> Option<&str> {
        service.strip_prefix(SERVICE_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(raw: &str) -> String {
        ServerUrl::parse(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn urls_normalise_as_the_reference_helpers_read_them() {
        assert_eq!(
            normal("registry.example.com"),
            "https://registry.example.com"
        );
        assert_eq!(
            normal("Registry.Example.com:5000"),
            "https://registry.example.com:5000"
        );
        assert_eq!(
            normal("//registry.example.com:5000"),
            "https://registry.example.com:5000"
        );
        assert_eq!(
            normal("https://registry.example.com/"),
            "https://registry.example.com"
        );
        assert_eq!(
            normal("https://registry.example.com:443"),
            "https://registry.example.com"
        );
        assert_eq!(
            normal("http://registry.example.com:80/"),
            "http://registry.example.com"
        );
        assert_eq!(normal("http://localhost:5000"), "http://localhost:5000");
        assert_eq!(
            normal("https://index.docker.io/v1/"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(
            normal("https://r.example.com:2376/some/path?foo=bar#frag"),
            "https://r.example.com:2376/some/path"
        );
        assert_eq!(normal("  r.example.com\n"), "https://r.example.com");
        assert_eq!(normal("[::1]:5000"), "https://[::1]:5000");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert_eq!(
            ServerUrl::parse("ftp://r.example.com"),
            Err(UrlError::Scheme)
        );
        assert_eq!(ServerUrl::parse("/r.example.com"), Err(UrlError::NoHost));
        assert_eq!(ServerUrl::parse(""), Err(UrlError::NoHost));
        assert_eq!(
            ServerUrl::parse("https:///r.example.com"),
            Err(UrlError::NoHost)
        );
        assert_eq!(ServerUrl::parse("///r.example.com"), Err(UrlError::NoHost));
        assert_eq!(
            ServerUrl::parse("https:\\\\r.example.com"),
            Err(UrlError::Unparsable)
        );
        assert_eq!(
            ServerUrl::parse("https://r.exa\nmple.com"),
            Err(UrlError::ControlCharacter)
        );
        assert_eq!(
            ServerUrl::parse("r.example.com\0evil"),
            Err(UrlError::ControlCharacter)
        );
        assert_eq!(
            ServerUrl::parse("https://user:hunter2@r.example.com"),
            Err(UrlError::Credentials)
        );
        let long = format!(
            "r.example.com/{}",
            "p".repeat(latchkey_core::MAX_SERVICE_LEN)
        );
        assert!(matches!(ServerUrl::parse(&long), Err(UrlError::Name(_))));
        assert!(ServerUrl::parse("https://r.example.com/\u{202e}")
            .is_ok_and(|u| !u.as_str().contains('\u{202e}')));
    }

    #[test]
    fn services_round_trip() {
        let url = ServerUrl::parse("registry.example.com").unwrap();
        assert_eq!(url.service(), "docker:https://registry.example.com");
        assert_eq!(
            ServerUrl::from_service(&url.service()),
            Some("https://registry.example.com")
        );
        assert_eq!(ServerUrl::from_service("github"), None);
        assert_eq!(url.key("alice").unwrap().account(), "alice");
        assert!(url.key("").is_err());
    }
}
