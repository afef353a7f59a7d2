//! The seam between the service's refresh policy and the token endpoint: the service decides
//! when to refresh and what to keep; a [`Refresher`] only talks to the provider.

use std::future::Future;
use std::pin::Pin;

use latchkey_proto::Secret;

/// What a refresh needs from the entry.
#[derive(Debug)]
pub struct RefreshRequest<'a> {
    /// The provider recorded in the bundle.
    pub provider: &'a str,
    /// The refresh token; it never leaves the daemon except to this provider.
    pub refresh_token: &'a Secret,
}

/// A successful token response, already checked for sense.
#[derive(Debug)]
pub struct Refreshed {
    /// The new access token.
    pub access_token: Secret,
    /// A rotated refresh token, if the provider sent one (else the old one stays).
    pub refresh_token: Option<Secret>,
    /// The token type (`Bearer`).
    pub token_type: String,
    /// Lifetime of the new access token in seconds, if the provider said.
    pub expires_in: Option<i64>,
    /// Granted scopes, if the provider said (else the old ones stay).
    pub scopes: Option<Vec<String>>,
    /// A new ID token, if any.
    pub id_token: Option<Secret>,
}

/// Why a refresh did not produce tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The provider refused the refresh token (`invalid_grant`): the user must log in again.
    #[error("the provider refused the refresh token")]
    InvalidGrant,
    /// A failure that may pass (timeout, reset, 5xx, 429), after the refresher's own retries.
    #[error("the token endpoint is unavailable: {0}")]
    Transient(String),
    /// The provider answered something unusable (garbage, missing fields, other errors).
    #[error("the token endpoint's answer was unusable: {0}")]
    Rejected(String),
    /// The provider answered something unusable (a bad `expires_in`, an unknown token type)
    /// but rotated the refresh token in it: the old one is spent, this one must be kept.
    #[error("the token endpoint's answer was unusable: {reason}")]
    RejectedRotated {
        /// What was wrong, for people.
        reason: String,
        /// The rotated refresh token the answer carried.
        refresh_token: Secret,
    },
    /// No provider of that name is configured.
    #[error("no provider named in the entry is configured")]
    UnknownProvider,
}

/// The future a refresher returns.
pub type RefreshFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Refreshed, RefreshError>> + Send + 'a>>;

/// The future [`Refresher::revoke_orphan`] returns.
pub type RevokeFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Talks to token endpoints.
pub trait Refresher: Send + Sync + 'static {
    /// Exchanges a refresh token at the provider's token endpoint.
    fn refresh<'a>(&'a self, request: RefreshRequest<'a>) -> RefreshFuture<'a>;

    /// Revokes a refresh token that a refresh received for an entry that was logged out or
    /// cleared meanwhile: nobody will ever present it, so it must not stay valid. Best effort;
    /// the default does nothing (a refresher without revocation).
    fn revoke_orphan<'a>(
        &'a self,
        provider: &'a str,
        refresh_token: &'a Secret,
    ) -> RevokeFuture<'a> {
        let _ = (provider, refresh_token);
        Box::pin(async {})
    }
}
