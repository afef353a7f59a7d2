//! The latency benchmark on Linux, where its D-Bus comparisons and gnome-keyring exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_proto::{Call, GetParams, GrantTokenText, Id, Request};
use latchkey_tests::{bin, TestEnv};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use zbus::zvariant::{OwnedValue, Value};

use crate::instructions;

struct Stats {
    p50: Duration,
    p99: Duration,
    ops: f64,
}

fn stats(mut samples: Vec<Duration>, wall: Duration) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        ops: samples.len() as f64 / wall.as_secs_f64(),
    }
}

/// One connection doing `count` sequential round trips of `line`; returns each latency.
async fn client(socket: PathBuf, line: Arc<Vec<u8>>, count: usize) -> Vec<Duration> {
    let stream = UnixStream::connect(&socket).await.expect("connect");
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut response = String::new();
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        writer.write_all(&line).await.unwrap();
        response.clear();
        reader.read_line(&mut response).await.unwrap();
        samples.push(started.elapsed());
        assert!(!response.contains("\"error\""), "{response}");
    }
    samples
}

async fn measure(socket: &Path, line: &Arc<Vec<u8>>, clients: usize, total: usize) -> Stats {
    // Warm up the connection path.
    client(socket.to_owned(), Arc::clone(line), 200).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(socket.to_owned(), Arc::clone(line), total / clients)))
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    stats(samples, started.elapsed())
}

/// Starts the raw echo server as a separate process (this binary with `--echo-server`), so
/// that it pays the same process switches as the daemon.
fn start_echo(path: &Path, response: &str) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--echo-server")
        .arg(path)
        .arg(response.trim_end())
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
    child
}

