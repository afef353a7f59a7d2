//! latchkey's scale benchmark (not a test): how the daemon behaves with many entries.
//!
//! For each store (a real gnome-keyring on a private bus, and `--store memory`, where the
//! index is not used), it fills a release `latchkeyd` through its own socket (many `set`s from
//! concurrent connections), then reports, with 10 entries and with the full count: the
//! daemon's resident memory (`VmRSS`), the p50 of `list` and of `set` (an overwrite of an
//! existing entry), and, for the keyring, the start-up to serving time of a restarted daemon
//! (spawn until its first answered `version`) and the same figures after that restart.
//!
//! Run: `cargo build --release --bins && cargo bench -p latchkey-tests --bench entries`.
//! `LATCHKEY_BENCH_ENTRIES` sets the full count (default 10000 for memory, 1000 for the keyring:
//! filling gnome-keyring costs about 0.1 s a `set` at that size, and grows), `LATCHKEY_BENCH_STORES` the
//! stores (default `secret-service,memory` on Linux, `memory` elsewhere), `LATCHKEY_BENCH_LATCHKEYD` another `latchkeyd`
//! binary to measure (an older build, say), `LATCHKEY_BENCH_RUST_LOG` the daemon's log filter
//! (default `warn,latchkeyd=info`: no audit line per request).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_tests::{bin, Daemon, TestEnv};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Calls per latency figure.
const SAMPLES: usize = 50;
/// Connections filling the daemon at once.
const FILLERS: usize = 16;

/// One socket connection doing JSON-RPC round trips.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
    next_id: u64,
}

impl Conn {
    async fn open(socket: &Path) -> Conn {
        let (reader, writer) = UnixStream::connect(socket)
            .await
            .expect("connect")
            .into_split();
        Conn {
            reader: BufReader::with_capacity(1 << 16, reader),
            writer,
            line: String::new(),
            next_id: 1,
        }
    }

    /// Sends one request and reads its answer; returns the answer's length in bytes.
    async fn call(&mut self, method: &str, params: Option<Value>) -> usize {
        let mut request = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method});
        if let Some(params) = params {
            request["params"] = params;
        }
        self.next_id += 1;
        let mut bytes = serde_json::to_vec(&request).unwrap();
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await.unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).await.unwrap();
        assert!(
            self.line.starts_with('{') && !self.line.contains("\"error\""),
            "{method}: {}",
            &self.line[..self.line.len().min(300)]
        );
        self.line.len()
    }
}

fn set_params(n: usize, round: usize) -> Value {
    json!({
        "service": service(n),
        "bundle": {"kind": "api_key", "key": format!("sk-bench-{n:06}-{round}-0123456789abcdef")},
    })
}

fn service(n: usize) -> String {
    format!("bench-{n:06}")
}

