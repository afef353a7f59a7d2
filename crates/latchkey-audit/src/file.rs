//! The audit file on disk: its private folder, opening it for appending without following a
//! link (mode 0600, a regular file of this user), and the names of its rotated predecessors.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::AuditError;

/// The `n`th rotated predecessor of `path`: `audit.jsonl.1` is the newest.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotates `path`: drops the oldest predecessor, moves the others up one and `path` to
/// `.1`, keeping `keep` of them (`keep == 0` removes `path`). Renames move a link planted at
/// a name, never what it points at. The caller opens a new file at `path`.
pub(crate) fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    if keep == 0 {
        return remove(path);
    }
    remove(&rotated_path(path, keep))?;
    for n in (1..keep).rev() {
        ignore_missing(std::fs::rename(
            rotated_path(path, n),
            rotated_path(path, n + 1),
        ))?;
    }
    std::fs::rename(path, rotated_path(path, 1))
}

/// Removes `path` so that its name is free at once. A reader (`latchkey audit --follow`) may
/// hold the file open; Windows then keeps the name until that reader closes it, unless the
/// delete has POSIX semantics, which not every file system (nor Wine) gives. So the file is
/// first renamed to a name of its own, which a rename allows while it is open.
fn remove(path: &Path) -> std::io::Result<()> {
    let mut aside = OsString::from(path.as_os_str());
    aside.push(format!(
        ".removed-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let aside = PathBuf::from(aside);
    match std::fs::rename(path, &aside) {
        Ok(()) => std::fs::remove_file(&aside),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Creates the file's folder if needed and checks it the way the daemon checks its other
/// folders: this user's own, not writable by others, reached through trusted folders.
pub(crate) fn prepare_dir(path: &Path) -> Result<(), AuditError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    #[cfg(unix)]
    latchkey_paths::create_private_dir(dir)?;
    // WINDOWS: the folder under the user's profile; an ACL check belongs in latchkey-paths.
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(AuditError::io(dir))?;
    Ok(())
}

/// Opens `path` for appending, creating it with mode 0600. A link at the path is not followed
/// (the open fails), and what was opened must be a regular file of this user; a file others
/// could read is narrowed to 0600.
#[cfg(unix)]
pub(crate) fn open_append(path: &Path) -> Result<File, AuditError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted at the path must not hang the open; it is refused below.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|err| {
            if err.raw_os_error() == Some(libc::ELOOP) {
                AuditError::NotRegular(path.to_owned())
            } else {
                AuditError::Io {
                    path: path.to_owned(),
                    source: err,
                }
            }
        })?;
    let meta = file.metadata().map_err(AuditError::io(path))?;
    if !meta.file_type().is_file() {
        return Err(AuditError::NotRegular(path.to_owned()));
    }
    let me = latchkey_paths::effective_uid();
    if meta.uid() != me {
        return Err(AuditError::NotOwned {
            path: path.to_owned(),
            owner: meta.uid(),
        });
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(AuditError::io(path))?;
    }
    Ok(file)
}

/// Opens `path` for appending, creating it. A link at the path is refused.
#[cfg(not(unix))]
pub(crate) fn open_append(path: &Path) -> Result<File, AuditError> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) {
        return Err(AuditError::NotRegular(path.to_owned()));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(AuditError::io(path))
}

/// What tells one file from another at the same path: a rotation puts a new file there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId(u64, u64);

impl FileId {
    /// The device and inode of an open file.
    #[cfg(unix)]
    pub(crate) fn of(file: &File) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        Ok(FileId(meta.dev(), meta.ino()))
    }

    /// The volume serial number and file index of an open file. (Not its creation time:
    /// Windows gives a file created where another was just renamed away the old one's
    /// creation time, which is exactly what a rotation does.)
    #[cfg(windows)]
    pub(crate) fn of(file: &File) -> std::io::Result<Self> {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Storage::FileSystem::{
            GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION,
        };
        // SAFETY: the handle is open for as long as `file` is borrowed, and the function
        // only writes the structure it is given.
        let info = unsafe {
            let mut info: BY_HANDLE_FILE_INFORMATION = std::mem::zeroed();
            if GetFileInformationByHandle(file.as_raw_handle(), &mut info) == 0 {
                return Err(std::io::Error::last_os_error());
            }
            info
        };
        let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
        Ok(FileId(u64::from(info.dwVolumeSerialNumber), index))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_file_is_0600_and_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/audit.jsonl");
        prepare_dir(&path).unwrap();
        open_append(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_append(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a readable file is narrowed");

        let target = dir.path().join("elsewhere");
        let link = dir.path().join("state/link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(open_append(&link), Err(AuditError::NotRegular(_))));
        assert!(!target.exists(), "the link was not followed");
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No reader: O_NONBLOCK makes a write-only open fail (ENXIO) instead of waiting.
        assert!(open_append(&path).is_err());
    }

    #[test]
    fn rotated_names() {
        assert_eq!(
            rotated_path(Path::new("/s/audit.jsonl"), 2),
            PathBuf::from("/s/audit.jsonl.2")
        );
    }
}
