//! Issue 11: the Secret Service's keyring going away and coming back locked while secrets are
//! cached, and `unlock`/`lock` of a Secret Service store. A real gnome-keyring on a private
//! bus (killed by pid and started again on its own folders), the built `latchkeyd`, requests
//! on its socket.
//!
//! The test keyring has no prompter (no desktop session), so a prompt cannot be answered
//! here: gnome-keyring then completes it at once as dismissed, and that is what is tested.

use std::time::{Duration, Instant};

use latchkey_tests::{Daemon, Keyring, TestEnv};
use serde_json::{json, Value};

use super::support::Rpc;

/// How soon the daemon must notice the keyring leaving or coming back: the bus tells it in
/// milliseconds; the rest is slack for a loaded machine.
const NOTICE: Duration = Duration::from_secs(5);

/// How long an `unlock` that no one can answer may take: it must fail, not hang.
const NO_HANG: Duration = Duration::from_secs(10);

const LEFT: &str = "the Secret Service left the session bus";
const BACK: &str = "the Secret Service is back";

/// The `nth` (from 1) log line of the daemon containing `needle`.
fn log_line(daemon: &Daemon, needle: &str, nth: usize) -> String {
    daemon
        .logs()
        .lines()
        .filter(|l| l.contains(needle))
        .nth(nth - 1)
        .unwrap_or_else(|| panic!("no log line {nth} with {needle:?}:\n{}", daemon.logs()))
        .to_owned()
}

/// Checks an error answer: one of `kinds`, no result, and nothing of `secret` in it.
fn assert_error(answer: &Value, kinds: &[&str], secret: &str) {
    let kind = answer["error"]["data"]["kind"].as_str().unwrap_or_default();
    assert!(kinds.contains(&kind), "expected one of {kinds:?}: {answer}");
    assert!(answer.get("result").is_none(), "{answer}");
    assert!(!answer.to_string().contains(secret), "{answer}");
}

fn daemon_locked(rpc: &mut Rpc) -> Value {
    rpc.ok("status", json!({}))["daemon"]["locked"].clone()
}

#[test]
fn a_keyring_restarted_locked_stops_serving_cached_secrets_at_once() {
    let mut env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let out = env.cli(&daemon.socket, &["set", "cached"], "cached-canary");
    assert!(out.status.success());
    let mut rpc = Rpc::connect(&daemon.socket);
    let get = json!({"service": "cached"});
    assert_eq!(rpc.ok("get", get.clone())["secret"], "cached-canary");

    // Killed: the daemon notices at once, and from then on serves no cached secret.
    env.keyring.take().unwrap().stop(env.bus());
    let gone = Instant::now();
    assert!(
        daemon.logged_within(LEFT, 1, NOTICE),
        "the daemon did not notice the keyring leave:\n{}",
        daemon.logs()
    );
    println!("keyring left; noticed within {:?}", gone.elapsed());
    assert_eq!(daemon_locked(&mut rpc), true);
    assert_error(
        &rpc.call("get", get.clone()),
        &["locked", "backend_unavailable"],
        "cached-canary",
    );
    // With nothing to ask, unlock and lock say so.
    for method in ["unlock", "lock"] {
        let answer = rpc.call(method, Value::Null);
        assert_error(&answer, &["backend_unavailable"], "cached-canary");
    }
    // Still listed, from the index.
    let entries = rpc.ok("status", json!({}))["entries"].clone();
    assert_eq!(entries[0]["service"], "cached", "{entries}");

    // Back, locked (started without --unlock on the same folders): the daemon reads the new
    // service's real state at once, and `get` says locked.
    env.keyring = Some(Keyring::start_locked(env.bus(), env.root()));
    let appeared = Instant::now();
    assert!(Keyring::login_locked(env.bus()));
    assert!(
        daemon.logged_within(BACK, 1, NOTICE),
        "the daemon did not connect to the new keyring:\n{}",
        daemon.logs()
    );
    println!("keyring back; connected within {:?}", appeared.elapsed());
    assert!(log_line(&daemon, BACK, 1).contains("locked=true"));
    assert_error(&rpc.call("get", get.clone()), &["locked"], "cached-canary");
    let status = rpc.ok("status", json!({}));
    assert_eq!(status["daemon"]["locked"], true);
    assert_eq!(status["entries"][0]["service"], "cached", "{status}");

    // `unlock` asks the keyring, whose prompt nobody can show here: `locked` at once.
    let started = Instant::now();
    let answer = rpc.call("unlock", Value::Null);
    assert_error(&answer, &["locked"], "cached-canary");
    assert!(
        started.elapsed() < NO_HANG,
        "unlock took {:?}",
        started.elapsed()
    );
    assert!(Keyring::login_locked(env.bus()));

    // Back, unlocked: served again by the same daemon.
    env.keyring.take().unwrap().stop(env.bus());
    env.keyring = Some(Keyring::start(env.bus(), env.root()));
    assert!(
        daemon.logged_within(BACK, 2, NOTICE),
        "the daemon did not connect to the unlocked keyring:\n{}",
        daemon.logs()
    );
    assert!(log_line(&daemon, BACK, 2).contains("locked=false"));
    assert_eq!(daemon_locked(&mut rpc), false);
    assert_eq!(rpc.ok("get", get)["secret"], "cached-canary");
    assert!(!daemon.logs().contains("cached-canary"));
}

