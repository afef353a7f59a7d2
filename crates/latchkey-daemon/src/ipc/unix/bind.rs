//! Binding the socket: a private folder, a 0600 socket, a clear error when another daemon is
//! already serving, replacement of a stale socket left by a crash, and a watch that notices
//! when the socket file is removed or replaced while the daemon runs.
//!
//! The folder, whether the default one or one named with `--socket`, must belong to this
//! user and be closed to others (see `latchkey_paths::check_private_dir`); a missing one is
//! created 0700. The socket is bound under a temporary name, set to 0600, then renamed into
//! place, so the path never shows a socket with wider permissions, whatever the umask.
//!
//! If the socket file disappears or is replaced while the daemon runs, no new client can
//! reach this daemon through it. The daemon then logs why and shuts down with a failure: the
//! service manager (systemd's `Restart=on-failure`, launchd's `KeepAlive`) starts a fresh one
//! that binds anew, and a replacement put there by someone else is never fought over.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_paths::TrustError;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// How often the socket file is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live daemon answers on the path.
    #[error("another latchkeyd is already serving on {0}; stop it first or pass --socket")]
    AlreadyRunning(PathBuf),
    /// Something that is not a socket sits at the path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The folder belongs to someone else or is open to others.
    #[error("refusing the socket folder: {0}")]
    UnsafeFolder(#[source] TrustError),
    /// An I/O error.
    #[error("cannot bind {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Removes the socket file when dropped, if it is still the one we bound.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    inode: u64,
    dev: u64,
}

impl SocketGuard {
    /// Looks at the socket file every few seconds until `shutdown`. If it is gone or is no
    /// longer ours, logs it, cancels `shutdown` and returns what happened.
    pub async fn watch(&self, shutdown: CancellationToken) -> Option<String> {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return None,
            }
            let what = match std::fs::symlink_metadata(&self.path) {
                Ok(meta) if self.is_ours(&meta) => continue,
                Ok(_) => "was replaced by another file",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was removed",
                Err(_) => continue,
            };
            let reason = format!(
                "the socket {} {what} while latchkeyd was running; no client can reach this daemon through it any more, so it stops (a service manager starts a fresh one)",
                self.path.display()
            );
            tracing::error!(path = %self.path.display(), "the socket {what}; shutting down");
            shutdown.cancel();
            return Some(reason);
        }
    }
}

impl SocketGuard {
    /// Whether `meta` describes the socket we bound (an inode number alone can be reused by
    /// a file put there after ours was removed).
    fn is_ours(&self, meta: &std::fs::Metadata) -> bool {
        meta.file_type().is_socket() && meta.ino() == self.inode && meta.dev() == self.dev
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if self.is_ours(&meta) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds `path` as the daemon's socket. Must run inside a tokio runtime.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketGuard), BindError> {
    let io = |source| BindError::Io {
        path: path.to_owned(),
        source,
    };
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    latchkey_paths::create_private_dir(folder).map_err(BindError::UnsafeFolder)?;
    // Our own default folder is kept at 0700 (one named with --socket is the user's choice).
    if folder == latchkey_paths::runtime_dir() {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::AlreadyRunning(path.to_owned()));
            }
            tracing::info!(path = %path.display(), "replacing a stale socket");
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // Bound under a temporary name and renamed into place once it is 0600.
    let temporary = folder.join(format!(".lk{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(io)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(err) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(io(err));
    }
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    Ok((
        listener,
        SocketGuard {
            path: path.to_owned(),
            inode: meta.ino(),
            dev: meta.dev(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_bind_is_refused_and_stale_socket_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/latchkey.sock");
        let (listener, guard) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(folder_mode, 0o700);
        assert!(matches!(bind(&path), Err(BindError::AlreadyRunning(_))));
        // Drop the listener without removing the file: a stale socket.
        drop(listener);
        std::mem::forget(guard);
        let (_listener, _guard) = bind(&path).unwrap();
    }

    #[tokio::test]
    async fn a_regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, b"keep me").unwrap();
        assert!(matches!(bind(&path), Err(BindError::NotASocket(_))));
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }
}
