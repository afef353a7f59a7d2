//! The harness of the Windows end-to-end suite (`tests/e2e.rs`): the built `latchkeyd.exe` and
//! `latchkey.exe` run as real processes (under Wine on the CI machine), each test with a pipe
//! name and a data folder of its own, in the one real Credential Manager of the Wine prefix.
//! Daemons are started and waited for through their log ("latchkeyd is serving"), and stopped
//! through their process handle, never by name.
#![cfg(windows)]
#![deny(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a daemon may take to start (or to fail) under Wine.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder with the built binaries: `LATCHKEY_WIN_BIN`, else the profile folder above this
/// test's `deps` folder.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LATCHKEY_WIN_BIN") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/.../deps")
        .to_owned()
}

/// `latchkeyd.exe`.
pub fn daemon_exe() -> PathBuf {
    bin_dir().join("latchkeyd.exe")
}

/// `latchkey.exe`.
pub fn cli_exe() -> PathBuf {
    bin_dir().join("latchkey.exe")
}

/// One test's world: its pipe name and data folder.
pub struct TestEnv {
    /// `\\.\pipe\...`, unique to this test and run.
    pub pipe: String,
    /// `LATCHKEY_DATA_DIR` of its daemons (the store's index).
    pub data: tempfile::TempDir,
}

impl TestEnv {
    /// A fresh world named after `tag`.
    pub fn new(tag: &str) -> Self {
        Self {
            pipe: format!(r"\\.\pipe\latchkey-test-{tag}-{}", std::process::id()),
            data: tempfile::tempdir().expect("a temp folder"),
        }
    }

    /// `latchkeyd` on this world's pipe and data folder, with `args`.
    pub fn daemon_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(daemon_exe());
        command
            .arg("--pipe")
            .arg(&self.pipe)
            .args(args)
            .env("LATCHKEY_DATA_DIR", self.data.path())
            .env_remove("LATCHKEY_PIPE");
        command
    }

    /// Starts `latchkeyd` and waits until it serves.
    pub fn start_daemon(&self, args: &[&str]) -> Daemon {
        Daemon::start(self.daemon_command(args))
    }

    /// Runs `latchkey --pipe PIPE args...` with `stdin` and waits for it.
    pub fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = Command::new(cli_exe());
        command.arg("--pipe").arg(&self.pipe).args(args);
        run(command, stdin)
    }
}

/// Runs `command` with `stdin` (or nothing) and collects its output.
pub fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the program starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("stdin takes the input");
    }
    drop(input);
    child.wait_with_output().expect("the program ends")
}

/// What a finished command said, for assertion messages.
pub fn shown(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A running daemon; killed (by its process handle) when dropped.
pub struct Daemon {
    child: Child,
    lines: Receiver<String>,
    /// Every log line read so far.
    pub log: Vec<String>,
}

impl Daemon {
    /// Starts `command` and waits for "latchkeyd is serving"; panics with the log if the
    /// daemon exits or does not get there in time.
    pub fn start(command: Command) -> Daemon {
        let mut daemon = Self::spawn(command);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match daemon.next_line(deadline) {
                Some(line) if line.contains("latchkeyd is serving") => return daemon,
                Some(_) => {}
                None => {
                    let status = daemon.child.try_wait().ok().flatten();
                    panic!(
                        "latchkeyd did not start ({status:?}):\n{}",
                        daemon.log.join("\n")
                    );
                }
            }
        }
    }

    /// Starts `command`, expecting it to exit by itself: its status and log.
    pub fn run_to_exit(command: Command) -> (ExitStatus, String) {
        let mut daemon = Self::spawn(command);
        let deadline = Instant::now() + START_TIMEOUT;
        while daemon.next_line(deadline).is_some() {}
        let status = daemon.child.wait().expect("the daemon ends");
        (status, daemon.log.join("\n"))
    }

    fn spawn(mut command: Command) -> Daemon {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkeyd starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The next log line, or `None` once the log ends (the daemon exited) or the deadline
    /// passes.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.log.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The log so far, as one text.
    pub fn log_text(&self) -> String {
        self.log.join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the process (TerminateProcess on its handle) and waits for it.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The generic credentials whose target names start with `prefix`, with their blob sizes:
/// what latchkey really put in Credential Manager (`CredEnumerateW`).
pub fn credentials(prefix: &str) -> Vec<(String, usize)> {
    use windows_sys::Win32::Security::Credentials::{CredEnumerateW, CredFree, CREDENTIALW};
    let filter: Vec<u16> = format!("{prefix}*").encode_utf16().chain(Some(0)).collect();
    let mut count = 0u32;
    let mut list: *mut *mut CREDENTIALW = std::ptr::null_mut();
    // SAFETY: filter is NUL-terminated; count and list are valid out pointers.
    if unsafe { CredEnumerateW(filter.as_ptr(), 0, &mut count, &mut list) } == 0 {
        // ERROR_NOT_FOUND: none.
        return Vec::new();
    }
    let mut found = Vec::new();
    for i in 0..count as usize {
        // SAFETY: on success list holds `count` valid credential pointers. Wine packs the
        // records and strings into one allocation without aligning them (which record lands
        // where depends on the lengths before it), so both the pointer and the record are read
        // unaligned, into copies.
        let credential: CREDENTIALW = unsafe { list.add(i).read_unaligned().read_unaligned() };
        // The strings are packed the same way: read unit by unit.
        let mut name = Vec::new();
        loop {
            // SAFETY: TargetName is a NUL-terminated string inside the list's allocation.
            let unit = unsafe { credential.TargetName.add(name.len()).read_unaligned() };
            if unit == 0 {
                break;
            }
            name.push(unit);
        }
        found.push((
            String::from_utf16_lossy(&name),
            credential.CredentialBlobSize as usize,
        ));
    }
    // SAFETY: list came from CredEnumerateW and is freed once.
    unsafe { CredFree(list.cast()) };
    found
}
