//! latchkey's scale benchmark (not a test): how the daemon behaves with many entries.
//!
//! For each store (a real gnome-keyring on a private bus, the encrypted file store, and
//! `--store memory`, where the index is not used), it fills a release `latchkeyd` through its
//! own socket (many `set`s from concurrent connections), then reports, with 10 entries and with
//! the full count: the daemon's resident memory (`VmRSS`, once filled and again after the
//! `list` samples), the p50 of `get` (each sampled entry's first `get`, then its second), of
//! `list` and the daemon's CPU time per `list` (from `/proc`, steadier than the round trip
//! here), the p50 of `set` (an overwrite of an existing entry), and, for the persistent stores,
//! the start-up to serving time of a restarted daemon (spawn until its first answered
//! `version`) and the same figures after that restart. A filled daemon keeps the secrets it
//! stored last in its cache (at most 1,024), so with 10 entries both `get` figures are cached
//! ones, and with 10,000 the first `get` of most sampled entries reads the store; after the
//! restart the first `get` of an entry reads the store (for the file store: reads and decrypts its file) and the
//! second is served from the cache. The file store is unlocked (its passphrase chosen on the
//! first start) after the start-up time is taken; that unlock costs about a second of scrypt.
//!
//! Start-up with 10,000 entries: filling gnome-keyring with 10,000 items takes far too long
//! here, so the keyring keeps the filled entries (1,000 by default) and the store's index is
//! replaced by a snapshot of 10,000 records (the filled ones among them), as a daemon that
//! stored them would leave it. A daemon serves its index at once and checks it against the
//! keyring in the background, after it serves; so this times everything up to serving
//! (reading and parsing the 10,000-record index, connecting to the keyring, building the
//! cache), while the background check lists only the keyring's items. Median of 5 restarts.
//!
//! Run: `cargo build --release --bins && cargo bench -p latchkey-tests --bench entries`.
//! `LATCHKEY_BENCH_ENTRIES` sets the full count (default 10000 for memory and the file store, 1000
//! for the keyring: filling gnome-keyring costs about 0.1 s a `set` at that size, and grows),
//! `LATCHKEY_BENCH_STORES` the stores (`secret-service`, `file`, `memory`; default
//! `secret-service,memory` on Linux, `memory` elsewhere), `LATCHKEY_BENCH_LATCHKEYD` another `latchkeyd`
//! binary to measure (an older build, say), `LATCHKEY_BENCH_RUST_LOG` the daemon's log filter
//! (default `warn,latchkey_daemon::daemon=info`: no audit line per request), `LATCHKEY_BENCH_INDEX_ENTRIES`
//! the records in the index for the keyring's start-up row (default 10000, 0 to skip).
//!
//! Beside each gnome-keyring `set` p50, the p50 of the same overwrite written straight to the
//! keyring with `oo7` (an item of the same size, replaced in place, from a process of its own
//! on an open connection): how much of a `set`'s cost, and of its growth with the keyring's
//! item count, is the keyring's own.

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
/// Restarts timed with the large index.
const STARTUP_ROUNDS: usize = 5;
/// The file store's passphrase in the bench.
const PASSPHRASE: &str = "bench passphrase";

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

    /// The answer to the last call, parsed.
    fn answer(&self) -> Value {
        serde_json::from_str(&self.line).unwrap()
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
        // The envelope comes first (`{"jsonrpc":"2.0","id":N,"result":…`), so its head tells
        // a result from an error without scanning a 3 MB `list` answer inside the timing.
        let head = &self.line[..self.line.len().min(64)];
        assert!(
            head.starts_with("{\"jsonrpc\":\"2.0\"") && head.contains("\"result\":"),
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

/// What [`latencies`] measured.
struct Latencies {
    /// The first `get` of each sampled entry.
    get_first: Duration,
    /// The second.
    get_again: Duration,
    list: Duration,
    /// The daemon's own CPU time (user + system) per `list`, from `/proc`: steadier than the
    /// round trip on a busy machine.
    list_cpu: Duration,
    list_bytes: usize,
    set: Duration,
}

/// The p50 of `get` (entries `0..entries`, at most `SAMPLES` of them spread over the range:
/// each one's first `get`, then its second), of `list` and of `set` (overwriting entries
/// `0..entries` in turn), the daemon's CPU time per `list`, and the size of a `list` answer.
async fn latencies(socket: &Path, pid: u32, entries: usize) -> Latencies {
    let mut conn = Conn::open(socket).await;
    let sampled: Vec<usize> = (0..SAMPLES.min(entries))
        .map(|i| i * entries / SAMPLES.min(entries))
        .collect();
    let mut gets = [Vec::new(), Vec::new()];
    for round in &mut gets {
        for &n in &sampled {
            let started = Instant::now();
            conn.call("get", Some(json!({"service": service(n)}))).await;
            round.push(started.elapsed());
        }
    }
    let [get_first, get_again] = gets.map(p50);
    let mut list_bytes = conn.call("list", None).await;
    let mut lists = Vec::with_capacity(SAMPLES);
    let cpu_before = cpu_time(pid);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        list_bytes = conn.call("list", None).await;
        lists.push(started.elapsed());
    }
    let list_cpu = (cpu_time(pid) - cpu_before) / SAMPLES as u32;
    let mut sets = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        conn.call("set", Some(set_params(i % entries, 1 + i))).await;
        sets.push(started.elapsed());
    }
    Latencies {
        get_first,
        get_again,
        list: p50(lists),
        list_cpu,
        list_bytes,
        set: p50(sets),
    }
}

