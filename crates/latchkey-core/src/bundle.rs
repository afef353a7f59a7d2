//! The secret credential of an entry and the JSON document it is stored as.
//!
//! The document is one JSON object with a `version` and a `kind` tag. Fields this version does
//! not know are kept in [`StoredBundle`] and written back unchanged, so an older daemon never
//! strips what a newer one stored. A document without `version` is the pre-versioned layout and
//! reads the same way.

use chrono::{DateTime, Duration, Utc};
use latchkey_proto::{BundleInput, Kind, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::store::SecretBytes;

/// The document version this daemon writes.
pub const DOCUMENT_VERSION: u32 = 1;

const MAX_SECRET_LEN: usize = 16 * 1024;
const MAX_SCOPES: usize = 64;
const MAX_SCOPE_LEN: usize = 256;
const MAX_LABEL_LEN: usize = 256;
const MAX_EXPIRES_IN: i64 = 10 * 365 * 24 * 3600;

/// Why a bundle was refused or a document could not be read. Never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A required field is missing or empty.
    #[error("the bundle's {0} is missing or empty")]
    Missing(&'static str),
    /// A field is longer than allowed.
    #[error("the bundle's {0} is too long")]
    TooLong(&'static str),
    /// A field holds characters it may not hold.
    #[error("the bundle's {0} contains characters that are not allowed")]
    BadCharacters(&'static str),
    /// `expires_in` is not a positive number of seconds within ten years.
    #[error("expires_in must be between 1 second and 10 years")]
    BadExpiry,
    /// Too many scopes.
    #[error("a bundle may carry at most {MAX_SCOPES} scopes")]
    TooManyScopes,
    /// The stored document is not a latchkey document.
    #[error("the stored document is not readable")]
    Corrupt,
    /// The stored document has a kind this version does not know.
    #[error("the stored entry has a kind this version of latchkey does not know")]
    UnknownKind,
}

/// An OAuth 2.0 token bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuth2Bundle {
    /// The access token handed to clients.
    pub access_token: Secret,
    /// The refresh token; it never leaves the daemon.
    pub refresh_token: Option<Secret>,
    /// The token type, usually `Bearer`.
    pub token_type: String,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// An OpenID Connect ID token.
    pub id_token: Option<Secret>,
    /// The provider that issued it.
    pub provider: Option<String>,
}

/// The secret credential of one entry. `Debug` shows no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenBundle {
    /// OAuth 2.0 tokens.
    OAuth2(OAuth2Bundle),
    /// An API key.
    ApiKey {
        /// The key.
        key: Secret,
    },
    /// A username and password.
    Password {
        /// The username (not secret).
        username: String,
        /// The password.
        password: Secret,
    },
}

fn check_secret(field: &'static str, secret: &Secret) -> Result<(), BundleError> {
    if secret.is_empty() {
        return Err(BundleError::Missing(field));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(BundleError::TooLong(field));
    }
    Ok(())
}

fn check_label(field: &'static str, value: &str) -> Result<(), BundleError> {
    if value.is_empty() {
        return Err(BundleError::Missing(field));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(BundleError::TooLong(field));
    }
    if value.chars().any(char::is_control) {
        return Err(BundleError::BadCharacters(field));
    }
    Ok(())
}

/// RFC 6749 §3.3: a scope token is printable ASCII except space, `"` and `\`.
fn check_scopes(scopes: &[String]) -> Result<(), BundleError> {
    if scopes.len() > MAX_SCOPES {
        return Err(BundleError::TooManyScopes);
    }
    for scope in scopes {
        if scope.is_empty() {
            return Err(BundleError::Missing("scope"));
        }
        if scope.len() > MAX_SCOPE_LEN {
            return Err(BundleError::TooLong("scope"));
        }
        let ok = scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !ok {
            return Err(BundleError::BadCharacters("scope"));
        }
    }
    Ok(())
}

/// Sorted and without duplicates, so comparisons and output are stable.
fn normalize_scopes(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort();
    scopes.dedup();
    scopes
}

impl TokenBundle {
    /// Validates what a client sent to `set`. `now` resolves a relative `expires_in`.
    pub fn from_input(input: BundleInput, now: DateTime<Utc>) -> Result<Self, BundleError> {
        match input {
            BundleInput::Oauth2 {
                access_token,
                refresh_token,
                token_type,
                expires_at,
                expires_in,
                scopes,
                id_token,
                provider,
            } => {
                check_secret("access_token", &access_token)?;
                if let Some(refresh) = &refresh_token {
                    check_secret("refresh_token", refresh)?;
                }
                if let Some(id) = &id_token {
                    check_secret("id_token", id)?;
                }
                let token_type = token_type.unwrap_or_else(|| "Bearer".to_owned());
                check_label("token_type", &token_type)?;
                if let Some(provider) = &provider {
                    check_label("provider", provider)?;
                }
                check_scopes(&scopes)?;
                let expires_at = match (expires_at, expires_in) {
                    (Some(at), _) => Some(at),
                    (None, Some(secs)) if (1..=MAX_EXPIRES_IN).contains(&secs) => {
                        Some(now + Duration::seconds(secs))
                    }
                    (None, Some(_)) => return Err(BundleError::BadExpiry),
                    (None, None) => None,
                };
                Ok(TokenBundle::OAuth2(OAuth2Bundle {
                    access_token,
                    refresh_token,
                    token_type,
                    expires_at,
                    scopes: normalize_scopes(scopes),
                    id_token,
                    provider,
                }))
            }
            BundleInput::ApiKey { key } => {
                check_secret("key", &key)?;
                Ok(TokenBundle::ApiKey { key })
            }
            BundleInput::Password { username, password } => {
                check_label("username", &username)?;
                check_secret("password", &password)?;
                Ok(TokenBundle::Password { username, password })
            }
        }
    }

    /// The kind of credential.
    pub fn kind(&self) -> Kind {
        match self {
            TokenBundle::OAuth2(_) => Kind::Oauth2,
            TokenBundle::ApiKey { .. } => Kind::ApiKey,
            TokenBundle::Password { .. } => Kind::Password,
        }
    }

    /// Granted scopes (empty for non-OAuth kinds).
    pub fn scopes(&self) -> &[String] {
        match self {
            TokenBundle::OAuth2(b) => &b.scopes,
            _ => &[],
        }
    }

    /// When the usable secret expires, if it does.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            TokenBundle::OAuth2(b) => b.expires_at,
            _ => None,
        }
    }
}