#[test]
fn unlock_and_lock_go_to_the_keyring() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let out = env.cli(&daemon.socket, &["set", "cached"], "lock-canary");
    assert!(out.status.success());
    let mut rpc = Rpc::connect(&daemon.socket);
    let get = json!({"service": "cached"});
    assert_eq!(rpc.ok("get", get.clone())["secret"], "lock-canary");
    let status = rpc.ok("status", json!({}));
    assert_eq!(status["daemon"]["unlock_with"], "keychain", "{status}");

    // Unlocking an unlocked keyring asks nothing and says so.
    let unlocked = rpc.ok("unlock", Value::Null);
    assert_eq!(
        unlocked,
        json!({"store": "secret-service", "locked": false})
    );

    // The keyring asks for its own password: a passphrase is refused, and not echoed.
    let answer = rpc.call("unlock", json!({"passphrase": "HOSTILE-MARKER-pass"}));
    assert_error(&answer, &["invalid_request"], "HOSTILE-MARKER");
    assert!(!daemon.logs().contains("HOSTILE-MARKER"));
    let answer = rpc.call("unlock", json!({"passphrase": 7}));
    assert_error(&answer, &["invalid_request"], "HOSTILE-MARKER");

    // Lock locks the keyring's collection itself, and the cached secret is gone at once.
    let locked = rpc.ok("lock", Value::Null);
    assert_eq!(locked, json!({"store": "secret-service", "locked": true}));
    assert!(Keyring::login_locked(env.bus()));
    assert_error(&rpc.call("get", get.clone()), &["locked"], "lock-canary");
    // Locking a locked keyring is no error.
    assert_eq!(rpc.ok("lock", Value::Null)["locked"], true);

    // Unlock needs the keyring's prompt, which nobody can answer here: `locked`, no hang,
    // and still locked.
    let started = Instant::now();
    let answer = rpc.call("unlock", Value::Null);
    assert_error(&answer, &["locked"], "lock-canary");
    assert!(
        started.elapsed() < NO_HANG,
        "unlock took {:?}",
        started.elapsed()
    );
    assert!(Keyring::login_locked(env.bus()));
    assert_eq!(daemon_locked(&mut rpc), true);
    // Several at once: each answered, none hangs.
    let socket = daemon.socket.clone();
    let answers: Vec<Value> = (0..3)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || Rpc::connect(&socket).call("unlock", Value::Null))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for answer in &answers {
        assert_error(answer, &["locked"], "lock-canary");
    }
    assert!(started.elapsed() < NO_HANG * 2);
    drop(daemon);
}

