//! Logins run by the daemon against a real authorization server on 127.0.0.1: the browser
//! flow (PKCE, one-shot loopback redirect) played by an HTTP client, the device flow, the CLI
//! around both, login links, and the callbacks an attacker or a confused browser may send.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};

use latchkey_tests::http;
use latchkey_tests::oauth_server::{Endpoint, TokenServer};
use latchkey_tests::{bin, raw_exchange, signal, stderr, stdout, Daemon, TestEnv};
use serde_json::{json, Value};

use super::support::daemon_with_config;

/// A provider `test` with every endpoint of the server.
fn config(server: &TokenServer, extra: &str) -> String {
    format!(
        "[providers.test]\nclient_id = \"latchkey-test\"\nauthorization_url = \"{}\"\n\
         token_url = \"{}\"\nrevocation_url = \"{}\"\ndevice_authorization_url = \"{}\"\n{extra}",
        server.authorize_url(),
        server.token_url(),
        server.revocation_url(),
        server.device_authorization_url(),
    )
}

fn start(env: &TestEnv, server: &TokenServer, extra: &str, log: &str) -> Daemon {
    daemon_with_config(env, &config(server, extra), log)
}

/// One request on a fresh connection; the whole response object.
fn rpc(socket: &Path, method: &str, params: Value) -> Value {
    let line = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    raw_exchange(socket, format!("{line}\n").as_bytes(), 1).remove(0)
}

/// `login_wait` on its own thread, so the test can play the user meanwhile.
fn wait_in_background(socket: &Path, login_id: &str) -> std::thread::JoinHandle<Value> {
    let socket = socket.to_owned();
    let login_id = login_id.to_owned();
    std::thread::spawn(move || rpc(&socket, "login_wait", json!({ "login_id": login_id })))
}

fn query(url: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn start_browser_login(socket: &Path) -> (String, String) {
    let started = rpc(
        socket,
        "login",
        json!({"provider": "test", "scopes": ["repo"]}),
    );
    let result = &started["result"];
    (
        result["login_id"].as_str().expect("a login id").to_owned(),
        result["authorization_url"]
            .as_str()
            .expect("an authorization URL")
            .to_owned(),
    )
}

/// Runs `latchkey get SERVICE EXTRA...` until the secret is no longer `old` (the short-lived
/// token the login stored has entered its refresh window and been refreshed); returns that
/// last output. Bounded: fails the test after the start timeout.
fn get_once_refreshed(
    env: &TestEnv,
    socket: &Path,
    service: &str,
    old: &str,
    extra: &[&str],
) -> std::process::Output {
    let deadline = std::time::Instant::now() + latchkey_tests::START_TIMEOUT;
    loop {
        let mut args = vec!["get", service];
        args.extend_from_slice(extra);
        let out = env.cli(socket, &args, "");
        assert!(out.status.success(), "{}", stderr(&out));
        if !stdout(&out).contains(old) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token was never refreshed"
        );
        // Paces the polling while the token's lifetime runs out (that wait is the behaviour).
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn get_token(env: &TestEnv, socket: &Path, service: &str) -> String {
    let out = env.cli(socket, &["get", service], "");
    assert!(out.status.success(), "get {service}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn a_browser_login_stores_tokens_that_the_daemon_serves_and_refreshes() {
    let server = TokenServer::start();
    // Tokens that live 2 s enter their refresh window after 1 s.
    server.set_expires_in(2);
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let (login_id, url) = start_browser_login(&daemon.socket);

    // What the browser is sent to: PKCE S256, a state, a loopback redirect, the scopes.
    assert!(url.starts_with(&server.authorize_url()), "{url}");
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "client_id").as_deref(), Some("latchkey-test"));
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&url, "code_challenge").map(|c| c.len()), Some(43));
    assert!(param(&url, "state").is_some_and(|s| s.len() >= 16));
    assert_eq!(param(&url, "scope").as_deref(), Some("repo"));
    let redirect = param(&url, "redirect_uri").unwrap();
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"));

    let waiter = wait_in_background(&daemon.socket, &login_id);
    let hops = http::follow(&url, 3);
    assert_eq!(hops[0].status, 302, "the server approves and redirects");
    let callback = hops[0].location.clone().unwrap();
    assert!(callback.starts_with(&redirect), "{callback}");
    assert_eq!(hops[1].status, 200, "{}", hops[1].body);
    assert!(hops[1].body.contains("Signed in"));

    let done = waiter.join().unwrap();
    let entry = &done["result"]["entry"];
    assert_eq!(entry["service"], "test", "{done}");
    assert_eq!(entry["provider"], "test");
    assert_eq!(entry["has_refresh_token"], true);
    assert_eq!(entry["scopes"], json!(["repo"]));
    assert_eq!(entry["state"], "valid");
    assert_eq!(server.code_exchanges(), 1);

    let token = get_token(&env, &daemon.socket, "test");
    assert!(server.access_token_valid(&token), "{token}");

    // The redirect listener closed after its one use: a replay finds nobody.
    assert!(
        http::try_get(&callback).is_err(),
        "the callback was served twice"
    );

    // The daemon refreshes what the login stored.
    let out = get_once_refreshed(&env, &daemon.socket, "test", &token, &[]);
    let refreshed = stdout(&out).trim().to_owned();
    assert_ne!(refreshed, token);
    assert!(server.access_token_valid(&refreshed));
    assert_eq!(server.refresh_requests(), 1);
    assert_eq!(server.reuse_detected(), 0);
}

