//! git's credential protocol (git-credential(1)): a request is `key=value` lines up to an
//! empty line or the end of input; an answer is `key=value` lines.
//!
//! Parsing is strict where git's history shows attacks (CVE-2020-5260, CVE-2024-52006: a
//! newline or carriage return smuggled into a value makes a second, forged line): any
//! carriage return or NUL, a line without `=`, a key-less line, a value longer than
//! [`MAX_VALUE`], bytes that are not UTF-8, a request without `protocol` or `host`, or one
//! that names `protocol`, `host`, `path`, `username` or `password` twice (what a line feed
//! smuggled into a value produces: git itself never repeats them, and would take the forged
//! last one) refuses the whole request. Keys this helper does not use (`wwwauth[]`,
//! `capability[]`, `password_expiry_utc`, and any git adds later) are ignored. Errors name a
//! line number, never its text.

use latchkey_proto::Secret;
use zeroize::Zeroizing;

/// The longest value accepted, in bytes (latchkey's own limit on a secret).
pub const MAX_VALUE: usize = 16 * 1024;

/// What is wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A line is not `key=value`.
    #[error("line {0} of the request is not key=value")]
    NoEquals(usize),
    /// A line starts with `=`.
    #[error("line {0} of the request has no key")]
    NoKey(usize),
    /// A line holds a carriage return.
    #[error("line {0} of the request holds a carriage return")]
    CarriageReturn(usize),
    /// A line holds a NUL byte.
    #[error("line {0} of the request holds a NUL byte")]
    Nul(usize),
    /// A line is not UTF-8.
    #[error("line {0} of the request is not UTF-8")]
    NotUtf8(usize),
    /// A value is longer than [`MAX_VALUE`].
    #[error("line {0} of the request is longer than {MAX_VALUE} bytes")]
    TooLong(usize),
    /// A line repeats a key that may appear once.
    #[error("line {0} of the request repeats a key (as a line break smuggled into a value would)")]
    Repeated(usize),
    /// A required field is missing or empty.
    #[error("the request has no {0}")]
    Missing(&'static str),
    /// A field holds characters it may not.
    #[error("the request's {0} is not valid")]
    Invalid(&'static str),
}

/// One request from git, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `https`, `http`, ...: lower-case ASCII letters, digits, `+`, `-` and `.`.
    pub protocol: String,
    /// The host, with `:PORT` when git sends one; no `/`, `@`, `?`, `#`, `\`, white space
    /// or control characters.
    pub host: String,
    /// The path inside the host, sent by git only with `credential.useHttpPath`.
    pub path: Option<String>,
    /// The username, when git knows it.
    pub username: Option<String>,
    /// The password (`store`, `erase`).
    pub password: Option<Secret>,
}

