//! Entry keys: a service and an account, validated once at the edge.

use std::fmt;

use latchkey_proto::text::{hidden, Hidden};
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
    /// The name contains a bidirectional control or mark, which reorders how text is shown.
    #[error("the {field} name contains a bidirectional control character")]
    BidiControl {
        /// `service` or `account`.
        field: &'static str,
    },
    /// The name contains a zero-width character, which cannot be seen.
    #[error("the {field} name contains a zero-width character")]
    ZeroWidth {
        /// `service` or `account`.
        field: &'static str,
    },
    /// The name contains a line or paragraph separator.
    #[error("the {field} name contains a line or paragraph separator")]
    LineSeparator {
        /// `service` or `account`.
        field: &'static str,
    },
}

/// A validated service + account pair naming one entry.
///
/// Both names live in one shared allocation (`service`, then `account`), so the copies the
/// cache, the store and every listing keep of a key cost a reference count, not two strings
/// each: with 10,000 entries that is most of what the keys would otherwise take. Ordered by
/// service, then account.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawKey", into = "RawKey")]
pub struct EntryKey {
    /// `service` followed by `account`.
    names: std::sync::Arc<str>,
    /// Where `account` starts in `names`.
    split: u32,
}

impl Ord for EntryKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.view().cmp(other.view())
    }
}

impl PartialOrd for EntryKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A service and an account, borrowed or in an [`EntryKey`]: a map keyed by `EntryKey` can be
/// searched with [`KeyRef`] through it, without building (and allocating) a key. Ordered as
/// `EntryKey` is, by service, then account.
pub trait KeyView {
    /// The service name.
    fn service(&self) -> &str;
    /// The account name.
    fn account(&self) -> &str;
}

impl KeyView for EntryKey {
    fn service(&self) -> &str {
        EntryKey::service(self)
    }
    fn account(&self) -> &str {
        EntryKey::account(self)
    }
}

/// Names to look an entry up by, not validated: no invalid name is ever a key, so a lookup
/// with one finds nothing, and the caller validates only when nothing is found (to tell an
/// invalid name from a missing entry).
#[derive(Clone, Copy)]
pub struct KeyRef<'a> {
    /// The service name.
    pub service: &'a str,
    /// The account name (`"default"` when the caller named none).
    pub account: &'a str,
}

impl<'a> KeyRef<'a> {
    /// `service` and `account`, or `"default"` when `account` is `None` (as [`EntryKey::new`]).
    pub fn new(service: &'a str, account: Option<&'a str>) -> Self {
        Self {
            service,
            account: account.unwrap_or(DEFAULT_ACCOUNT),
        }
    }

    /// As a [`KeyView`], the form a map of [`EntryKey`]s is searched with.
    pub fn view(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl KeyView for KeyRef<'_> {
    fn service(&self) -> &str {
        self.service
    }
    fn account(&self) -> &str {
        self.account
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.service() == other.service() && self.account() == other.account()
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.service(), self.account()).cmp(&(other.service(), other.account()))
    }
}

impl<'a> std::borrow::Borrow<dyn KeyView + 'a> for EntryKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
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
            service: key.service().to_owned(),
            account: key.account().to_owned(),
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
    // Printable ASCII holds no control, bidirectional, zero-width or separator character.
    if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Ok(());
    }
    for c in value.chars() {
        if c.is_control() {
            return Err(KeyError::ControlCharacter { field });
        }
        match hidden(c) {
            Some(Hidden::Bidi) => return Err(KeyError::BidiControl { field }),
            Some(Hidden::ZeroWidth) => return Err(KeyError::ZeroWidth { field }),
            Some(Hidden::Separator) => return Err(KeyError::LineSeparator { field }),
            None => {}
        }
    }
    Ok(())
}

/// Services whose names start with this are the daemon's own (client secrets, the grant key):
/// clients can never read, write or clear them.
pub const RESERVED_PREFIX: &str = "latchkey:";