/// Reads the first stdout line of a running CLI (the URL it prints on a line of its own).
fn first_line(child: &mut Child) -> String {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim().to_owned()
}

fn cli_login(env: &TestEnv, socket: &Path, args: &[&str]) -> Child {
    env.command(&bin("latchkey"))
        .env("LATCHKEY_SOCKET", socket)
        .arg("login")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(mut child: Child) -> (std::process::ExitStatus, String) {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn the_cli_prints_the_url_waits_and_reports_the_login() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let mut child = cli_login(
        &env,
        &daemon.socket,
        &["test", "--no-browser", "--scope", "repo"],
    );
    let url = first_line(&mut child);
    assert!(url.starts_with(&server.authorize_url()), "{url}");
    let hops = http::follow(&url, 3);
    assert_eq!(hops.last().unwrap().status, 200);
    let (status, err) = finish(child);
    assert!(status.success(), "{err}");
    assert!(err.contains("logged in: test/default"), "{err}");
    assert!(err.contains("refresh"), "{err}");
    assert!(!get_token(&env, &daemon.socket, "test").is_empty());
}

#[test]
fn a_device_login_through_the_cli_completes_when_the_user_approves() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let mut child = cli_login(&env, &daemon.socket, &["test", "--device", "--no-browser"]);
    let direct = first_line(&mut child);
    assert!(direct.starts_with(&server.verification_uri()), "{direct}");
    let user_code = param(&direct, "user_code").expect("the code in the complete URI");
    // The user opens the page on another device and approves.
    let page = http::get(&format!("{direct}&action=approve"));
    assert_eq!(page.status, 200, "{}", page.body);
    let (status, err) = finish(child);
    assert!(status.success(), "{err}");
    assert!(
        err.contains(&user_code),
        "the code is shown to the user: {err}"
    );
    assert!(server.device_polls() >= 1);
    assert!(server.access_token_valid(&get_token(&env, &daemon.socket, "test")));
}

