//! Refreshing through the daemon against a real token endpoint on 127.0.0.1: one refresh for a
//! storm of callers over many connections, the rotated token saved in the keyring, and each
//! fault giving its documented outcome with nothing wrong written.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use latchkey_tests::oauth_server::{Fault, TokenServer};
use latchkey_tests::{stderr, stdout, Daemon, RawConnection, TestEnv, START_TIMEOUT};
use serde_json::Value;

const EXPIRED: &str = r#"{"kind":"oauth2","access_token":"ATOKEN-0","refresh_token":"RTOKEN-0","expires_at":"2001-01-01T00:00:00Z","scopes":["repo"],"provider":"test"}"#;
/// A `get` of the entry `api` as one request line.
const GET_API: &str = r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"api"}}"#;

fn daemon_with_provider(env: &TestEnv, server: &TokenServer, log: &str) -> Daemon {
    let config = env.root().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.test]\ntoken_url = \"{}\"\nclient_id = \"latchkey-test\"\n",
            server.token_url()
        ),
    )
    .unwrap();
    env.start_daemon_with(
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", log)],
    )
}

fn stored_document(env: &TestEnv) -> Value {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "api", "account", "default"])
        .env("DBUS_SESSION_BUS_ADDRESS", env.bus().address())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_storm_of_gets_over_fifty_connections_refreshes_once() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_provider(&env, &server, "info");
    assert!(env
        .cli(&daemon.socket, &["set", "api", "--bundle"], EXPIRED)
        .status
        .success());

    // 50 connections, each with 20 pipelined gets, all sent before any answer is read.
    let request =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"api\"}}\n";
    let mut connections: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    for stream in &mut connections {
        stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
        stream.write_all(&request.repeat(20)).unwrap();
    }
    let mut secrets = Vec::new();
    for stream in connections {
        let mut reader = BufReader::new(stream);
        for _ in 0..20 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let response: Value = serde_json::from_str(&line).unwrap();
            secrets.push(
                response["result"]["secret"]
                    .as_str()
                    .unwrap_or("<error>")
                    .to_owned(),
            );
        }
    }
    assert_eq!(secrets.len(), 1000);
    assert!(
        secrets.iter().all(|s| s == "ATOKEN-1"),
        "{:?}",
        &secrets[..5]
    );
    assert_eq!(server.refresh_requests(), 1);
    assert_eq!(server.reuse_detected(), 0);
    // The rotated refresh token is in the keyring; the status shows the refresh.
    assert_eq!(stored_document(&env)["refresh_token"], "RTOKEN-1");
    let status: Value =
        serde_json::from_str(&stdout(&env.cli(&daemon.socket, &["status", "--json"], ""))).unwrap();
    assert_eq!(status["entries"][0]["state"], "valid");
    assert!(status["entries"][0]["last_refreshed_at"].is_string());
    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(!logs.contains("RTOKEN"), "a refresh token reached the log");
    assert!(!logs.contains("ATOKEN"), "an access token reached the log");
}

