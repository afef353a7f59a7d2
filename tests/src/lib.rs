//! The harness of latchkey's end-to-end tests and benchmarks: real processes, started and
//! stopped by pid.
//!
//! - `SessionBus` (Linux): a private `dbus-daemon` with a config of our own (no system
//!   services, so nothing is activated behind the test's back).
//! - `Keyring` (Linux): `gnome-keyring-daemon` on that bus with an unlocked `login` collection;
//!   stopped by pid and started again on the same folders, unlocked or locked.
//! - [`Daemon`]: the built `latchkeyd`, ready once it logs that it is serving.
//! - [`TestEnv`]: private XDG folders for one test, and [`TestEnv::cli`] to run `latchkey`.
//! - `users::OtherUser` (Linux): a throwaway second local user, to attack as.
//! - `notifications::NotificationServer` (Linux): a desktop notification server on the
//!   private bus that answers prompts Allow, Deny, never, or when the test says.
//! - [`git_http::GitServer`]: a git smart-HTTP server on loopback that demands Basic auth and
//!   serves bare repositories through the real `git http-backend`.
//!
//! Binaries are found next to the test executable's `deps` folder, so run
//! `cargo build --workspace --bins` (or `--release` for benches) first; the README's test
//! command does.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

#[cfg(target_os = "linux")]
mod bus;
pub mod git_http;
pub mod http;
mod loopback;
#[cfg(target_os = "linux")]
pub mod notifications;
pub mod oauth_server;
#[cfg(target_os = "linux")]
pub mod proxy;
#[cfg(target_os = "linux")]
pub mod users;

#[cfg(target_os = "linux")]
pub use bus::{Keyring, SessionBus, Squatter, LOGIN_COLLECTION};

/// How long any start-up may take before a test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of a workspace binary built next to the running test or bench.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Fails the test with an install hint if `program` is missing.
pub fn require_program(program: &str, package: &str) {
    require(program, package)
}

pub(crate) fn require(program: &str, package: &str) {
    assert!(
        have(program),
        "{program} is not installed (Debian package {package}); the README's test command installs it"
    );
}

/// Sends a signal to a child by pid.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill takes a pid and a signal number; the pid is our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

pub(crate) fn private_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path.to_owned()
}

/// A running latchkeyd.
pub struct Daemon {
    child: Child,
    log: Arc<Log>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The socket it serves.
    pub socket: PathBuf,
}

/// A child's stderr as it arrives, with a condition variable to wait for a line.
#[derive(Default)]
pub(crate) struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

impl Log {
    pub(crate) fn push(&self, line: &str) {
        let mut text = self.text.lock().unwrap();
        text.push_str(line);
        text.push('\n');
        self.grew.notify_all();
    }

    pub(crate) fn snapshot(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for the whole text to satisfy `done`: the text, or `Err` with the
    /// text if it never did.
    pub(crate) fn wait_until(
        &self,
        done: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let text = self.text.lock().unwrap();
        let (text, waited) = self
            .grew
            .wait_timeout_while(text, timeout, |t| !done(t))
            .unwrap();
        if waited.timed_out() {
            Err(text.clone())
        } else {
            Ok(text.clone())
        }
    }

    /// Waits up to `timeout` for the text to contain `needle` (see [`Log::wait_until`]).
    pub(crate) fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_until(|t| t.contains(needle), timeout)
    }
}

impl Daemon {
    /// Spawns `cmd` (a `latchkeyd` command) serving `socket` and waits until it serves.
    pub fn spawn(cmd: Command, socket: PathBuf) -> Daemon {
        match Daemon::start(cmd, socket) {
            Ok(daemon) => daemon,
            Err((status, logs)) => panic!("latchkeyd exited ({status}) before serving:\n{logs}"),
        }
    }

