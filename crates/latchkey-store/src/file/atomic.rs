//! The file operations of the file store, each safe against a crash and against links planted
//! in the folder.
//!
//! A file is never written in place: its new content goes to a fresh temporary file in the same
//! folder, created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600 (so an existing file, or a
//! link someone planted at that name, is never opened), written, synced, then renamed over the
//! target and the folder synced. A crash at any point leaves the old file or the new one, and at
//! worst a temporary file, which the store ignores and removes later ([`TEMP_PREFIX`]).
//! [`create`] commits with a hard link instead of a rename, so it never replaces a file another
//! process created first. Reads open without following links and refuse anything but a regular
//! file of bounded size.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// How every temporary file's name starts; no other file of the store does.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// How many fresh temporary names a write tries before giving up (a name is taken only if
/// something was planted there, or in the unlikely event of a collision of 64 random bits).
const TEMP_ATTEMPTS: usize = 8;

/// A fresh temporary name: the prefix and 64 random bits in hex.
fn temp_name() -> io::Result<String> {
    let mut random = [0u8; 8];
    getrandom::getrandom(&mut random).map_err(io::Error::other)?;
    Ok(format!("{TEMP_PREFIX}{}", super::naming::hex(&random)))
}

/// Creates `path` (which must not exist; a link there is not followed), writes `bytes` and
/// syncs it. On failure the partial file is removed.
pub(crate) fn create_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Writes `bytes` to a new temporary file in `dir`; returns its path.
fn write_temp(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let temp = dir.join(temp_name()?);
        match create_synced(&temp, bytes) {
            Ok(()) => return Ok(temp),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
}

/// Makes the folder's entries (a rename, a new link, a removal) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces (or creates) `dir/name` with `bytes`, atomically: see the module documentation.
pub(crate) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = write_temp(dir, bytes)?;
    if let Err(err) = std::fs::rename(&temp, dir.join(name)) {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    sync_dir(dir)
}

/// Creates `dir/name` with `bytes` only if no such file exists yet: `false` (and nothing
/// changed) if one does. Whole or not at all, like [`replace`].
pub(crate) fn create(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let temp = write_temp(dir, bytes)?;
    let linked = std::fs::hard_link(&temp, dir.join(name));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}

/// Removes `dir/name`; `false` if there was no such file.
pub(crate) fn remove(dir: &Path, name: &str) -> io::Result<bool> {
    match std::fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

/// Why a file of the store could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// It is a symbolic link, which the store never follows.
    #[error("it is a symbolic link")]
    Link,
    /// It is a folder, a FIFO, a device...
    #[error("it is not a regular file")]
    NotRegular,
    /// It is larger than any file of its kind can be.
    #[error("it is {size} bytes, more than the {max} bytes such a file can have")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The system refused.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The content of `path` (at most `max` bytes), or `None` if there is no such file. Never
/// follows a link and never waits on a FIFO. Wiped on drop, as some files hold keys.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Err(ReadError::Link),
        Err(err) => return Err(err.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    // Room for the whole file up front: a growing buffer would leave copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(Some(bytes))
}