/// The CPU time (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after its `)`.
    let after = &stat[stat.rfind(')').expect("a /proc stat line") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
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
    /// A store with a passphrase is unlocked after that (choosing the passphrase if it has
    /// none yet).
    fn start(&self, runtime: &tokio::runtime::Runtime) -> (Daemon, Duration) {
        let mut cmd = self.env.command(&self.latchkeyd);
        cmd.args(["--store", &self.store])
            .env("RUST_LOG", &self.log);
        let started = Instant::now();
        let daemon = Daemon::spawn(cmd, self.env.socket());
        let took = runtime.block_on(async {
            let mut conn = Conn::open(&daemon.socket).await;
            conn.call("version", None).await;
            let took = started.elapsed();
            conn.call("status", None).await;
            let unlock_with = conn.answer()["result"]["daemon"]["unlock_with"].clone();
            if let Some(with) = unlock_with.as_str().filter(|w| w.ends_with("passphrase")) {
                let create = with == "new_passphrase";
                let params = json!({"passphrase": PASSPHRASE, "create": create});
                let unlocking = Instant::now();
                conn.call("unlock", Some(params)).await;
                eprintln!(
                    "{}: unlocked in {:.2?}{}",
                    self.store,
                    unlocking.elapsed(),
                    if create { " (passphrase chosen)" } else { "" }
                );
            }
            took
        });
        (daemon, took)
    }
}

/// One row of the table.
struct Row {
    label: String,
    get_first: Option<Duration>,
    get_again: Option<Duration>,
    /// Resident memory once filled, before any `list`.
    rss_filled_kib: Option<u64>,
    /// Resident memory after the `list` and `set` samples (what answering `list` left behind).
    rss_kib: Option<u64>,
    list: Option<Duration>,
    list_cpu: Option<Duration>,
    list_bytes: usize,
    set: Option<Duration>,
    /// The same overwrite straight to the keyring with `oo7` (gnome-keyring only).
    oo7_set: Option<Duration>,
    start: Option<Duration>,
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    daemon: &Daemon,
    label: String,
    entries: usize,
    start: Option<Duration>,
) -> Row {
    let rss_filled_kib = Some(rss_kib(daemon.pid()));
    let measured = runtime.block_on(latencies(&daemon.socket, daemon.pid(), entries));
    Row {
        label,
        get_first: Some(measured.get_first),
        get_again: Some(measured.get_again),
        rss_filled_kib,
        rss_kib: Some(rss_kib(daemon.pid())),
        list: Some(measured.list),
        list_cpu: Some(measured.list_cpu),
        list_bytes: measured.list_bytes,
        set: Some(measured.set),
        oo7_set: None,
        start,
    }
}

