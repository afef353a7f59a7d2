//! `latchkey migrate` end to end: the built daemon and CLI, a real gnome-keyring on the private
//! bus. Entries of every kind move from memory to the Secret Service and back with right
//! counts; the store moved to is the one a restarted daemon (`--store auto`) opens; a daemon
//! killed with SIGKILL in the middle of a move loses nothing, and running the move again
//! finishes it without doubling anything (counted in the Secret Service itself); hostile
//! requests get clear errors that echo nothing.
//!
//! The move killed midway goes from the Secret Service to the encrypted file store, which
//! survives the kill: the re-run finds what the first run copied (`already_there` > 0).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Child, Stdio};

use latchkey_tests::{bin, stderr, stdout, Daemon, TestEnv};
use serde_json::{json, Value};

use crate::support::Rpc;

/// Entries of each kind (API key, password, OAuth with a refresh token).
const EACH: usize = 100;
const ALL: usize = 3 * EACH;

/// Socket only: the subject is the store.
fn start(env: &TestEnv, store: Option<&str>) -> Daemon {
    let mut args = vec!["--no-dbus"];
    if let Some(store) = store {
        args.extend(["--store", store]);
    }
    env.start_daemon_with(
        &args,
        &[("RUST_LOG", "info,latchkey_core::service::migrate=debug")],
    )
}

fn fill(rpc: &mut Rpc) {
    for i in 0..EACH {
        rpc.ok(
            "set",
            json!({"service": format!("key-{i}"), "bundle": {"kind": "api_key", "key": format!("sk-{i}")}}),
        );
        rpc.ok(
            "set",
            json!({"service": format!("pw-{i}"), "account": "a", "bundle": {
                "kind": "password", "username": format!("user-{i}"), "password": format!("pass-{i}")}}),
        );
        rpc.ok(
            "set",
            json!({"service": format!("oa-{i}"), "bundle": {
                "kind": "oauth2", "access_token": format!("at-{i}"), "refresh_token": format!("rt-{i}"),
                "expires_in": 3600, "scopes": ["repo"], "provider": "github"}}),
        );
    }
}

/// Every entry of `fill` is served with its own secret.
fn all_served(rpc: &mut Rpc, context: &str) {
    for i in 0..EACH {
        let key = rpc.ok("get", json!({"service": format!("key-{i}")}));
        assert_eq!(key["secret"], format!("sk-{i}"), "{context}");
        let pw = rpc.ok("get", json!({"service": format!("pw-{i}"), "account": "a"}));
        assert_eq!(pw["secret"], format!("pass-{i}"), "{context}");
        assert_eq!(pw["username"], format!("user-{i}"), "{context}");
        let token = rpc.ok("get", json!({"service": format!("oa-{i}")}));
        assert_eq!(token["secret"], format!("at-{i}"), "{context}");
        assert_eq!(token["kind"], "oauth2", "{context}");
    }
}

/// Every latchkey item in the keyring as (service, account) and how many items each has, as
/// the Secret Service itself answers.
fn keyring_items(env: &TestEnv) -> BTreeMap<(String, String), usize> {
    env.bus().with_connection(async |connection| {
        // The service's search, not one collection's: it does not depend on the path the
        // keyring gave its default collection.
        let service = zbus::Proxy::new(
            connection,
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service",
        )
        .await
        .unwrap();
        let schema = HashMap::from([("xdg:schema", "dev.latchkey.Entry")]);
        let (unlocked, locked): (
            Vec<zbus::zvariant::OwnedObjectPath>,
            Vec<zbus::zvariant::OwnedObjectPath>,
        ) = service.call("SearchItems", &(schema,)).await.unwrap();
        let mut found = BTreeMap::new();
        for item in unlocked.into_iter().chain(locked) {
            let item = zbus::Proxy::new(
                connection,
                "org.freedesktop.secrets",
                item,
                "org.freedesktop.Secret.Item",
            )
            .await
            .unwrap();
            let attributes: HashMap<String, String> =
                item.get_property("Attributes").await.unwrap();
            *found
                .entry((attributes["service"].clone(), attributes["account"].clone()))
                .or_insert(0) += 1;
        }
        found
    })
}

/// Exactly the entries of `fill`, once each.
fn keyring_holds_all_once(env: &TestEnv, context: &str) {
    let items = keyring_items(env);
    assert_eq!(items.len(), ALL, "{context}: {} entries", items.len());
    let doubled: Vec<_> = items.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "{context}: doubled {doubled:?}");
}

