//! Confirm prompts (`[policy] confirm`, issue 13): latchkeyd asks a real notification server
//! of our own on the private bus (`latchkey_tests::notifications`) before it serves a listed
//! entry to a program the user has not answered for, and remembers the answer per executable
//! until the entry is set or cleared. The daemon runs with `--no-dbus`: it connects to the
//! session bus only to ask.

use latchkey_tests::notifications::{Answer, NotificationServer};
use latchkey_tests::{stderr, stdout, Daemon, SessionBus, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};

use crate::support::Rpc;

const SECRET: &str = "bank-secret-5e1f0a";
const OTHER_SECRET: &str = "plain-secret-2b7c44";

/// An env with a private bus (no keyring: the memory store).
fn env_with_bus() -> TestEnv {
    let mut env = TestEnv::bare();
    env.bus = Some(SessionBus::start(None));
    env
}

/// latchkeyd with `[policy]` holding `policy`, off the bus, logging the confirm module's
/// debug lines.
fn start(env: &TestEnv, policy: &str) -> Daemon {
    start_with(env, policy, &["--no-dbus"])
}

fn start_with(env: &TestEnv, policy: &str, args: &[&str]) -> Daemon {
    let path = env.root().join("config.toml");
    std::fs::write(&path, format!("[policy]\n{policy}")).unwrap();
    let mut all = args.to_vec();
    all.extend(["--config", path.to_str().unwrap()]);
    env.start_daemon_with(&all, &[("RUST_LOG", "info,latchkey_daemon::confirm=debug")])
}

fn set(daemon: &Daemon, service: &str, key: &str) {
    Rpc::connect(&daemon.socket).ok(
        "set",
        json!({"service": service, "bundle": {"kind": "api_key", "key": key}}),
    );
}

/// `get` of `service` on a new connection from this test process: the secret or the error.
fn get(daemon: &Daemon, service: &str) -> Result<String, Value> {
    let response = Rpc::connect(&daemon.socket).call("get", json!({ "service": service }));
    match response.get("error") {
        Some(error) => Err(error.clone()),
        None => Ok(response["result"]["secret"].as_str().unwrap().to_owned()),
    }
}

fn this_exe() -> String {
    std::env::current_exe().unwrap().display().to_string()
}

#[test]
fn allow_serves_the_entry_and_is_remembered_per_program() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Allow);
    let daemon = start(&env, "confirm = [\"bank\"]\n");
    set(&daemon, "bank", SECRET);
    set(&daemon, "plain", OTHER_SECRET);

    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(server.count(), 1);
    // The same program again, on another connection: no second prompt.
    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(server.count(), 1);
    // An entry not listed never asks.
    assert_eq!(get(&daemon, "plain").unwrap(), OTHER_SECRET);
    assert_eq!(server.count(), 1);

    // Another program (the CLI) gets its own prompt, once.
    for _ in 0..2 {
        let out = env.cli(&daemon.socket, &["get", "bank"], "");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), SECRET);
    }
    assert_eq!(server.count(), 2);

    let shown = server.shown();
    let cli = latchkey_tests::bin("latchkey")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    assert!(
        shown[0].body.starts_with(&format!("{} asks", this_exe())),
        "{:?}",
        shown[0]
    );
    assert!(
        shown[1].body.starts_with(&format!("{cli} asks")),
        "{:?}",
        shown[1]
    );
    for s in &shown {
        assert_eq!(s.app_name, "latchkey");
        assert_eq!(s.actions, ["allow", "Allow", "deny", "Deny"]);
        assert_eq!(s.expire_timeout, 20_000);
        assert!(
            s.summary.contains("bank") && s.body.contains("bank"),
            "{s:?}"
        );
        assert!(s.body.contains("(account default)"), "{s:?}");
        assert!(
            !s.summary.contains(SECRET) && !s.body.contains(SECRET),
            "{s:?}"
        );
    }
    assert!(
        daemon.logged_within("method=\"confirm\"", 2, START_TIMEOUT),
        "{}",
        daemon.logs()
    );
    let logs = daemon.wait_for_log("result=\"allowed\"");
    assert_eq!(logs.matches("method=\"confirm\"").count(), 2, "{logs}");
    assert!(!logs.contains(SECRET), "{logs}");
}