/// A bare world for the memory and file stores, a keyring on a private bus for the Secret
/// Service (Linux).
fn env_for(store: &str) -> TestEnv {
    if store == "memory" || store == "file" {
        return TestEnv::bare();
    }
    #[cfg(target_os = "linux")]
    return TestEnv::with_keyring();
    #[cfg(not(target_os = "linux"))]
    panic!("the {store} store needs gnome-keyring (Linux); set LATCHKEY_BENCH_STORES=memory")
}

/// The index file of the Secret Service store under `dir` (searched, so that where the store
/// keeps it may change).
fn find_index(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_index(&path) {
                return Some(found);
            }
        } else if path.file_name() == Some("secret-service-index.json".as_ref()) {
            return Some(path);
        }
    }
    None
}

/// Replaces the store's index with a snapshot of `count` records `bench-000000…` (an empty
/// journal), as a daemon that stored them would have left it. The first entries are the ones
/// really in the keyring, described as they were stored (API keys).
fn write_index(index: &Path, count: usize) {
    let now = chrono::Utc::now();
    let entries: Vec<latchkey_core::EntryRecord> = (0..count)
        .map(|n| latchkey_core::EntryRecord {
            key: latchkey_core::EntryKey::new(&service(n), None).unwrap(),
            kind: latchkey_proto::Kind::ApiKey,
            scopes: Vec::new(),
            expires_at: None,
            has_refresh_token: false,
            provider: None,
            created_at: now,
            updated_at: now,
            last_refreshed_at: None,
            needs_login: false,
        })
        .collect();
    let document = json!({"version": 2, "entries": entries});
    std::fs::write(index, serde_json::to_vec(&document).unwrap()).unwrap();
    let _ = std::fs::remove_file(index.with_extension("journal"));
}

/// Start-up to serving with `count` entries in the index but only the filled ones in the
/// keyring: each round writes the index again (the previous daemon's background check
/// against the keyring dropped the extra records) and restarts the daemon.
fn indexed_startup(
    runtime: &tokio::runtime::Runtime,
    bench: &Bench,
    count: usize,
    in_keyring: usize,
) -> Row {
    let index = find_index(&bench.env.data_dir).expect("the store's index file");
    let mut starts = Vec::new();
    let mut served = 0;
    for _ in 0..STARTUP_ROUNDS {
        write_index(&index, count);
        let (daemon, start) = bench.start(runtime);
        starts.push(start);
        served = runtime.block_on(async {
            let mut conn = Conn::open(&daemon.socket).await;
            conn.call("status", None).await;
            let status: Value = serde_json::from_str(&conn.line).unwrap();
            status["result"]["daemon"]["entries"].as_u64().unwrap_or(0)
        });
        let (exit, _) = daemon.stop();
        assert!(exit.success());
    }
    starts.sort();
    eprintln!(
        "{}: start-up with {count} entries in the index ({in_keyring} in the keyring), {} rounds: {:.2?} to {:.2?}; the last daemon served {served} entries at its first status",
        bench.store,
        starts.len(),
        starts[0],
        starts[starts.len() - 1],
    );
    Row {
        label: format!("{}, {count} in index, restarted", bench.store),
        get_first: None,
        get_again: None,
        rss_filled_kib: None,
        rss_kib: None,
        list: None,
        list_cpu: None,
        list_bytes: 0,
        set: None,
        oo7_set: None,
        start: Some(starts[starts.len() / 2]),
    }
}

/// Adds the direct `oo7` overwrite to a gnome-keyring row.
fn with_oo7_set(bench: &Bench, row: Option<&mut Row>) {
    #[cfg(target_os = "linux")]
    if bench.store == "secret-service" {
        if let Some(row) = row {
            row.oo7_set = Some(oo7_set_p50(bench.env.bus().address()));
        }
    }
    // gnome-keyring (and oo7) exist on Linux only.
    #[cfg(not(target_os = "linux"))]
    let _ = (bench, row);
}

