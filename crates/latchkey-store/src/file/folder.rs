//! The file store's folder, `<data folder>/file-store/`, and the checks made on it when the
//! store opens.
//!
//! The folder is created mode 0700 and must be private (latchkey-paths' rule: this user's,
//! written by nobody else, reached through folders only root or this user can change). Every
//! file in it must belong to this user and be writable by nobody else, and none may be a
//! symbolic link: anything else is refused, naming the path, before the store is used. Other
//! files of this user (a note, a backup copy) are left alone. Temporary files a crash left
//! behind are removed once they are older than any write in progress could be.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use latchkey_core::StoreError;
use latchkey_paths::{TrustError, User};
use tracing::{debug, warn};

use super::atomic::TEMP_PREFIX;

/// The folder's name inside the data folder.
pub(crate) const FOLDER: &str = "file-store";

/// A temporary file untouched for this long is a crash's leftover, not a write in progress
/// (of this daemon or of another one sharing the folder).
const STALE_TEMP: Duration = Duration::from_secs(60);

/// The file store's folder for the data folder `data_dir`.
pub fn folder_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FOLDER)
}

fn refused(err: TrustError) -> StoreError {
    StoreError::Refused(format!("the file store cannot be used: {err}"))
}

/// Creates the folder if needed and checks it and everything in it (see the module
/// documentation); removes stale temporary files.
pub(crate) fn prepare(dir: &Path) -> Result<(), StoreError> {
    latchkey_paths::create_private_dir(dir).map_err(refused)?;
    let listing = std::fs::read_dir(dir).map_err(|source| {
        refused(TrustError::Io {
            path: dir.to_owned(),
            source,
        })
    })?;
    let us = latchkey_paths::effective_uid();
    let now = SystemTime::now();
    for item in listing {
        let item = item.map_err(|source| {
            refused(TrustError::Io {
                path: dir.to_owned(),
                source,
            })
        })?;
        let path = item.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|source| {
            refused(TrustError::Io {
                path: path.clone(),
                source,
            })
        })?;
        if item
            .file_name()
            .as_encoded_bytes()
            .starts_with(TEMP_PREFIX.as_bytes())
        {
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if age.is_some_and(|age| age >= STALE_TEMP) {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        debug!(path = %path.display(), "removed a temporary file left by a crash")
                    }
                    Err(err) => {
                        warn!(path = %path.display(), error = %err, "cannot remove a leftover temporary file")
                    }
                }
            }
            continue;
        }
        if meta.file_type().is_symlink() {
            return Err(StoreError::Refused(format!(
                "the file store cannot be used: {} is a symbolic link, and the store holds only files of its own; remove it",
                path.display()
            )));
        }
        if meta.uid() != us {
            return Err(refused(TrustError::NotOwned {
                path,
                owner: User(meta.uid()),
                us: User(us),
            }));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(refused(TrustError::OpenToOthers { path, mode }));
        }
    }
    Ok(())
}
