//! The default socket path, computed the same way by the daemon and the clients.
//!
//! `$LATCHKEY_SOCKET` wins. Otherwise the socket lives in a folder only this user can create:
//! `$XDG_RUNTIME_DIR/latchkey`; without that variable, `$XDG_STATE_HOME/latchkey` (by default
//! `~/.local/state/latchkey`) inside the user's home. Never a predictable name in a shared
//! folder such as `/tmp`, which another user could create first. On macOS the per-user,
//! private temporary folder the system keeps (`confstr(_CS_DARWIN_USER_TEMP_DIR)`, what
//! `$TMPDIR` normally names) is used instead of the home fallback.

use std::path::PathBuf;

/// Environment variable that overrides the socket path for the daemon and the clients.
pub const SOCKET_ENV: &str = "LATCHKEY_SOCKET";

/// The per-user runtime folder variable (freedesktop base directory spec).
pub const RUNTIME_DIR_ENV: &str = "XDG_RUNTIME_DIR";

/// The default socket path: `$LATCHKEY_SOCKET`, else `latchkey.sock` in [`runtime_dir`].
pub fn default_socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    runtime_dir().join("latchkey.sock")
}

/// The per-user folder that holds the socket (see the module documentation for the order).
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = non_empty_var(RUNTIME_DIR_ENV) {
        return dir.join("latchkey");
    }
    fallback_runtime_dir()
}

fn non_empty_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(all(unix, not(target_os = "macos")))]
fn fallback_runtime_dir() -> PathBuf {
    let state = non_empty_var("XDG_STATE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty_var("HOME").map(|h| h.join(".local").join("state")))
        // No home at all: a relative path that fails clearly at bind or connect time rather
        // than a guess in a shared folder.
        .unwrap_or_else(|| PathBuf::from(".latchkey-no-home"));
    state.join("latchkey")
}

#[cfg(target_os = "macos")]
fn fallback_runtime_dir() -> PathBuf {
    // The system's per-user temporary folder (/var/folders/..., mode 0700), asked of the
    // system itself rather than read from $TMPDIR, so that a launchd agent, a Terminal and an
    // SSH session (which may set TMPDIR differently, or not at all) agree on one socket.
    // Failing that, $TMPDIR or std's answer; a shared folder there fails the private-folder
    // check at bind and connect time instead of being used.
    darwin_user_temp_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("latchkey")
}

/// `confstr(_CS_DARWIN_USER_TEMP_DIR)`: the per-user temporary folder.
#[cfg(target_os = "macos")]
fn darwin_user_temp_dir() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; 1024];
    // SAFETY: confstr writes at most `buf.len()` bytes, NUL included, into `buf`.
    let needed = unsafe {
        libc::confstr(
            libc::_CS_DARWIN_USER_TEMP_DIR,
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if needed == 0 || needed > buf.len() {
        return None;
    }
    buf.truncate(needed - 1);
    let dir = PathBuf::from(std::ffi::OsString::from_vec(buf));
    dir.is_absolute().then_some(dir)
}

#[cfg(not(unix))]
fn fallback_runtime_dir() -> PathBuf {
    non_empty_var("LOCALAPPDATA")
        .unwrap_or_else(std::env::temp_dir)
        .join("latchkey")
}
