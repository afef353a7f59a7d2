//! The one error type of both helpers. Messages name fields, line numbers and entry names,
//! never a secret or the raw input; a message the daemon sent is escaped by the binary before
//! it is shown.

use latchkey_client::ClientError;
use latchkey_proto::Kind;

use crate::docker::entry::UrlError;
use crate::docker::protocol::CredentialsError;
use crate::git::entry::NameError;
use crate::git::protocol::{RequestError, UnsafeAnswer};
use crate::input::InputError;

/// What can go wrong in a helper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be read, or is too large.
    #[error(transparent)]
    Input(#[from] InputError),
    /// git's request is malformed or hostile.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// docker's input is malformed.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A docker server URL is not usable.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The request maps to a name latchkey refuses.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A stored value cannot be handed to git.
    #[error(transparent)]
    Answer(#[from] UnsafeAnswer),
    /// Talking to latchkeyd failed, or it answered with an error.
    #[error(transparent)]
    Daemon(#[from] ClientError),
    /// An entry the helper would write over holds a credential the helper did not store.
    #[error("{service}/{account} holds a credential of kind {} that this helper did not store; it is left as it is", .kind.as_str())]
    NotOurs {
        /// The entry's service.
        service: String,
        /// The entry's account.
        account: String,
        /// What it holds.
        kind: Kind,
    },
    /// docker's "no entry" (its exact words, which docker recognises).
    #[error("{}", crate::docker::protocol::NOT_FOUND)]
    CredentialsNotFound,
    /// The answer could not be written.
    #[error("cannot write the answer: {0}")]
    Write(std::io::Error),
}

impl Error {
    /// Whether the input was at fault (rather than the daemon or the system).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::Input(InputError::TooLarge { .. })
                | Error::Request(_)
                | Error::Credentials(_)
                | Error::Url(_)
                | Error::Name(_)
        )
    }
}