#[test]
fn deny_refuses_with_not_confirmed_and_is_remembered() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Deny);
    let daemon = start(&env, "confirm = [\"bank:*\"]\n");
    set(&daemon, "bank:main", SECRET);

    let error = get(&daemon, "bank:main").unwrap_err();
    assert_eq!(error["data"]["kind"], "not_confirmed", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("the user denied"), "{message}");
    assert!(!message.contains("remembered"), "{message}");
    assert!(error["data"]["hint"]
        .as_str()
        .unwrap()
        .contains("[policy] confirm"));
    assert_eq!(server.count(), 1);

    // Asked again: refused from memory, no second prompt.
    let error = get(&daemon, "bank:main").unwrap_err();
    assert_eq!(error["data"]["kind"], "not_confirmed");
    assert!(
        error["message"].as_str().unwrap().contains("remembered"),
        "{error}"
    );
    assert_eq!(server.count(), 1);

    // The CLI is asked for separately, is denied too, and exits 13.
    let out = env.cli(&daemon.socket, &["get", "bank:main"], "");
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert_eq!(server.count(), 2);
    daemon.wait_for_log("result=\"denied\"");
    let logs = daemon.wait_for_log("result=\"not_confirmed\"");
    assert!(!logs.contains(SECRET), "{logs}");

    // The audit file has each refusal, with the program; a stop writes out what is queued.
    let (status, _) = daemon.stop();
    assert!(status.success());
    let audit = std::fs::read_to_string(env.root().join(".local/state/latchkey/audit.jsonl"))
        .expect("the audit file");
    assert!(!audit.contains(SECRET));
    let refused: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["method"] == "get" && r["outcome"] == "not_confirmed")
        .collect();
    assert_eq!(refused.len(), 3, "{audit}");
    assert_eq!(refused[0]["entry"]["service"], "bank:main");
    assert_eq!(refused[0]["exe"], this_exe().as_str());
}

#[test]
fn without_a_notification_server_the_entry_is_refused_and_says_why() {
    // A bus, but nobody owns org.freedesktop.Notifications.
    let env = env_with_bus();
    let daemon = start(&env, "confirm = [\"bank\"]\n");
    set(&daemon, "bank", SECRET);
    set(&daemon, "plain", OTHER_SECRET);
    let error = get(&daemon, "bank").unwrap_err();
    assert_eq!(error["data"]["kind"], "not_confirmed", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(
            "no notification server (org.freedesktop.Notifications is not on the session bus)"
        ),
        "{message}"
    );
    assert!(!message.contains(SECRET));
    assert_eq!(get(&daemon, "plain").unwrap(), OTHER_SECRET);
    // Not an answer: a server that appears later is asked.
    let server = NotificationServer::start(env.bus(), Answer::Allow);
    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(server.count(), 1);
    drop(daemon);

    // No session bus at all.
    let env = TestEnv::bare();
    let daemon = start(&env, "confirm = [\"*\"]\n");
    set(&daemon, "bank", SECRET);
    let error = get(&daemon, "bank").unwrap_err();
    assert_eq!(error["data"]["kind"], "not_confirmed", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("cannot connect to the session bus"),
        "{message}"
    );
    let out = env.cli(&daemon.socket, &["get", "bank"], "");
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    assert!(stderr(&out).contains("no one to ask"), "{}", stderr(&out));
}