/// Reserved services that are also internal: the daemon's own bookkeeping (the grant key, the
/// revoked grants, the grants made), never shown by `status` or `list`, nor counted.
pub const INTERNAL_SERVICES: [&str; 3] = [
    "latchkey:grant-key",
    "latchkey:grant-revocations",
    "latchkey:grants",
];

/// Whether `service` is reserved for the daemon's own entries (see [`RESERVED_PREFIX`]).
pub fn is_reserved(service: &str) -> bool {
    service.starts_with(RESERVED_PREFIX)
}

/// Whether `service` is internal bookkeeping, hidden from listings (see [`INTERNAL_SERVICES`]).
pub fn is_internal(service: &str) -> bool {
    is_reserved(service) && INTERNAL_SERVICES.contains(&service)
}

/// Checks a service name as [`EntryKey::new`] would (for filters that name no whole entry).
pub fn check_service(service: &str) -> Result<(), KeyError> {
    check("service", service, MAX_SERVICE_LEN)
}

/// Checks an account name as [`EntryKey::new`] would (for filters that name no whole entry).
pub fn check_account(account: &str) -> Result<(), KeyError> {
    check("account", account, MAX_ACCOUNT_LEN)
}

impl EntryKey {
    /// Validates a service and an optional account (`"default"` when `None`).
    pub fn new(service: &str, account: Option<&str>) -> Result<Self, KeyError> {
        let account = account.unwrap_or(DEFAULT_ACCOUNT);
        check("service", service, MAX_SERVICE_LEN)?;
        check("account", account, MAX_ACCOUNT_LEN)?;
        // Both names are copied once, straight into the shared allocation (through a `String`
        // they would be copied twice and allocated twice).
        let mut joined = [0u8; MAX_SERVICE_LEN + MAX_ACCOUNT_LEN];
        let len = service.len() + account.len();
        joined[..service.len()].copy_from_slice(service.as_bytes());
        joined[service.len()..len].copy_from_slice(account.as_bytes());
        let names = std::str::from_utf8(&joined[..len]).expect("two strings joined are UTF-8");
        Ok(Self {
            names: names.into(),
            // At most MAX_SERVICE_LEN.
            split: service.len() as u32,
        })
    }

    /// This key as a [`KeyView`], to compare with borrowed names.
    fn view(&self) -> &dyn KeyView {
        self
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.names[..self.split as usize]
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.names[self.split as usize..]
    }
}