#[test]
fn faults_give_their_documented_outcomes_and_write_nothing_wrong() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    let env = TestEnv::with_keyring();
    // Trace logging, HTTP and D-Bus internals included: no token may show up in it.
    let daemon = daemon_with_provider(&env, &server, "trace");
    let s = &daemon.socket;
    assert!(env
        .cli(s, &["set", "api", "--bundle"], EXPIRED)
        .status
        .success());

    // Unusable answers: refresh_failed (exit 9), not retryable, the stored token untouched.
    for fault in [
        Fault::Garbage,
        Fault::MissingAccessToken,
        Fault::UnknownTokenType,
    ] {
        // A fresh `set` each time: a refusal starts a cool-down for the entry it hit.
        assert!(env
            .cli(s, &["set", "api", "--bundle"], EXPIRED)
            .status
            .success());
        server.fail_next(std::slice::from_ref(&fault));
        // Both gets pipelined on one connection: the daemon takes the second straight after
        // answering the first, inside the ~1 s cool-down the first starts, however loaded the
        // machine (a round trip of the test between them once took longer than that in CI).
        let mut conn = RawConnection::open(s);
        conn.send(GET_API);
        conn.send(GET_API);
        let first = conn.answer();
        assert_eq!(
            first["error"]["data"]["kind"], "refresh_failed",
            "{fault:?}"
        );
        assert_eq!(
            stored_document(&env)["refresh_token"],
            "RTOKEN-0",
            "{fault:?}"
        );
        // During the cool-down the provider is not asked again (its faults are used up: a
        // second request would have succeeded).
        let before = server.refresh_requests();
        let second = conn.answer();
        assert_eq!(
            second["error"]["data"]["kind"], "refresh_failed",
            "{fault:?}"
        );
        assert_eq!(server.refresh_requests(), before, "{fault:?}");
    }
    assert!(env
        .cli(s, &["set", "api", "--bundle"], EXPIRED)
        .status
        .success());
    // A 503 and a 429 with Retry-After are retried inside one get.
    server.fail_next(&[Fault::Status(503), Fault::TooManyRequests(1)]);
    let before = server.refresh_requests();
    let out = env.cli(s, &["get", "api"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ATOKEN-1\n");
    assert_eq!(server.refresh_requests(), before + 3);
    assert_eq!(stored_document(&env)["refresh_token"], "RTOKEN-1");

    // Three 500s in a row on an expired token: refresh_failed, retryable.
    assert!(env
        .cli(
            s,
            &["set", "api", "--bundle"],
            &EXPIRED.replace("RTOKEN-0", "RTOKEN-1")
        )
        .status
        .success());
    server.fail_next(&[Fault::Status(500), Fault::Status(500), Fault::Status(500)]);
    let mut conn = RawConnection::open(s);
    // Pipelined, as above: the second get lands inside the cool-down the first starts.
    conn.send(GET_API);
    conn.send(GET_API);
    let raw = conn.answer();
    assert_eq!(raw["error"]["data"]["kind"], "refresh_failed");
    assert_eq!(raw["error"]["data"]["retryable"], true);
    assert_eq!(stored_document(&env)["refresh_token"], "RTOKEN-1");

    // During the cool-down after that failure the provider is not asked again (its faults
    // are used up: a second request would have succeeded).
    let requests = server.refresh_requests();
    let again = conn.answer();
    assert_eq!(again["error"]["data"]["kind"], "refresh_failed");
    assert_eq!(server.refresh_requests(), requests);

    // invalid_grant (after a new set, which ends the cool-down): needs_login, remembered, and
    // no more requests to the provider.
    assert!(env
        .cli(
            s,
            &["set", "api", "--bundle"],
            &EXPIRED.replace("RTOKEN-0", "RTOKEN-1")
        )
        .status
        .success());
    server.fail_next(&[Fault::InvalidGrant]);
    assert_eq!(env.cli(s, &["get", "api"], "").status.code(), Some(4));
    let requests = server.refresh_requests();
    assert_eq!(env.cli(s, &["get", "api"], "").status.code(), Some(4));
    assert_eq!(server.refresh_requests(), requests);
    let status: Value =
        serde_json::from_str(&stdout(&env.cli(s, &["status", "--json"], ""))).unwrap();
    assert_eq!(status["entries"][0]["state"], "needs_login");
    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(
        logs.contains("hyper") || logs.contains("reqwest"),
        "HTTP tracing was not on"
    );
    assert!(!logs.contains("RTOKEN"), "a refresh token reached the log");
    assert!(!logs.contains("ATOKEN"), "an access token reached the log");
}

#[test]
fn a_token_endpoint_that_hangs_or_resets_fails_the_refresh_retryably_and_in_bounded_time() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    let env = TestEnv::with_keyring();
    let config = env.root().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[oauth]\ntimeout_secs = 1\n[providers.test]\ntoken_url = \"{}\"\nclient_id = \"latchkey-test\"\n",
            server.token_url()
        ),
    )
    .unwrap();
    let daemon = env.start_daemon(&["--config", config.to_str().unwrap()]);
    let s = &daemon.socket;
    let get =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"api\"}}\n";
    for faults in [
        vec![Fault::Reset, Fault::Reset, Fault::Reset],
        vec![Fault::Hang, Fault::Hang, Fault::Hang],
    ] {
        // A fresh `set` ends the previous failure's cool-down.
        assert!(env
            .cli(s, &["set", "api", "--bundle"], EXPIRED)
            .status
            .success());
        server.fail_next(&faults);
        let before = server.refresh_requests();
        let started = std::time::Instant::now();
        let answer = latchkey_tests::raw_exchange(s, get, 1);
        assert_eq!(
            answer[0]["error"]["data"]["kind"], "refresh_failed",
            "{faults:?}"
        );
        assert_eq!(answer[0]["error"]["data"]["retryable"], true);
        assert_eq!(server.refresh_requests(), before + 3, "three attempts");
        // Three attempts of at most 1 s each plus backoff: well inside the read timeout.
        assert!(started.elapsed() < START_TIMEOUT, "{:?}", started.elapsed());
        assert_eq!(stored_document(&env)["refresh_token"], "RTOKEN-0");
    }
    // The provider is back: the next refresh (after a new set) works.
    assert!(env
        .cli(s, &["set", "api", "--bundle"], EXPIRED)
        .status
        .success());
    let out = env.cli(s, &["get", "api"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored_document(&env)["refresh_token"], "RTOKEN-1");
}
