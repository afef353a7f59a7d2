//! Where the daemon's socket lives by default, so that the daemon and every client agree.

use std::path::PathBuf;

/// Environment variable that overrides the socket path for the daemon and the clients.
pub const SOCKET_ENV: &str = "LATCHKEY_SOCKET";

/// The default socket path: `$LATCHKEY_SOCKET`, else `$XDG_RUNTIME_DIR/latchkey/latchkey.sock`,
/// else `<temp dir>/latchkey-<uid>/latchkey.sock` (the daemon creates that folder 0700).
pub fn default_socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    runtime_dir().join("latchkey.sock")
}

/// The per-user folder that holds the socket.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("latchkey"),
        None => std::env::temp_dir().join(format!("latchkey-{}", user_tag())),
    }
}

fn user_tag() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or_else(|| "user".to_owned())
}