impl fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}", self.service(), self.account())
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Validated names hold no control, bidirectional, zero-width or separator characters,
        // so they print safely.
        write!(f, "{}/{}", self.service(), self.account())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_of_keys_is_searched_by_borrowed_names_in_the_same_order() {
        // Prefixes, an empty-looking split and non-ASCII: where a joined string and the
        // (service, account) pair would order differently.
        let pairs = [
            ("a", "bc"),
            ("ab", "c"),
            ("ab", "default"),
            ("a", "b"),
            ("é", "x"),
            ("z", "é"),
            ("github", "work"),
            ("github", "default"),
        ];
        let mut map = std::collections::BTreeMap::new();
        for (i, (service, account)) in pairs.iter().enumerate() {
            map.insert(EntryKey::new(service, Some(account)).unwrap(), i);
        }
        for (i, (service, account)) in pairs.iter().enumerate() {
            let names = KeyRef::new(service, Some(account));
            assert_eq!(map.get(names.view()), Some(&i), "{service}/{account}");
        }
        assert_eq!(map.get(KeyRef::new("github", None).view()), Some(&7));
        assert_eq!(map.get(KeyRef::new("abc", Some("")).view()), None);
        assert_eq!(map.get(KeyRef::new("a", Some("bcd")).view()), None);
        // The map's order is the pairs' order.
        let mut sorted = pairs.to_vec();
        sorted.sort();
        let in_map: Vec<_> = map.keys().map(|k| (k.service(), k.account())).collect();
        assert_eq!(in_map, sorted);
    }

    #[test]
    fn printable_ascii_passes_and_everything_else_is_still_checked() {
        let printable: String = (b' '..=b'~').map(char::from).collect();
        let key = EntryKey::new(&printable.repeat(2), Some(&printable)).unwrap();
        assert_eq!(key.service(), printable.repeat(2));
        assert_eq!(key.account(), printable);
        for bad in [
            "a\u{7f}b",
            "a\nb",
            "a\u{0}",
            "x\u{200b}y",
            "x\u{202e}y",
            "x\u{2028}y",
        ] {
            assert!(EntryKey::new(bad, None).is_err(), "{bad:?}");
            assert!(EntryKey::new("ok", Some(bad)).is_err(), "{bad:?}");
        }
    }

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
    fn bidi_controls_are_refused() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let name = format!("good{c}dab");
            assert_eq!(
                EntryKey::new(&name, None),
                Err(KeyError::BidiControl { field: "service" }),
                "{c:?}"
            );
            assert_eq!(
                EntryKey::new("s", Some(&name)),
                Err(KeyError::BidiControl { field: "account" }),
                "{c:?}"
            );
        }
    }

    #[test]
    fn zero_width_characters_are_refused() {
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
            let name = format!("git{c}hub");
            assert_eq!(
                EntryKey::new(&name, None),
                Err(KeyError::ZeroWidth { field: "service" }),
                "{c:?}"
            );
            assert_eq!(
                EntryKey::new("s", Some(&name)),
                Err(KeyError::ZeroWidth { field: "account" }),
                "{c:?}"
            );
        }
    }

    #[test]
    fn line_separators_are_refused() {
        for c in ['\u{2028}', '\u{2029}'] {
            let name = format!("a{c}b");
            assert_eq!(
                EntryKey::new(&name, None),
                Err(KeyError::LineSeparator { field: "service" }),
                "{c:?}"
            );
            assert_eq!(
                EntryKey::new("s", Some(&name)),
                Err(KeyError::LineSeparator { field: "account" }),
                "{c:?}"
            );
        }
    }

    #[test]
    fn filters_are_checked_like_keys() {
        assert!(check_service("github").is_ok());
        assert!(check_account("José").is_ok());
        assert_eq!(
            check_service("a\u{202E}b"),
            Err(KeyError::BidiControl { field: "service" })
        );
        assert_eq!(
            check_account("a\u{200B}"),
            Err(KeyError::ZeroWidth { field: "account" })
        );
        assert_eq!(check_account(""), Err(KeyError::Empty { field: "account" }));
    }

    #[test]
    fn errors_do_not_repeat_the_name() {
        let err = EntryKey::new("secret-looking\u{1b}name", None).unwrap_err();
        assert!(!err.to_string().contains("secret-looking"));
    }

    #[test]
    fn keys_order_by_service_then_account() {
        let key = |s: &str, a: &str| EntryKey::new(s, Some(a)).unwrap();
        let mut keys = [
            key("ab", "a"),
            key("a", "z"),
            key("a", "b"),
            key("a-b", "a"),
        ];
        keys.sort();
        let names: Vec<_> = keys.iter().map(|k| (k.service(), k.account())).collect();
        assert_eq!(names, [("a", "b"), ("a", "z"), ("a-b", "a"), ("ab", "a")]);
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_eq!(key("a", "bc").to_string(), "a/bc");
    }

    #[test]
    fn deserializing_validates() {
        let bad: Result<EntryKey, _> = serde_json::from_str(r#"{"service":"a\nb","account":"x"}"#);
        assert!(bad.is_err());
        let bidi: Result<EntryKey, _> =
            serde_json::from_str(r#"{"service":"a\u202eb","account":"x"}"#);
        assert!(bidi.is_err());
        let good: EntryKey = serde_json::from_str(r#"{"service":"a","account":"x"}"#).unwrap();
        assert_eq!(good, EntryKey::new("a", Some("x")).unwrap());
    }
}
