//! The Secret Service path: entries really land in gnome-keyring, survive restarts, and the
//! daemon keeps answering `status`/`list` while the collection is locked, and a first read costs
//! the keychain no more calls than an application reading the item itself.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use latchkey_tests::{stderr, stdout, Keyring, TestEnv, START_TIMEOUT};
use serde_json::Value;

fn status_json(env: &TestEnv, socket: &std::path::Path) -> Value {
    let out = env.cli(socket, &["status", "--json"], "");
    assert!(out.status.success(), "status failed: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn secret_tool(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new("secret-tool")
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", env.bus().address())
        .output()
        .expect("secret-tool is installed (libsecret-tools)")
}

#[test]
fn each_kind_round_trips_through_gnome_keyring() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let s = &daemon.socket;
    assert!(
        daemon.logs().contains("store=\"secret-service\""),
        "{}",
        daemon.logs()
    );

    let out = env.cli(s, &["set", "openai", "-a", "work"], "sk-live-123\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.cli(
        s,
        &["set", "db", "--kind", "password", "--username", "alice"],
        "pässwörd",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = r#"{"kind":"oauth2","access_token":"gho_access","refresh_token":"ghr_refresh","expires_in":3600,"scopes":["repo","read:org"],"provider":"github"}"#;
    let out = env.cli(s, &["set", "github", "--bundle"], bundle);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        stdout(&env.cli(s, &["get", "openai", "-a", "work"], "")),
        "sk-live-123\n"
    );
    assert_eq!(stdout(&env.cli(s, &["get", "db"], "")), "pässwörd\n");
    let got: Value =
        serde_json::from_str(&stdout(&env.cli(s, &["get", "db", "--json"], ""))).unwrap();
    assert_eq!(got["username"], "alice");
    assert_eq!(
        stdout(&env.cli(s, &["get", "github", "--scope", "repo"], "")),
        "gho_access\n"
    );
    let out = env.cli(
        s,
        &["get", "github", "--scope", "repo", "--scope", "admin:org"],
        "",
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("admin:org"), "{}", stderr(&out));

    let status = status_json(&env, s);
    assert_eq!(status["daemon"]["store"], "secret-service");
    assert_eq!(status["daemon"]["persistent"], true);
    assert_eq!(status["daemon"]["locked"], false);
    assert_eq!(status["entries"].as_array().unwrap().len(), 3);
    let list = stdout(&env.cli(s, &["list"], ""));
    for name in ["openai", "db", "github", "api_key", "password", "oauth2"] {
        assert!(list.contains(name), "{list}");
    }

    // The item is really in the Secret Service, found by its attributes, holding the document.
    let looked_up = secret_tool(
        &env,
        &[
            "lookup",
            "xdg:schema",
            "dev.latchkey.Entry",
            "service",
            "openai",
            "account",
            "work",
        ],
    );
    assert!(looked_up.status.success());
    let doc: Value = serde_json::from_slice(&looked_up.stdout).unwrap();
    assert_eq!(doc["kind"], "api_key");
    assert_eq!(doc["key"], "sk-live-123");
    assert_eq!(doc["version"], 1);
    let search = secret_tool(
        &env,
        &["search", "--all", "xdg:schema", "dev.latchkey.Entry"],
    );
    let listing = String::from_utf8_lossy(&search.stdout).into_owned()
        + &String::from_utf8_lossy(&search.stderr);
    assert!(listing.contains("latchkey: github (default)"), "{listing}");
    assert_eq!(listing.matches("label = latchkey:").count(), 3, "{listing}");

    // Replacing keeps one item; clearing removes it from the keychain.
    let out = env.cli(s, &["set", "openai", "-a", "work"], "sk-live-456");
    assert!(out.status.success());
    assert_eq!(
        stdout(&env.cli(s, &["get", "openai", "-a", "work"], "")),
        "sk-live-456\n"
    );
    let search = secret_tool(&env, &["search", "--all", "service", "openai"]);
    assert_eq!(
        String::from_utf8_lossy(&search.stdout)
            .matches("[/")
            .count(),
        1
    );
    for (service, account) in [("openai", "work"), ("db", "default"), ("github", "default")] {
        let out = env.cli(s, &["clear", service, "-a", account], "");
        assert!(out.status.success());
        assert!(stderr(&out).contains("removed"));
        let gone = secret_tool(&env, &["lookup", "service", service, "account", account]);
        assert!(!gone.status.success() && gone.stdout.is_empty());
    }
    assert_eq!(
        env.cli(s, &["get", "openai", "-a", "work"], "")
            .status
            .code(),
        Some(3)
    );
    assert_eq!(status_json(&env, s)["entries"].as_array().unwrap().len(), 0);
    let (exit, _) = daemon.stop();
    assert!(exit.success());
}

