//! The errors of the service, each with its stable protocol kind.

use latchkey_proto::{ErrorKind, RpcError};

use crate::bundle::BundleError;
use crate::key::KeyError;
use crate::store::StoreError;

/// What can go wrong serving a request. Messages never contain a secret or a client's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service or account name was refused.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// The bundle was refused.
    #[error(transparent)]
    InvalidBundle(BundleError),
    /// No such entry.
    #[error("no entry for that service and account")]
    NotFound,
    /// The entry has expired or the provider refused it; the user must log in.
    #[error("{reason}")]
    AuthenticationRequired {
        /// Why, for people.
        reason: &'static str,
    },
    /// The token cannot be refreshed and is valid for less than the caller asked for
    /// (`min_valid_secs`), though not expired.
    #[error(
        "the access token is valid for only {valid_secs} more seconds (it was issued for \
         {lifetime_secs} seconds), less than the {asked_secs} asked for, and latchkey cannot \
         refresh it"
    )]
    ShortLived {
        /// Seconds until it expires.
        valid_secs: i64,
        /// Seconds it was issued for.
        lifetime_secs: i64,
        /// Seconds of validity asked for.
        asked_secs: i64,
    },
    /// The entry lacks some requested scopes.
    #[error("the entry was not granted every requested scope")]
    InsufficientScope {
        /// The requested scopes it lacks.
        missing: Vec<String>,
    },
    /// Refreshing failed and the old access token is no longer valid.
    #[error("refreshing the token failed: {reason}")]
    RefreshFailed {
        /// Why, for people.
        reason: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// The keychain is locked.
    #[error("the keychain is locked; unlock it and try again")]
    Locked,
    /// The keychain is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// The stored document could not be read.
    #[error("the stored entry could not be read: {0}")]
    Corrupt(BundleError),
    /// The keychain failed.
    #[error("{0}")]
    Store(String),
    /// The passphrase was wrong, or too many were wrong in a row (`wait_secs`).
    #[error("{message}")]
    WrongPassphrase {
        /// For people: wrong, or how long to wait.
        message: String,
        /// Seconds until the next attempt is checked, after too many wrong ones.
        wait_secs: Option<u64>,
    },
    /// The store cannot do that; the message says what to do instead.
    #[error("{0}")]
    Refused(String),
}

/// How to unlock this platform's keychain; over SSH the macOS Keychain may not prompt.
#[cfg(target_os = "macos")]
const LOCKED_HINT: &str =
    "unlock your login keychain (`security unlock-keychain`), or run from the desktop session";
#[cfg(not(target_os = "macos"))]
const LOCKED_HINT: &str = "run `latchkey unlock` (or log in to the desktop)";

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Locked => Error::Locked,
            StoreError::Unavailable(_) => Error::Unavailable(err.to_string()),
            StoreError::Backend(_) => Error::Store(err.to_string()),
            StoreError::WrongPassphrase => Error::WrongPassphrase {
                message: err.to_string(),
                wait_secs: None,
            },
            StoreError::TooSoon { secs } => Error::WrongPassphrase {
                message: err.to_string(),
                wait_secs: Some(secs),
            },
            StoreError::Refused(message) => Error::Refused(message),
        }
    }
}

impl Error {
    /// The protocol kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidKey(_) | Error::InvalidBundle(_) => ErrorKind::InvalidRequest,
            Error::NotFound => ErrorKind::NotFound,
            Error::AuthenticationRequired { .. } | Error::ShortLived { .. } => {
                ErrorKind::AuthenticationRequired
            }
            Error::InsufficientScope { .. } => ErrorKind::InsufficientScope,
            Error::RefreshFailed { .. } => ErrorKind::RefreshFailed,
            Error::Locked => ErrorKind::Locked,
            Error::Unavailable(_) => ErrorKind::BackendUnavailable,
            Error::Corrupt(_) | Error::Store(_) => ErrorKind::Internal,
            Error::WrongPassphrase { .. } => ErrorKind::WrongPassphrase,
            Error::Refused(_) => ErrorKind::InvalidRequest,
        }
    }

    /// The error as sent on the wire.
    pub fn to_rpc(&self) -> RpcError {
        let mut rpc = RpcError::new(self.kind(), self.to_string());
        match self {
            Error::InsufficientScope { missing } => rpc.data.missing_scopes = missing.clone(),
            Error::AuthenticationRequired { .. } => {
                rpc.data.hint = Some("store a new token with `latchkey set`".to_owned())
            }
            Error::ShortLived { .. } => {
                rpc.data.hint = Some(
                    "ask for less (--min-valid, min_valid_secs), or store a newer token with `latchkey set`"
                        .to_owned(),
                )
            }
            Error::Locked => rpc.data.hint = Some(LOCKED_HINT.to_owned()),
            Error::RefreshFailed { retryable, .. } => rpc.data.retryable = Some(*retryable),
            Error::WrongPassphrase { wait_secs, .. } => {
                rpc.data.retryable = Some(true);
                if let Some(secs) = wait_secs {
                    rpc.data.hint = Some(format!("wait {secs} s before the next attempt"));
                }
            }
            _ => {}
        }
        rpc
    }
}