fn run_store(runtime: &tokio::runtime::Runtime, store: &str, total: usize) -> Vec<Row> {
    let bench = Bench {
        env: env_for(store),
        latchkeyd: std::env::var_os("LATCHKEY_BENCH_LATCHKEYD")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin("latchkeyd")),
        store: store.to_owned(),
        log: std::env::var("LATCHKEY_BENCH_RUST_LOG")
            .unwrap_or_else(|_| "warn,latchkey_daemon::daemon=info".into()),
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
    with_oo7_set(&bench, rows.last_mut());
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
    with_oo7_set(&bench, rows.last_mut());
    if store == "memory" {
        return rows;
    }
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    let (daemon, start) = bench.start(runtime);
    let label = format!("{store}, {total}, restarted");
    rows.push(measure(runtime, &daemon, label, total, Some(start)));
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    let indexed = std::env::var("LATCHKEY_BENCH_INDEX_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // The keyring holds fewer entries than the index would: see the module documentation.
    if indexed > 0 && store == "secret-service" {
        rows.push(indexed_startup(runtime, &bench, indexed, total));
    }
    rows
}

/// Items the direct `oo7` writes replace.
#[cfg(target_os = "linux")]
const OO7_ITEMS: usize = SAMPLES;

/// The p50 of overwriting an item with `oo7` straight into the keyring on `bus` (see
/// [`oo7_sets`]), measured by this binary in a process of its own (`oo7` finds the bus through
/// the environment, which is set there before anything runs).
#[cfg(target_os = "linux")]
fn oo7_set_p50(bus: &str) -> Duration {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--oo7-sets")
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let micros: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_micros(micros)
}

/// `--oo7-sets`: creates [`OO7_ITEMS`] items once (untimed), then replaces each in turn, and
/// prints the replacements' p50 in microseconds. The secret is the size of a stored API key
/// document.
#[cfg(target_os = "linux")]
fn oo7_sets() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let p50 = runtime.block_on(async {
        let service = oo7::dbus::Service::encrypted().await.unwrap();
        let collection = service.with_alias("default").await.unwrap().unwrap();
        let secret = format!(
            r#"{{"version":1,"kind":"api_key","key":"{}"}}"#,
            "k".repeat(40)
        );
        let mut samples = Vec::with_capacity(2 * OO7_ITEMS);
        for round in 0..2 {
            for i in 0..OO7_ITEMS {
                let n = i.to_string();
                let attributes =
                    std::collections::HashMap::from([("bench", "oo7-direct"), ("n", n.as_str())]);
                let started = Instant::now();
                collection
                    .create_item("bench", &attributes, secret.as_str(), true, None)
                    .await
                    .unwrap();
                if round == 1 {
                    samples.push(started.elapsed());
                }
            }
        }
        p50(samples)
    });
    println!("{}", p50.as_micros());
}

fn cell<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), show)
}

fn main() {
    #[cfg(target_os = "linux")]
    if std::env::args().any(|a| a == "--oo7-sets") {
        oo7_sets();
        return;
    }
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
        let default = if store == "secret-service" {
            1_000
        } else {
            10_000
        };
        rows.extend(run_store(&runtime, store, total.unwrap_or(default)));
    }
    println!();
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>12}",
        "store, entries",
        "get 1st",
        "get again",
        "RSS filled",
        "RSS MiB",
        "list p50",
        "list CPU",
        "list bytes",
        "set p50",
        "oo7 set",
        "start-up"
    );
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    let time = |d: Duration| format!("{d:.2?}");
    for row in rows {
        println!(
            "{:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>12}",
            row.label,
            cell(row.get_first, time),
            cell(row.get_again, time),
            cell(row.rss_filled_kib, mib),
            cell(row.rss_kib, mib),
            cell(row.list, time),
            cell(row.list_cpu, time),
            row.list_bytes,
            cell(row.set, time),
            cell(row.oo7_set, time),
            cell(row.start, time),
        );
    }
}
