//! The Unix socket: before anything is sent, the socket's folder must belong to this user and
//! be closed to others, and the process listening on it must run as this user (its peer
//! credentials).

use std::path::Path;

use tokio::net::UnixStream;

use super::line::LineConnection;
use crate::{ClientError, Untrusted};

/// Connects to the socket at `path` after checking its folder, and checks its listener.
pub(crate) async fn connect(path: &Path) -> Result<LineConnection, ClientError> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    latchkey_paths::check_private_dir(folder).map_err(|e| {
        if e.is_missing() {
            ClientError::NotRunning {
                path: path.to_owned(),
            }
        } else {
            ClientError::Untrusted(Untrusted::Folder(e))
        }
    })?;
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning {
                    path: path.to_owned(),
                }
            }
            _ => ClientError::Io(e),
        })?;
    let owner = stream.peer_cred()?.uid();
    if !latchkey_paths::is_own_uid(owner) {
        return Err(ClientError::Untrusted(Untrusted::Peer {
            path: path.to_owned(),
            owner: latchkey_paths::User(owner),
        }));
    }
    Ok(LineConnection::new(Box::new(stream)))
}
