//! The encrypted file store through the real binaries: choosing a passphrase, unlocking,
//! locking, storing while locked, restarts, wrong passphrases, `passwd`, the stock `age` tool,
//! a crash in the middle of many writes, and a folder others could change.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_tests::{stderr, stdout, Daemon, TestEnv};
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery";

fn status(env: &TestEnv, daemon: &Daemon) -> Value {
    let out = env.cli(&daemon.socket, &["status", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn store_folder(env: &TestEnv) -> PathBuf {
    env.data_dir.join("latchkey").join("file-store")
}

fn set(env: &TestEnv, daemon: &Daemon, service: &str, key: &str) -> Output {
    env.cli(&daemon.socket, &["set", service], &format!("{key}\n"))
}

fn get(env: &TestEnv, daemon: &Daemon, service: &str) -> Output {
    env.cli(&daemon.socket, &["get", service], "")
}

fn unlock(env: &TestEnv, daemon: &Daemon, passphrase: &str) -> Output {
    env.cli(&daemon.socket, &["unlock"], &format!("{passphrase}\n"))
}

/// Unlocks with `passphrase`, waiting out the delay earlier wrong passphrases imposed (the
/// daemon answers "try again in N s" until then).
fn unlock_when_allowed(env: &TestEnv, daemon: &Daemon, passphrase: &str) -> Output {
    when_allowed(|| unlock(env, daemon, passphrase))
}

/// Runs `attempt` until the daemon no longer answers "try again in N s", and returns that
/// answer; fails the test if it still does after 30 s. The wait after wrong passphrases is the
/// behaviour under test, timed by the daemon's real clock: the sleep only paces the attempts
/// while that time passes.
fn when_allowed(mut attempt: impl FnMut() -> Output) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = attempt();
        if !stderr(&out).contains("try again in") {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "still waiting after 30 s: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_secret(out: &Output, expected: &str) {
    assert!(out.status.success(), "{}", stderr(out));
    assert_eq!(stdout(out), format!("{expected}\n"));
}

#[test]
fn the_file_store_locks_unlocks_and_keeps_entries_across_restarts() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "file"]);
    let first = status(&env, &daemon);
    assert_eq!(first["daemon"]["store"], "file", "{first}");
    assert_eq!(first["daemon"]["persistent"], true, "{first}");
    assert_eq!(first["daemon"]["locked"], true, "{first}");
    assert_eq!(first["daemon"]["unlock_with"], "new_passphrase", "{first}");

    // The first unlock chooses the passphrase (one line on stdin; twice at a prompt).
    let chose = env.cli(&daemon.socket, &["unlock"], &format!("{PASSPHRASE}\n"));
    assert!(chose.status.success(), "{}", stderr(&chose));
    assert!(
        stderr(&chose).contains("unlocked (file store)"),
        "{}",
        stderr(&chose)
    );
    assert!(set(&env, &daemon, "alpha", "sk-file-alpha")
        .status
        .success());
    assert_secret(&get(&env, &daemon, "alpha"), "sk-file-alpha");

    // Locked: no secret, but status, list and set still work.
    let locked = env.cli(&daemon.socket, &["lock"], "");
    assert!(locked.status.success(), "{}", stderr(&locked));
    let refused = get(&env, &daemon, "alpha");
    assert_eq!(refused.status.code(), Some(6), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("latchkey unlock"),
        "{}",
        stderr(&refused)
    );
    assert!(stdout(&refused).is_empty());
    let stored = set(&env, &daemon, "beta", "sk-file-beta");
    assert!(stored.status.success(), "{}", stderr(&stored));
    let listed = env.cli(&daemon.socket, &["list"], "");
    assert!(stdout(&listed).contains("alpha") && stdout(&listed).contains("beta"));
    assert_eq!(status(&env, &daemon)["daemon"]["locked"], true);

    assert!(unlock(&env, &daemon, PASSPHRASE).status.success());
    assert_secret(&get(&env, &daemon, "alpha"), "sk-file-alpha");
    assert_secret(&get(&env, &daemon, "beta"), "sk-file-beta");
    let (exit, logs) = daemon.stop();
    assert!(exit.success(), "{logs}");

    // A restarted daemon starts locked, with its entries.
    let daemon = env.start_daemon(&["--store", "file"]);
    let again = status(&env, &daemon);
    assert_eq!(again["daemon"]["locked"], true, "{again}");
    assert_eq!(again["daemon"]["unlock_with"], "passphrase", "{again}");
    assert_eq!(again["entries"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(get(&env, &daemon, "beta").status.code(), Some(6));
    assert!(unlock(&env, &daemon, PASSPHRASE).status.success());
    assert_secret(&get(&env, &daemon, "alpha"), "sk-file-alpha");
    assert_secret(&get(&env, &daemon, "beta"), "sk-file-beta");
    let (_, later_logs) = daemon.stop();
    for text in [&logs, &later_logs] {
        assert!(!text.contains("sk-file-"), "{text}");
        assert!(!text.contains(PASSPHRASE), "{text}");
    }
    // No file in the store's folder names a service.
    for file in std::fs::read_dir(store_folder(&env)).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains("alpha") && !name.contains("beta"), "{name}");
    }
}

