//! Text a provider sends is never echoed unfiltered: a token endpoint whose errors repeat the
//! refresh token, the authorization code, the PKCE verifier or the device code, or carry
//! control characters, ANSI escapes and huge text, fails the refresh or login with a message
//! in which none of that appears: not in the client's error, the CLI's stderr, the browser's
//! page or the daemon's log at trace level.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use latchkey_tests::oauth_server::{Fault, TokenServer, HOSTILE_MARK};
use latchkey_tests::{bin, http, raw_exchange, stderr, TestEnv};
use serde_json::{json, Value};

use super::support::{daemon_with_config, Rpc};

const EXPIRED: &str = r#"{"kind":"oauth2","access_token":"ATOKEN-0","refresh_token":"RTOKEN-0","expires_at":"2001-01-01T00:00:00Z","scopes":["repo"],"provider":"test"}"#;

/// A provider `test` with the server's authorization, token and device endpoints.
fn config(server: &TokenServer) -> String {
    format!(
        "[providers.test]\nclient_id = \"latchkey-test\"\nauthorization_url = \"{}\"\n\
         token_url = \"{}\"\ndevice_authorization_url = \"{}\"\n",
        server.authorize_url(),
        server.token_url(),
        server.device_authorization_url(),
    )
}

/// Panics if `text` (from `place`) holds any of `secrets`, an escape byte, a control
/// character other than a line break, or the hostile fault's mark.
fn assert_clean(place: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{place} repeats {secret}:\n{text}"
        );
    }
    assert!(
        !text.contains(HOSTILE_MARK),
        "{place} repeats hostile text:\n{text}"
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{place} holds control characters: {text:?}"
    );
}

const GET: &[u8] =
    b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"api\"}}\n";

#[test]
fn refresh_errors_that_echo_the_refresh_token_or_carry_escapes_are_not_repeated() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, &config(&server), "trace");
    let s = &daemon.socket;
    let secrets = ["RTOKEN-0".to_owned()];
    for fault in [
        Fault::EchoSecrets,
        Fault::EchoSecretsInContentType,
        Fault::HostileText,
    ] {
        // A fresh `set` each time: a refusal starts a cool-down for the entry it hit.
        let set = env.cli(s, &["set", "api", "--bundle"], EXPIRED);
        assert!(set.status.success(), "{}", stderr(&set));
        server.fail_next(std::slice::from_ref(&fault));
        let answer = raw_exchange(s, GET, 1);
        let error = &answer[0]["error"];
        assert_eq!(
            error["data"]["kind"], "refresh_failed",
            "{fault:?}: {error}"
        );
        assert_eq!(error["data"]["retryable"], false, "{fault:?}: {error}");
        assert_clean(
            &format!("the error for {fault:?}"),
            &error.to_string(),
            &secrets,
        );
        assert_clean(
            &format!("the message for {fault:?}"),
            error["message"].as_str().unwrap(),
            &secrets,
        );

        let set = env.cli(s, &["set", "api", "--bundle"], EXPIRED);
        assert!(set.status.success(), "{}", stderr(&set));
        server.fail_next(std::slice::from_ref(&fault));
        let out = env.cli(s, &["get", "api"], "");
        assert_eq!(out.status.code(), Some(9), "{fault:?}: {}", stderr(&out));
        assert_clean(&format!("the CLI for {fault:?}"), &stderr(&out), &secrets);
    }
    assert_eq!(
        server.refresh_requests(),
        6,
        "every fault reached the provider"
    );
    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(logs.contains("TRACE"), "trace logging was not on");
    assert_clean("the daemon's log", &logs, &secrets);
}

/// Starts `latchkey login test --no-browser`, plays the browser through the authorization
/// URL it prints, and returns the CLI's exit code, its stderr and the browser's last page.
fn cli_browser_login(env: &TestEnv, socket: &std::path::Path) -> (Option<i32>, String, String) {
    let mut child = env
        .command(&bin("latchkey"))
        .env("LATCHKEY_SOCKET", socket)
        .args(["login", "test", "--no-browser"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let hops = http::follow(url.trim(), 3);
    let page = hops.last().unwrap().body.clone();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err, page)
}

#[test]
fn login_errors_that_echo_the_code_verifier_or_device_code_are_not_repeated() {
    let server = TokenServer::start();
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, &config(&server), "trace");

    // Browser logins through the CLI: the token endpoint echoes the code and the verifier,
    // then answers with hostile text.
    for fault in [Fault::EchoSecrets, Fault::HostileText] {
        server.fail_next(std::slice::from_ref(&fault));
        let (code, err, page) = cli_browser_login(&env, &daemon.socket);
        assert_eq!(code, Some(10), "{fault:?}: {err}");
        let seen = server.grants_seen();
        assert!(
            seen.len() >= 2,
            "no code and verifier were presented: {seen:?}"
        );
        assert_clean(&format!("the CLI for {fault:?}"), &err, &seen);
        assert_clean(&format!("the page for {fault:?}"), &page, &seen);
    }

    // Over the socket, the same for a browser login and a device login.
    let mut rpc = Rpc::connect(&daemon.socket);
    server.fail_next(&[Fault::EchoSecrets]);
    let started = rpc.ok("login", json!({ "provider": "test", "account": "b" }));
    http::follow(started["authorization_url"].as_str().unwrap(), 3);
    let browser = rpc.err("login_wait", json!({ "login_id": started["login_id"] }));
    server.fail_next(&[Fault::EchoSecrets]);
    let started = rpc.ok(
        "login",
        json!({ "provider": "test", "account": "d", "device": true }),
    );
    let device = rpc.err("login_wait", json!({ "login_id": started["login_id"] }));
    let seen = server.grants_seen();
    assert!(
        seen.len() >= 7,
        "codes, verifiers and a device code: {seen:?}"
    );
    for (what, error) in [("browser", &browser), ("device", &device)] {
        assert_eq!(error["data"]["kind"], "login_failed", "{what}: {error}");
        assert_eq!(error["data"]["retryable"], false, "{what}: {error}");
        assert_clean(
            &format!("the {what} login's error"),
            &error.to_string(),
            &seen,
        );
    }
    let list: Value = rpc.ok("list", Value::Null);
    assert_eq!(list["entries"], json!([]), "a failed login stored nothing");

    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(logs.contains("TRACE"), "trace logging was not on");
    assert_clean("the daemon's log", &logs, &seen);
}