#[test]
fn entries_survive_a_daemon_restart() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let s = daemon.socket.clone();
    assert!(env
        .cli(&s, &["set", "persist", "-a", "ü"], "kept-across-restarts")
        .status
        .success());
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    assert!(!s.exists(), "the socket is removed on a clean stop");

    let daemon = env.start_daemon(&[]);
    assert_eq!(
        stdout(&env.cli(&s, &["get", "persist", "-a", "ü"], "")),
        "kept-across-restarts\n"
    );
    let status = status_json(&env, &s);
    assert_eq!(status["entries"][0]["service"], "persist");
    assert_eq!(status["entries"][0]["account"], "ü");

    // A lost index heals from the keychain on the next start.
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    // (A first change lands in the journal beside the snapshot; an unreadable snapshot makes
    // the journal useless too.)
    let index = env.data_dir.join("latchkey/secret-service-index.json");
    assert!(index.exists() || index.with_extension("journal").exists());
    std::fs::write(&index, b"garbage").unwrap();
    let daemon = env.start_daemon(&[]);
    let status = status_json(&env, &s);
    assert_eq!(status["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        stdout(&env.cli(&s, &["get", "persist", "-a", "ü"], "")),
        "kept-across-restarts\n"
    );
    drop(daemon);
}

#[test]
fn index_file_is_private_and_holds_no_secret() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let bundle = r#"{"kind":"oauth2","access_token":"idx-access-canary","refresh_token":"idx-refresh-canary","expires_in":600}"#;
    assert!(env
        .cli(&daemon.socket, &["set", "svc", "--bundle"], bundle)
        .status
        .success());
    // The snapshot and its journal (a change lands in the journal first).
    let mut text = String::new();
    for name in ["secret-service-index.json", "secret-service-index.journal"] {
        let file = env.data_dir.join("latchkey").join(name);
        if !file.exists() {
            continue;
        }
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
        text.push_str(&std::fs::read_to_string(&file).unwrap());
    }
    assert!(text.contains("\"svc\""));
    assert!(!text.contains("canary"), "{text}");
}

fn wait_until_locked(env: &TestEnv, socket: &std::path::Path) {
    // The daemon learns of the lock from the keyring's signal; wait for that event to show.
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_json(env, socket)["daemon"]["locked"] != true {
        assert!(
            Instant::now() < deadline,
            "the daemon never saw the keychain lock"
        );
    }
}

#[test]
fn locked_keychain_still_answers_status_and_list_and_get_fails_fast() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let s = daemon.socket.clone();
    assert!(env
        .cli(&s, &["set", "cached"], "cached-secret")
        .status
        .success());
    assert!(env
        .cli(&s, &["set", "cold"], "cold-secret")
        .status
        .success());
    assert_eq!(
        stdout(&env.cli(&s, &["get", "cached"], "")),
        "cached-secret\n"
    );

    Keyring::lock(env.bus());
    wait_until_locked(&env, &s);
    let list = env.cli(&s, &["list", "--json"], "");
    assert!(list.status.success());
    let entries: Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(entries["entries"].as_array().unwrap().len(), 2);
    for service in ["cached", "cold"] {
        let started = Instant::now();
        let out = env.cli(&s, &["get", service], "");
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "get on a locked keychain must not hang"
        );
    }
    // Writing to a locked keychain fails cleanly and loses nothing.
    let out = env.cli(&s, &["set", "cached"], "replacement");
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));

    // A daemon started while the keychain is locked still lists from its index.
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    let daemon = env.start_daemon(&[]);
    let status = status_json(&env, &s);
    assert_eq!(status["daemon"]["locked"], true);
    assert_eq!(status["entries"].as_array().unwrap().len(), 2);
    assert_eq!(env.cli(&s, &["get", "cold"], "").status.code(), Some(6));
    drop(daemon);
}

