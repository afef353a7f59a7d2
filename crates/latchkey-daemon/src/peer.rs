//! Who is on the other end of a request, in a form every transport shares: the user (a uid on
//! Unix, a user SID on Windows), the process id and the executable where the platform tells
//! them. Each transport fills a [`Peer`] its own way (socket peer credentials, the bus's
//! credentials for a caller, a named pipe client's process token); the handler audits it and
//! [`Peer::is_own_user`] decides whether it is served.

use std::fmt;

/// The user a peer runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerUser {
    /// A Unix user id (socket peer credentials, D-Bus `GetConnectionUnixUser`).
    Uid(u32),
    /// A Windows user SID in its string form (`S-1-5-21-...`), from the client's process token.
    Sid(String),
}

impl PeerUser {
    /// The uid, for a Unix peer.
    pub fn uid(&self) -> Option<u32> {
        match self {
            PeerUser::Uid(uid) => Some(*uid),
            PeerUser::Sid(_) => None,
        }
    }

    /// The SID, for a Windows peer.
    pub fn sid(&self) -> Option<&str> {
        match self {
            PeerUser::Uid(_) => None,
            PeerUser::Sid(sid) => Some(sid),
        }
    }

    /// Whether this is the user the daemon runs as. A kind of identity the platform does not
    /// have (a SID on Unix, a uid on Windows) is never this user.
    pub fn is_current(&self) -> bool {
        match self {
            #[cfg(unix)]
            PeerUser::Uid(uid) => latchkey_paths::is_own_uid(*uid),
            #[cfg(windows)]
            PeerUser::Sid(sid) => own_sid().is_some_and(|own| own == sid),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl fmt::Display for PeerUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerUser::Uid(uid) => write!(f, "uid {uid}"),
            PeerUser::Sid(sid) => write!(f, "{sid}"),
        }
    }
}

/// The peer of a connection or a bus call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The user it runs as.
    pub user: PeerUser,
    /// Its process id, where the platform reports one.
    pub pid: Option<u32>,
    /// Its executable, where it can be read.
    pub exe: Option<String>,
}

/// The executable as an audit line shows it (`exe=/usr/bin/curl`): control, bidirectional and
/// zero-width characters escaped as `\u{..}`, and spaces too, so a crafted file name can
/// neither start a line of its own nor pose as another field.
pub fn exe_for_log(exe: &str) -> String {
    latchkey_proto::text::escape(exe).replace(' ', "\\u{20}")
}

impl Peer {
    /// The pid and executable as an audit line shows them: plain values (`pid=1234
    /// exe=/usr/bin/curl`), each left out when unknown.
    pub fn log_fields(&self) -> (Option<u32>, Option<tracing::field::DisplayValue<String>>) {
        (
            self.pid,
            self.exe
                .as_deref()
                .map(|exe| tracing::field::display(exe_for_log(exe))),
        )
    }

    /// A peer known by its user and process id; its executable is looked up from the pid.
    pub fn new(user: PeerUser, pid: Option<u32>) -> Peer {
        Peer {
            user,
            pid,
            exe: pid.and_then(executable),
        }
    }

    /// Whether this peer is the daemon's own user. A peer that is not gets an audit line
    /// (`what` says what was refused: "a connection", "a D-Bus call").
    pub fn is_own_user(&self, what: &str) -> bool {
        if self.user.is_current() {
            return true;
        }
        let (pid, exe) = self.log_fields();
        tracing::warn!(
            target: "latchkey::audit",
            uid = self.user.uid(),
            sid = self.user.sid(),
            pid,
            exe,
            result = "permission_denied",
            "refused {what} from another user"
        );
        false
    }
}

/// The user SID of the daemon's process token, read once. `None` (the token cannot be read)
/// trusts no SID.
#[cfg(windows)]
fn own_sid() -> Option<&'static str> {
    static OWN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| match latchkey_paths::current_user_sid() {
        Ok(sid) => Some(sid),
        Err(err) => {
            tracing::error!(error = %err, "cannot read this process's user SID; every pipe client is refused");
            None
        }
    })
    .as_deref()
}

#[cfg(target_os = "linux")]
fn executable(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

#[cfg(target_os = "macos")]
fn executable(pid: u32) -> Option<String> {
    let pid = libc::c_int::try_from(pid).ok()?;
    let mut path = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    let capacity = u32::try_from(path.len()).ok()?;
    // SAFETY: proc_pidpath writes at most `capacity` bytes into `path`, which is that long,
    // and returns how many it wrote (0 or less on failure: no such process, not allowed).
    let written = unsafe { libc::proc_pidpath(pid, path.as_mut_ptr().cast(), capacity) };
    path.truncate(usize::try_from(written).ok().filter(|n| *n > 0)?);
    Some(String::from_utf8_lossy(&path).into_owned())
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn executable(_pid: u32) -> Option<String> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_this_user_s_uid_is_the_current_user() {
        let me = latchkey_paths::effective_uid();
        assert!(PeerUser::Uid(me).is_current());
        let other = if me == 65534 { 65533 } else { 65534 };
        assert!(!PeerUser::Uid(other).is_current());
        // A SID names no Unix user.
        assert!(!PeerUser::Sid("S-1-5-21-1-2-3-1001".into()).is_current());
    }

    #[test]
    fn a_peer_refused_or_served_by_its_user() {
        let me = latchkey_paths::effective_uid();
        let own = Peer::new(PeerUser::Uid(me), Some(std::process::id()));
        assert!(own.is_own_user("a test connection"));
        assert_eq!(own.user.uid(), Some(me));
        assert_eq!(own.user.sid(), None);
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        assert!(
            own.exe.is_some(),
            "the executable is read from /proc or proc_pidpath"
        );
        let stranger = Peer::new(PeerUser::Sid("S-1-5-21-1-2-3-1001".into()), None);
        assert!(!stranger.is_own_user("a test connection"));
        assert_eq!(stranger.user.to_string(), "S-1-5-21-1-2-3-1001");
    }

    /// Collects what a fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn audit_lines_show_plain_values_and_leave_out_unknown_ones() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let known = Peer {
                user: PeerUser::Uid(65534),
                pid: Some(1234),
                exe: Some("/usr/bin/curl".into()),
            };
            assert!(!known.is_own_user("a test connection"));
            let crafted = Peer {
                user: PeerUser::Uid(65534),
                pid: Some(99),
                exe: Some("/tmp/my tool\nlatchkey::audit: result=ok".into()),
            };
            assert!(!crafted.is_own_user("a test connection"));
            let unknown = Peer {
                user: PeerUser::Uid(65534),
                pid: None,
                exe: None,
            };
            assert!(!unknown.is_own_user("a test connection"));
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("uid=65534 pid=1234 exe=/usr/bin/curl "),
            "{text}"
        );
        assert!(
            lines[1].contains("exe=/tmp/my\\u{20}tool\\u{a}latchkey::audit:\\u{20}result=ok "),
            "{text}"
        );
        assert!(
            !lines[2].contains("pid") && !lines[2].contains("exe"),
            "{text}"
        );
        assert!(!text.contains("Some("), "{text}");
    }
}
