//! Parameters and results of each protocol method, and the non-secret [`Metadata`] record.
//!
//! Types that carry a secret hold it in a [`Secret`], so deriving `Debug` on them is safe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Secret;

/// What kind of credential an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An OAuth 2.0 token bundle.
    Oauth2,
    /// A single API key.
    ApiKey,
    /// A username and password pair.
    Password,
}

impl Kind {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Oauth2 => "oauth2",
            Kind::ApiKey => "api_key",
            Kind::Password => "password",
        }
    }
}

/// Whether an entry can serve a `get` now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Usable.
    Valid,
    /// Usable, but inside its refresh window.
    Expiring,
    /// Past its expiry.
    Expired,
    /// The provider refused the refresh token; the user must log in again.
    NeedsLogin,
}

impl State {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Valid => "valid",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::NeedsLogin => "needs_login",
        }
    }
}

/// Everything about an entry except its secrets. This is what `status` and `list` return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The service the entry belongs to.
    pub service: String,
    /// The account within the service.
    pub account: String,
    /// The credential kind.
    pub kind: Kind,
    /// Granted scopes (oauth2 only; empty otherwise).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the access token expires, if known.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the daemon holds a refresh token for it (the token itself never leaves).
    #[serde(default)]
    pub has_refresh_token: bool,
    /// The OAuth provider, if any.
    #[serde(default)]
    pub provider: Option<String>,
    /// When the entry was first stored.
    pub created_at: DateTime<Utc>,
    /// When the entry was last written.
    pub updated_at: DateTime<Utc>,
    /// When a client last read its secret (since the daemon started).
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the daemon last refreshed it.
    #[serde(default)]
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Whether it can serve now.
    pub state: State,
}

/// Names an entry: `service` plus an optional `account` (default `"default"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParams {
    /// The service name.
    pub service: String,
    /// The account; `"default"` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Params of `get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetParams {
    /// The service name.
    pub service: String,
    /// The account; `"default"` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Scopes the caller needs; the entry must have been granted all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The access token must stay valid at least this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_valid_secs: Option<u64>,
}

/// Result of `get`: the usable secret, never a refresh token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResult {
    /// The access token, API key or password.
    pub secret: Secret,
    /// The credential kind.
    pub kind: Kind,
    /// The token type (oauth2), usually `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The username (password entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// When the access token expires (oauth2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A credential as a client hands it to `set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BundleInput {
    /// An OAuth 2.0 token bundle.
    Oauth2 {
        /// The access token.
        access_token: Secret,
        /// The refresh token, kept inside the daemon.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<Secret>,
        /// The token type; `Bearer` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_type: Option<String>,
        /// Absolute expiry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
        /// Relative expiry in seconds from now (ignored when `expires_at` is given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<i64>,
        /// Granted scopes.
        #[serde(default)]
        scopes: Vec<String>,
        /// An OpenID Connect ID token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id_token: Option<Secret>,
        /// The provider that issued it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
    },
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

/// Params of `set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetParams {
    /// The service name.
    pub service: String,
    /// The account; `"default"` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The credential.
    pub bundle: BundleInput,
}

/// Result of `set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetResult {
    /// The stored entry's metadata.
    pub entry: Metadata,
}

/// Result of `clear`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearResult {
    /// Whether an entry existed and was removed.
    pub removed: bool,
}

/// Params of `status`: both optional, narrowing the entries shown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusParams {
    /// Only entries of this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Only entries of this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The daemon part of a `status` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The daemon's version.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol: u32,
    /// The store backend in use (`secret-service`, `memory`, ...).
    pub store: String,
    /// Whether entries survive a daemon restart.
    pub persistent: bool,
    /// Whether the keychain is locked right now, where the backend can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// How many entries the daemon knows.
    pub entries: usize,
}

/// Result of `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResult {
    /// About the daemon itself.
    pub daemon: DaemonInfo,
    /// The entries selected by the params.
    pub entries: Vec<Metadata>,
}

/// Result of `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    /// Every entry.
    pub entries: Vec<Metadata>,
}

/// Result of `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResult {
    /// The daemon's version.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol: u32,
}