#[test]
fn a_device_login_honours_slow_down_and_reports_denial_and_expiry() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");

    // slow_down: the first poll is told to slow down; the login still completes.
    server.force_slow_down_next();
    let started = rpc(
        &daemon.socket,
        "login",
        json!({"provider": "test", "device": true}),
    );
    let result = &started["result"];
    assert!(result["authorization_url"].is_null());
    assert!(result["expires_at"].is_string());
    let user_code = result["user_code"].as_str().unwrap().to_owned();
    server.approve_device(&user_code);
    let done = wait_in_background(&daemon.socket, result["login_id"].as_str().unwrap())
        .join()
        .unwrap();
    assert_eq!(done["result"]["entry"]["service"], "test", "{done}");
    assert_eq!(
        server.device_polls(),
        2,
        "one slowed-down poll, then the approved one"
    );

    // access_denied: a clean failure that says so; the stored entry is untouched.
    let token = get_token(&env, &daemon.socket, "test");
    let started = rpc(
        &daemon.socket,
        "login",
        json!({"provider": "test", "device": true}),
    );
    server.deny_device(started["result"]["user_code"].as_str().unwrap());
    let done = wait_in_background(
        &daemon.socket,
        started["result"]["login_id"].as_str().unwrap(),
    )
    .join()
    .unwrap();
    assert_eq!(done["error"]["data"]["kind"], "login_failed", "{done}");
    assert_eq!(done["error"]["data"]["retryable"], false);
    assert!(done["error"]["message"]
        .as_str()
        .unwrap()
        .contains("denied"));
    assert_eq!(get_token(&env, &daemon.socket, "test"), token);

    // expired_token: retryable, nothing written.
    let started = rpc(
        &daemon.socket,
        "login",
        json!({"provider": "test", "device": true, "account": "other"}),
    );
    server.expire_device_codes();
    let done = wait_in_background(
        &daemon.socket,
        started["result"]["login_id"].as_str().unwrap(),
    )
    .join()
    .unwrap();
    assert_eq!(done["error"]["data"]["kind"], "login_failed", "{done}");
    assert_eq!(done["error"]["data"]["retryable"], true);
    let out = env.cli(&daemon.socket, &["get", "test", "-a", "other"], "");
    assert_eq!(
        out.status.code(),
        Some(4),
        "no entry, and a login is offered: {}",
        stderr(&out)
    );
}

#[test]
fn hostile_or_stray_callbacks_leave_the_login_pending_or_fail_it_cleanly() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let (login_id, url) = start_browser_login(&daemon.socket);
    let redirect = param(&url, "redirect_uri").unwrap();
    let state = param(&url, "state").unwrap();
    let base = redirect.trim_end_matches("/callback");

    let wrong_state = http::get(&format!("{redirect}?code=forged&state=not-the-state"));
    assert_eq!(wrong_state.status, 400);
    let no_state = http::get(&format!("{redirect}?code=forged"));
    assert_eq!(no_state.status, 400);
    let wrong_path = http::get(&format!("{base}/elsewhere?code=forged&state={state}"));
    assert_eq!(wrong_path.status, 404);
    let no_code = http::get(&format!("{redirect}?state={state}"));
    assert_eq!(no_code.status, 400);
    assert_eq!(
        server.code_exchanges(),
        0,
        "no forged code reached the token endpoint"
    );

    // The login is still pending: the real redirect completes it.
    let waiter = wait_in_background(&daemon.socket, &login_id);
    let hops = http::follow(&url, 3);
    assert_eq!(hops[1].status, 200, "{}", hops[1].body);
    assert_eq!(waiter.join().unwrap()["result"]["entry"]["service"], "test");
    let token = get_token(&env, &daemon.socket, "test");
    // A replayed callback finds the listener closed.
    assert!(http::try_get(&format!("{redirect}?code=forged&state={state}")).is_err());

    // The user denies at the provider: error=access_denied with the right state fails the
    // login cleanly and leaves the stored entry as it was.
    server.deny_next_authorization();
    let (login_id, url) = start_browser_login(&daemon.socket);
    let waiter = wait_in_background(&daemon.socket, &login_id);
    let hops = http::follow(&url, 3);
    assert!(hops[0]
        .location
        .as_deref()
        .unwrap()
        .contains("error=access_denied"));
    assert_eq!(hops[1].status, 400);
    assert!(hops[1].body.contains("denied"), "{}", hops[1].body);
    let done = waiter.join().unwrap();
    assert_eq!(done["error"]["data"]["kind"], "login_failed", "{done}");
    assert_eq!(done["error"]["data"]["retryable"], false);
    assert_eq!(get_token(&env, &daemon.socket, "test"), token);

    // A callback carrying an error but another state is ignored; the login stays pending.
    let (login_id, url) = start_browser_login(&daemon.socket);
    let redirect = param(&url, "redirect_uri").unwrap();
    let stray = http::get(&format!(
        "{redirect}?error=access_denied&state=someone-else"
    ));
    assert_eq!(stray.status, 400);
    let waiter = wait_in_background(&daemon.socket, &login_id);
    assert_eq!(http::follow(&url, 3)[1].status, 200);
    assert_eq!(waiter.join().unwrap()["result"]["entry"]["service"], "test");
}

