//! Instructions per request on the server side, counted by `valgrind --tool=callgrind`: unlike
//! wall-clock times, instruction counts barely move on a busy machine, so they show whether a
//! change to the request path made it cheaper.
//!
//! Each server (the daemon, the raw echo) runs twice under callgrind with the same connections:
//! once where every connection sends `WARM` requests (start-up, connection set-up, the first
//! read of the entry and its audit line), once where each sends `WARM + n` requests. The
//! difference of the two totals divided by the extra requests is what one more request costs.
//! Valgrind runs one thread at a time, so the count is of work done, not of waiting.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use latchkey_tests::{bin, Daemon, TestEnv};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Requests every connection sends in the baseline run.
const WARM: usize = 20;

/// A server under callgrind, stopped in a way that lets callgrind write its totals.
enum Server {
    Daemon(Daemon),
    Echo(Child),
}

impl Server {
    fn stop(self) {
        match self {
            // SIGTERM: the daemon shuts down gracefully and exits.
            Server::Daemon(daemon) => {
                let (status, logs) = daemon.stop();
                assert!(status.success(), "latchkeyd under callgrind:\n{logs}");
            }
            // The echo server exits when its stdin closes.
            Server::Echo(mut child) => {
                drop(child.stdin.take());
                assert!(child.wait().unwrap().success());
            }
        }
    }
}

fn callgrind(out: &Path) -> Vec<String> {
    vec![
        "--tool=callgrind".into(),
        "-q".into(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// The `summary:` (or `totals:`) line of a callgrind output file.
fn total(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out).expect("callgrind output");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", out.display()))
}

/// `clients` connections at once, each sending `count` requests one after the other.
async fn drive(socket: PathBuf, line: Arc<Vec<u8>>, clients: usize, count: usize) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let socket = socket.clone();
            let line = Arc::clone(&line);
            tokio::spawn(async move {
                let stream = UnixStream::connect(&socket).await.expect("connect");
                let (reader, mut writer) = stream.into_split();
                let mut reader = BufReader::new(reader);
                let mut response = String::new();
                for _ in 0..count {
                    writer.write_all(&line).await.unwrap();
                    response.clear();
                    reader.read_line(&mut response).await.unwrap();
                    assert!(!response.contains("\"error\""), "{response}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// What the measurements need to start servers and talk to them.
pub struct Setup<'a> {
    pub env: &'a TestEnv,
    pub runtime: &'a tokio::runtime::Runtime,
    pub line: Arc<Vec<u8>>,
    /// The daemon's answer, which the echo server repeats.
    pub response: String,
    /// The daemon's log filter.
    pub log: String,
    /// More arguments for the daemon (a `--config` file).
    pub daemon_args: Vec<String>,
}

impl Setup<'_> {
    fn start_daemon(&self, socket: &Path, out: &Path) -> Server {
        let mut cmd = self.env.command(Path::new("valgrind"));
        cmd.args(callgrind(out))
            .arg(bin("latchkeyd"))
            .args(["--no-dbus", "--socket"])
            .arg(socket)
            .args(&self.daemon_args)
            .env("RUST_LOG", &self.log);
        Server::Daemon(Daemon::spawn(cmd, socket.to_owned()))
    }

    fn start_echo(&self, socket: &Path, out: &Path) -> Server {
        let mut child = Command::new("valgrind")
            .args(callgrind(out))
            .arg(std::env::current_exe().unwrap())
            .arg("--echo-server")
            .arg(socket)
            .arg(self.response.trim_end())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready.trim(), "ready");
        Server::Echo(child)
    }

    /// One callgrind run of a server: its total instructions.
    fn run(&self, echo: bool, clients: usize, per_client: usize, tag: &str) -> u64 {
        let socket = self.env.root().join(format!("cg-{tag}.sock"));
        let out = self.env.root().join(format!("cg-{tag}.out"));
        let server = if echo {
            self.start_echo(&socket, &out)
        } else {
            self.start_daemon(&socket, &out)
        };
        self.runtime.block_on(drive(
            socket.clone(),
            Arc::clone(&self.line),
            clients,
            per_client,
        ));
        server.stop();
        let _ = std::fs::remove_file(&socket);
        total(&out)
    }

    /// Instructions one more request costs the server, with `clients` connections at once.
    pub fn per_request(&self, echo: bool, clients: usize, per_client: usize) -> f64 {
        let name = if echo { "echo" } else { "get" };
        let base = self.run(echo, clients, WARM, &format!("{name}-{clients}-base"));
        let full = self.run(
            echo,
            clients,
            WARM + per_client,
            &format!("{name}-{clients}-full"),
        );
        full.saturating_sub(base) as f64 / (clients * per_client) as f64
    }
}
