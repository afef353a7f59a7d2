//! The binaries as a user meets them: store selection, start-up and shutdown, exit codes,
//! secrets only from stdin, and refusal of other users.

use std::os::unix::fs::PermissionsExt;

#[cfg(target_os = "linux")]
use latchkey_tests::users::OtherUser;
use latchkey_tests::{stderr, stdout, TestEnv};
use serde_json::Value;

// Linux: the Secret Service, the session bus and `useradd` are Linux parts.
#[cfg(target_os = "linux")]
#[test]
fn explicit_secret_service_without_one_is_an_error_and_other_stores_are_refused() {
    let env = TestEnv::bare();
    let Err((status, logs)) = env.try_start_daemon(&["--store", "secret-service"], &[]) else {
        panic!("the daemon started without a Secret Service");
    };
    assert_eq!(status.code(), Some(1));
    assert!(logs.contains("cannot open the store"), "{logs}");
    // Unknown stores, and stores of other platforms, are usage errors that list this
    // platform's stores; so does the help.
    for other in ["floppy", "keychain", "credential-manager"] {
        let Err((status, logs)) = env.try_start_daemon(&["--store", other], &[]) else {
            panic!("the daemon accepted the store {other}");
        };
        assert_eq!(status.code(), Some(2), "{logs}");
        assert!(
            logs.contains("[possible values: auto, secret-service, file, memory]"),
            "{logs}"
        );
    }
    let help = env
        .command(&latchkey_tests::bin("latchkeyd"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        stdout(&help).contains("[possible values: auto, secret-service, file, memory]"),
        "{}",
        stdout(&help)
    );
}

#[test]
fn a_config_file_is_read() {
    let env = TestEnv::bare();
    let config = env.root().join("custom.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"memory\"\n[limits]\nmax_line = 300\n[providers.github]\nclient_id = \"later\"\n",
    )
    .unwrap();
    let daemon = env.start_daemon(&["--config", config.to_str().unwrap()]);
    assert!(
        daemon.logs().contains("memory store requested"),
        "{}",
        daemon.logs()
    );
    let long = format!("{}\n", "x".repeat(400));
    let out = env.cli(&daemon.socket, &["set", "svc"], &long);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("limit"), "{}", stderr(&out));

    std::fs::write(&config, "[limits]\nmax_line = \"big\"\n").unwrap();
    let Err((status, logs)) = env.try_start_daemon(&["--config", config.to_str().unwrap()], &[])
    else {
        panic!("a broken config was accepted");
    };
    assert_eq!(status.code(), Some(1));
    assert!(logs.contains("invalid configuration"), "{logs}");
}

#[test]
fn one_daemon_per_socket_and_stale_sockets_are_replaced() {
    let env = TestEnv::bare();
    let socket = env.socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    // A socket file left behind by a crashed daemon.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let daemon = env.start_daemon(&[]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    let Err((status, logs)) = env.try_start_daemon(&[], &[]) else {
        panic!("a second daemon started on a live socket");
    };
    assert_eq!(status.code(), Some(1));
    assert!(logs.contains("already serving"), "{logs}");
    // The first daemon is unharmed.
    assert!(env.cli(&socket, &["version"], "").status.success());
    let (exit, logs) = daemon.stop();
    assert!(exit.success(), "{logs}");
    assert!(logs.contains("latchkeyd stopped"));
    assert!(!socket.exists());
}