#[test]
fn a_prompt_nobody_answers_times_out_and_is_closed() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Never);
    let daemon = start(&env, "confirm = [\"bank\"]\nconfirm_timeout_secs = 1\n");
    set(&daemon, "bank", SECRET);
    let error = get(&daemon, "bank").unwrap_err();
    assert_eq!(error["data"]["kind"], "not_confirmed", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("nobody answered the confirmation prompt within 1 s"),
        "{message}"
    );
    let shown = server.shown();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].expire_timeout, 1000);
    // Closed before the client was answered.
    assert_eq!(server.closed(), [shown[0].id]);
    // No answer is kept: the next get asks again.
    let _ = get(&daemon, "bank").unwrap_err();
    assert_eq!(server.count(), 2);
    assert!(daemon.logs().contains("result=\"timed_out\""));
}

#[test]
fn a_set_or_clear_of_the_entry_forgets_the_answers() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Allow);
    let daemon = start(&env, "confirm = [\"bank\"]\n");
    set(&daemon, "bank", SECRET);
    set(&daemon, "plain", OTHER_SECRET);
    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(server.count(), 1);

    // Another entry changing keeps it.
    set(&daemon, "plain", "plain-2");
    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(server.count(), 1);

    set(&daemon, "bank", "bank-2");
    assert_eq!(get(&daemon, "bank").unwrap(), "bank-2");
    assert_eq!(server.count(), 2);
    assert_eq!(get(&daemon, "bank").unwrap(), "bank-2");
    assert_eq!(server.count(), 2);

    let cleared = Rpc::connect(&daemon.socket).ok("clear", json!({"service": "bank"}));
    assert_eq!(cleared["removed"], true);
    set(&daemon, "bank", "bank-3");
    assert_eq!(get(&daemon, "bank").unwrap(), "bank-3");
    assert_eq!(server.count(), 3);
}

#[test]
fn concurrent_gets_share_one_prompt() {
    const CLIENTS: usize = 4;
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Held);
    let daemon = start(&env, "confirm = [\"bank\"]\n");
    set(&daemon, "bank", SECRET);
    let socket = daemon.socket.clone();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                Rpc::connect(&socket).call("get", json!({"service": "bank"}))
            })
        })
        .collect();
    // One prompt is shown; every other client waits on it.
    server.wait_for_count(1, START_TIMEOUT);
    assert!(
        daemon.logged_within(
            "waiting for the confirmation prompt already shown",
            CLIENTS - 1,
            START_TIMEOUT
        ),
        "{}",
        daemon.logs()
    );
    server.answer_all(Answer::Allow);
    for client in clients {
        let response = client.join().unwrap();
        assert_eq!(response["result"]["secret"], SECRET, "{response}");
    }
    assert_eq!(server.count(), 1);
}

#[test]
fn at_most_eight_prompts_wait_at_once() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Held);
    let daemon = start(&env, "confirm = [\"*\"]\n");
    for n in 0..9 {
        set(&daemon, &format!("entry{n}"), SECRET);
    }
    let socket = daemon.socket.clone();
    let waiting: Vec<_> = (0..8)
        .map(|n| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                Rpc::connect(&socket).call("get", json!({"service": format!("entry{n}")}))
            })
        })
        .collect();
    server.wait_for_count(8, START_TIMEOUT);
    let error = get(&daemon, "entry8").unwrap_err();
    assert_eq!(error["data"]["kind"], "not_confirmed", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("too many confirmation prompts"),
        "{error}"
    );
    assert_eq!(server.count(), 8);
    server.answer_all(Answer::Deny);
    for client in waiting {
        let response = client.join().unwrap();
        assert_eq!(
            response["error"]["data"]["kind"], "not_confirmed",
            "{response}"
        );
    }
    // Answered: room again.
    let last = std::thread::spawn(move || get(&daemon, "entry8"));
    server.wait_for_count(9, START_TIMEOUT);
    server.answer_all(Answer::Deny);
    let error = last.join().unwrap().unwrap_err();
    assert!(
        error["message"].as_str().unwrap().contains("denied"),
        "{error}"
    );
}

