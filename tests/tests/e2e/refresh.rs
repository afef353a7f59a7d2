//! The refresh semantics of issue 9 against the real daemon, keyring and loopback token
//! endpoint: a storm of gets of a token that lives two seconds shares one refresh; a 503 is
//! followed by a retry within about a second, not a fixed cool-down; a logout racing a slow
//! refresh revokes the refresh token that refresh receives.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use latchkey_tests::oauth_server::{Fault, TokenServer};
use latchkey_tests::{Daemon, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};

use crate::support::{daemon_with_config, provider_section, Rpc};

const EXPIRED: &str = r#"{"kind":"oauth2","access_token":"ATOKEN-0","refresh_token":"RTOKEN-0","expires_at":"2001-01-01T00:00:00Z","scopes":["repo"],"provider":"test"}"#;

const GET: &[u8] =
    b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"api\"}}\n";

/// Waits (with a deadline) until `what` holds: an event the test cannot be told of directly.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

/// A daemon refreshing at `server` (with its revocation endpoint), holding `EXPIRED` as `api`.
fn daemon_with_expired_entry(env: &TestEnv, server: &TokenServer) -> Daemon {
    server.seed("RTOKEN-0");
    let daemon = daemon_with_config(env, &provider_section("test", server, true), "info");
    let set = env.cli(&daemon.socket, &["set", "api", "--bundle"], EXPIRED);
    assert!(set.status.success(), "{set:?}");
    daemon
}

/// The secret or error kind of every answer on `stream`, `count` of them.
fn answers(stream: UnixStream, count: usize) -> Vec<String> {
    let mut reader = BufReader::new(stream);
    (0..count)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let response: Value = serde_json::from_str(&line).unwrap();
            match response["result"]["secret"].as_str() {
                Some(secret) => secret.to_owned(),
                None => format!("error {}", response["error"]["data"]["kind"]),
            }
        })
        .collect()
}

#[test]
fn a_thousand_gets_of_a_two_second_token_share_one_refresh() {
    let server = TokenServer::start();
    server.set_expires_in(2);
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_expired_entry(&env, &server);
    // The first get starts the refresh; its answer is held at the provider while the other
    // 999 gets arrive and line up behind it.
    server.hold_token_endpoint();
    let mut connections: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    for stream in &mut connections {
        stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    }
    connections[0].write_all(GET).unwrap();
    wait_until("the refresh is out", || server.held_answers() == 1);
    for (n, stream) in connections.iter_mut().enumerate() {
        let count = if n == 0 { 19 } else { 20 };
        stream.write_all(&GET.repeat(count)).unwrap();
    }
    server.release_token_endpoint();
    let secrets: Vec<String> = connections
        .into_iter()
        .flat_map(|stream| answers(stream, 20))
        .collect();
    assert_eq!(secrets.len(), 1000);
    let odd: Vec<_> = secrets.iter().filter(|s| *s != "ATOKEN-1").collect();
    assert!(
        odd.is_empty(),
        "{} answers differ: {:?}",
        odd.len(),
        &odd[..odd.len().min(5)]
    );
    assert_eq!(server.refresh_requests(), 1);
    assert_eq!(server.reuse_detected(), 0);
    let (exit, _) = daemon.stop();
    assert!(exit.success());
}