/// Parses a request (the lines before the empty line, as read by
/// [`crate::input::read_until_blank_line`]).
pub fn parse(input: &[u8]) -> Result<Request, RequestError> {
    let mut protocol: Option<Secret> = None;
    let mut host: Option<Secret> = None;
    let mut path: Option<Secret> = None;
    let mut username: Option<Secret> = None;
    let mut password: Option<Secret> = None;
    let input = input.strip_suffix(b"\n").unwrap_or(input);
    if input.is_empty() {
        return Err(RequestError::Missing("protocol"));
    }
    for (index, line) in input.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if line.contains(&b'\r') {
            return Err(RequestError::CarriageReturn(number));
        }
        if line.contains(&0) {
            return Err(RequestError::Nul(number));
        }
        let Some(equals) = line.iter().position(|&b| b == b'=') else {
            return Err(RequestError::NoEquals(number));
        };
        if equals == 0 {
            return Err(RequestError::NoKey(number));
        }
        let (key, value) = (&line[..equals], &line[equals + 1..]);
        if value.len() > MAX_VALUE {
            return Err(RequestError::TooLong(number));
        }
        let value = std::str::from_utf8(value).map_err(|_| RequestError::NotUtf8(number))?;
        let slot = match key {
            b"protocol" => &mut protocol,
            b"host" => &mut host,
            b"path" => &mut path,
            b"username" => &mut username,
            b"password" => &mut password,
            // Unknown keys are ignored, but only once the whole line was checked above.
            _ => continue,
        };
        if slot.is_some() {
            return Err(RequestError::Repeated(number));
        }
        *slot = Some(Secret::new(value.to_owned()));
    }
    // Every field was read as a secret, so the password's copy is wiped; the others are not
    // secret and become plain strings.
    let text = |field: Option<Secret>| field.map(|f| f.expose().to_owned());
    let (protocol, host, path, username) = (text(protocol), text(host), text(path), text(username));
    let protocol = protocol
        .filter(|p| !p.is_empty())
        .ok_or(RequestError::Missing("protocol"))?;
    let valid_protocol = protocol
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if !valid_protocol {
        return Err(RequestError::Invalid("protocol"));
    }
    let host = host
        .filter(|h| !h.is_empty())
        .ok_or(RequestError::Missing("host"))?;
    let valid_host = !host
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "/@?#\\".contains(c));
    if !valid_host {
        return Err(RequestError::Invalid("host"));
    }
    let path = path.filter(|p| !p.is_empty());
    if path
        .as_deref()
        .is_some_and(|p| p.chars().any(char::is_control))
    {
        return Err(RequestError::Invalid("path"));
    }
    let username = username.filter(|u| !u.is_empty());
    if username
        .as_deref()
        .is_some_and(|u| u.chars().any(char::is_control))
    {
        return Err(RequestError::Invalid("username"));
    }
    Ok(Request {
        protocol,
        host,
        path,
        username,
        password: password.filter(|p| !p.is_empty()),
    })
}

/// What `get` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The username.
    pub username: String,
    /// The password or token.
    pub password: Secret,
    /// When the token expires, in seconds since the Unix epoch (git ≥ 2.41 stops using it
    /// then).
    pub expiry_utc: Option<i64>,
}