    /// Spawns `cmd`; `Err` with its exit status and logs if it exits before serving.
    pub fn start(mut cmd: Command, socket: PathBuf) -> Result<Daemon, (ExitStatus, String)> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start latchkeyd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Log::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let is_ready = line.contains("latchkeyd is serving");
                sink.push(&line);
                if is_ready {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(true);
                    }
                }
            }
            if let Some(tx) = ready.take() {
                let _ = tx.send(false);
            }
        });
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(true) => Ok(Daemon {
                child,
                log,
                reader: Some(reader),
                socket,
            }),
            Ok(false) => {
                let status = child.wait().unwrap();
                let _ = reader.join();
                Err((status, log.snapshot()))
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "latchkeyd did not start within {START_TIMEOUT:?}:\n{}",
                    log.snapshot()
                );
            }
        }
    }

    /// Waits for the daemon to exit by itself (its stderr closes first); fails the test if
    /// it does not within the start timeout.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        if let Some(reader) = self.reader.take() {
            let (done_tx, done_rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = reader.join();
                let _ = done_tx.send(());
            });
            if done_rx.recv_timeout(START_TIMEOUT).is_err() {
                let _ = self.child.kill();
                panic!("latchkeyd did not exit:\n{}", self.logs());
            }
        }
        let status = self.child.wait().unwrap();
        (status, self.logs())
    }

    /// The daemon's stderr so far.
    pub fn logs(&self) -> String {
        self.log.snapshot()
    }

    /// Waits until the daemon's stderr contains `needle` (its log is written asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.log
            .wait_for(needle, START_TIMEOUT)
            .unwrap_or_else(|text| panic!("the daemon never logged {needle:?}:\n{text}"))
    }

    /// Waits until the daemon logs a line for which `wanted` holds (`what` names it should it
    /// never come); its stderr so far.
    pub fn wait_for_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.log
            .wait_until(|t| t.lines().any(&wanted), START_TIMEOUT)
            .unwrap_or_else(|text| panic!("the daemon never logged {what}:\n{text}"))
    }

    /// Whether the daemon's stderr comes to contain `needle` `times` times within `timeout`:
    /// for what must happen soon, where [`wait_for_log`](Self::wait_for_log) allows a whole
    /// start-up.
    pub fn logged_within(&self, needle: &str, times: usize, timeout: Duration) -> bool {
        self.log
            .wait_until(|t| t.matches(needle).count() >= times, timeout)
            .is_ok()
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM without waiting (then [`Daemon::wait_exit`]).
    pub fn terminate(&self) {
        signal(&self.child, libc::SIGTERM);
    }

    /// Sends SIGTERM and waits for the exit status (stderr fully read).
    pub fn stop(mut self) -> (ExitStatus, String) {
        signal(&self.child, libc::SIGTERM);
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.logs())
    }

    /// Kills with SIGKILL and waits.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world: private XDG folders, optionally a bus with a keyring.
pub struct TestEnv {
    root: tempfile::TempDir,
    /// Holds the socket.
    pub runtime_dir: PathBuf,
    /// `XDG_DATA_HOME` of the daemon.
    pub data_dir: PathBuf,
    /// `XDG_CONFIG_HOME` of the daemon.
    pub config_dir: PathBuf,
    /// The keyring, if started (dropped before the bus).
    #[cfg(target_os = "linux")]
    pub keyring: Option<Keyring>,
    /// The bus, if started.
    #[cfg(target_os = "linux")]
    pub bus: Option<SessionBus>,
}

impl TestEnv {
    /// Folders only: no session bus. Daemons started here use the memory store unless the test
    /// names a store (`auto` would pick the locked file store).
    pub fn bare() -> Self {
        let root = tempfile::Builder::new()
            .prefix("latchkey-test")
            .tempdir()
            .unwrap();
        let runtime_dir = private_dir(&root.path().join("run"));
        let data_dir = private_dir(&root.path().join("data"));
        let config_dir = private_dir(&root.path().join("config"));
        Self {
            root,
            runtime_dir,
            data_dir,
            config_dir,
            #[cfg(target_os = "linux")]
            keyring: None,
            #[cfg(target_os = "linux")]
            bus: None,
        }
    }

    /// A private session bus with an unlocked gnome-keyring.
    #[cfg(target_os = "linux")]
    pub fn with_keyring() -> Self {
        let mut env = Self::bare();
        let bus = SessionBus::start(None);
        env.keyring = Some(Keyring::start(&bus, env.root.path()));
        env.bus = Some(bus);
        env
    }

    /// The bus (panics if there is none).
    #[cfg(target_os = "linux")]
    pub fn bus(&self) -> &SessionBus {
        self.bus.as_ref().expect("this test env has no bus")
    }