#[test]
fn after_a_503_the_next_refresh_goes_out_within_about_a_second() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_expired_entry(&env, &server);
    let mut rpc = Rpc::connect(&daemon.socket);
    // Every attempt of one refresh fails (the refresher tries three times).
    server.fail_next(&[Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
    let error = rpc.err("get", json!({ "service": "api" }));
    assert_eq!(error["data"]["kind"], "refresh_failed", "{error}");
    assert_eq!(error["data"]["retryable"], true, "{error}");
    let failed_at = Instant::now();
    // The provider is back: a client asking again is served within about a second (the
    // first backoff), not after a fixed half-minute cool-down.
    let token = loop {
        let response = rpc.call("get", json!({ "service": "api" }));
        if let Some(secret) = response["result"]["secret"].as_str() {
            break secret.to_owned();
        }
        assert_eq!(response["error"]["data"]["kind"], "refresh_failed");
        assert!(
            failed_at.elapsed() < Duration::from_secs(5),
            "no refresh within 5 s of the failure"
        );
        // Polling pace only; the time under test is the daemon's backoff.
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(token, "ATOKEN-1");
    assert!(failed_at.elapsed() < Duration::from_secs(3));
    assert_eq!(server.refresh_requests(), 4);
    let (exit, _) = daemon.stop();
    assert!(exit.success());
}

#[test]
fn a_logout_during_a_held_refresh_revokes_the_rotated_token_and_the_entry_stays_gone() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_expired_entry(&env, &server);
    // The refresh reaches the provider, which rotates RTOKEN-0 into RTOKEN-1 and holds the
    // answer: the daemon has not seen RTOKEN-1 yet when the logout comes.
    server.hold_token_endpoint();
    let getter = UnixStream::connect(&daemon.socket).unwrap();
    getter.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    (&getter).write_all(GET).unwrap();
    wait_until("the refresh is out", || server.held_answers() == 1);
    let mut rpc = Rpc::connect(&daemon.socket);
    let logout = rpc.ok("logout", json!({ "service": "api" }));
    assert_eq!(logout["removed"], true, "{logout}");
    assert_eq!(logout["revocation"], "revoked", "{logout}");
    server.release_token_endpoint();
    assert_eq!(answers(getter, 1), ["error \"not_found\""]);
    wait_until("the rotated refresh token is revoked", || {
        server.revocation_log().iter().any(|t| t == "RTOKEN-1")
    });
    assert!(server.revocation_log().iter().any(|t| t == "RTOKEN-0"));
    // The entry stays gone: in this daemon, and in the keychain for the next one.
    let error = rpc.err("get", json!({ "service": "api" }));
    assert_eq!(error["data"]["kind"], "not_found", "{error}");
    assert_eq!(rpc.ok("list", Value::Null)["entries"], json!([]));
    let (exit, logs) = daemon.stop();
    assert!(exit.success(), "{logs}");
    assert!(!logs.contains("RTOKEN"), "a token in the logs");
    let again = daemon_with_config(&env, &provider_section("test", &server, true), "info");
    let mut rpc = Rpc::connect(&again.socket);
    assert_eq!(rpc.ok("list", Value::Null)["entries"], json!([]));
    let (exit, _) = again.stop();
    assert!(exit.success());
}

/// A second daemon on the same keychain and data folder as `env`'s default one, serving
/// `second/latchkey.sock` in the runtime folder, off the bus (one name per bus).
fn second_daemon(env: &TestEnv, config: &std::path::Path) -> Daemon {
    let folder = env.runtime_dir.join("second");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let socket = folder.join("latchkey.sock");
    env.start_daemon_with(
        &[
            "--config",
            config.to_str().unwrap(),
            "--no-dbus",
            "--socket",
            socket.to_str().unwrap(),
        ],
        &[("RUST_LOG", "info")],
    )
}

#[test]
fn two_daemons_on_one_keychain_never_present_a_refresh_token_twice() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    let env = TestEnv::with_keyring();
    let config = env.root().join("config.toml");
    std::fs::write(&config, provider_section("test", &server, true)).unwrap();
    let first = env.start_daemon_with(
        &["--config", config.to_str().unwrap(), "--no-dbus"],
        &[("RUST_LOG", "info")],
    );
    let bundle: Value = serde_json::from_str(EXPIRED).unwrap();
    Rpc::connect(&first.socket).ok("set", json!({ "service": "api", "bundle": bundle }));
    // Started after the set, so it knows the entry (from the keychain and the index).
    let second = second_daemon(&env, &config);
    second.wait_for_log("another latchkeyd uses this keychain and data folder");
    // The first daemon's refresh reaches the provider, which rotates RTOKEN-0 and holds the
    // answer; meanwhile clients of both daemons ask for the token.
    server.hold_token_endpoint();
    let opener = UnixStream::connect(&first.socket).unwrap();
    (&opener).write_all(GET).unwrap();
    wait_until("the first daemon's refresh is out", || {
        server.held_answers() == 1
    });
    let mut streams = vec![(opener, 1)];
    for socket in [&first.socket, &second.socket] {
        for _ in 0..4 {
            let stream = UnixStream::connect(socket).unwrap();
            (&stream).write_all(&GET.repeat(5)).unwrap();
            streams.push((stream, 5));
        }
    }
    // The second daemon waits for the first one's refresh (or, wrongly, sends RTOKEN-0 too).
    wait_until("the second daemon waits or refreshes", || {
        second
            .logs()
            .contains("another latchkeyd is refreshing this entry")
            || server.held_answers() > 1
    });
    server.release_token_endpoint();
    let secrets: Vec<String> = streams
        .into_iter()
        .flat_map(|(stream, count)| {
            stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
            answers(stream, count)
        })
        .collect();
    assert_eq!(secrets.len(), 41);
    assert_eq!(
        server.reuse_detected(),
        0,
        "a refresh token was presented twice"
    );
    assert_eq!(server.refresh_requests(), 1);
    assert!(secrets.iter().all(|s| s == "ATOKEN-1"), "{secrets:?}");
    assert!(!server.is_revoked("RTOKEN-1"));
    for daemon in [first, second] {
        let (exit, logs) = daemon.stop();
        assert!(exit.success());
        assert!(!logs.contains("TOKEN-"), "a token in the logs:\n{logs}");
    }
}
