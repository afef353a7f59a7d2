//! latchkey's cold-read benchmark (not a test): the first `get` of an entry after the daemon
//! started (a cache miss, so the daemon reads the keychain), against reading the same item
//! with `oo7` directly (the same collection, an `oo7` connection that is already open), on a
//! real gnome-keyring on a private bus.
//!
//! Each round restarts the daemon and reads every entry once over one socket connection and
//! once with `oo7`, item by item, alternating which of the two reads an item first.
//!
//! Run: `cargo build --release --bins && cargo bench -p latchkey-tests --bench cold_get`.
//! `LATCHKEY_BENCH_ENTRIES` sets the entry count (default 200), `LATCHKEY_BENCH_ROUNDS` the
//! rounds (default 5), `LATCHKEY_BENCH_RUST_LOG` the daemon's log filter (default `info`, which
//! audits every first read).

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use latchkey_proto::{Call, GetParams, Id, Request};
    use latchkey_tests::{Daemon, TestEnv};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;

    /// The `xdg:schema` of latchkey's keychain items.
    const SCHEMA: &str = "dev.latchkey.Entry";

    fn env_number(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn service(i: usize) -> String {
        format!("cold-{i:04}")
    }

    fn get_line(i: usize) -> Vec<u8> {
        Request {
            id: Id::from(i as u64),
            call: Call::Get(GetParams {
                service: service(i),
                account: None,
                scopes: vec![],
                min_valid_secs: None,
                grant: None,
                proxy: false,
                rejected: None,
            }),
        }
        .to_line()
    }

    /// Stores `count` API keys through one socket connection, pipelined.
    async fn fill(socket: &Path, count: usize) {
        let stream = UnixStream::connect(socket).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut lines = Vec::new();
        for i in 0..count {
            let request = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"set\",\"params\":{{\"service\":\"{}\",\"bundle\":{{\"kind\":\"api_key\",\"key\":\"sk-cold-{i:04}-0123456789abcdef0123456789\"}}}}}}\n",
                service(i)
            );
            lines.extend_from_slice(request.as_bytes());
        }
        writer.write_all(&lines).await.unwrap();
        let mut reader = BufReader::new(reader);
        let mut response = String::new();
        for _ in 0..count {
            response.clear();
            reader.read_line(&mut response).await.unwrap();
            assert!(response.contains("\"entry\""), "{response}");
        }
    }

    /// A connection to the daemon for one `get` after another.
    struct DaemonConn {
        reader: BufReader<tokio::net::unix::OwnedReadHalf>,
        writer: tokio::net::unix::OwnedWriteHalf,
        response: String,
    }

    impl DaemonConn {
        async fn open(socket: &Path) -> Self {
            let (reader, writer) = UnixStream::connect(socket).await.unwrap().into_split();
            Self {
                reader: BufReader::new(reader),
                writer,
                response: String::new(),
            }
        }

        /// The first `get` of entry `i`: a cache miss, so the daemon reads the keychain.
        async fn first_get(&mut self, i: usize) -> Duration {
            let line = get_line(i);
            let started = Instant::now();
            self.writer.write_all(&line).await.unwrap();
            self.response.clear();
            self.reader.read_line(&mut self.response).await.unwrap();
            let took = started.elapsed();
            assert!(
                self.response.contains(&format!("sk-cold-{i:04}-")),
                "{}",
                self.response
            );
            took
        }
    }

    /// Item `i` read with `oo7` as an application would: search by the attributes, then the
    /// first item's secret.
    async fn oo7_read(collection: &oo7::dbus::Collection, i: usize) -> Duration {
        let service = service(i);
        let attributes = HashMap::from([
            ("xdg:schema", SCHEMA),
            ("service", service.as_str()),
            ("account", "default"),
        ]);
        let started = Instant::now();
        let items = collection.search_items(&attributes).await.unwrap();
        let secret = items.first().expect("the item").secret().await.unwrap();
        let took = started.elapsed();
        assert!(secret.as_bytes().len() > 10);
        took
    }

    /// Every item read once each way, interleaved item by item, the order alternating, so
    /// neither side gains from going second (a warm keyring, a settled machine).
    async fn both_reads(
        socket: &Path,
        collection: &oo7::dbus::Collection,
        count: usize,
        round: usize,
    ) -> (Vec<Duration>, Vec<Duration>) {
        let mut daemon = DaemonConn::open(socket).await;
        let (mut ours, mut theirs) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for i in 0..count {
            if (i + round) % 2 == 0 {
                ours.push(daemon.first_get(i).await);
                theirs.push(oo7_read(collection, i).await);
            } else {
                theirs.push(oo7_read(collection, i).await);
                ours.push(daemon.first_get(i).await);
            }
        }
        (ours, theirs)
    }

    fn quantile(sorted: &[Duration], q: f64) -> Duration {
        sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
    }

    fn row(name: &str, samples: &mut [Duration]) -> Duration {
        samples.sort();
        let p50 = quantile(samples, 0.5);
        println!(
            "{name:<34} p50 {:>8.1} µs   p90 {:>8.1} µs   p99 {:>8.1} µs   ({} reads)",
            p50.as_secs_f64() * 1e6,
            quantile(samples, 0.9).as_secs_f64() * 1e6,
            quantile(samples, 0.99).as_secs_f64() * 1e6,
            samples.len()
        );
        p50
    }

    fn start(env: &TestEnv, log: &str) -> Daemon {
        env.start_daemon_with(&[], &[("RUST_LOG", log)])
    }

    pub fn run() {
        let count = env_number("LATCHKEY_BENCH_ENTRIES", 200);
        let rounds = env_number("LATCHKEY_BENCH_ROUNDS", 5);
        let log = std::env::var("LATCHKEY_BENCH_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
        let env = TestEnv::with_keyring();
        // oo7 finds the bus through the environment; nothing else runs in this process yet.
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", env.bus().address());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let daemon = start(&env, &log);
        runtime.block_on(fill(&daemon.socket, count));
        let (exit, _) = daemon.stop();
        assert!(exit.success());
        let collection = runtime.block_on(async {
            let service = oo7::dbus::Service::encrypted().await.unwrap();
            let collection = service.with_alias("default").await.unwrap().unwrap();
            // Warm the oo7 path once, as the daemon's connection is warm once it serves.
            oo7_read(&collection, 0).await;
            (service, collection)
        });

        let mut daemon_samples = Vec::new();
        let mut oo7_samples = Vec::new();
        let mut round_ratios = Vec::new();
        for round in 0..rounds {
            let daemon = start(&env, &log);
            let (mut ours, mut theirs) =
                runtime.block_on(both_reads(&daemon.socket, &collection.1, count, round));
            let (exit, _) = daemon.stop();
            assert!(exit.success());
            ours.sort();
            theirs.sort();
            let (p50_ours, p50_theirs) = (quantile(&ours, 0.5), quantile(&theirs, 0.5));
            println!(
                "  round {round}: get p50 {:.1} µs, oo7 p50 {:.1} µs",
                p50_ours.as_secs_f64() * 1e6,
                p50_theirs.as_secs_f64() * 1e6
            );
            round_ratios.push(p50_ours.as_secs_f64() / p50_theirs.as_secs_f64());
            daemon_samples.extend(ours);
            oo7_samples.extend(theirs);
        }
        println!(
            "latchkey cold-read benchmark: {count} entries, {rounds} rounds (daemon restarted each round), store secret-service (gnome-keyring), daemon RUST_LOG={log}"
        );
        let ours = row("get, first read after start", &mut daemon_samples);
        let theirs = row("oo7 search + secret (open conn.)", &mut oo7_samples);
        round_ratios.sort_by(f64::total_cmp);
        println!(
            "  ratio get/oo7: p50 {:.2}x (goal <= 1.1x); per round {}",
            ours.as_secs_f64() / theirs.as_secs_f64(),
            round_ratios
                .iter()
                .map(|r| format!("{r:.2}x"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    #[cfg(target_os = "linux")]
    linux::run();
    #[cfg(not(target_os = "linux"))]
    println!("cold_get needs gnome-keyring: Linux only");
}