    /// The temp root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The socket the daemon serves by default in this env.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join("latchkey").join("latchkey.sock")
    }

    /// A command with this env's variables and nothing inherited that could leak in.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path())
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("XDG_DATA_HOME", &self.data_dir)
            .env("XDG_CONFIG_HOME", &self.config_dir);
        #[cfg(target_os = "linux")]
        match &self.bus {
            Some(bus) => cmd.env("DBUS_SESSION_BUS_ADDRESS", bus.address()),
            None => cmd.env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/latchkey-test-bus",
            ),
        };
        cmd
    }

    /// Starts latchkeyd with `args` and waits until it serves.
    pub fn start_daemon(&self, args: &[&str]) -> Daemon {
        self.start_daemon_with(args, &[])
    }

    /// Starts latchkeyd with `args` and extra environment variables.
    pub fn start_daemon_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Daemon {
        match self.try_start_daemon(args, vars) {
            Ok(daemon) => daemon,
            Err((status, logs)) => panic!("latchkeyd exited ({status}) before serving:\n{logs}"),
        }
    }

    /// Starts latchkeyd; `Err` with its exit status and logs if it exits before serving.
    pub fn try_start_daemon(
        &self,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Daemon, (ExitStatus, String)> {
        let mut cmd = self.command(&bin("latchkeyd"));
        cmd.args(args);
        if self.uses_memory_by_default(args) {
            cmd.args(["--store", "memory"]);
        }
        if !vars.iter().any(|(k, _)| *k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let socket = args
            .windows(2)
            .find(|w| w[0] == "--socket")
            .map(|w| PathBuf::from(w[1]))
            .unwrap_or_else(|| self.socket());
        let daemon = Daemon::start(cmd, socket)?;
        // The bus is served in the background: a test that uses it waits for it.
        #[cfg(target_os = "linux")]
        if self.bus.is_some() && !args.contains(&"--no-dbus") {
            daemon.wait_for_log("serving on the session bus");
        }
        Ok(daemon)
    }

    /// Whether a daemon started with `args` gets `--store memory` added: in an env without a
    /// keyring, when the test names no store (the flag wins over a config file's). `auto` would
    /// pick the encrypted file store there, which serves nothing until `latchkey unlock`; tests
    /// of the store choice itself say `--store auto`.
    fn uses_memory_by_default(&self, args: &[&str]) -> bool {
        #[cfg(target_os = "linux")]
        if self.keyring.is_some() {
            return false;
        }
        !args.contains(&"--store")
    }

    /// Runs the `latchkey` CLI against `socket` with `stdin`.
    pub fn cli(&self, socket: &Path, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.command(&bin("latchkey"));
        // The default socket is found without being named, so `--transport auto` may still
        // choose the bus; any other socket is named, and then used alone.
        if socket != self.socket() {
            cmd.env("LATCHKEY_SOCKET", socket);
        }
        run_with_stdin(cmd.args(args), stdin)
    }
}

/// Runs `cmd` with `stdin` on its standard input and collects its output.
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command");
    {
        let mut input = child.stdin.take().unwrap();
        // A command that exits without reading stdin (a usage error) closes the pipe early.
        if let Err(err) = input.write_all(stdin.as_bytes()) {
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
        }
    }
    child.wait_with_output().unwrap()
}

/// stdout of an output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of an output, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Sends raw bytes on a fresh connection and reads `lines` response lines.
pub fn raw_exchange(socket: &Path, bytes: &[u8], lines: usize) -> Vec<serde_json::Value> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut reader = BufReader::new(stream);
    (0..lines)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a response line");
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line:?}"))
        })
        .collect()
}

/// One open socket connection for request after request, so that two calls follow each other
/// by one round trip (no process start in between: for checks that run inside a short window).
pub struct RawConnection {
    reader: BufReader<std::os::unix::net::UnixStream>,
}

impl RawConnection {
    /// Connects to `socket`.
    pub fn open(socket: &Path) -> Self {
        let stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
        stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Sends one request line (a newline is added) and reads its response.
    pub fn call(&mut self, request: &str) -> serde_json::Value {
        self.send(request);
        self.answer()
    }

    /// Sends one request line (a newline is added) without reading: requests sent one after
    /// the other are pipelined, and the daemon takes each straight after answering the one
    /// before, with no round trip of the test in between.
    pub fn send(&mut self, request: &str) {
        let stream = self.reader.get_mut();
        stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    }

    /// Reads the next response line.
    pub fn answer(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read a response line");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line:?}"))
    }
}
