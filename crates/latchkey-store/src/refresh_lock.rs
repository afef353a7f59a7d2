//! Per-entry refresh locks shared by every daemon that uses one store: an empty lock file per
//! entry in a private folder beside the store's index, locked with `flock` on Unix and
//! `LockFileEx` on Windows (through `fs4`; see the `os` module at the end).
//!
//! The file's name is a hash of the entry's key (it reveals neither service nor account; two
//! entries that share a hash share a lock, which costs only waiting). Files are created 0600
//! without following links, in a folder created 0700 that must belong to the user and not be
//! writable by others; they are never removed (removing a lock file while another process
//! waits on it would give two holders). The lock belongs to the open file, so it is released
//! when the file is closed, including when the daemon dies.
//!
//! Each daemon also holds a shared lock on `daemons.lock` there for its whole life, so a second
//! daemon on the same store finds the first one and says so at start-up.
//!
//! `flock` blocks, so it runs on a blocking thread, and a wait has a deadline: a daemon that
//! holds a lock far longer than a refresh can take is not waited for forever.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_core::{EntryKey, RefreshLock, StoreError};
use tracing::{info, warn};

/// How long a refresh waits for another daemon's refresh of the same entry: longer than the
/// token endpoint's retries can take.
const WAIT: Duration = Duration::from_secs(60);

/// Where the lock files of the store whose index is at `index` live.
pub fn folder_for(index: &Path) -> PathBuf {
    let name = index
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    index.with_file_name(format!("{name}.locks"))
}

