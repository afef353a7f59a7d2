//! Reading a bundle (`set`'s credential) from JSON with errors that say which field is wrong.
//!
//! [`BundleInput`] is a tagged enum, which serde reads through a buffer: its errors carry no
//! position (`line 0, column 0`) and may quote the offending value, which could be a secret.
//! So the JSON is read as a tree first (a syntax error keeps its line and column), each field
//! of the bundle's `kind` is checked by hand, and only then is the enum built. Messages name
//! latchkey's own fields and kinds, never a value or a field name the input brought.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::types::BundleInput;

/// The kinds a bundle may have, as the messages list them.
const KINDS: &str = "\"oauth2\", \"api_key\" or \"password\"";

/// Why a bundle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleJsonError {
    /// The text is not JSON.
    #[error("the bundle is not valid JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The JSON is not an object.
    #[error("the bundle must be a JSON object, like {{\"kind\": \"api_key\", \"key\": \"...\"}}")]
    NotAnObject,
    /// `kind` is absent, not a string, or not a known kind.
    #[error("`kind` must be {KINDS}")]
    Kind,
    /// A field the kind needs is absent.
    #[error("`{field}` is missing (a {kind} bundle needs it)")]
    Missing {
        /// The bundle's kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong type or an unusable value.
    #[error("`{field}` must be {expected}")]
    Field {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

/// What a field must hold.
#[derive(Clone, Copy)]
enum Expect {
    /// A string.
    Text,
    /// A whole number (of seconds).
    Seconds,
    /// An RFC 3339 time as a string.
    Time,
    /// A list of strings.
    Texts,
}

impl Expect {
    fn describe(self) -> &'static str {
        match self {
            Expect::Text => "a string",
            Expect::Seconds => "a whole number of seconds",
            Expect::Time => "an RFC 3339 time such as \"2030-01-01T00:00:00Z\"",
            Expect::Texts => "a list of strings",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Expect::Text => value.is_string(),
            Expect::Seconds => value.as_i64().is_some(),
            Expect::Time => value
                .as_str()
                .is_some_and(|text| text.parse::<DateTime<Utc>>().is_ok()),
            Expect::Texts => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
        }
    }
}

/// One field of a kind: its name, what it holds, whether it is required.
type Field = (&'static str, Expect, bool);

/// The fields of each kind. An optional field may also be `null`, except `scopes` (a list,
/// empty when absent).
fn fields(kind: &str) -> Option<(&'static str, &'static [Field])> {
    Some(match kind {
        "oauth2" => (
            "oauth2",
            &[
                ("access_token", Expect::Text, true),
                ("refresh_token", Expect::Text, false),
                ("token_type", Expect::Text, false),
                ("expires_at", Expect::Time, false),
                ("expires_in", Expect::Seconds, false),
                ("scopes", Expect::Texts, false),
                ("id_token", Expect::Text, false),
                ("provider", Expect::Text, false),
            ],
        ),
        "api_key" => ("api_key", &[("key", Expect::Text, true)]),
        "password" => (
            "password",
            &[
                ("username", Expect::Text, true),
                ("password", Expect::Text, true),
            ],
        ),
        _ => return None,
    })
}

/// Checks a bundle's fields against its kind.
fn check(object: &Map<String, Value>) -> Result<(), BundleJsonError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(BundleJsonError::Kind)?;
    let (kind, fields) = fields(kind).ok_or(BundleJsonError::Kind)?;
    for &(field, expect, required) in fields {
        match object.get(field) {
            None if required => return Err(BundleJsonError::Missing { kind, field }),
            None => {}
            Some(Value::Null) if !required && field != "scopes" => {}
            Some(value) if expect.accepts(value) => {}
            Some(_) => {
                return Err(BundleJsonError::Field {
                    field,
                    expected: expect.describe(),
                })
            }
        }
    }
    Ok(())
}

impl BundleInput {
    /// Reads a bundle from JSON text (what `latchkey set --bundle` reads from stdin).
    pub fn from_json(text: &str) -> Result<Self, BundleJsonError> {
        let value: Value = serde_json::from_str(text).map_err(|e| BundleJsonError::Syntax {
            line: e.line(),
            column: e.column(),
        })?;
        Self::from_json_value(value)
    }

    /// Reads a bundle from a JSON value (the `bundle` of `set`'s params).
    pub fn from_json_value(value: Value) -> Result<Self, BundleJsonError> {
        check(value.as_object().ok_or(BundleJsonError::NotAnObject)?)?;
        // Every field the enum reads was checked; unknown fields are ignored, as in the
        // protocol.
        serde_json::from_value(value).map_err(|_| BundleJsonError::Kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        BundleInput::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn each_wrong_field_is_named_and_no_value_is_repeated() {
        for (text, expected) in [
            (
                r#"{"kind": "oauth2", "access_token": "SECRET-1", "expires_in": "3600"}"#,
                "`expires_in` must be a whole number of seconds",
            ),
            (
                r#"{"kind": "oauth2", "access_token": "SECRET-1", "expires_in": 1.5}"#,
                "`expires_in` must be a whole number of seconds",
            ),
            (
                r#"{"kind": "oauth2", "access_token": "SECRET-1", "scopes": "repo"}"#,
                "`scopes` must be a list of strings",
            ),
            (
                r#"{"kind": "oauth2", "access_token": "SECRET-1", "scopes": null}"#,
                "`scopes` must be a list of strings",
            ),
            (
                r#"{"kind": "oauth2", "access_token": "SECRET-1", "expires_at": "tomorrow"}"#,
                "`expires_at` must be an RFC 3339 time",
            ),
            (
                r#"{"kind": "oauth2", "refresh_token": "SECRET-1"}"#,
                "`access_token` is missing (a oauth2 bundle needs it)",
            ),
            (
                r#"{"kind": "oauth2", "access_token": 12345}"#,
                "`access_token` must be a string",
            ),
            (r#"{"kind": "api_key"}"#, "`key` is missing"),
            (
                r#"{"kind": "password", "password": "SECRET-1"}"#,
                "`username` is missing",
            ),
            (r#"{"key": "SECRET-1"}"#, "`kind` must be \"oauth2\""),
            (r#"{"kind": "SECRET-1", "key": "k"}"#, "`kind` must be"),
            (r#"{"kind": 3}"#, "`kind` must be"),
            (r#"["SECRET-1"]"#, "must be a JSON object"),
            ("\"SECRET-1\"", "must be a JSON object"),
        ] {
            let err = refused(text);
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("SECRET"), "{err}");
            assert!(!err.contains("line 0"), "{err}");
        }
    }

    #[test]
    fn syntax_errors_have_their_position() {
        assert_eq!(
            refused("{\"kind\": \"api_key\",\n \"key\": \"SECRET-1\",\n}"),
            "the bundle is not valid JSON (line 3, column 1)"
        );
        assert!(refused("").contains("line 1, column 0"));
        assert!(!refused("{\"key\": \"SECRET\u{1}-1\"}").contains("SECRET"));
    }

    #[test]
    fn what_the_readme_shows_is_read() {
        for text in [
            r#"{"kind": "oauth2", "access_token": "gho_...", "refresh_token": "ghr_...", "token_type": "Bearer",
 "expires_in": 28800, "scopes": ["repo", "read:org"], "provider": "github"}"#,
            r#"{"kind": "api_key", "key": "sk-..."}"#,
            r#"{"kind": "password", "username": "alice", "password": "..."}"#,
            r#"{"kind": "oauth2", "access_token": "a", "refresh_token": null, "expires_at": "2030-01-01T00:00:00Z", "extra": 1}"#,
        ] {
            BundleInput::from_json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let input = BundleInput::from_json(r#"{"kind": "api_key", "key": "k"}"#).unwrap();
        assert_eq!(input, BundleInput::ApiKey { key: "k".into() });
    }
}
