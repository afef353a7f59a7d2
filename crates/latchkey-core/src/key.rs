//! Entry keys: a service and an account, validated once at the edge.

use std::fmt;

use latchkey_proto::DEFAULT_ACCOUNT;
use serde::{Deserialize, Serialize};

/// Longest accepted service name, in bytes (long enough for an issuer URL).
pub const MAX_SERVICE_LEN: usize = 512;
/// Longest accepted account name, in bytes.
pub const MAX_ACCOUNT_LEN: usize = 256;

/// Why a name was refused. The messages never repeat the name itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The name is empty.
    #[error("the {field} name is empty")]
    Empty {
        /// `service` or `account`.
        field: &'static str,
    },
    /// The name is longer than allowed.
    #[error("the {field} name is longer than {max} bytes")]
    TooLong {
        /// `service` or `account`.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// The name contains a control character (newline, NUL, escape, ...).
    #[error("the {field} name contains a control character")]
    ControlCharacter {
        /// `service` or `account`.
        field: &'static str,
    },
}

/// A validated service + account pair naming one entry.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawKey", into = "RawKey")]
pub struct EntryKey {
    service: String,
    account: String,
}

#[derive(Serialize, Deserialize)]
struct RawKey {
    service: String,
    account: String,
}

impl TryFrom<RawKey> for EntryKey {
    type Error = KeyError;
    fn try_from(raw: RawKey) -> Result<Self, KeyError> {
        EntryKey::new(&raw.service, Some(&raw.account))
    }
}

impl From<EntryKey> for RawKey {
    fn from(key: EntryKey) -> Self {
        RawKey {
            service: key.service,
            account: key.account,
        }
    }
}

fn check(field: &'static str, value: &str, max: usize) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty { field });
    }
    if value.len() > max {
        return Err(KeyError::TooLong { field, max });
    }
    if value.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter { field });
    }
    Ok(())
}

impl EntryKey {
    /// Validates a service and an optional account (`"default"` when `None`).
    pub fn new(service: &str, account: Option<&str>) -> Result<Self, KeyError> {
        let account = account.unwrap_or(DEFAULT_ACCOUNT);
        check("service", service, MAX_SERVICE_LEN)?;
        check("account", account, MAX_ACCOUNT_LEN)?;
        Ok(Self {
            service: service.to_owned(),
            account: account.to_owned(),
        })
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}", self.service, self.account)
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Validated names hold no control characters, so they print safely.
        write!(f, "{}/{}", self.service, self.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_account() {
        let key = EntryKey::new("github", None).unwrap();
        assert_eq!(key.account(), "default");
    }

    #[test]
    fn unicode_is_accepted() {
        let key = EntryKey::new("сервис-😀", Some("José")).unwrap();
        assert_eq!(key.service(), "сервис-😀");
        assert_eq!(key.account(), "José");
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(
            EntryKey::new("", None),
            Err(KeyError::Empty { field: "service" })
        );
        assert_eq!(
            EntryKey::new("a", Some("")),
            Err(KeyError::Empty { field: "account" })
        );
        for bad in [
            "a\nb",
            "a\0b",
            "a\u{1b}[31m",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            assert_eq!(
                EntryKey::new(bad, None),
                Err(KeyError::ControlCharacter { field: "service" }),
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_SERVICE_LEN + 1);
        assert!(matches!(
            EntryKey::new(&long, None),
            Err(KeyError::TooLong { .. })
        ));
        assert!(EntryKey::new(&long[1..], None).is_ok());
        let long_account = "é".repeat(MAX_ACCOUNT_LEN / 2 + 1);
        assert!(matches!(
            EntryKey::new("s", Some(&long_account)),
            Err(KeyError::TooLong {
                field: "account",
                ..
            })
        ));
    }

    #[test]
    fn errors_do_not_repeat_the_name() {
        let err = EntryKey::new("secret-looking\u{1b}name", None).unwrap_err();
        assert!(!err.to_string().contains("secret-looking"));
    }

    #[test]
    fn deserializing_validates() {
        let bad: Result<EntryKey, _> = serde_json::from_str(r#"{"service":"a\nb","account":"x"}"#);
        assert!(bad.is_err());
        let good: EntryKey = serde_json::from_str(r#"{"service":"a","account":"x"}"#).unwrap();
        assert_eq!(good, EntryKey::new("a", Some("x")).unwrap());
    }
}