/// Takes `key`'s refresh lock in `folder`, waiting while another process holds it. `None`,
/// with a warning, when the lock file cannot be used (the daemon then refreshes without it,
/// as it would with a store of its own).
pub async fn take(folder: &Path, key: &EntryKey) -> Result<Option<RefreshLock>, StoreError> {
    let path = folder.join(format!("{:016x}.lock", key_hash(key)));
    let opened = tokio::task::spawn_blocking(move || {
        let file = os::open(&path)?;
        let taken = os::try_lock(&file)?;
        Ok::<_, std::io::Error>((file, taken))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let file = match opened {
        Ok((file, true)) => return Ok(Some(RefreshLock::new(file))),
        Ok((file, false)) => file,
        Err(err) => {
            warn!(entry = ?key, error = %err, "cannot use the refresh lock file; refreshing without it");
            return Ok(None);
        }
    };
    info!(entry = ?key, "another latchkeyd is refreshing this entry; waiting for it");
    let waiting = tokio::task::spawn_blocking(move || os::lock(&file).map(|()| file));
    match tokio::time::timeout(WAIT, waiting).await {
        Ok(Ok(Ok(file))) => Ok(Some(RefreshLock::new(file))),
        Ok(Ok(Err(err))) => {
            warn!(entry = ?key, error = %err, "cannot take the refresh lock; refreshing without it");
            Ok(None)
        }
        Ok(Err(err)) => Err(StoreError::Backend(format!(
            "waiting for the refresh lock failed: {err}"
        ))),
        // The blocking thread keeps waiting; the lock it may still get is released as soon
        // as it does, since nobody takes its result.
        Err(_) => Err(StoreError::Unavailable(
            "another latchkeyd has been refreshing this entry for too long".into(),
        )),
    }
}

/// Marks this daemon as a user of the store whose locks are in `folder` (the returned file
/// must be kept open for the daemon's life) and warns if another daemon uses it already.
pub fn join(folder: &Path) -> Option<File> {
    let file = match os::open(&folder.join("daemons.lock")) {
        Ok(file) => file,
        Err(err) => {
            warn!(error = %err, "cannot use the store's lock folder");
            return None;
        }
    };
    // Nobody else holds it if it can be taken exclusively; then keep it shared.
    let alone = os::try_lock(&file).unwrap_or(true);
    if !alone {
        warn!(
            folder = %folder.display(),
            "another latchkeyd uses this keychain and data folder: refreshes are coordinated, \
             but each daemon caches what it read; run one daemon per user"
        );
    }
    os::share(&file).ok()?;
    Some(file)
}

/// FNV-1a over the service, a separator and the account: stable across builds and daemons.
fn key_hash(key: &EntryKey) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = key
        .service()
        .bytes()
        .chain(std::iter::once(0))
        .chain(key.account().bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(unix)]
mod os {
    //! Lock files on Unix: `flock(2)`, released when the file is closed.

    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// Opens (creating) a lock file: 0600, never through a link, in a private folder.
    pub fn open(path: &Path) -> std::io::Result<File> {
        let folder = path.parent().unwrap_or(Path::new("."));
        // The same rule as every folder the daemon writes into: ours, closed to others.
        latchkey_paths::create_private_dir(folder).map_err(|err| {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, err.to_string())
        })?;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }

    /// Locks `file` exclusively unless another holds it (then `false`).
    pub fn try_lock(file: &File) -> std::io::Result<bool> {
        flock(file, libc::LOCK_EX | libc::LOCK_NB)
    }

    /// Locks `file` exclusively, waiting for other holders.
    pub fn lock(file: &File) -> std::io::Result<()> {
        flock(file, libc::LOCK_EX).map(|_| ())
    }

    /// Turns this process's lock on `file` (or none) into a shared one.
    pub fn share(file: &File) -> std::io::Result<()> {
        match flock(file, libc::LOCK_SH | libc::LOCK_NB)? {
            true => Ok(()),
            false => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    /// `flock(2)` with `operation`; `false` if a non-blocking one found the lock taken.
    fn flock(file: &File, operation: libc::c_int) -> std::io::Result<bool> {
        loop {
            // SAFETY: the descriptor is open for the duration of the call (`file` is borrowed).
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(true);
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if operation & libc::LOCK_NB != 0 => return Ok(false),
                _ => return Err(err),
            }
        }
    }
}

#[cfg(windows)]
mod os {
    //! Lock files on Windows: `LockFileEx` through `fs4`, released when the handle is closed.

    use std::fs::File;
    use std::os::windows::fs::OpenOptionsExt;
    use std::path::Path;

    use fs4::{FileExt, TryLockError};

    /// `FILE_FLAG_OPEN_REPARSE_POINT`: a link planted at the name is opened as itself.
    const OPEN_REPARSE_POINT: u32 = 0x0020_0000;

    /// Opens (creating) a lock file in a folder under the user's profile, never through a link.
    pub fn open(path: &Path) -> std::io::Result<File> {
        let folder = path.parent().unwrap_or(Path::new("."));
        crate::index::create_private_dir(folder)?;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(OPEN_REPARSE_POINT)
            .open(path)
    }

    /// Locks `file` exclusively unless another holds it (then `false`).
    pub fn try_lock(file: &File) -> std::io::Result<bool> {
        match FileExt::try_lock(file) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    /// Locks `file` exclusively, waiting for other holders.
    pub fn lock(file: &File) -> std::io::Result<()> {
        FileExt::lock(file)
    }

    /// Turns this process's lock on `file` (or none) into a shared one. `LockFileEx` cannot
    /// convert a lock, so an exclusive one is released first.
    pub fn share(file: &File) -> std::io::Result<()> {
        let _ = FileExt::unlock(file);
        match FileExt::try_lock_shared(file) {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(std::io::ErrorKind::WouldBlock.into()),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: &str, account: &str) -> EntryKey {
        EntryKey::new(service, Some(account)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let folder = folder_for(&dir.path().join("secret-service-index.json"));
        let first = take(&folder, &key("api", "default")).await.unwrap();
        assert!(first.is_some());
        // Another open file of the same entry (as another daemon would have) must wait.
        let path = folder.join(format!("{:016x}.lock", key_hash(&key("api", "default"))));
        let other = os::open(&path).unwrap();
        assert!(!os::try_lock(&other).unwrap());
        // Another entry is not held up.
        assert!(take(&folder, &key("api", "work")).await.unwrap().is_some());
        drop(first);
        assert!(os::try_lock(&other).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&folder), 0o700);
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_or_a_shared_folder_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("locks");
        crate::index::create_private_dir(&folder).unwrap();
        let name = format!("{:016x}.lock", key_hash(&key("api", "default")));
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), folder.join(&name)).unwrap();
        assert!(take(&folder, &key("api", "default"))
            .await
            .unwrap()
            .is_none());
        assert!(!dir.path().join("elsewhere").exists());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(take(&folder, &key("api", "work")).await.unwrap().is_none());
    }

    #[test]
    fn a_second_daemon_is_told_about_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = join(dir.path()).unwrap();
        let probe = os::open(&dir.path().join("daemons.lock")).unwrap();
        assert!(
            !os::try_lock(&probe).unwrap(),
            "the first daemon's mark is not held"
        );
        let second = join(dir.path()).unwrap();
        drop((first, second));
        assert!(os::try_lock(&probe).unwrap());
    }

    #[test]
    fn names_differ_by_entry_and_hide_it() {
        assert_ne!(key_hash(&key("ab", "c")), key_hash(&key("a", "bc")));
        assert_eq!(key_hash(&key("api", "x")), key_hash(&key("api", "x")));
    }
}