fn migrate(env: &TestEnv, daemon: &Daemon, to: &str, stdin: &str) -> Value {
    let out = env.cli(&daemon.socket, &["migrate", "--to", to, "--json"], stdin);
    assert!(
        out.status.success(),
        "migrate --to {to}: {}\n{}",
        stderr(&out),
        daemon.logs()
    );
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn counts(moved: &Value) -> (u64, u64, u64, u64) {
    let n = |field: &str| moved[field].as_u64().unwrap();
    (n("copied"), n("already_there"), n("removed"), n("left"))
}

fn status(rpc: &mut Rpc) -> Value {
    rpc.ok("status", json!({}))["daemon"].clone()
}

#[test]
fn every_kind_moves_from_memory_to_file_to_the_secret_service_and_back() {
    let env = TestEnv::with_keyring();
    let daemon = start(&env, None);
    let mut rpc = Rpc::connect(&daemon.socket);
    assert_eq!(status(&mut rpc)["store"], "secret-service");
    // Start from memory: the first move goes there (the keyring stays empty meanwhile).
    let moved = migrate(&env, &daemon, "memory", "");
    assert_eq!(counts(&moved), (0, 0, 0, 0));
    fill(&mut rpc);
    assert!(keyring_items(&env).is_empty());
    let before = rpc.ok("list", Value::Null);

    // memory -> the encrypted file store (this move chooses its passphrase) -> the keyring.
    let moved = migrate(&env, &daemon, "file", "PASSPHRASE\n");
    assert_eq!(
        (&moved["from"], &moved["to"]),
        (&json!("memory"), &json!("file"))
    );
    assert_eq!(counts(&moved), (ALL as u64, 0, ALL as u64, 0));
    assert!(keyring_items(&env).is_empty());
    assert_eq!(rpc.ok("list", Value::Null), before);
    all_served(&mut rpc, "from the file store");
    // Serving marks the entries used; the next move must carry that over too.
    let before = rpc.ok("list", Value::Null);

    let moved = migrate(&env, &daemon, "secret-service", "");
    assert_eq!(
        (&moved["from"], &moved["to"]),
        (&json!("file"), &json!("secret-service"))
    );
    assert_eq!(counts(&moved), (ALL as u64, 0, ALL as u64, 0));
    keyring_holds_all_once(&env, "after memory -> secret-service");
    // The records moved as they were (creation and update times, kinds, refresh tokens).
    assert_eq!(rpc.ok("list", Value::Null), before);
    let daemon_info = status(&mut rpc);
    assert_eq!(daemon_info["store"], "secret-service");
    assert_eq!(daemon_info["persistent"], true);
    assert_eq!(
        daemon_info["store_reason"],
        "moved here by `latchkey migrate`"
    );
    all_served(&mut rpc, "from the secret service");
    for audited in ["memory -> file", "file -> secret-service"] {
        daemon.wait_for_log(audited);
    }
    let logs = daemon.logs();
    assert!(!logs.contains("PASSPHRASE"), "{logs}");

    // A restarted daemon with --store auto opens the store moved to, and says why.
    drop(rpc);
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    let daemon = start(&env, None);
    assert!(
        daemon.logs().contains("moved here by `latchkey migrate`"),
        "{}",
        daemon.logs()
    );
    let mut rpc = Rpc::connect(&daemon.socket);
    assert_eq!(
        rpc.ok("list", Value::Null)["entries"]
            .as_array()
            .unwrap()
            .len(),
        ALL
    );
    all_served(&mut rpc, "after a restart");

    let back = migrate(&env, &daemon, "memory", "");
    assert_eq!(counts(&back), (ALL as u64, 0, ALL as u64, 0));
    assert!(keyring_items(&env).is_empty(), "copies left in the keyring");
    assert_eq!(status(&mut rpc)["store"], "memory");
    all_served(&mut rpc, "back in memory");

    // The store in use is refused, with the CLI's usage exit code.
    let again = env.cli(&daemon.socket, &["migrate", "--to", "memory"], "");
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("uses the memory store already"),
        "{}",
        stderr(&again)
    );

    // An explicit --store wins over the recorded choice, and says so.
    drop(rpc);
    daemon.stop();
    let daemon = start(&env, Some("secret-service"));
    daemon.wait_for_log("the store asked for wins");
    let mut rpc = Rpc::connect(&daemon.socket);
    let reason = status(&mut rpc)["store_reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.starts_with("secret-service store requested")),
        "{reason}"
    );
}

