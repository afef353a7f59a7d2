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
    #[serde(default, serialize_with = "crate::timestamp::serialize_option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the daemon holds a refresh token for it (the token itself never leaves).
    #[serde(default)]
    pub has_refresh_token: bool,
    /// The OAuth provider, if any.
    #[serde(default)]
    pub provider: Option<String>,
    /// When the entry was first stored.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When the entry was last written.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
    /// When a client last read its secret (since the daemon started).
    #[serde(default, serialize_with = "crate::timestamp::serialize_option")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the daemon last refreshed it.
    #[serde(default, serialize_with = "crate::timestamp::serialize_option")]
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Whether it can serve now.
    pub state: State,
    /// The daemon refreshed it but could not save the new tokens to the keychain yet; it keeps
    /// them in memory and retries. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsaved: bool,
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
    /// A grant for this request alone (instead of, or over, the one the connection presented
    /// with `authenticate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<crate::GrantTokenText>,
    /// The request is `latchkey proxy`'s, on behalf of an agent: the grant it carries must
    /// allow the `proxy` operation (not `get`), and one is required whatever the policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy: bool,
    /// The access token this caller was given last was rejected (an upstream answered `401`):
    /// its fingerprint. If the entry still holds that token and can be refreshed, the daemon
    /// refreshes it before answering (one refresh however many callers say so, and not while
    /// a failed refresh is cooling down); if it holds another one already, it serves that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<crate::TokenFingerprint>,
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

impl GetResult {
    /// This result, borrowed.
    pub fn as_view(&self) -> GetResultRef<'_> {
        GetResultRef {
            secret: &self.secret,
            kind: self.kind,
            token_type: self.token_type.as_deref(),
            username: self.username.as_deref(),
            expires_at: self.expires_at,
            scopes: &self.scopes,
        }
    }
}

/// A [`GetResult`] borrowed from where its parts live (the daemon's cached bundle): what a
/// `get` answer is written from without copying the secret first. Serializes as `GetResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GetResultRef<'a> {
    /// The access token, API key or password.
    pub secret: &'a Secret,
    /// The credential kind.
    pub kind: Kind,
    /// The token type (oauth2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'a str>,
    /// The username (password entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    /// When the access token expires (oauth2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: &'a [String],
}

impl GetResultRef<'_> {
    /// An owned copy.
    pub fn to_result(&self) -> GetResult {
        GetResult {
            secret: self.secret.clone(),
            kind: self.kind,
            token_type: self.token_type.map(str::to_owned),
            username: self.username.map(str::to_owned),
            expires_at: self.expires_at,
            scopes: self.scopes.to_vec(),
        }
    }

    /// Appends this result as JSON: the bytes `serde_json::to_writer` writes for it (and for
    /// the [`GetResult`] it borrows), but with the field names written as they are instead of
    /// through serde's escaping, which costs a cached `get` more than its lookup. Only the
    /// values are escaped (by `serde_json`).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"secret\":");
        serde_json::to_writer(&mut *out, self.secret.expose())?;
        out.extend_from_slice(b",\"kind\":\"");
        // A fixed snake_case name: nothing to escape.
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.push(b'"');
        if let Some(token_type) = self.token_type {
            out.extend_from_slice(b",\"token_type\":");
            serde_json::to_writer(&mut *out, token_type)?;
        }
        if let Some(username) = self.username {
            out.extend_from_slice(b",\"username\":");
            serde_json::to_writer(&mut *out, username)?;
        }
        if let Some(expires_at) = &self.expires_at {
            out.extend_from_slice(b",\"expires_at\":");
            serde_json::to_writer(&mut *out, expires_at)?;
        }
        out.extend_from_slice(b",\"scopes\":");
        serde_json::to_writer(&mut *out, self.scopes)?;
        out.push(b'}');
        Ok(())
    }
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
    /// How the store is unlocked (absent from daemons before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_with: Option<UnlockWith>,
    /// Why the daemon uses this store (`auto`'s reason, or "requested").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_reason: Option<String>,
}

/// How a store is unlocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockWith {
    /// It never locks (memory).
    Nothing,
    /// By the platform keychain (the desktop login, or its own prompt on `unlock`).
    Keychain,
    /// By latchkey's passphrase, which exists already.
    Passphrase,
    /// By latchkey's passphrase, not chosen yet: the first `unlock` chooses it.
    NewPassphrase,
}

/// Params of `unlock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockParams {
    /// The passphrase, for a store that takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret>,
    /// Choose this passphrase if the store has none yet (the CLI asks for it twice first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
}

/// Params of `passwd`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdParams {
    /// The passphrase now.
    pub old: Secret,
    /// The passphrase from now on.
    pub new: Secret,
}

/// Result of `unlock`, `lock` and `passwd`: the store's state afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockResult {
    /// The store.
    pub store: String,
    /// Whether it is locked now, where the backend can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
}