#[test]
fn the_daemon_reconnects_when_the_keyring_comes_back() {
    let mut env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let s = &daemon.socket;
    assert!(env.cli(s, &["set", "before"], "k-before").status.success());

    // gnome-keyring goes away (killed and reaped): writes fail as unavailable, nothing hangs.
    drop(env.keyring.take());
    let out = env.cli(s, &["set", "during"], "k-during");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // It comes back (same keyring files, unlocked): the daemon uses it again by itself.
    env.keyring = Some(Keyring::start(env.bus(), env.root()));
    let out = env.cli(s, &["set", "after"], "k-after");
    assert!(out.status.success(), "{}", stderr(&out));
    let found = secret_tool(&env, &["lookup", "service", "after", "account", "default"]);
    let found: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(
        found["key"], "k-after",
        "the new item landed in the new keyring"
    );
    let entries = status_json(&env, s)["entries"].clone();
    let names: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["after", "before"]);
    let out = env.cli(s, &["get", "before"], "");
    assert_eq!(stdout(&out).trim(), "k-before");

    // A restart while the daemon is idle costs the next call nothing: the daemon followed the
    // keyring leaving and coming back (or that call's stale session fails once and it connects
    // again), and the call goes through.
    drop(env.keyring.take());
    env.keyring = Some(Keyring::start(env.bus(), env.root()));
    let out = env.cli(s, &["set", "later"], "k-later");
    assert!(out.status.success(), "{}", stderr(&out));
    daemon.wait_for_log("connected to the Secret Service again");
}

/// The method calls made on the bus while `act` runs, by member name, in order (the bus's own
/// `Hello`s left out). Watched through a monitor connection; the end is marked by a `GetId`
/// sent after `act`, which the monitor sees after everything `act` caused.
fn calls_during(env: &TestEnv, act: impl FnOnce()) -> Vec<String> {
    use std::sync::mpsc;
    let address = env.bus().address().to_owned();
    let (ready_tx, ready_rx) = mpsc::channel();
    let monitor = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let connection = zbus::connection::Builder::address(address.as_str())
                .unwrap()
                .build()
                .await
                .unwrap();
            let mut stream = zbus::MessageStream::from(&connection);
            let rule = zbus::MatchRule::try_from("type='method_call'").unwrap();
            zbus::fdo::MonitoringProxy::new(&connection)
                .await
                .unwrap()
                .become_monitor(&[rule], 0)
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut calls = Vec::new();
            let watching = async {
                while let Some(message) = stream.next().await {
                    let message = message.unwrap();
                    let header = message.header();
                    if header.message_type() != zbus::message::Type::MethodCall {
                        continue;
                    }
                    // Only calls to services count: the bus daemon's own housekeeping
                    // (match rules a connection drops when it gets round to it) does not.
                    let to_bus = header
                        .destination()
                        .is_some_and(|d| d.as_str() == "org.freedesktop.DBus");
                    let member = header.member().map(|m| m.to_string()).unwrap_or_default();
                    if to_bus && member != "GetId" {
                        continue;
                    }
                    match member.as_str() {
                        "GetId" => return,
                        "Hello" => {}
                        _ => calls.push(member),
                    }
                }
            };
            tokio::time::timeout(START_TIMEOUT, watching)
                .await
                .expect("the monitor saw the end marker");
            calls
        })
    });
    ready_rx.recv_timeout(START_TIMEOUT).unwrap();
    act();
    env.bus().with_connection(async |connection| {
        zbus::fdo::DBusProxy::new(connection)
            .await
            .unwrap()
            .get_id()
            .await
            .unwrap();
    });
    monitor.join().unwrap()
}

/// Issue 9: a cache-miss `get` reads the keychain in two calls, as an application reading the
/// item with `oo7` does (`SearchItems`, `GetSecret`), and a second `get` in none.
#[test]
fn a_cold_get_is_two_secret_service_calls_and_a_warm_one_none() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--no-dbus"]);
    assert!(env
        .cli(&daemon.socket, &["set", "cold"], "cold-secret")
        .status
        .success());
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    // A new daemon knows the entry from its index and reads the secret on the first get.
    let daemon = env.start_daemon(&["--no-dbus"]);
    // Its background check of the index against the keychain is not part of the get.
    daemon.wait_for_log("entries checked against the store");
    let mut client = super::support::Rpc::connect(&daemon.socket);
    let get = serde_json::json!({"service": "cold"});
    let calls = calls_during(&env, || {
        let answer = client.call("get", get.clone());
        assert_eq!(answer["result"]["secret"], "cold-secret", "{answer}");
    });
    assert_eq!(calls, ["SearchItems", "GetSecret"]);
    let calls = calls_during(&env, || {
        let answer = client.call("get", get.clone());
        assert_eq!(answer["result"]["secret"], "cold-secret", "{answer}");
    });
    assert!(calls.is_empty(), "{calls:?}");
    drop(daemon);
}