/// Stores entries `from..to` through `FILLERS` connections.
async fn fill(socket: &Path, from: usize, to: usize) -> Duration {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let tasks: Vec<_> = (0..FILLERS)
        .map(|_| {
            let next = Arc::clone(&next);
            let socket = socket.to_owned();
            tokio::spawn(async move {
                let mut conn = Conn::open(&socket).await;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= to {
                        return;
                    }
                    conn.call("set", Some(set_params(n, 0))).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The p50 of `list` and of `set` (overwriting entries `0..entries` in turn), and the size
/// of a `list` answer.
async fn latencies(socket: &Path, entries: usize) -> (Duration, Duration, usize) {
    let mut conn = Conn::open(socket).await;
    let mut size = conn.call("list", None).await;
    let mut lists = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        size = conn.call("list", None).await;
        lists.push(started.elapsed());
    }
    let mut sets = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        conn.call("set", Some(set_params(i % entries, 1 + i))).await;
        sets.push(started.elapsed());
    }
    (p50(lists), p50(sets), size)
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

struct Bench {
    env: TestEnv,
    latchkeyd: PathBuf,
    store: String,
    log: String,
}

impl Bench {
    /// Starts the daemon; returns it and the time from spawn to its first answered `version`.
    fn start(&self, runtime: &tokio::runtime::Runtime) -> (Daemon, Duration) {
        let mut cmd = self.env.command(&self.latchkeyd);
        cmd.args(["--store", &self.store])
            .env("RUST_LOG", &self.log);
        let started = Instant::now();
        let daemon = Daemon::spawn(cmd, self.env.socket());
        runtime.block_on(async {
            Conn::open(&daemon.socket).await.call("version", None).await;
        });
        (daemon, started.elapsed())
    }
}

/// One row of the table.
struct Row {
    label: String,
    rss_kib: u64,
    list: Duration,
    list_bytes: usize,
    set: Duration,
    start: Option<Duration>,
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    daemon: &Daemon,
    label: String,
    entries: usize,
    start: Option<Duration>,
) -> Row {
    let (list, set, list_bytes) = runtime.block_on(latencies(&daemon.socket, entries));
    Row {
        label,
        rss_kib: rss_kib(daemon.pid()),
        list,
        list_bytes,
        set,
        start,
    }
}

/// A bare world for the memory store, a keyring on a private bus for the others (Linux).
fn env_for(store: &str) -> TestEnv {
    if store == "memory" {
        return TestEnv::bare();
    }
    #[cfg(target_os = "linux")]
    return TestEnv::with_keyring();
    #[cfg(not(target_os = "linux"))]
    panic!("the {store} store needs gnome-keyring (Linux); set LATCHKEY_BENCH_STORES=memory")
}

fn run_store(runtime: &tokio::runtime::Runtime, store: &str, total: usize) -> Vec<Row> {
    let bench = Bench {
        env: env_for(store),
        latchkeyd: std::env::var_os("LATCHKEY_BENCH_LATCHKEYD")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin("latchkeyd")),
        store: store.to_owned(),
        log: std::env::var("LATCHKEY_BENCH_RUST_LOG")
            .unwrap_or_else(|_| "warn,latchkeyd=info".into()),
    };
    let mut rows = Vec::new();
    let (daemon, _) = bench.start(runtime);
    let small = 10.min(total);
    let took = runtime.block_on(fill(&daemon.socket, 0, small));
    eprintln!("{store}: {small} entries stored in {took:.2?}");
    rows.push(measure(
        runtime,
        &daemon,
        format!("{store}, {small}"),
        small,
        None,
    ));
    let took = runtime.block_on(fill(&daemon.socket, small, total));
    eprintln!(
        "{store}: {} more entries stored in {took:.2?} ({:.2?} per set)",
        total - small,
        took / (total - small).max(1) as u32
    );
    rows.push(measure(
        runtime,
        &daemon,
        format!("{store}, {total}"),
        total,
        None,
    ));
    if store != "memory" {
        let (exit, _) = daemon.stop();
        assert!(exit.success());
        let (daemon, start) = bench.start(runtime);
        let label = format!("{store}, {total}, restarted");
        rows.push(measure(runtime, &daemon, label, total, Some(start)));
    }
    rows
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let total: Option<usize> = std::env::var("LATCHKEY_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok());
    let default_stores = if cfg!(target_os = "linux") {
        "secret-service,memory"
    } else {
        "memory"
    };
    let stores = std::env::var("LATCHKEY_BENCH_STORES").unwrap_or_else(|_| default_stores.into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for store in stores.split(',') {
        // A `set` into gnome-keyring grows slower with its item count (about 0.1 s each near
        // 1,000 items here), so filling it with 10,000 takes far longer than a bench should.
        let default = if store == "memory" { 10_000 } else { 1_000 };
        rows.extend(run_store(&runtime, store, total.unwrap_or(default)));
    }
    println!();
    println!(
        "{:<36} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "store, entries", "RSS MiB", "list p50", "list bytes", "set p50", "start-up"
    );
    for row in rows {
        println!(
            "{:<36} {:>10.1} {:>10.2?} {:>12} {:>10.2?} {:>12}",
            row.label,
            row.rss_kib as f64 / 1024.0,
            row.list,
            row.list_bytes,
            row.set,
            row.start.map_or("-".into(), |d| format!("{d:.2?}")),
        );
    }
}