/// Params of `migrate`: moves every entry to another store, which the daemon then uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateParams {
    /// The store to move to (`file`, `secret-service`, `memory`, ...).
    pub to: String,
    /// The passphrase of the store moved to, when it takes one (entries are read back from
    /// it to verify them); at most [`MAX_PASSPHRASE_LEN`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret>,
    /// Choose `passphrase` as the store's passphrase if it has none yet (the CLI asks for it
    /// twice first). Without it, such a store answers `locked` with `unlock_with:
    /// new_passphrase`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
}

/// The longest passphrase accepted, in bytes.
pub const MAX_PASSPHRASE_LEN: usize = 1024;

/// Result of `migrate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateResult {
    /// The store moved from.
    pub from: String,
    /// The store moved to, which the daemon uses from now on.
    pub to: String,
    /// Entries written to the new store (and read back).
    pub copied: usize,
    /// Entries the new store already held the same (an earlier, interrupted run).
    pub already_there: usize,
    /// Entries removed from the old store.
    pub removed: usize,
    /// Entries that stay in the old store: unreadable ones, and ones it would not remove
    /// (running `migrate` to the same store again removes those the new store holds).
    #[serde(default)]
    pub left: usize,
    /// Entries the new store held before that the old one did not; served from now on.
    #[serde(default)]
    pub adopted: usize,
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

/// Params of `login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginParams {
    /// The provider to log in at; the entry is stored under this service name.
    pub provider: String,
    /// The account; `"default"` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Scopes to ask for; the provider's defaults when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// A device login (RFC 8628) instead of a browser login.
    #[serde(default)]
    pub device: bool,
}

/// Result of `login`: what the user must open (browser) or type (device).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStarted {
    /// Names the pending login for `login_wait` and `login_cancel`.
    pub login_id: String,
    /// Browser logins: the URL to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// Device logins: where the user enters the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri: Option<String>,
    /// Device logins: the same URL with the code filled in, if the provider offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Device logins: the code to enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    /// When the pending login is given up.
    pub expires_at: DateTime<Utc>,
}

/// Params of `login_wait` and `login_cancel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginIdParams {
    /// The id `login` returned.
    pub login_id: String,
}

/// Result of `login_cancel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResult {
    /// Whether a pending login was cancelled.
    pub cancelled: bool,
}

/// What the provider said when asked to revoke an entry's tokens at `logout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationOutcome {
    /// The provider confirmed it.
    Revoked,
    /// No answer (timeout, 503): the provider may still honour the tokens.
    Unconfirmed,
    /// The provider has no revocation endpoint (or refuses the token type), or the entry is
    /// not an OAuth entry.
    Unsupported,
    /// The provider refused the revocation.
    Failed,
}

impl RevocationOutcome {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationOutcome::Revoked => "revoked",
            RevocationOutcome::Unconfirmed => "unconfirmed",
            RevocationOutcome::Unsupported => "unsupported",
            RevocationOutcome::Failed => "failed",
        }
    }
}

/// Result of `logout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutResult {
    /// Whether the entry was removed.
    pub removed: bool,
    /// What the provider said about revoking its tokens.
    pub revocation: RevocationOutcome,
}

/// One provider, as `providers` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Its name, which is also the service its logins are stored under.
    pub name: String,
    /// Whether latchkey has a built-in template for it.
    pub builtin: bool,
    /// Whether `config.toml` configures it.
    pub configured: bool,
    /// Whether it can log in and refresh now (configured and valid).
    pub usable: bool,
    /// Login flows it offers (`browser`, `device`); empty until an issuer is discovered.
    #[serde(default)]
    pub flows: Vec<String>,
    /// Whether logout can revoke at it.
    #[serde(default)]
    pub revocation: bool,
    /// The OpenID Connect issuer its endpoints come from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Whether a client secret is stored for it (confidential client).
    #[serde(default)]
    pub client_secret: bool,
    /// Why it is not usable, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Result of `providers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvidersResult {
    /// Built-in and configured providers.
    pub providers: Vec<ProviderInfo>,
}

/// Params of `provider_secret`: stores a confidential client's secret, or removes it when
/// `secret` is absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSecretParams {
    /// The provider.
    pub provider: String,
    /// The client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

/// Result of `provider_secret`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSecretResult {
    /// Whether a secret is stored for the provider now.
    pub stored: bool,
}

/// Result of `reload`: the configuration file was read again and is in force, except for
/// the settings that only a restart changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// The configuration file read (its path), or a note that there is none.
    pub config: String,
    /// The settings that changed and are in force now (`providers.github`,
    /// `limits.idle_timeout_secs`, ...).
    #[serde(default)]
    pub changed: Vec<String>,
    /// The settings that changed in the file but take effect only when latchkeyd restarts
    /// (`store.backend`, `daemon.socket`, `store.lock_after_secs`, `limits.max_connections`).
    #[serde(default)]
    pub restart_needed: Vec<String>,
}
