//! The audit trail with the built binaries: records in the state folder for every method that
//! names an entry or manages the daemon, over the socket and D-Bus, with outcomes and never a
//! secret; rotation at a small size; `latchkey audit` with its filters, `--json` and
//! `--follow` (across rotation); a hostile file; a file mode of 0600 and a planted link that is
//! not followed while the daemon keeps serving.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use latchkey_tests::{bin, stderr, stdout, SessionBus, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};

use crate::support::Rpc;

const SECRET: &str = "audit-secret-7f3a9c";
const PROVIDER_SECRET: &str = "provider-secret-51d0e2";

/// The audit file of `env` (HOME is the env's root; no XDG_STATE_HOME).
fn audit_path(env: &TestEnv) -> PathBuf {
    env.root().join(".local/state/latchkey/audit.jsonl")
}

/// The records in the file (rotated ones not included).
fn records(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits until the file has a record that `done` accepts; all records then.
fn wait_for(path: &Path, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let got = records(path);
        if got.iter().any(&done) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no such record in {}:\n{got:#?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn method_is(method: &'static str) -> impl Fn(&Value) -> bool {
    move |r| r["method"] == method
}

fn summary(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let entry = match &r["entry"] {
                Value::Null => "-".to_owned(),
                e => format!(
                    "{}/{}",
                    e["service"].as_str().unwrap(),
                    e["account"].as_str().unwrap_or("*")
                ),
            };
            let ok = if r["outcome"] == "ok" { "ok" } else { "error" };
            format!(
                "{} {} {entry} {ok}",
                r["transport"].as_str().unwrap(),
                r["method"].as_str().unwrap()
            )
        })
        .collect()
}

fn assert_no_secret(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    for secret in [SECRET, PROVIDER_SECRET, "old-pass-x", "new-pass-y"] {
        assert!(
            !text.contains(secret),
            "{secret} in the audit file:\n{text}"
        );
    }
}