/// How many connections the process `pid` has open on the bus.
fn bus_connections_of(env: &TestEnv, pid: u32) -> usize {
    env.bus().with_connection(async |connection| {
        let dbus = zbus::fdo::DBusProxy::new(connection).await.unwrap();
        let mut count = 0;
        for name in dbus.list_names().await.unwrap() {
            if !name.as_str().starts_with(':') {
                continue;
            }
            let owner = dbus
                .get_connection_unix_process_id(name.inner().clone())
                .await;
            if owner.ok() == Some(pid) {
                count += 1;
            }
        }
        count
    })
}

/// Kill-and-restart cycles leave the daemon with as many bus connections as before: each
/// connection to a keyring that left is closed, and its lock watcher with it.
#[test]
fn keyring_restarts_leak_no_connection() {
    let mut env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let mut rpc = Rpc::connect(&daemon.socket);
    let before = bus_connections_of(&env, daemon.pid());
    // Its own connection, which follows the keyring, and the keyring session's.
    assert_eq!(before, 2);
    for round in 1..=3 {
        env.keyring.take().unwrap().stop(env.bus());
        assert!(daemon.logged_within(LEFT, round, NOTICE));
        env.keyring = Some(Keyring::start(env.bus(), env.root()));
        assert!(daemon.logged_within(BACK, round, NOTICE));
        assert_eq!(daemon_locked(&mut rpc), false);
    }
    let deadline = Instant::now() + NOTICE;
    loop {
        let now = bus_connections_of(&env, daemon.pid());
        if now == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now} bus connections after the restarts, {before} before"
        );
    }
}

/// A peer that holds the service's name but answers nothing: the daemon tries to connect
/// again after pauses that double, serves no secret meanwhile, and takes the real keyring
/// when it comes.
#[test]
fn a_broken_service_is_retried_with_doubling_pauses() {
    const FAILED: &str = "could not connect to the Secret Service that appeared";
    let mut env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let out = env.cli(&daemon.socket, &["set", "cached"], "squat-canary");
    assert!(out.status.success());
    let mut rpc = Rpc::connect(&daemon.socket);
    let get = json!({"service": "cached"});
    assert_eq!(rpc.ok("get", get.clone())["secret"], "squat-canary");

    env.keyring.take().unwrap().stop(env.bus());
    let squatter = env.bus().squat("org.freedesktop.secrets");
    assert!(
        daemon.logged_within(FAILED, 3, Duration::from_secs(20)),
        "{}",
        daemon.logs()
    );
    let waits: Vec<String> = (1..=3)
        .map(|n| {
            let line = log_line(&daemon, FAILED, n);
            let at = line.find("retry_in_ms=").expect("the pause is logged") + 12;
            line[at..].split_whitespace().next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(waits, ["250", "500", "1000"]);
    assert_error(&rpc.call("get", get.clone()), &["locked"], "squat-canary");

    drop(squatter);
    assert!(daemon.logged_within(LEFT, 2, NOTICE));
    env.keyring = Some(Keyring::start(env.bus(), env.root()));
    assert!(daemon.logged_within(BACK, 1, NOTICE), "{}", daemon.logs());
    assert_eq!(rpc.ok("get", get)["secret"], "squat-canary");
}

#[test]
fn the_cli_locks_the_keyring_and_says_when_it_stays_locked() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let socket = env.socket();
    let status = env.cli(&socket, &["status", "--json"], "");
    let status: Value = serde_json::from_str(&latchkey_tests::stdout(&status)).unwrap();
    assert_eq!(status["daemon"]["unlock_with"], "keychain", "{status}");
    let locked = env.cli(&socket, &["lock"], "");
    assert!(
        locked.status.success(),
        "{}",
        latchkey_tests::stderr(&locked)
    );
    assert!(
        latchkey_tests::stderr(&locked).contains("locked (secret-service store)"),
        "{}",
        latchkey_tests::stderr(&locked)
    );
    // No prompter here: the keyring dismisses its prompt, and the CLI says what happened.
    let unlock = env.cli(&socket, &["unlock"], "");
    assert_eq!(
        unlock.status.code(),
        Some(6),
        "{}",
        latchkey_tests::stderr(&unlock)
    );
    assert!(
        latchkey_tests::stderr(&unlock).contains("keychain stayed locked"),
        "{}",
        latchkey_tests::stderr(&unlock)
    );
    drop(daemon);
}
