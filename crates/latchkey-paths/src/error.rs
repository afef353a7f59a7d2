//! The one error type of this crate: why a folder, a pipe name or a peer is not trusted.

use std::path::PathBuf;

#[cfg(unix)]
use crate::User;

/// Why a path, a pipe name or a peer's identity is not trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The path belongs to another user.
    #[cfg(unix)]
    #[error("{path} belongs to {owner}, not to this user ({us}); latchkey only uses folders of its own user")]
    NotOwned {
        /// The path checked.
        path: PathBuf,
        /// Who owns it.
        owner: User,
        /// Who we are.
        us: User,
    },
    /// Group or other users may write into the path.
    #[cfg(unix)]
    #[error("{path} can be changed by other users (mode {mode:04o}); fix: chmod go-w '{path}'")]
    OpenToOthers {
        /// The path checked.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is not a folder.
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    /// The path could not be examined.
    #[error("cannot examine {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A system call that reads an identity (a process token, a pipe's peer, a SID) or builds a
    /// security descriptor failed.
    #[error("cannot establish who is who ({call} failed): {source}")]
    System {
        /// The system function that failed, e.g. `OpenProcessToken`.
        call: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// A pipe name (from `LATCHKEY_PIPE`) that is neither `\\.\pipe\NAME` nor a bare `NAME`.
    #[error("{0:?} is not a local named pipe; use \\\\.\\pipe\\NAME or a bare NAME (check LATCHKEY_PIPE)")]
    BadPipeName(String),
    /// A user SID that does not have the `S-1-...` form.
    #[error("{0:?} is not a user SID")]
    BadSid(String),
}

impl TrustError {
    /// Whether the path does not exist at all (nothing to trust or distrust yet).
    pub fn is_missing(&self) -> bool {
        matches!(self, TrustError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}
