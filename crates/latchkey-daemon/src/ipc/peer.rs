//! Who is on the other end of a connection, from the kernel's peer credentials.

use tokio::net::UnixStream;

/// The peer of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its user id.
    pub uid: u32,
    /// Its process id, where the platform reports one.
    pub pid: Option<i32>,
    /// Its executable, where it can be read.
    pub exe: Option<String>,
}

impl Peer {
    /// Reads the credentials of `stream`'s peer.
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let pid = cred.pid();
        Ok(Peer {
            uid: cred.uid(),
            pid,
            exe: pid.and_then(executable),
        })
    }

    /// A peer known by its uid and pid (from the bus, say).
    pub fn from_ids(uid: u32, pid: Option<i32>) -> Peer {
        Peer {
            uid,
            pid,
            exe: pid.and_then(executable),
        }
    }

    /// Whether this peer is the daemon's own user. A peer that is not gets an audit line
    /// (`what` says what was refused: "a connection", "a D-Bus call").
    pub fn is_own_user(&self, what: &str) -> bool {
        if latchkey_paths::is_own_uid(self.uid) {
            return true;
        }
        tracing::warn!(
            target: "latchkey::audit",
            uid = self.uid,
            pid = ?self.pid,
            exe = ?self.exe,
            result = "permission_denied",
            "refused {what} from another user"
        );
        false
    }
}

#[cfg(target_os = "linux")]
fn executable(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

#[cfg(not(target_os = "linux"))]
fn executable(_pid: i32) -> Option<String> {
    None
}
