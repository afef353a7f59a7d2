//! latchkey's audit trail: one JSON object per line in `audit.jsonl`, in the user's state
//! folder (Linux `~/.local/state/latchkey`, macOS `~/Library/Logs/dev.latchkey.latchkey`,
//! Windows `%LOCALAPPDATA%\latchkey\latchkey\logs`), readable by the user with `latchkey audit`.
//!
//! - [`Record`]: who (transport, pid, uid, executable) did what (method) to which entry, under
//!   which grant, and the outcome. Never a secret: the type has no field that could hold one.
//! - [`AuditLog`]: the daemon's handle. [`AuditLog::record`] only pushes onto a bounded queue;
//!   a writer thread serializes, appends and rotates by size. A full queue or a failing disk
//!   loses records, never a request, and says so once in the daemon's log.
//! - [`reader`]: the records of the file and its rotated predecessors, oldest first, and a
//!   [`reader::Follower`] that keeps reading across rotation; malformed or oversized lines are
//!   counted and skipped.
//! - [`filter`]: `--service` and `--since` (RFC 3339 or `10m`, `2h`, `1d`).
#![deny(missing_docs)]

mod error;
mod file;
pub mod filter;
pub mod reader;
mod record;
mod writer;

use std::path::PathBuf;

pub use error::AuditError;
pub use file::rotated_path;
pub use record::{Entry, Record, Transport};
pub use writer::{AuditLog, Settings, DEFAULT_KEEP, DEFAULT_MAX_BYTES, QUEUE};

/// The audit file's name in the state folder.
pub const FILE_NAME: &str = "audit.jsonl";

/// This user's audit file, or `None` when the system knows no home folder for the user.
pub fn default_path() -> Option<PathBuf> {
    latchkey_paths::Folders::of_current_user().map(|f| f.logs.join(FILE_NAME))
}