#[test]
fn the_grant_check_runs_before_the_prompt() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Allow);
    let daemon = start(&env, "require_grant = [\"bank\"]\nconfirm = [\"bank\"]\n");
    set(&daemon, "bank", SECRET);
    let error = get(&daemon, "bank").unwrap_err();
    assert_eq!(error["data"]["kind"], "permission_denied", "{error}");
    assert_eq!(server.count(), 0);

    let mut rpc = Rpc::connect(&daemon.socket);
    let grant = rpc.ok(
        "grant_create",
        json!({"services": ["bank"], "ttl_secs": 600}),
    );
    let mut rpc = Rpc::connect(&daemon.socket);
    let got = rpc.ok("get", json!({"service": "bank", "grant": grant["token"]}));
    assert_eq!(got["secret"], SECRET);
    assert_eq!(server.count(), 1);
    let shown = server.shown();
    assert!(!shown[0].body.contains(grant["token"].as_str().unwrap()));
}

#[test]
fn hostile_confirm_settings_are_refused_and_reload_names_a_change() {
    let env = TestEnv::bare();
    let path = env.root().join("config.toml");
    for (policy, expected) in [
        (
            "confirm = [\"ba*nk\"]\n",
            "policy.confirm: a service pattern may only be",
        ),
        ("confirm = [\"\"]\n", "policy.confirm: a service pattern"),
        (
            "confirm = \"bank\"\n",
            "line 2, column 11: invalid type: a string, expected a sequence",
        ),
        (
            "confirm = [\"bank\"]\nconfirm_timeout_secs = 86400\n",
            "policy.confirm_timeout_secs must be between 1 and 600",
        ),
        (
            "confirm = [\"bank\"]\nconfirm_timeout_secs = 0\n",
            "policy.confirm_timeout_secs must be between 1 and 600",
        ),
        (
            "confirm = [\"bank\"]\nconfirm_timeout_secs = -1\n",
            "line 3, column 24: invalid value",
        ),
    ] {
        std::fs::write(&path, format!("[policy]\n{policy}")).unwrap();
        let refused = env.try_start_daemon(&["--no-dbus", "--config", path.to_str().unwrap()], &[]);
        let (status, logs) = match refused {
            Ok(_) => panic!("latchkeyd started with {policy:?}"),
            Err(refused) => refused,
        };
        assert!(!status.success());
        assert!(logs.contains(expected), "{policy:?}: {logs}");
    }

    // A running daemon keeps its confirm policy until a restart, and says so.
    let daemon = start(&env, "confirm = [\"bank\"]\n");
    std::fs::write(
        &path,
        "[policy]\nconfirm = [\"bank\", \"card\"]\nconfirm_timeout_secs = 5\n",
    )
    .unwrap();
    let out = env.cli(&daemon.socket, &["reload", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        result["restart_needed"],
        json!(["policy.confirm", "policy.confirm_timeout_secs"])
    );
}

#[test]
fn a_dbus_caller_is_asked_for_by_its_executable() {
    let env = env_with_bus();
    let server = NotificationServer::start(env.bus(), Answer::Allow);
    // Served on the bus too: the prompt goes out on a connection of its own.
    let daemon = start_with(&env, "confirm = [\"bank\"]\n", &[]);
    set(&daemon, "bank", SECRET);
    let out = env.bus().busctl(&[
        "--json=short",
        "call",
        "dev.latchkey.Latchkey1",
        "/dev/latchkey/Latchkey1",
        "dev.latchkey.Latchkey1",
        "Get",
        "ssa{sv}",
        "bank",
        "",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(SECRET), "{}", stdout(&out));
    let shown = server.shown();
    assert_eq!(shown.len(), 1);
    assert!(shown[0].body.contains("/busctl asks"), "{:?}", shown[0]);
    // The test process is another program: asked for separately.
    assert_eq!(get(&daemon, "bank").unwrap(), SECRET);
    assert_eq!(server.count(), 2);
}
