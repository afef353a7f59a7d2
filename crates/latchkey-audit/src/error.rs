//! Why the audit file could not be opened or written.

use std::path::PathBuf;

/// Why the audit file could not be opened, rotated or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Its folder is not private to this user (or cannot be made).
    #[error("the audit folder is not usable: {0}")]
    Folder(#[from] latchkey_paths::TrustError),
    /// The path is a link, a folder, a FIFO or anything else than a regular file.
    #[error("{0} is not a regular file; it is left alone and nothing is audited into it")]
    NotRegular(PathBuf),
    /// The file belongs to another user.
    #[error("{path} belongs to uid {owner}, not to this user; it is left alone")]
    NotOwned {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// A system call on the file failed (a full disk, a read-only file system, ...).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl AuditError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        move |source| AuditError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