/// A value of an answer holds a character the protocol cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored {0} holds a line break or NUL, which git's protocol cannot carry")]
pub struct UnsafeAnswer(pub &'static str);

impl Answer {
    /// The answer's lines, in memory that is wiped when dropped.
    pub fn render(&self) -> Result<Zeroizing<String>, UnsafeAnswer> {
        let unsafe_text = |s: &str| s.contains(['\n', '\r', '\0']);
        if self.username.is_empty() || unsafe_text(&self.username) {
            return Err(UnsafeAnswer("username"));
        }
        if self.password.is_empty() || unsafe_text(self.password.expose()) {
            return Err(UnsafeAnswer("password"));
        }
        let mut text = Zeroizing::new(String::with_capacity(
            self.username.len() + self.password.len() + 64,
        ));
        text.push_str("username=");
        text.push_str(&self.username);
        text.push_str("\npassword=");
        text.push_str(self.password.expose());
        text.push('\n');
        if let Some(expiry) = self.expiry_utc {
            text.push_str(&format!("password_expiry_utc={expiry}\n"));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Result<Request, RequestError> {
        parse(text.as_bytes())
    }

    #[test]
    fn a_plain_request() {
        let r = request("protocol=https\nhost=example.com:8443\nusername=alice\npassword=pw\n")
            .unwrap();
        assert_eq!(r.protocol, "https");
        assert_eq!(r.host, "example.com:8443");
        assert_eq!(r.path, None);
        assert_eq!(r.username.as_deref(), Some("alice"));
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("pw"));
    }

    #[test]
    fn unknown_keys_are_ignored_and_may_repeat() {
        let r = request(
            "capability[]=authtype\ncapability[]=state\nprotocol=https\nwwwauth[]=Basic realm=\"x=y\"\nhost=b.example\nfuture_key=1\nfuture_key=2\npath=org/repo.git\n",
        )
        .unwrap();
        assert_eq!(r.host, "b.example");
        assert_eq!(r.path.as_deref(), Some("org/repo.git"));
    }

    #[test]
    fn a_value_may_hold_equals_signs() {
        let r = request("protocol=https\nhost=h\npassword=a=b==\n").unwrap();
        assert_eq!(r.password.unwrap().expose(), "a=b==");
    }

    #[test]
    fn hostile_lines_refuse_the_whole_request() {
        let cases: &[(&[u8], RequestError)] = &[
            (
                b"protocol=https\nhost=evil.example\rhost=github.com\n",
                RequestError::CarriageReturn(2),
            ),
            (
                b"protocol=https\r\nhost=example.com\n",
                RequestError::CarriageReturn(1),
            ),
            (
                b"protocol=https\nhost=example.com\0github.com\n",
                RequestError::Nul(2),
            ),
            (
                b"protocol=https\nunknown=a\0b\nhost=h\n",
                RequestError::Nul(2),
            ),
            (
                b"protocol=https\nhost example.com\n",
                RequestError::NoEquals(2),
            ),
            (b"protocol=https\n=x\nhost=h\n", RequestError::NoKey(2)),
            // A line feed smuggled into the host (CVE-2020-5260).
            (
                b"protocol=https\nhost=evil.example\nhost=github.com\n",
                RequestError::Repeated(3),
            ),
            (
                b"protocol=https\nhost=h\npath=a\nusername=u\npassword=p\nprotocol=http\n",
                RequestError::Repeated(6),
            ),
            (
                b"protocol=https\nhost=h\nusername=u\nusername=admin\n",
                RequestError::Repeated(4),
            ),
            (
                b"protocol=https\nhost=h\npassword=\xff\xfe\n",
                RequestError::NotUtf8(3),
            ),
            (b"host=example.com\n", RequestError::Missing("protocol")),
            (b"protocol=https\n", RequestError::Missing("host")),
            (b"protocol=https\nhost=\n", RequestError::Missing("host")),
            (b"", RequestError::Missing("protocol")),
            (
                b"protocol=https\nhost=evil.example/github.com\n",
                RequestError::Invalid("host"),
            ),
            (
                b"protocol=https\nhost=user@evil.example\n",
                RequestError::Invalid("host"),
            ),
            (b"protocol=https\nhost=a b\n", RequestError::Invalid("host")),
            (
                b"protocol=HTTPS://\nhost=h\n",
                RequestError::Invalid("protocol"),
            ),
            (
                b"protocol=https\nhost=h\npath=a\x1b[31m\n",
                RequestError::Invalid("path"),
            ),
            (
                b"protocol=https\nhost=h\nusername=a\tb\n",
                RequestError::Invalid("username"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(input).as_ref().err(),
                Some(expected),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn an_overlong_value_is_refused() {
        let long = format!(
            "protocol=https\nhost=h\npassword={}\n",
            "x".repeat(MAX_VALUE + 1)
        );
        assert_eq!(request(&long), Err(RequestError::TooLong(3)));
        let fits = format!(
            "protocol=https\nhost=h\npassword={}\n",
            "x".repeat(MAX_VALUE)
        );
        assert!(request(&fits).is_ok());
    }

    #[test]
    fn errors_never_quote_the_input() {
        let err = parse(b"protocol=https\nhost=h\npassword=hunter2\rx\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let err = parse(b"protocol=https\nhunter2\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn answers_render_and_refuse_line_breaks() {
        let answer = Answer {
            username: "x-access-token".into(),
            password: Secret::from("tok"),
            expiry_utc: Some(1_700_000_000),
        };
        assert_eq!(
            answer.render().unwrap().as_str(),
            "username=x-access-token\npassword=tok\npassword_expiry_utc=1700000000\n"
        );
        for bad in ["a\nusername=evil", "a\rb", "a\0b", ""] {
            let answer = Answer {
                username: "u".into(),
                password: Secret::from(bad),
                expiry_utc: None,
            };
            assert_eq!(answer.render(), Err(UnsafeAnswer("password")));
        }
        let answer = Answer {
            username: "u\nhost=evil".into(),
            password: Secret::from("p"),
            expiry_utc: None,
        };
        assert_eq!(answer.render(), Err(UnsafeAnswer("username")));
    }
}