/// A store to move to in [`killed_midway`].
struct Target {
    name: &'static str,
    /// What the CLI reads on stdin (a passphrase, for a store that takes one).
    stdin: &'static str,
    /// Whether what it holds survives the daemon.
    persists: bool,
}

/// Starts `latchkey migrate --to target` without waiting for it.
fn migrate_in_background(env: &TestEnv, target: &Target) -> Child {
    let mut child = env
        .command(&bin("latchkey"))
        .args(["migrate", "--to", target.name, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(target.stdin.as_bytes())
        .unwrap();
    child
}

/// From the Secret Service to `target`: SIGKILL once the first entry is in `target`, restart,
/// run the move again, and move everything back.
fn killed_midway(target: Target) {
    let env = TestEnv::with_keyring();
    let daemon = start(&env, None);
    fill(&mut Rpc::connect(&daemon.socket));
    keyring_holds_all_once(&env, "before the move");

    let cli = migrate_in_background(&env, &target);
    daemon.wait_for_log("entry copied to the new store");
    let logs = daemon.kill();
    assert!(
        !logs.contains("switched to the new store"),
        "the move finished before the kill; give it more entries:\n{logs}"
    );
    let out = cli.wait_with_output().unwrap();
    assert!(!out.status.success(), "the CLI saw the move finish");
    // The old store is whole, and still the one a restarted daemon opens.
    keyring_holds_all_once(&env, "after the kill");
    let daemon = start(&env, None);
    let mut rpc = Rpc::connect(&daemon.socket);
    let info = status(&mut rpc);
    assert_eq!(info["store"], "secret-service");
    assert_eq!(info["entries"], ALL);
    all_served(&mut rpc, "after the kill and a restart");

    let moved = migrate(&env, &daemon, target.name, target.stdin);
    let (copied, already_there, removed, left) = counts(&moved);
    assert_eq!(copied + already_there, ALL as u64, "{moved}");
    assert_eq!((removed, left), (ALL as u64, 0), "{moved}");
    if target.persists {
        assert!(
            already_there > 0,
            "the first run's copies were not found: {moved}"
        );
    } else {
        assert_eq!(already_there, 0, "{moved}");
    }
    assert!(keyring_items(&env).is_empty(), "copies left in the keyring");
    assert_eq!(status(&mut rpc)["store"], target.name);
    all_served(&mut rpc, "after the re-run");

    // And back: the keyring holds each entry once.
    let back = migrate(&env, &daemon, "secret-service", "");
    assert_eq!(counts(&back), (ALL as u64, 0, ALL as u64, 0));
    keyring_holds_all_once(&env, "moved back");
    drop(rpc);
    daemon.stop();
    let daemon = start(&env, None);
    all_served(&mut Rpc::connect(&daemon.socket), "moved back, restarted");
}

#[test]
fn a_move_killed_midway_loses_nothing_and_a_rerun_finishes_it() {
    killed_midway(Target {
        name: "file",
        stdin: "PASSPHRASE\n",
        persists: true,
    });
}

#[test]
fn hostile_moves_get_clear_errors_that_echo_nothing() {
    let env = TestEnv::with_keyring();
    let daemon = start(&env, Some("memory"));
    let mut rpc = Rpc::connect(&daemon.socket);
    rpc.ok(
        "set",
        json!({"service": "kept", "bundle": {"kind": "api_key", "key": "sk-kept"}}),
    );
    let canary = "PASSPHRASE-CANARY";
    let cases = [
        (
            json!({"to": "HOSTILE-nowhere"}),
            "invalid_request",
            "unknown store; use secret-service, file, memory",
        ),
        (
            json!({"to": "H".repeat(60_000)}),
            "invalid_request",
            "unknown store",
        ),
        (
            json!({"to": "auto"}),
            "invalid_request",
            "name the store to move to",
        ),
        (
            json!({"to": "credential-manager"}),
            "invalid_request",
            "does not exist on this platform",
        ),
        (
            json!({"to": "memory"}),
            "invalid_request",
            "uses the memory store already",
        ),
        (
            json!({"to": "memory", "passphrase": format!("{canary}{}", "p".repeat(2000))}),
            "invalid_request",
            "longer than 1024 bytes",
        ),
        (
            json!({"to": "memory", "passphrase": ""}),
            "invalid_request",
            "empty",
        ),
        (
            json!({"to": "secret-service", "passphrase": canary}),
            "invalid_request",
            "takes no passphrase",
        ),
    ];
    for (params, kind, says) in cases {
        let err = rpc.err("migrate", params);
        assert_eq!(err["data"]["kind"], kind, "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(says), "{err}");
        let shown = err.to_string();
        assert!(
            !shown.contains("HOSTILE") && !shown.contains("HHHH") && !shown.contains(canary),
            "{err}"
        );
    }
    // Nothing moved, nothing was recorded.
    assert_eq!(status(&mut rpc)["store"], "memory");
    assert!(keyring_items(&env).is_empty());
    assert!(!env.data_dir.join("latchkey/store.json").exists());
    let out = env.cli(&daemon.socket, &["migrate", "--to", "nowhere"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("secret-service, file, memory"),
        "{}",
        stderr(&out)
    );
    drop(rpc);
    let (_, logs) = daemon.stop();
    assert!(
        !logs.contains(canary) && !logs.contains("HOSTILE"),
        "{logs}"
    );
    assert!(logs.contains("memory -> <unknown store>"), "{logs}");
}

#[test]
fn a_recorded_store_that_is_unreadable_or_unknown_is_passed_over() {
    let env = TestEnv::bare();
    let marker = env.data_dir.join("latchkey/store.json");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    for (text, says) in [
        ("not json", "ignoring the store `latchkey migrate` recorded"),
        (r#"{"store":"keyutils"}"#, "does not exist on this platform"),
    ] {
        std::fs::write(&marker, text).unwrap();
        // No keyring here: `auto` falls to the file store.
        let daemon = env.start_daemon(&["--store", "auto"]);
        daemon.wait_for_log(says);
        let mut rpc = Rpc::connect(&daemon.socket);
        let info = status(&mut rpc);
        assert_eq!(info["store"], "file");
        assert!(
            info["store_reason"]
                .as_str()
                .unwrap()
                .contains("`latchkey migrate`"),
            "{info}"
        );
        drop(rpc);
        daemon.stop();
    }
}

/// Puts an item in the keyring with `secret-tool`, as latchkey would name it.
fn keyring_put(env: &TestEnv, service: &str) {
    let mut child = std::process::Command::new("secret-tool")
        .args(["store", "--label", "planted"])
        .args([
            "xdg:schema",
            "dev.latchkey.Entry",
            "service",
            service,
            "account",
            "default",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", env.bus().address())
        .stdin(Stdio::piped())
        .spawn()
        .expect("secret-tool is installed (libsecret-tools)");
    child.stdin.take().unwrap().write_all(b"planted").unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_rerun_to_the_store_in_use_removes_the_copies_an_interrupted_move_left() {
    let env = TestEnv::with_keyring();
    let daemon = start(&env, None);
    let mut rpc = Rpc::connect(&daemon.socket);
    for service in ["one", "two"] {
        rpc.ok(
            "set",
            json!({"service": service, "bundle": {"kind": "api_key", "key": "k"}}),
        );
    }
    migrate(&env, &daemon, "memory", "");
    assert!(keyring_items(&env).is_empty());
    // As if the daemon had died while removing: a copy still in the keyring, and the record
    // of the move still naming the keyring as the store left. Plus an item only the keyring
    // holds, which is no copy.
    keyring_put(&env, "one");
    keyring_put(&env, "stranger");
    let marker = env.data_dir.join("latchkey/store.json");
    std::fs::write(&marker, r#"{"store":"memory","leaving":"secret-service"}"#).unwrap();

    let cleaned = migrate(&env, &daemon, "memory", "");
    assert_eq!(
        (&cleaned["from"], &cleaned["to"]),
        (&json!("secret-service"), &json!("memory"))
    );
    assert_eq!(counts(&cleaned), (0, 1, 1, 0));
    let left: Vec<_> = keyring_items(&env).into_keys().collect();
    assert_eq!(left, [("stranger".to_owned(), "default".to_owned())]);
    let recorded: Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    assert_eq!(recorded, json!({"store": "memory"}));
    // Nothing is left to remove now: the store in use is refused again.
    let again = rpc.err("migrate", json!({"to": "memory"}));
    assert!(
        again["message"].as_str().unwrap().contains("already"),
        "{again}"
    );
    assert_eq!(
        rpc.ok("list", Value::Null)["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