#[test]
fn wrong_passphrases_wait_longer_and_passwd_changes_the_passphrase() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "file"]);
    let chose = env.cli(&daemon.socket, &["unlock"], "first one\n");
    assert!(chose.status.success(), "{}", stderr(&chose));
    // passwd wants two lines on stdin.
    let one_line = env.cli(&daemon.socket, &["passwd"], "first one\n");
    assert_eq!(one_line.status.code(), Some(2), "{}", stderr(&one_line));
    assert!(set(&env, &daemon, "gamma", "sk-file-gamma")
        .status
        .success());
    assert!(env.cli(&daemon.socket, &["lock"], "").status.success());

    let wrong = unlock(&env, &daemon, "not it");
    assert_eq!(wrong.status.code(), Some(12), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("wrong passphrase"),
        "{}",
        stderr(&wrong)
    );
    // Right away, even the right passphrase waits.
    let early = unlock(&env, &daemon, "first one");
    assert_eq!(early.status.code(), Some(12), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("try again in"),
        "{}",
        stderr(&early)
    );
    assert_eq!(get(&env, &daemon, "gamma").status.code(), Some(6));
    let right = unlock_when_allowed(&env, &daemon, "first one");
    assert!(right.status.success(), "{}", stderr(&right));
    assert_secret(&get(&env, &daemon, "gamma"), "sk-file-gamma");

    // passwd: the current passphrase, then the new one.
    let bad_old = env.cli(&daemon.socket, &["passwd"], "not it\nsecond one\n");
    assert_eq!(bad_old.status.code(), Some(12), "{}", stderr(&bad_old));
    let changed = when_allowed(|| env.cli(&daemon.socket, &["passwd"], "first one\nsecond one\n"));
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert!(env.cli(&daemon.socket, &["lock"], "").status.success());
    let old = unlock_when_allowed(&env, &daemon, "first one");
    assert_eq!(old.status.code(), Some(12), "{}", stderr(&old));
    let new = unlock_when_allowed(&env, &daemon, "second one");
    assert!(new.status.success(), "{}", stderr(&new));
    assert_secret(&get(&env, &daemon, "gamma"), "sk-file-gamma");
    let (_, logs) = daemon.stop();
    for said in ["first one", "second one", "not it", "sk-file-gamma"] {
        assert!(!logs.contains(said), "{logs}");
    }
}

/// Runs the stock `age` tool with `passphrase` typed at its terminal (age reads passphrases
/// from the terminal only): `script` gives it one.
fn age_with_passphrase(args: &str, passphrase: &str, dir: &Path) -> Output {
    let mut child = Command::new("script")
        .args(["-qec", &format!("age {args}"), "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{passphrase}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn an_entry_opens_with_the_stock_age_tool_and_the_passphrase() {
    latchkey_tests::require_program("age", "age");
    latchkey_tests::require_program("script", "bsdutils");
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "file"]);
    let chose = env.cli(&daemon.socket, &["unlock"], &format!("{PASSPHRASE}\n"));
    assert!(chose.status.success(), "{}", stderr(&chose));
    assert!(set(&env, &daemon, "delta", "sk-age-delta").status.success());
    let folder = store_folder(&env);
    let entries: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "age")
                && p.file_name().is_some_and(|n| n != "identity.age")
        })
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    let work = tempfile::tempdir().unwrap();
    let identity = folder.join("identity.age");
    let opened = age_with_passphrase(
        &format!("-d -o key.txt {}", identity.display()),
        PASSPHRASE,
        work.path(),
    );
    assert!(
        work.path().join("key.txt").exists(),
        "{}",
        String::from_utf8_lossy(&opened.stdout)
    );
    let bundle = Command::new("age")
        .args(["-d", "-i", "key.txt"])
        .arg(&entries[0])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(bundle.status.success(), "{}", stderr(&bundle));
    let document: Value = serde_json::from_slice(&bundle.stdout).unwrap();
    assert_eq!(document["kind"], "api_key", "{document}");
    assert_eq!(document["key"], "sk-age-delta", "{document}");
    // A wrong passphrase opens nothing.
    let wrong = age_with_passphrase(
        &format!("-d -o wrong.txt {}", identity.display()),
        "not the passphrase",
        work.path(),
    );
    assert!(!work.path().join("wrong.txt").exists() || !wrong.status.success());
}