#[test]
fn a_login_nobody_finishes_expires_and_closes_its_listener() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "[oauth]\nlogin_timeout_secs = 1\n", "info");
    let (login_id, url) = start_browser_login(&daemon.socket);
    let done = wait_in_background(&daemon.socket, &login_id)
        .join()
        .unwrap();
    assert_eq!(done["error"]["data"]["kind"], "login_failed", "{done}");
    assert_eq!(done["error"]["data"]["retryable"], true);
    assert!(done["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let redirect = param(&url, "redirect_uri").unwrap();
    assert!(
        http::try_get(&redirect).is_err(),
        "the listener outlived its login"
    );
    let cancelled = rpc(
        &daemon.socket,
        "login_cancel",
        json!({ "login_id": login_id }),
    );
    assert_eq!(
        cancelled["result"]["cancelled"], false,
        "nothing left to cancel"
    );
}

#[test]
fn ctrl_c_in_the_cli_cancels_the_pending_login() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let mut child = cli_login(&env, &daemon.socket, &["test", "--no-browser"]);
    let url = first_line(&mut child);
    // The CLI is waiting (its URL is out); the login is pending in the daemon.
    signal(&child, libc::SIGINT);
    let (status, err) = finish(child);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    // The cancelled login's redirect listener is gone.
    let approved = http::get(&url);
    assert_eq!(approved.status, 302);
    assert!(http::try_get(approved.location.as_deref().unwrap()).is_err());
    assert_eq!(server.code_exchanges(), 0);
}

#[test]
fn get_of_a_provider_without_a_token_offers_a_login_link_that_works() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let answer = rpc(
        &daemon.socket,
        "get",
        json!({"service": "test", "scopes": ["repo"]}),
    );
    let data = &answer["error"]["data"];
    assert_eq!(data["kind"], "authentication_required", "{answer}");
    assert!(data["hint"]
        .as_str()
        .unwrap()
        .contains("latchkey login test"));
    let link = data["login_url"].as_str().unwrap().to_owned();
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");
    // The CLI shows the same link; asking again gives the same link, not a new one.
    let out = env.cli(&daemon.socket, &["get", "test", "--scope", "repo"], "");
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains(&link), "{}", stderr(&out));
    // Entries that are not providers keep not_found, without a link.
    let other = rpc(&daemon.socket, "get", json!({"service": "unrelated"}));
    assert_eq!(other["error"]["data"]["kind"], "not_found");
    assert!(other["error"]["data"]["login_url"].is_null());

    // The user opens the link: daemon → provider → daemon's callback → signed in.
    let hops = http::follow(&link, 4);
    assert_eq!(hops[0].status, 302);
    assert!(hops[0]
        .location
        .as_deref()
        .unwrap()
        .starts_with(&server.authorize_url()));
    assert_eq!(
        param(hops[0].location.as_deref().unwrap(), "scope").as_deref(),
        Some("repo")
    );
    assert_eq!(hops.last().unwrap().status, 200, "{:?}", hops.last());
    // The page is answered once the tokens are stored, so the entry is there now.
    assert!(server.access_token_valid(&get_token(&env, &daemon.socket, "test")));
    // The link started one login; now that it is over, the link is spent.
    assert_eq!(http::get(&link).status, 410);
    // An unknown link is refused.
    let bogus = http::get(&format!("{}x", link));
    assert_eq!(bogus.status, 404);
}