/// The stored form of every kind: all known fields optional, unknown ones kept in `extra`.
#[derive(Default, Serialize, Deserialize)]
struct Document {
    #[serde(default)]
    version: u32,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<Secret>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A bundle together with the document fields this version does not understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBundle {
    /// The credential.
    pub bundle: TokenBundle,
    /// Unknown fields, kept as they were read. Their values are not printed by `Debug`.
    extra: Extra,
}

#[derive(Clone, Default, PartialEq, Eq)]
struct Extra(Map<String, Value>);

impl std::fmt::Debug for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl StoredBundle {
    /// A fresh bundle with no unknown fields.
    pub fn new(bundle: TokenBundle) -> Self {
        Self {
            bundle,
            extra: Extra::default(),
        }
    }

    /// The same document with another bundle: the unknown fields stay.
    pub fn replaced(&self, bundle: TokenBundle) -> Self {
        Self {
            bundle,
            extra: self.extra.clone(),
        }
    }

    /// Names of the fields kept without being understood.
    pub fn unknown_fields(&self) -> impl Iterator<Item = &str> {
        self.extra.0.keys().map(String::as_str)
    }

    /// Serializes to the stored JSON document.
    pub fn to_document(&self) -> SecretBytes {
        let mut doc = Document {
            version: DOCUMENT_VERSION,
            kind: self.bundle.kind().as_str().to_owned(),
            extra: self.extra.0.clone(),
            ..Document::default()
        };
        match &self.bundle {
            TokenBundle::OAuth2(b) => {
                doc.access_token = Some(b.access_token.clone());
                doc.refresh_token = b.refresh_token.clone();
                doc.token_type = Some(b.token_type.clone());
                doc.expires_at = b.expires_at;
                doc.scopes = Some(b.scopes.clone());
                doc.id_token = b.id_token.clone();
                doc.provider = b.provider.clone();
            }
            TokenBundle::ApiKey { key } => doc.key = Some(key.clone()),
            TokenBundle::Password { username, password } => {
                doc.username = Some(username.clone());
                doc.password = Some(password.clone());
            }
        }
        // A struct of strings, numbers and maps always serializes.
        Zeroizing::new(serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// Reads a stored JSON document.
    pub fn from_document(bytes: &[u8]) -> Result<Self, BundleError> {
        let doc: Document = serde_json::from_slice(bytes).map_err(|_| BundleError::Corrupt)?;
        let bundle = match doc.kind.as_str() {
            "oauth2" => TokenBundle::OAuth2(OAuth2Bundle {
                access_token: doc.access_token.ok_or(BundleError::Corrupt)?,
                refresh_token: doc.refresh_token,
                token_type: doc.token_type.unwrap_or_else(|| "Bearer".to_owned()),
                expires_at: doc.expires_at,
                scopes: normalize_scopes(doc.scopes.unwrap_or_default()),
                id_token: doc.id_token,
                provider: doc.provider,
            }),
            "api_key" => TokenBundle::ApiKey {
                key: doc.key.ok_or(BundleError::Corrupt)?,
            },
            "password" => TokenBundle::Password {
                username: doc.username.ok_or(BundleError::Corrupt)?,
                password: doc.password.ok_or(BundleError::Corrupt)?,
            },
            _ => return Err(BundleError::UnknownKind),
        };
        Ok(Self {
            bundle,
            extra: Extra(doc.extra),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn oauth_input() -> BundleInput {
        BundleInput::Oauth2 {
            access_token: "at-canary".into(),
            refresh_token: Some("rt-canary".into()),
            token_type: None,
            expires_at: None,
            expires_in: Some(3600),
            scopes: vec!["repo".into(), "read:org".into(), "repo".into()],
            id_token: None,
            provider: Some("github".into()),
        }
    }

    #[test]
    fn each_kind_round_trips() {
        let inputs = [
            oauth_input(),
            BundleInput::ApiKey {
                key: "key-canary".into(),
            },
            BundleInput::Password {
                username: "alice".into(),
                password: "pw-canary".into(),
            },
        ];
        for input in inputs {
            let bundle = TokenBundle::from_input(input, now()).unwrap();
            let stored = StoredBundle::new(bundle.clone());
            let doc = stored.to_document();
            let back = StoredBundle::from_document(&doc).unwrap();
            assert_eq!(back.bundle, bundle);
            assert_eq!(back.unknown_fields().count(), 0);
        }
    }

    #[test]
    fn oauth_input_is_normalized() {
        let TokenBundle::OAuth2(b) = TokenBundle::from_input(oauth_input(), now()).unwrap() else {
            panic!("wrong kind");
        };
        assert_eq!(b.expires_at, Some(now() + Duration::hours(1)));
        assert_eq!(b.scopes, vec!["read:org".to_owned(), "repo".to_owned()]);
        assert_eq!(b.token_type, "Bearer");
    }

    #[test]
    fn document_layout_is_pinned() {
        let stored = StoredBundle::new(TokenBundle::ApiKey { key: "k".into() });
        let text = String::from_utf8(stored.to_document().to_vec()).unwrap();
        assert_eq!(text, r#"{"version":1,"kind":"api_key","key":"k"}"#);
    }

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let newer = br#"{"version":7,"kind":"oauth2","access_token":"a","scopes":["x"],
            "dpop_key":{"alg":"ES256"},"issued_by_build":42}"#;
        let stored = StoredBundle::from_document(newer).unwrap();
        let mut names: Vec<_> = stored.unknown_fields().collect();
        names.sort();
        assert_eq!(names, ["dpop_key", "issued_by_build"]);
        let rewritten: Value = serde_json::from_slice(&stored.to_document()).unwrap();
        assert_eq!(rewritten["dpop_key"]["alg"], "ES256");
        assert_eq!(rewritten["issued_by_build"], 42);
        assert_eq!(rewritten["version"], DOCUMENT_VERSION);
    }

    #[test]
    fn unversioned_documents_still_read() {
        let old = br#"{"kind":"password","username":"u","password":"p"}"#;
        let stored = StoredBundle::from_document(old).unwrap();
        assert_eq!(stored.bundle.kind(), Kind::Password);
    }

    #[test]
    fn broken_documents_are_errors() {
        assert_eq!(
            StoredBundle::from_document(b"not json"),
            Err(BundleError::Corrupt)
        );
        assert_eq!(
            StoredBundle::from_document(br#"{"version":1,"kind":"api_key"}"#),
            Err(BundleError::Corrupt)
        );
        assert_eq!(
            StoredBundle::from_document(br#"{"version":2,"kind":"ssh_key","k":"v"}"#),
            Err(BundleError::UnknownKind)
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        let bad_scope = BundleInput::Oauth2 {
            access_token: "a".into(),
            refresh_token: None,
            token_type: None,
            expires_at: None,
            expires_in: None,
            scopes: vec!["has space".into()],
            id_token: None,
            provider: None,
        };
        assert_eq!(
            TokenBundle::from_input(bad_scope, now()),
            Err(BundleError::BadCharacters("scope"))
        );
        for secs in [0, -5, MAX_EXPIRES_IN + 1] {
            let input = BundleInput::Oauth2 {
                access_token: "a".into(),
                refresh_token: None,
                token_type: None,
                expires_at: None,
                expires_in: Some(secs),
                scopes: vec![],
                id_token: None,
                provider: None,
            };
            assert_eq!(
                TokenBundle::from_input(input, now()),
                Err(BundleError::BadExpiry)
            );
        }
        assert_eq!(
            TokenBundle::from_input(BundleInput::ApiKey { key: "".into() }, now()),
            Err(BundleError::Missing("key"))
        );
        let user = BundleInput::Password {
            username: "a\nb".into(),
            password: "p".into(),
        };
        assert_eq!(
            TokenBundle::from_input(user, now()),
            Err(BundleError::BadCharacters("username"))
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let bundle = TokenBundle::from_input(oauth_input(), now()).unwrap();
        let stored = StoredBundle::from_document(
            br#"{"kind":"api_key","key":"key-canary","extra_secret":"x-canary"}"#,
        )
        .unwrap();
        let shown = format!("{bundle:?} {stored:?}");
        assert!(!shown.contains("canary"), "{shown}");
    }
}
