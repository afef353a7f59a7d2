//! A throwaway second local user, for the tests where another user attacks: it squats a
//! folder, poses as the daemon, or connects as a client.
//!
//! Creating a user needs root, which CI has. The user is made with `useradd` and removed
//! with `userdel` when dropped; its processes run from links to the test binaries in a
//! folder it can read (the build folder may be private to us).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::START_TIMEOUT;

/// A second local user, removed on drop.
pub struct OtherUser {
    name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    bins: tempfile::TempDir,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl OtherUser {
    /// Creates the user, or returns `None` (after saying so) when not root outside CI; in CI,
    /// which runs as root, not being root fails the test.
    pub fn create() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root so that tests can create a second user"
            );
            eprintln!("not root: cannot create a second user here; skipping");
            return None;
        }
        let name = format!(
            "lkt{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let made = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", &name])
            .output()
            .expect("run useradd (package passwd)");
        assert!(
            made.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let bins = tempfile::Builder::new()
            .prefix("latchkey-other-user")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(bins.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(Self {
            uid: id("-u"),
            gid: id("-g"),
            name,
            bins,
        })
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs the workspace binary `name` as this user, with an empty
    /// environment.
    pub fn command(&self, name: &str) -> Command {
        let copy = self.bins.path().join(name);
        if !copy.exists() {
            // A hard link, not a copy: a copy is open for writing while other test threads
            // fork, and executing it can then fail with "text file busy".
            let original = crate::bin(name);
            if std::fs::hard_link(&original, &copy).is_err() {
                std::fs::copy(&original, &copy).unwrap();
            }
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = Command::new(copy);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .uid(self.uid)
            // std drops root's supplementary groups when it sets the uid.
            .gid(self.gid);
        cmd
    }

    /// A folder owned by this user, in a temp folder everyone can pass through.
    pub fn folder(&self, mode: u32) -> OwnedFolder {
        let outer = tempfile::Builder::new()
            .prefix("latchkey-other")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = outer.path().join("latchkey");
        std::fs::create_dir(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        OwnedFolder {
            _outer: outer,
            path,
        }
    }

    /// Starts `latchkey-test-peer ARGS` as this user and waits for its `ready`.
    pub fn start_peer(&self, args: &[&str]) -> Peer {
        let mut child = self
            .command("latchkey-test-peer")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start latchkey-test-peer");
        let lines = lines(child.stdout.take().unwrap());
        let peer = Peer { child, lines };
        assert_eq!(peer.next_line(), "ready");
        peer
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A folder another user owns; removed with its temp parent.
pub struct OwnedFolder {
    _outer: tempfile::TempDir,
    /// The folder.
    pub path: PathBuf,
}

/// A running `latchkey-test-peer`, killed on drop.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Peer {
    /// The next line it prints (fails the test after a while).
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(START_TIMEOUT)
            .expect("the test peer printed nothing")
    }

    /// For a `serve` peer: sends `ping` on a new connection and returns every line printed
    /// before it. Connections are handled in order, so these are all the earlier ones.
    pub fn lines_before_ping(&self, socket: &Path) -> Vec<String> {
        let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
        std::io::Write::write_all(&mut stream, b"ping\n").unwrap();
        drop(stream);
        let mut seen = Vec::new();
        loop {
            let line = self.next_line();
            if line == "ping" {
                return seen;
            }
            seen.push(line);
        }
    }

    /// Waits at most `timeout` for one more line.
    pub fn line_within(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