#[test]
fn no_code_verifier_or_token_reaches_the_log_or_any_output() {
    let server = TokenServer::start();
    server.set_expires_in(2);
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "trace");
    let mut outputs = String::new();

    let (login_id, url) = start_browser_login(&daemon.socket);
    let waiter = wait_in_background(&daemon.socket, &login_id);
    let hops = http::follow(&url, 3);
    assert_eq!(hops[1].status, 200);
    outputs.push_str(&waiter.join().unwrap().to_string());

    let started = rpc(
        &daemon.socket,
        "login",
        json!({"provider": "test", "device": true, "account": "device"}),
    );
    outputs.push_str(&started.to_string());
    server.approve_device(started["result"]["user_code"].as_str().unwrap());
    let done = wait_in_background(
        &daemon.socket,
        started["result"]["login_id"].as_str().unwrap(),
    )
    .join()
    .unwrap();
    outputs.push_str(&done.to_string());

    let token = get_token(&env, &daemon.socket, "test");
    let refreshed = get_once_refreshed(&env, &daemon.socket, "test", &token, &["--json"]);
    outputs.push_str(&stdout(&refreshed));
    outputs.push_str(&stderr(&refreshed));
    for args in [
        vec!["status", "--json"],
        vec!["list"],
        vec!["logout", "test", "--json"],
        vec!["get", "test"],
    ] {
        let out = env.cli(&daemon.socket, &args, "");
        outputs.push_str(&stdout(&out));
        outputs.push_str(&stderr(&out));
    }
    let logs = daemon.stop().1;
    let grants = server.grants_seen();
    assert!(
        grants.len() >= 3,
        "a code, a verifier and a device code: {}",
        grants.len()
    );
    for secret in grants
        .iter()
        .map(String::as_str)
        .chain([token.as_str(), "RTOKEN-"])
    {
        assert!(!logs.contains(secret), "the log holds a grant or token");
        assert!(
            !outputs.contains(secret),
            "a client saw a grant or a refresh token"
        );
    }
    assert_eq!(server.requests(Endpoint::Revocation), 2, "{outputs}");
}

#[test]
fn a_provider_answering_like_github_works_for_device_logins_scopes_and_dead_tokens() {
    let server = TokenServer::start();
    server.set_github_style();
    let env = TestEnv::with_keyring();
    let daemon = start(&env, &server, "", "info");
    let started = rpc(
        &daemon.socket,
        "login",
        json!({"provider": "test", "device": true, "scopes": ["repo", "gist"]}),
    );
    let waiter = wait_in_background(
        &daemon.socket,
        started["result"]["login_id"].as_str().unwrap(),
    );
    // Approve only once the daemon has been told "authorization_pending" with a 200.
    let deadline = std::time::Instant::now() + latchkey_tests::START_TIMEOUT;
    while server.device_polls() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never polled"
        );
        std::thread::yield_now();
    }
    server.approve_device(started["result"]["user_code"].as_str().unwrap());
    let done = waiter.join().unwrap();
    // Granted as "gist,repo": two scopes, not one.
    assert_eq!(
        done["result"]["entry"]["scopes"],
        json!(["gist", "repo"]),
        "{done}"
    );
    assert!(server.device_polls() >= 2);
    let out = env.cli(&daemon.socket, &["get", "test", "--scope", "gist"], "");
    assert!(out.status.success(), "{}", stderr(&out));

    // A refresh token GitHub no longer honours ("bad_refresh_token", with a 200): needs login.
    let dead = r#"{"kind":"oauth2","access_token":"old","refresh_token":"RTOKEN-unknown","expires_at":"2001-01-01T00:00:00Z","provider":"test"}"#;
    assert!(env
        .cli(
            &daemon.socket,
            &["set", "test", "-a", "dead", "--bundle"],
            dead
        )
        .status
        .success());
    let out = env.cli(&daemon.socket, &["get", "test", "-a", "dead"], "");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let status = env.cli(
        &daemon.socket,
        &["status", "test", "-a", "dead", "--json"],
        "",
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["entries"][0]["state"], "needs_login", "{status}");
}