/// One client storing `services` in turn over its own connection, counting what the daemon
/// acknowledged; it stops at the first failure (the daemon was killed).
fn store_until_killed(
    socket: PathBuf,
    services: Vec<String>,
    acked: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
) {
    let Ok(stream) = UnixStream::connect(&socket) else {
        return;
    };
    let mut reader = BufReader::new(stream);
    for service in services {
        let request = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{{\"service\":\"{service}\",\"bundle\":{{\"kind\":\"api_key\",\"key\":\"key-of-{service}\"}}}}}}\n"
        );
        if reader.get_mut().write_all(request.as_bytes()).is_err() {
            return;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let Ok(response) = serde_json::from_str::<Value>(&line) else {
            return;
        };
        if response.get("result").is_some() {
            acked.lock().unwrap().push(service);
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_kill_during_200_concurrent_sets_keeps_every_acknowledged_entry() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "file"]);
    let chose = env.cli(&daemon.socket, &["unlock"], &format!("{PASSPHRASE}\n"));
    assert!(chose.status.success(), "{}", stderr(&chose));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let services = (0..25).map(|i| format!("crash-{c}-{i}")).collect();
            let (socket, acked, count) = (daemon.socket.clone(), acked.clone(), count.clone());
            std::thread::spawn(move || store_until_killed(socket, services, acked, count))
        })
        .collect();
    // Kill it in the middle: once a third of the writes were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 70 {
        assert!(Instant::now() < deadline, "the writes did not progress");
        std::thread::yield_now();
    }
    daemon.kill();
    for client in clients {
        client.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 70 && acked.len() < 200, "{}", acked.len());

    let daemon = env.start_daemon(&["--store", "file"]);
    assert!(unlock(&env, &daemon, PASSPHRASE).status.success());
    let listed = status(&env, &daemon);
    let known: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["service"].as_str().unwrap())
        .collect();
    for service in &acked {
        assert!(known.contains(&service.as_str()), "{service} was lost");
    }
    // Every entry there is whole, acknowledged or not.
    let mut connection = latchkey_tests::RawConnection::open(&daemon.socket);
    for service in known {
        let got = connection.call(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{{\"service\":\"{service}\"}}}}"
        ));
        assert_eq!(
            got["result"]["secret"],
            format!("key-of-{service}"),
            "{got}"
        );
    }
}

#[test]
fn a_store_folder_others_can_change_is_refused() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "file"]);
    drop(daemon.stop());
    let folder = store_folder(&env);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let Err((status, logs)) = env.try_start_daemon(&["--store", "file"], &[]) else {
        panic!("the daemon used a store folder anyone can write");
    };
    assert!(!status.success());
    assert!(logs.contains(&folder.display().to_string()), "{logs}");
}

#[test]
fn auto_without_a_session_bus_picks_the_file_store_and_says_why() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "auto"]);
    let logs = daemon.logs();
    assert!(logs.contains("store=\"file\""), "{logs}");
    assert!(!logs.contains("IN MEMORY ONLY"), "{logs}");
    let said = status(&env, &daemon);
    assert_eq!(said["daemon"]["store"], "file", "{said}");
    assert_eq!(said["daemon"]["persistent"], true, "{said}");
    let reason = said["daemon"]["store_reason"].as_str().unwrap();
    assert!(
        reason.contains("no session bus") && reason.contains("encrypted file store"),
        "{reason}"
    );
    let text = env.cli(&daemon.socket, &["status"], "");
    assert!(
        stdout(&text).contains("`latchkey unlock` chooses one"),
        "{}",
        stdout(&text)
    );

    // With a keyring on the bus, `auto` takes it.
    let desktop = TestEnv::with_keyring();
    let daemon = desktop.start_daemon(&["--store", "auto"]);
    let said = status(&desktop, &daemon);
    assert_eq!(said["daemon"]["store"], "secret-service", "{said}");
    assert_eq!(said["daemon"]["unlock_with"], "keychain", "{said}");
}