#[test]
fn every_method_over_the_socket_is_recorded_with_its_outcome_and_no_secret() {
    let env = TestEnv::bare();
    let _daemon = env.start_daemon(&[]);
    let path = audit_path(&env);
    let mut rpc = Rpc::connect(&env.socket());
    let key = json!({"service": "github"});
    rpc.ok("version", Value::Null);
    rpc.ok(
        "set",
        json!({"service": "github", "bundle": {"kind": "api_key", "key": SECRET}}),
    );
    // Read twice on one connection: recorded once (see the README's "Audit trail").
    rpc.ok("get", key.clone());
    rpc.ok("get", key.clone());
    rpc.call("get", json!({"service": "nope", "account": "work"}));
    rpc.call("get", json!({"service": "bad\u{1b}name"}));
    rpc.ok("status", key.clone());
    rpc.ok("status", Value::Null);
    rpc.ok("list", Value::Null);
    rpc.ok("providers", Value::Null);
    rpc.call("login", json!({"provider": "nowhere"}));
    rpc.call("login_wait", json!({"login_id": "no-such-login"}));
    rpc.call("login_cancel", json!({"login_id": "no-such-login"}));
    rpc.call(
        "provider_secret",
        json!({"provider": "nowhere", "secret": PROVIDER_SECRET}),
    );
    rpc.call("unlock", json!({}));
    rpc.call("lock", Value::Null);
    rpc.call("passwd", json!({"old": "old-pass-x", "new": "new-pass-y"}));
    rpc.call("migrate", json!({"to": "memory"}));
    rpc.ok("reload", Value::Null);
    rpc.ok("logout", key.clone());
    rpc.ok("clear", key.clone());
    // A second connection reads again: recorded again.
    let mut second = Rpc::connect(&env.socket());
    second.call("get", key.clone());

    let got = wait_for(&path, |r| {
        r["method"] == "get" && r["outcome"] == "not_found" && r["entry"]["service"] == "github"
    });
    let expected = [
        "socket set github/default ok",
        "socket get github/default ok",
        "socket get nope/work error",
        "socket get - error",
        "socket status github/* ok",
        "socket login nowhere/default error",
        "socket login_wait - error",
        "socket provider_secret latchkey:client-secret/nowhere error",
        "socket unlock - error",
        "socket lock - error",
        "socket passwd - error",
        "socket migrate - error",
        "socket reload - ok",
        "socket logout github/default ok",
        "socket clear github/default ok",
        "socket get github/default error",
    ];
    assert_eq!(summary(&got), expected, "{got:#?}");
    assert_eq!(got[2]["outcome"], "not_found");
    assert_eq!(got[3]["outcome"], "invalid_request");
    let me = std::process::id();
    let uid = unsafe { libc::geteuid() };
    for record in &got {
        assert_eq!(record["pid"], me, "{record}");
        assert_eq!(record["uid"], uid, "{record}");
        let exe = record["exe"].as_str().unwrap();
        assert_eq!(Path::new(exe), std::env::current_exe().unwrap(), "{record}");
        assert!(record["grant"].is_null());
        chrono::DateTime::parse_from_rfc3339(record["ts"].as_str().unwrap()).unwrap();
    }
    assert_no_secret(&path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn dbus_calls_are_recorded_as_dbus() {
    let mut env = TestEnv::bare();
    env.bus = Some(SessionBus::start(None));
    let daemon = env.start_daemon(&[]);
    let bus = env.bus();
    let set = bus.busctl(&[
        "call",
        "dev.latchkey.Latchkey1",
        "/dev/latchkey/Latchkey1",
        "dev.latchkey.Latchkey1",
        "Set",
        "ssa{sv}",
        "openai",
        "",
        "2",
        "kind",
        "s",
        "api_key",
        "key",
        "s",
        SECRET,
    ]);
    assert!(set.status.success(), "{}\n{}", stderr(&set), daemon.logs());
    for (method, signature, args) in [
        ("Get", "ssa{sv}", &["openai", "", "0"][..]),
        ("Get", "ssa{sv}", &["missing", "", "0"][..]),
        ("Status", "ss", &["openai", ""][..]),
        ("List", "", &[][..]),
        ("Logout", "ss", &["openai", ""][..]),
        ("Clear", "ss", &["openai", ""][..]),
    ] {
        let mut all = vec![
            "call",
            "dev.latchkey.Latchkey1",
            "/dev/latchkey/Latchkey1",
            "dev.latchkey.Latchkey1",
            method,
        ];
        if !signature.is_empty() {
            all.push(signature);
        }
        all.extend_from_slice(args);
        bus.busctl(&all);
    }
    let path = audit_path(&env);
    let got = wait_for(&path, method_is("clear"));
    assert_eq!(
        summary(&got),
        [
            "dbus set openai/default ok",
            "dbus get openai/default ok",
            "dbus get missing/default error",
            "dbus status openai/* ok",
            "dbus logout openai/default ok",
            "dbus clear openai/default ok",
        ],
        "{got:#?}"
    );
    for record in &got {
        let exe = record["exe"].as_str().unwrap();
        assert!(exe.ends_with("/busctl"), "{record}");
        assert!(record["pid"].as_u64().unwrap() > 0);
    }
    assert_no_secret(&path);
}

/// Writes `config.toml` with `text` into the env's config folder.
fn config(env: &TestEnv, text: &str) {
    let dir = env.config_dir.join("latchkey");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

fn set(env: &TestEnv, service: &str) {
    let out = env.cli(&env.socket(), &["set", service], SECRET);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `latchkey audit ARGS` in `env`.
fn audit(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    env.cli(&env.socket(), &all, "")
}

/// Starts `latchkey audit --follow --json` and hands its lines over a channel.
fn follow(env: &TestEnv) -> (Child, mpsc::Receiver<Value>) {
    let mut child = env
        .command(&bin("latchkey"))
        .args(["audit", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line:?}"));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// The services of the `set` records received until one for `last`.
fn sets_until(rx: &mpsc::Receiver<Value>, last: &str) -> Vec<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let record = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no record for {last}; saw {seen:?}"));
        if record["method"] == "set" {
            let service = record["entry"]["service"].as_str().unwrap().to_owned();
            seen.push(service.clone());
            if service == last {
                return seen;
            }
        }
    }
}

#[test]
fn rotation_keeps_keep_files_and_follow_reads_across_it() {
    let env = TestEnv::bare();
    config(&env, "[audit]\nmax_bytes = 1024\nkeep = 2\n");
    let _daemon = env.start_daemon(&[]);
    let path = audit_path(&env);
    set(&env, "first");
    wait_for(&path, method_is("set"));
    let (mut follower, rx) = follow(&env);
    assert_eq!(sets_until(&rx, "first"), ["first"]);
    // About 230 bytes a record: a rotation every four or so.
    let services: Vec<String> = (0..20).map(|n| format!("svc{n:02}")).collect();
    // Each record is waited for before the next: every rotation is seen between two polls
    // (the reader's own tests cover several rotations between polls).
    for service in &services {
        set(&env, service);
        assert_eq!(
            sets_until(&rx, service),
            [service.as_str()],
            "each record once, in order"
        );
    }
    follower.kill().unwrap();
    follower.wait().unwrap();

    let rotated = |n: u32| latchkey_audit::rotated_path(&path, n);
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "keep = 2");
    for file in [path.clone(), rotated(1), rotated(2)] {
        let meta = std::fs::metadata(&file).unwrap();
        assert!(
            meta.len() <= 1024,
            "{} is {} bytes",
            file.display(),
            meta.len()
        );
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
    }
    // `audit` reads the rotated files too, oldest first, and ends with the newest.
    let out = audit(&env, &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = listed
        .iter()
        .filter_map(|r| r["entry"]["service"].as_str())
        .collect();
    assert_eq!(names.last(), Some(&"svc19"));
    let start = services
        .iter()
        .position(|s| s == names[0])
        .expect("a contiguous tail");
    assert_eq!(
        names,
        services[start..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}

#[test]
fn filters_json_and_a_hostile_file() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    set(&env, "github");
    set(&env, "gitlab");
    let out = env.cli(&env.socket(), &["get", "github"], "");
    assert!(out.status.success());
    let path = audit_path(&env);
    wait_for(&path, method_is("get"));
    drop(daemon);

    let out = audit(&env, &["--service", "github", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|r| r["entry"]["service"] == "github"));

    let out = audit(&env, &["--since", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("TIME"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("gitlab/default"), "{text}");

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let out = audit(&env, &["--since", &future, "--json"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    let out = audit(&env, &["--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A hostile file: a crafted executable name, garbage, a huge line.
    let crafted = json!({
        "ts": "2026-01-01T00:00:00Z", "transport": "socket", "pid": 1, "uid": 0,
        "exe": "/tmp/evil\u{1b}[2J\u{202e}txt.exe\nfake row", "method": "get",
        "entry": {"service": "github", "account": "default"}, "grant": null, "outcome": "ok"
    });
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(format!("{crafted}\nnot json at all\n").as_bytes());
    bytes.extend(std::iter::repeat_n(b'{', 1 << 20));
    bytes.extend_from_slice(b"\n\x00\x01\xff\n");
    std::fs::write(&path, bytes).unwrap();
    let out = audit(&env, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(
        text.contains("/tmp/evil\\u{1b}[2J\\u{202e}txt.exe\\u{a}fake row"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        stderr(&out).contains("skipped 3 malformed lines"),
        "{}",
        stderr(&out)
    );
    let out = audit(&env, &["--json"]);
    let last = stdout(&out).lines().last().unwrap().to_owned();
    assert!(
        !last.contains('\u{1b}') && !last.contains('\u{202e}'),
        "{last:?}"
    );
    let value: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(value["exe"], crafted["exe"]);
}

#[test]
fn no_file_yet_is_not_an_error() {
    let env = TestEnv::bare();
    let out = audit(&env, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("no audit records yet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_planted_link_is_not_followed_and_the_daemon_keeps_serving() {
    let env = TestEnv::bare();
    let path = audit_path(&env);
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for d in [
        env.root().join(".local"),
        env.root().join(".local/state"),
        dir.to_owned(),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let target = env.root().join("target.txt");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let daemon = env.start_daemon(&[]);
    for n in 0..5 {
        set(&env, &format!("svc{n}"));
    }
    let out = env.cli(&env.socket(), &["get", "svc4"], "");
    assert_eq!(
        stdout(&out).trim(),
        SECRET,
        "served while the audit file is refused"
    );
    daemon.wait_for_log("cannot write the audit file");
    assert!(!target.exists(), "the link was followed");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());

    // The link gone, the next request is recorded, in a new 0600 file; one warning in all.
    std::fs::remove_file(&path).unwrap();
    set(&env, "after");
    let got = wait_for(&path, |r| r["entry"]["service"] == "after");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let logs = daemon.wait_for_log("the audit file is written again");
    assert_eq!(
        logs.matches("cannot write the audit file").count(),
        1,
        "{logs}"
    );
}

#[test]
fn reads_under_a_grant_are_recorded_once_per_connection_entry_and_grant() {
    let env = TestEnv::bare();
    config(&env, "[policy]\nrequire_grant = [\"guarded\"]\n");
    let _daemon = env.start_daemon(&[]);
    let path = audit_path(&env);
    set(&env, "guarded");
    let grant = || {
        let out = env.cli(
            &env.socket(),
            &["grant", "create", "--service", "guarded", "--ttl", "1h"],
            "",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    let (a, b) = (grant(), grant());
    let get = |grant: &str| json!({"service": "guarded", "grant": grant});

    let mut rpc = Rpc::connect(&env.socket());
    for _ in 0..3 {
        rpc.ok("get", get(&a));
    }
    rpc.ok("get", get(&b));
    rpc.ok("get", get(&b));
    rpc.ok("get", get(&a));
    // Without a grant: refused, and recorded as such.
    rpc.call("get", json!({"service": "guarded"}));
    let mut second = Rpc::connect(&env.socket());
    second.ok("get", get(&a));
    second.call("get", json!({"service": "guarded", "account": "last"}));

    let got = wait_for(&path, |r| r["entry"]["account"] == "last");
    let gets: Vec<(String, Value)> = got
        .iter()
        .filter(|r| r["method"] == "get" && r["entry"]["account"] == "default")
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["grant"].clone(),
            )
        })
        .collect();
    let outcomes: Vec<&str> = gets.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["ok", "ok", "ok", "permission_denied", "ok"],
        "{got:#?}"
    );
    let ids: Vec<&Value> = gets.iter().map(|(_, g)| g).collect();
    assert!(ids[0].is_string() && ids[1].is_string(), "{got:#?}");
    assert_ne!(ids[0], ids[1], "two grants, two ids");
    assert_eq!(ids[0], ids[2], "back to the first grant: recorded again");
    assert!(ids[3].is_null(), "no grant");
    assert_eq!(ids[0], ids[4], "another connection: recorded again");
    let text = std::fs::read_to_string(&path).unwrap();
    for token in [&a, &b] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a grant token in the audit file");
    }
}
