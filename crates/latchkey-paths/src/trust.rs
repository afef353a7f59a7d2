//! Whether a folder, or the process at the other end of a socket, belongs to this user.
//!
//! A folder is private when this user owns it and neither group nor others may write into
//! it, and every folder above it, as given and as resolved through links, is owned by root
//! or this user and not writable by others (unless it has the sticky bit, like `/tmp`).
//! That is the rule OpenSSH applies to `authorized_keys`: anyone who can rename or replace a
//! folder on the way could swap what is inside it.

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::TrustError;

/// A uid, shown with its name when the system knows one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User(pub u32);

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match user_name(self.0) {
            Some(name) => write!(f, "user {name} (uid {})", self.0),
            None => write!(f, "uid {}", self.0),
        }
    }
}

/// The name of `uid` from the user database, if it has one.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed with it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    let name = name.to_string_lossy();
    // A name is shown to people: keep it plain.
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c))
        .then(|| name.into_owned())
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `uid` is this process's effective uid.
pub fn is_own_uid(uid: u32) -> bool {
    uid == effective_uid()
}

const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks that `dir` is a private folder of this user (see the module documentation).
pub fn check_private_dir(dir: &Path) -> Result<(), TrustError> {
    let absolute = std::path::absolute(dir).map_err(io(dir))?;
    let real = std::fs::canonicalize(&absolute).map_err(io(&absolute))?;
    let meta = std::fs::metadata(&real).map_err(io(&real))?;
    if !meta.is_dir() {
        return Err(TrustError::NotAFolder(real));
    }
    let us = effective_uid();
    if meta.uid() != us {
        return Err(TrustError::NotOwned {
            path: real,
            owner: User(meta.uid()),
            us: User(us),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 {
        return Err(TrustError::OpenToOthers { path: real, mode });
    }
    // The folders above, both the ones named and the ones the links lead to.
    for ancestor in real.ancestors().skip(1).chain(absolute.ancestors().skip(1)) {
        check_ancestor(ancestor, us)?;
    }
    Ok(())
}

fn check_ancestor(dir: &Path, us: u32) -> Result<(), TrustError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if meta.uid() != us && meta.uid() != 0 {
        return Err(TrustError::NotOwned {
            path: dir.to_owned(),
            owner: User(meta.uid()),
            us: User(us),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 && mode & STICKY == 0 {
        return Err(TrustError::OpenToOthers {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Creates `dir` and any missing parents (each new one mode 0700), then checks that it is
/// private. An existing folder is checked, never loosened or taken over.
pub fn create_private_dir(dir: &Path) -> Result<(), TrustError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    check_private_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_folder_is_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/c");
        create_private_dir(&dir).unwrap();
        let got = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, 0o700);
        check_private_dir(&dir).unwrap();
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("open");
        create_private_dir(&dir).unwrap();
        mode(&dir, 0o777);
        let err = check_private_dir(&dir).unwrap_err();
        assert!(
            matches!(err, TrustError::OpenToOthers { mode: 0o777, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        mode(&dir, 0o755);
        check_private_dir(&dir).unwrap();
    }

    #[test]
    fn an_open_folder_above_is_refused_unless_sticky() {
        let root = tempfile::tempdir().unwrap();
        let above = root.path().join("shared");
        let dir = above.join("mine");
        create_private_dir(&dir).unwrap();
        mode(&above, 0o777);
        let err = check_private_dir(&dir).unwrap_err();
        assert!(
            matches!(&err, TrustError::OpenToOthers { path, .. } if *path == std::fs::canonicalize(&above).unwrap()),
            "{err}"
        );
        mode(&above, 0o1777);
        check_private_dir(&dir).unwrap();
    }

    #[test]
    fn a_link_through_an_open_folder_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        create_private_dir(&real).unwrap();
        let open = root.path().join("open");
        create_private_dir(&open).unwrap();
        mode(&open, 0o777);
        let link = open.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // The link's target is private, but anyone could swap the link.
        assert!(check_private_dir(&link).is_err());
        check_private_dir(&real).unwrap();
    }

    #[test]
    fn a_missing_folder_says_so_and_a_file_is_not_a_folder() {
        let root = tempfile::tempdir().unwrap();
        assert!(check_private_dir(&root.path().join("nope"))
            .unwrap_err()
            .is_missing());
        let file = root.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_private_dir(&file),
            Err(TrustError::NotAFolder(_))
        ));
    }

    #[test]
    fn own_uid() {
        assert!(is_own_uid(effective_uid()));
        assert!(!is_own_uid(effective_uid().wrapping_add(1)));
    }
}