/// The echo server's main: answers every line with a fixed response of the daemon's size, on
/// a runtime shaped like the daemon's (two workers). It exits when its stdin closes (so that
/// callgrind, which writes nothing for a killed process, can count it).
fn echo_server(path: PathBuf, response: String) {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let response = Arc::new(format!("{response}\n").into_bytes());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = UnixListener::bind(&path).unwrap();
        println!("ready");
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let response = Arc::clone(&response);
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut reader = BufReader::new(reader);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if writer.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// A minimal zbus service with a `Get` of latchkey's signature that answers a fixed record of
/// the same shape: what a D-Bus method call costs through the same bus daemon, with no policy.
struct RawGet;

#[zbus::interface(name = "dev.latchkey.BenchRaw")]
impl RawGet {
    fn get(
        &self,
        _service: &str,
        _account: &str,
        _options: HashMap<String, OwnedValue>,
    ) -> HashMap<String, OwnedValue> {
        let mut reply = HashMap::new();
        let fields: [(&str, Value<'_>); 3] = [
            (
                "secret",
                Value::from("sk-bench-0123456789abcdef0123456789abcdef"),
            ),
            ("kind", Value::from("api_key")),
            ("scopes", Value::from(Vec::<String>::new())),
        ];
        for (key, value) in fields {
            reply.insert(key.to_owned(), OwnedValue::try_from(value).unwrap());
        }
        reply
    }
}

fn raw_dbus_server(address: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _connection = zbus::connection::Builder::address(address)
            .unwrap()
            .serve_at("/dev/latchkey/BenchRaw", RawGet)
            .unwrap()
            .name("dev.latchkey.BenchRaw")
            .unwrap()
            .build()
            .await
            .unwrap();
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// `count` sequential `Get` calls to the owner of `destination`, called by its unique name as
/// latchkey's client does (it checks the owner once per connection, then calls it directly).
async fn dbus_calls(
    connection: &zbus::Connection,
    destination: &str,
    path: &str,
    count: usize,
) -> Stats {
    let dbus = zbus::fdo::DBusProxy::new(connection).await.unwrap();
    let owner = dbus
        .get_name_owner(destination.try_into().unwrap())
        .await
        .unwrap();
    let owner = owner.as_str();
    let interface = if destination == "dev.latchkey.Latchkey1" {
        "dev.latchkey.Latchkey1"
    } else {
        "dev.latchkey.BenchRaw"
    };
    let options: HashMap<String, OwnedValue> = HashMap::new();
    let mut samples = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let one = Instant::now();
        let reply = connection
            .call_method(
                Some(owner),
                path,
                Some(interface),
                "Get",
                &("bench", "", &options),
            )
            .await
            .unwrap();
        let body: HashMap<String, OwnedValue> = reply.body().deserialize().unwrap();
        assert!(body.contains_key("secret"));
        samples.push(one.elapsed());
    }
    stats(samples, started.elapsed())
}

/// `--dbus-client ADDRESS DESTINATION PATH COUNT`: only the calls, then their p50.
fn dbus_client(address: &str, destination: &str, path: &str, count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = runtime.block_on(async {
        let connection = zbus::connection::Builder::address(address)
            .unwrap()
            .build()
            .await
            .unwrap();
        dbus_calls(&connection, destination, path, count).await
    });
    row(destination, &stats);
}

fn dbus_comparison(env: &TestEnv, runtime: &tokio::runtime::Runtime, count: usize) {
    let bus = env.bus();
    let mut raw = Command::new(std::env::current_exe().unwrap())
        .arg("--raw-dbus-server")
        .arg(bus.address())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(raw.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let (get, plain) = runtime.block_on(async {
        let connection = zbus::connection::Builder::address(bus.address())
            .unwrap()
            .build()
            .await
            .unwrap();
        // Warm up both paths (and the daemon's caller cache).
        dbus_calls(
            &connection,
            "dev.latchkey.Latchkey1",
            "/dev/latchkey/Latchkey1",
            100,
        )
        .await;
        dbus_calls(
            &connection,
            "dev.latchkey.BenchRaw",
            "/dev/latchkey/BenchRaw",
            100,
        )
        .await;
        let get = dbus_calls(
            &connection,
            "dev.latchkey.Latchkey1",
            "/dev/latchkey/Latchkey1",
            count,
        )
        .await;
        let plain = dbus_calls(
            &connection,
            "dev.latchkey.BenchRaw",
            "/dev/latchkey/BenchRaw",
            count,
        )
        .await;
        (get, plain)
    });
    println!("D-Bus through the same bus daemon, {count} sequential calls each:");
    row("Latchkey1.Get", &get);
    row("raw zbus Get (no policy)", &plain);
    println!(
        "  ratio Get/raw: p50 {:.2}x (goal <= 1.25x), throughput {:.2}x",
        get.p50.as_secs_f64() / plain.p50.as_secs_f64(),
        get.ops / plain.ops
    );
    let _ = raw.kill();
    let _ = raw.wait();
}

/// One token request straight to the test server, as HTTP/1.1 over a fresh TCP connection.
fn direct_token_request(address: &str, refresh_token: &str) -> Duration {
    use std::io::{Read, Write};
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}&client_id=bench");
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let elapsed = started.elapsed();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    elapsed
}

/// 1000 gets of an expired token over 50 connections against the test token server: how many
/// refresh requests reach it, and the gets' latency next to the endpoint's own. `lifetime`
/// sets the lifetime of the tokens the server issues (a strict provider's few seconds).
fn refresh_storm(env: &TestEnv, runtime: &tokio::runtime::Runtime, lifetime: Option<u64>) {
    use latchkey_tests::oauth_server::TokenServer;

    let server = TokenServer::start();
    if let Some(secs) = lifetime {
        server.set_expires_in(secs);
    }
    let url = server.token_url();
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches("/token")
        .to_owned();
    // The endpoint's own latency, on tokens of their own family.
    let mut direct: Vec<Duration> = (0..50)
        .map(|i| {
            let token = format!("DIRECT-{i}");
            server.seed(&token);
            direct_token_request(&address, &token)
        })
        .collect();
    direct.sort();
    let config = env
        .root()
        .join(format!("storm-{}.toml", lifetime.unwrap_or(0)));
    std::fs::write(
        &config,
        format!("[providers.test]\ntoken_url = \"{url}\"\nclient_id = \"bench\"\n"),
    )
    .unwrap();
    let socket = env
        .root()
        .join(format!("storm-{}.sock", lifetime.unwrap_or(0)));
    let daemon = env.start_daemon_with(
        &[
            "--config",
            config.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
            "--no-dbus",
        ],
        &[(
            "RUST_LOG",
            "warn,latchkey_daemon::daemon=info,latchkey_core=debug",
        )],
    );
    server.seed("STORM-0");
    let before = server.refresh_requests();
    let bundle = r#"{"kind":"oauth2","access_token":"old","refresh_token":"STORM-0","expires_at":"2001-01-01T00:00:00Z","provider":"test"}"#;
    assert!(env
        .cli(&socket, &["set", "storm", "--bundle"], bundle)
        .status
        .success());
    let line = Arc::new(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"storm\"}}\n"
            .to_vec(),
    );
    let samples = runtime.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let socket = socket.clone();
                let line = Arc::clone(&line);
                tokio::spawn(async move {
                    let stream = UnixStream::connect(&socket).await.unwrap();
                    let (reader, mut writer) = stream.into_split();
                    let mut reader = BufReader::new(reader);
                    let started = Instant::now();
                    writer.write_all(&line.repeat(20)).await.unwrap();
                    let mut samples = Vec::new();
                    let mut response = String::new();
                    for _ in 0..20 {
                        response.clear();
                        reader.read_line(&mut response).await.unwrap();
                        assert!(response.contains("\"secret\""), "{response}");
                        samples.push(started.elapsed());
                    }
                    samples
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    let first = samples.iter().min().copied().unwrap_or_default();
    let gets = stats(samples, Duration::from_secs(1));
    let refreshes = server.refresh_requests() - before;
    println!(
        "refresh storm: 1000 gets of an expired token over 50 connections, new tokens live {}",
        lifetime.map_or("the server's default (1 h)".to_owned(), |s| format!(
            "{s} s"
        ))
    );
    println!(
        "  refresh requests at the token endpoint: {refreshes} (must be 1); reused refresh tokens: {}",
        server.reuse_detected()
    );
    println!(
        "  gets p50 {:.2} ms, p99 {:.2} ms; token endpoint alone p50 {:.2} ms, p99 {:.2} ms (goal: get p99 <= endpoint + 10 ms)",
        gets.p50.as_secs_f64() * 1e3,
        gets.p99.as_secs_f64() * 1e3,
        direct[direct.len() / 2].as_secs_f64() * 1e3,
        direct[direct.len() * 99 / 100].as_secs_f64() * 1e3,
    );
    // The first answer comes once the refresh is done; the rest is answering 1000 requests.
    println!(
        "  first answer after {:.2} ms (the refresh: endpoint + saving the rotated token)",
        first.as_secs_f64() * 1e3
    );
    for line in daemon.logs().lines().filter(|l| {
        l.contains(" refreshed")
            || l.contains("refreshing")
            || l.contains("token endpoint answered")
    }) {
        println!("  daemon: {}", line.trim());
    }
    drop(daemon);
}

fn median_process_time(mut make: impl FnMut() -> Command, runs: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = make()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(out.success());
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[runs / 2]
}

/// What checking a grant adds to a cached socket `get`: a daemon whose policy protects the
/// entry, asked with a grant in every request, against the same daemon asked for an entry the
/// policy leaves open (same sizes: the open entry's name and secret are as long).
fn grant_cost(
    runtime: &tokio::runtime::Runtime,
    setup: &instructions::Setup,
    total: usize,
    counted: usize,
) {
    // A keyring of its own: another daemon on the main keyring would serve and rewrite the
    // store's index without the entries set here.
    let env = &TestEnv::with_keyring();
    let config = env.root().join("grant-bench.toml");
    std::fs::write(&config, "[policy]\nrequire_grant = [\"guarded\"]\n").unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let socket = env.root().join("grant-bench.sock");
    let daemon = env.start_daemon_with(
        &[
            "--no-dbus",
            "--socket",
            socket.to_str().unwrap(),
            "--config",
            &config_arg,
        ],
        &[("RUST_LOG", &setup.log)],
    );
    let secret = "sk-bench-0123456789abcdef0123456789abcdef";
    for service in ["guarded", "opened_"] {
        let set = env.cli(&daemon.socket, &["set", service], secret);
        assert!(set.status.success(), "{set:?}");
    }
    let created = env.cli(
        &daemon.socket,
        &["grant", "create", "--service", "guarded", "--ttl", "1h"],
        "",
    );
    assert!(created.status.success(), "{created:?}");
    let grant = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let line = |service: &str, grant: Option<&str>| {
        Arc::new(
            Request {
                id: Id::from(1),
                call: Call::Get(GetParams {
                    service: service.into(),
                    account: None,
                    scopes: vec![],
                    min_valid_secs: None,
                    grant: grant.map(|g| GrantTokenText::new(g.to_owned()).unwrap()),
                    proxy: false,
                    rejected: None,
                }),
            }
            .to_line(),
        )
    };
    let with = line("guarded", Some(&grant));
    let without = line("opened_", None);
    println!(
        "grant check: request {} bytes with the grant, {} without",
        with.len(),
        without.len()
    );
    let clients = 1;
    let with_grant = runtime.block_on(measure(&daemon.socket, &with, clients, total));
    let open = runtime.block_on(measure(&daemon.socket, &without, clients, total));
    row("get with a grant, 1 client", &with_grant);
    row("get of an open entry", &open);
    println!(
        "  grant check adds {:.1} µs at p50 ({:.2}x)",
        (with_grant.p50.as_secs_f64() - open.p50.as_secs_f64()) * 1e6,
        with_grant.p50.as_secs_f64() / open.p50.as_secs_f64()
    );
    if counted > 0 {
        let counting = |line: &Arc<Vec<u8>>| instructions::Setup {
            env,
            runtime,
            line: Arc::clone(line),
            response: setup.response.clone(),
            log: setup.log.clone(),
            daemon_args: vec!["--config".to_owned(), config_arg.clone()],
        };
        let per_client = counted.max(1);
        let with_grant = counting(&with).per_request(false, clients, per_client);
        let open = counting(&without).per_request(false, clients, per_client);
        println!(
            "  instructions per request (callgrind, server side): with the grant {with_grant:.0}, open entry {open:.0} (grant check {:.0})",
            with_grant - open
        );
    }
    let (exit, _) = daemon.stop();
    assert!(exit.success());
}

/// The median, lowest and highest of `ratios` (not empty).
fn spread(mut ratios: Vec<f64>) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    (
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    )
}

fn row(name: &str, s: &Stats) {
    println!(
        "{name:<36} p50 {:>8.1} µs   p99 {:>8.1} µs   {:>9.0} ops/s",
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.ops
    );
}

/// The whole benchmark, or one of its helper roles named by the arguments.
/// `LATCHKEY_BENCH_CPU=N`: this process, and so every server and client it starts, runs on
/// CPU `N` only. Unpinned, a round trip here takes either about 8 µs or about 70 µs, depending
/// on whether the scheduler puts client and server on the same CPU (a wake-up of the other
/// virtual CPU costs the rest), and which one a round gets is chance; pinned, every round
/// pays for the work itself, so the ratios are steady (client, server and kernel share one CPU).
fn pin_to_cpu() {
    let Ok(cpu) = std::env::var("LATCHKEY_BENCH_CPU") else {
        return;
    };
    let cpu: usize = cpu.parse().expect("LATCHKEY_BENCH_CPU is a CPU number");
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it for cpu < 1024;
    // sched_setaffinity reads it.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert!(cpu < 1024, "CPU {cpu}");
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        pinned,
        0,
        "cannot pin to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
    println!("pinned to CPU {cpu}, with every server and client it starts");
}

pub(crate) fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if args.len() == 4 && args[1] == "--echo-server" {
        echo_server(PathBuf::from(&args[2]), args[3].clone());
        return;
    }
    if args.len() == 3 && args[1] == "--raw-dbus-server" {
        raw_dbus_server(&args[2]);
        return;
    }
    if args.len() == 6 && args[1] == "--dbus-client" {
        // For instruction counts: `COUNT` calls from this process, with the server under
        // `valgrind --tool=callgrind`.
        dbus_client(&args[2], &args[3], &args[4], args[5].parse().unwrap());
        return;
    }
    let total: usize = std::env::var("LATCHKEY_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // Before anything starts, so that everything it starts inherits the CPU.
    pin_to_cpu();
    let env = TestEnv::with_keyring();
    if std::env::var("LATCHKEY_BENCH_ONLY").as_deref() == Ok("storm") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        refresh_storm(&env, &runtime, None);
        refresh_storm(&env, &runtime, Some(5));
        return;
    }
    // The daemon's default logging (info, audit line per request) unless told otherwise.
    let log = std::env::var("LATCHKEY_BENCH_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let daemon = env.start_daemon_with(&[], &[("RUST_LOG", &log)]);
    let set = env.cli(
        &daemon.socket,
        &["set", "bench"],
        "sk-bench-0123456789abcdef0123456789abcdef",
    );
    assert!(set.status.success());

    let line = Arc::new(
        Request {
            id: Id::from(1),
            call: Call::Get(GetParams {
                service: "bench".into(),
                account: None,
                scopes: vec![],
                min_valid_secs: None,
                grant: None,
                proxy: false,
                rejected: None,
            }),
        }
        .to_line(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The daemon's real response, so the echo sends the same number of bytes.
    let response = runtime.block_on(async {
        let stream = UnixStream::connect(&daemon.socket).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        writer.write_all(&line).await.unwrap();
        let mut response = String::new();
        BufReader::new(reader)
            .read_line(&mut response)
            .await
            .unwrap();
        response
    });
    let echo_path = env.root().join("echo.sock");
    let mut echo = start_echo(&echo_path, &response);

    println!(
        "latchkey socket benchmark: {} requests per measurement, request {} bytes, response {} bytes, store secret-service (entry cached), daemon RUST_LOG={log}",
        total,
        line.len(),
        response.len()
    );
    let counted: usize = std::env::var("LATCHKEY_BENCH_CALLGRIND_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let setup = instructions::Setup {
        env: &env,
        runtime: &runtime,
        line: Arc::clone(&line),
        response: response.clone(),
        log: log.clone(),
        daemon_args: Vec::new(),
    };
    if std::env::var("LATCHKEY_BENCH_ONLY").as_deref() == Ok("grant") {
        grant_cost(&runtime, &setup, total, counted);
        let _ = echo.kill();
        let _ = echo.wait();
        let (exit, _) = daemon.stop();
        assert!(exit.success());
        return;
    }
    if std::env::var("LATCHKEY_BENCH_ONLY").as_deref() == Ok("instructions") {
        for clients in [1, 16] {
            let per_client = (counted.max(1) / clients).max(1);
            let get = setup.per_request(false, clients, per_client);
            let echo = setup.per_request(true, clients, per_client);
            println!(
                "{clients} client(s), instructions per request (callgrind, server side): get {get:.0}, echo {echo:.0} ({:.2}x)",
                get / echo
            );
        }
        let _ = echo.kill();
        let _ = echo.wait();
        let (exit, _) = daemon.stop();
        assert!(exit.success());
        return;
    }
    let rounds: usize = std::env::var("LATCHKEY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    for clients in [1, 16] {
        // Rounds alternate which server goes first, so a machine that gets busier or quieter
        // during the run weighs on both alike; each round's ratio compares neighbours in time.
        let mut p50_ratios = Vec::with_capacity(rounds);
        let mut ops_ratios = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let (get, echo) = if round % 2 == 0 {
                let get = runtime.block_on(measure(&daemon.socket, &line, clients, total));
                (
                    get,
                    runtime.block_on(measure(&echo_path, &line, clients, total)),
                )
            } else {
                let echo = runtime.block_on(measure(&echo_path, &line, clients, total));
                (
                    runtime.block_on(measure(&daemon.socket, &line, clients, total)),
                    echo,
                )
            };
            row(
                &format!("get, {clients} client(s), round {}", round + 1),
                &get,
            );
            row(
                &format!("raw echo, {clients} client(s), round {}", round + 1),
                &echo,
            );
            p50_ratios.push(get.p50.as_secs_f64() / echo.p50.as_secs_f64());
            ops_ratios.push(get.ops / echo.ops);
        }
        let (p50_mid, p50_low, p50_high) = spread(p50_ratios);
        let (ops_mid, ops_low, ops_high) = spread(ops_ratios);
        println!(
            "  ratio get/echo, median of {rounds} rounds: p50 {p50_mid:.2}x ({p50_low:.2}-{p50_high:.2}; goal <= 1.25x), throughput {ops_mid:.2}x ({ops_low:.2}-{ops_high:.2}; goal >= 0.8x with 16 clients)"
        );
        if counted > 0 {
            let per_client = (counted / clients).max(1);
            let get = setup.per_request(false, clients, per_client);
            let echo = setup.per_request(true, clients, per_client);
            println!(
                "  instructions per request (callgrind, server side): get {get:.0}, echo {echo:.0} ({:.2}x)",
                get / echo
            );
        }
    }

    if std::env::var("LATCHKEY_BENCH_ONLY").as_deref() == Ok("socket") {
        let _ = echo.kill();
        let _ = echo.wait();
        let (exit, _) = daemon.stop();
        assert!(exit.success());
        return;
    }
    let runs = 100;
    let latchkey = bin("latchkey");
    let cli = median_process_time(
        || {
            let mut cmd = env.command(&latchkey);
            cmd.env("LATCHKEY_SOCKET", &daemon.socket)
                .args(["get", "bench"]);
            cmd
        },
        runs,
    );
    let secret_tool = median_process_time(
        || {
            let mut cmd = Command::new("secret-tool");
            cmd.env("DBUS_SESSION_BUS_ADDRESS", env.bus().address())
                .args(["lookup", "service", "bench", "account", "default"]);
            cmd
        },
        runs,
    );
    println!(
        "process, median of {runs}: latchkey get {:.2} ms, secret-tool lookup {:.2} ms ({:.2}x)",
        cli.as_secs_f64() * 1e3,
        secret_tool.as_secs_f64() * 1e3,
        cli.as_secs_f64() / secret_tool.as_secs_f64()
    );
    let _ = echo.kill();
    let _ = echo.wait();
    grant_cost(&runtime, &setup, total, counted);
    dbus_comparison(&env, &runtime, total / 4);
    refresh_storm(&env, &runtime, None);
    refresh_storm(&env, &runtime, Some(5));
    let (exit, _) = daemon.stop();
    assert!(exit.success());
}
