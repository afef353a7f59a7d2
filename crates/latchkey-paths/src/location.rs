//! The default socket path, computed the same way by the daemon and the clients.
//!
//! `$LATCHKEY_SOCKET` wins. Otherwise the socket lives in a folder only this user can create:
//! `$XDG_RUNTIME_DIR/latchkey`; without that variable, `$XDG_STATE_HOME/latchkey` (by default
//! `~/.local/state/latchkey`) inside the user's home. Never a predictable name in a shared
//! folder such as `/tmp`, which another user could create first. On macOS the per-user,
//! private `$TMPDIR` the system sets up is used instead of the home fallback.

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
    // launchd gives each user a private $TMPDIR (/var/folders/..., mode 0700).
    std::env::temp_dir().join("latchkey")
}

#[cfg(not(unix))]
fn fallback_runtime_dir() -> PathBuf {
    non_empty_var("LOCALAPPDATA")
        .unwrap_or_else(std::env::temp_dir)
        .join("latchkey")
}