#[test]
fn exit_codes_and_messages_when_the_daemon_is_not_running() {
    let env = TestEnv::bare();
    let out = env.cli(&env.socket(), &["get", "github"], "");
    assert_eq!(out.status.code(), Some(7));
    assert!(
        stderr(&out).contains("latchkeyd is not running"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("start it"), "{}", stderr(&out));
}

#[test]
fn secrets_come_only_from_stdin() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let s = &daemon.socket;
    // A secret given as an argument is a usage error, and nothing is stored.
    let out = env.cli(s, &["set", "svc", "sk-on-argv"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = env.cli(s, &["set", "svc", "--key", "sk-on-argv"], "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.cli(s, &["get", "svc"], "").status.code(), Some(3));
    // Empty stdin, a password without a username, a broken bundle: usage errors.
    assert_eq!(env.cli(s, &["set", "svc"], "").status.code(), Some(2));
    assert_eq!(
        env.cli(s, &["set", "svc", "--kind", "password"], "pw")
            .status
            .code(),
        Some(2)
    );
    let out = env.cli(
        s,
        &["set", "svc", "--bundle"],
        "{\"kind\":\"oauth2\",\"access_token\":\"tok-in-broken-bundle\"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out).contains("tok-in-broken-bundle"),
        "{}",
        stderr(&out)
    );
    // Only the trailing newline is stripped.
    assert!(env
        .cli(s, &["set", "svc"], "  spaced secret  \n")
        .status
        .success());
    assert_eq!(
        stdout(&env.cli(s, &["get", "svc"], "")),
        "  spaced secret  \n"
    );
}

#[test]
fn exit_codes_follow_error_kinds() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let s = &daemon.socket;
    let expired = r#"{"kind":"oauth2","access_token":"old","refresh_token":"r","expires_at":"2000-01-01T00:00:00Z","scopes":["a"]}"#;
    assert!(env
        .cli(s, &["set", "old", "--bundle"], expired)
        .status
        .success());
    assert_eq!(env.cli(s, &["get", "missing"], "").status.code(), Some(3));
    assert_eq!(env.cli(s, &["get", "old"], "").status.code(), Some(4));
    assert_eq!(
        env.cli(s, &["get", "old", "--scope", "b"], "")
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        env.cli(s, &["get", "bad\u{1b}name"], "").status.code(),
        Some(2)
    );
    let status: Value =
        serde_json::from_str(&stdout(&env.cli(s, &["status", "old", "--json"], ""))).unwrap();
    assert_eq!(status["entries"][0]["state"], "expired");
    assert_eq!(status["entries"][0]["has_refresh_token"], true);
    let table = stdout(&env.cli(s, &["status"], ""));
    assert!(table.contains("expired"), "{table}");
    // `clear` is idempotent.
    assert!(env.cli(s, &["clear", "old"], "").status.success());
    let again = env.cli(s, &["clear", "old"], "");
    assert!(again.status.success());
    assert!(stderr(&again).contains("nothing to remove"));
}

// Linux: the Secret Service, the session bus and `useradd` are Linux parts.
#[cfg(target_os = "linux")]
#[test]
fn another_user_is_disconnected_before_being_read() {
    let Some(other) = OtherUser::create() else {
        return;
    };
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    assert!(env
        .cli(&daemon.socket, &["set", "mine"], "not-for-others")
        .status
        .success());
    // Open the folder and socket to everyone, so only the peer-credential check stands guard.
    for path in [
        env.root(),
        env.runtime_dir.as_path(),
        daemon.socket.parent().unwrap(),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"mine"}}"#;
    let out = other
        .command("latchkey-test-peer")
        .args(["connect", daemon.socket.to_str().unwrap(), request])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "closed", "{}", stderr(&out));
    let logs = daemon.wait_for_log("refused a connection from another user");
    assert!(logs.contains(&format!("uid={}", other.uid)), "{logs}");
    // The owner is still served.
    assert_eq!(
        stdout(&env.cli(&daemon.socket, &["get", "mine"], "")),
        "not-for-others\n"
    );
}

#[test]
fn a_store_without_a_lock_says_so_for_unlock_lock_and_passwd() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--store", "memory"]);
    let status = env.cli(&daemon.socket, &["status", "--json"], "");
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["daemon"]["unlock_with"], "nothing", "{status}");
    assert_eq!(
        status["daemon"]["store_reason"], "memory store requested",
        "{status}"
    );
    let text = env.cli(&daemon.socket, &["status"], "");
    assert!(
        stdout(&text).contains(
            "store: memory (memory only: entries are lost when latchkeyd stops, never locked)"
        ),
        "{}",
        stdout(&text)
    );
    let unlock = env.cli(&daemon.socket, &["unlock"], "a passphrase\n");
    assert_eq!(unlock.status.code(), Some(2), "{}", stderr(&unlock));
    assert!(
        stderr(&unlock).contains("the memory store has no lock"),
        "{}",
        stderr(&unlock)
    );
    let lock = env.cli(&daemon.socket, &["lock"], "");
    assert_eq!(lock.status.code(), Some(2), "{}", stderr(&lock));
    assert!(
        stderr(&lock).contains("has no lock that latchkey controls"),
        "{}",
        stderr(&lock)
    );
    let passwd = env.cli(&daemon.socket, &["passwd"], "old one\nnew one\n");
    assert_eq!(passwd.status.code(), Some(2), "{}", stderr(&passwd));
    assert!(
        stderr(&passwd).contains("has no passphrase to change"),
        "{}",
        stderr(&passwd)
    );
    // Nothing the user typed shows up anywhere.
    let logs = daemon.logs();
    for said in [&unlock, &lock, &passwd] {
        assert!(!stderr(said).contains("passphrase\n") && !stdout(said).contains("one"));
    }
    assert!(
        !logs.contains("a passphrase") && !logs.contains("new one"),
        "{logs}"
    );
}
