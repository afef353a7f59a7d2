//! Wire types of capability grants: `grant_create`, `grant_list`, `grant_revoke`,
//! `authenticate`, and the grant token a client presents (on `authenticate` or on `get`).
//!
//! A grant token is a secret: it is carried in [`GrantTokenText`], which is redacted in
//! `Debug`, wiped on drop, and refused when longer than [`MAX_GRANT_TOKEN_LEN`] before the
//! daemon ever parses it. `grant_list` never returns a token, only ids.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::Secret;

/// The longest grant token a request may carry, in bytes. A longer one is refused as invalid
/// params while the request is read, before anything looks inside it.
pub const MAX_GRANT_TOKEN_LEN: usize = 8 * 1024;

/// A grant token as a client presents it. Redacted in `Debug`, wiped on drop; reading one
/// longer than [`MAX_GRANT_TOKEN_LEN`] fails.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GrantTokenText(Secret);

impl GrantTokenText {
    /// Wraps a token; `None` when it is longer than [`MAX_GRANT_TOKEN_LEN`].
    pub fn new(token: String) -> Option<Self> {
        (token.len() <= MAX_GRANT_TOKEN_LEN).then(|| Self(Secret::new(token)))
    }

    /// The token. It must never reach a log.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for GrantTokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantTokenText(<redacted, {} bytes>)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for GrantTokenText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Secret::deserialize(deserializer)?;
        if text.len() > MAX_GRANT_TOKEN_LEN {
            return Err(serde::de::Error::custom("the grant token is too long"));
        }
        Ok(Self(text))
    }
}

/// Params of `authenticate`: binds a grant to the connection; every later request on it is
/// checked against that grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateParams {
    /// The grant token.
    pub grant: GrantTokenText,
}

/// Result of `authenticate`: the grant's id and when it expires (never the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateResult {
    /// The grant's id (`jti`).
    pub id: String,
    /// When the grant stops working.
    pub expires_at: DateTime<Utc>,
}

/// What a grant allows: its services (exact names or `prefix:*`), optionally one account,
/// the scopes a `get` may ask for (none: any), and its operations (`get`, `proxy`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCaps {
    /// Service names or patterns (`openai`, `github:*`, `*`).
    pub services: Vec<String>,
    /// The only account it covers; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The scopes it covers; any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Operations: `get`, `proxy`. `get` when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<String>,
}

/// Params of `grant_create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCreateParams {
    /// What the grant allows.
    #[serde(flatten)]
    pub caps: GrantCaps,
    /// How long it works, in seconds.
    pub ttl_secs: u64,
    /// A label for people (`grant list` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Result of `grant_create`: the token (shown once, never again) and its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCreateResult {
    /// The grant token to hand to the client that should use it.
    pub token: GrantTokenText,
    /// The grant's record.
    #[serde(flatten)]
    pub grant: GrantInfo,
}

/// One grant as `grant_list` shows it: never its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// The grant's id (`jti`), what `grant_revoke` takes.
    pub id: String,
    /// Its label.
    pub name: String,
    /// What it allows.
    pub caps: GrantCaps,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
}

/// Result of `grant_list`: the grants not yet expired, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantListResult {
    /// The grants.
    pub grants: Vec<GrantInfo>,
}

/// Params of `grant_revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRevokeParams {
    /// The grant's id.
    pub id: String,
}

/// Result of `grant_revoke` (an unknown id is `not_found` instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRevokeResult {
    /// Always true: the grant no longer works, on any connection.
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_redacted_and_bounded() {
        let token = GrantTokenText::new("eyJ.canary.sig".into()).unwrap();
        assert!(!format!("{token:?}").contains("canary"));
        assert!(GrantTokenText::new("a".repeat(MAX_GRANT_TOKEN_LEN + 1)).is_none());
        let long = serde_json::json!({ "grant": "a".repeat(MAX_GRANT_TOKEN_LEN + 1) });
        assert!(serde_json::from_value::<AuthenticateParams>(long).is_err());
        let ok = serde_json::json!({ "grant": "a".repeat(MAX_GRANT_TOKEN_LEN) });
        assert!(serde_json::from_value::<AuthenticateParams>(ok).is_ok());
    }

    #[test]
    fn create_params_are_flat() {
        let params: GrantCreateParams = serde_json::from_value(serde_json::json!({
            "services": ["openai"], "ttl_secs": 60, "ops": ["get"]
        }))
        .unwrap();
        assert_eq!(params.caps.services, ["openai"]);
        assert_eq!(params.ttl_secs, 60);
    }
}
