//! The issuer of an authorization response (RFC 9207): a browser login whose callback names
//! another issuer than the provider's fails for good, before any code is exchanged; the
//! provider's own issuer passes; a provider whose issuer is unknown refuses an `iss` it cannot
//! check; an issuer that promises `iss` must send it.

use latchkey_tests::http;
use latchkey_tests::oauth_server::TokenServer;
use latchkey_tests::TestEnv;
use serde_json::{json, Value};

use super::support::{daemon_with_config, provider_section, Rpc};

/// Runs a browser login at `test` and returns `login_wait`'s whole answer and the browser's
/// last page.
fn login(rpc: &mut Rpc, account: &str) -> (Value, http::HttpReply) {
    let started = rpc.ok("login", json!({ "provider": "test", "account": account }));
    let hops = http::follow(started["authorization_url"].as_str().unwrap(), 3);
    let page = hops.last().unwrap().clone();
    let done = rpc.call("login_wait", json!({ "login_id": started["login_id"] }));
    (done, page)
}

fn assert_refused(done: &Value, page: &http::HttpReply, needle: &str) {
    let error = &done["error"];
    assert_eq!(error["data"]["kind"], "login_failed", "{done}");
    assert_eq!(error["data"]["retryable"], false, "{done}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
    assert_eq!(page.status, 400, "{}", page.body);
}

#[test]
fn the_iss_of_a_callback_must_be_the_discovered_issuer() {
    let server = TokenServer::start();
    let env = TestEnv::bare();
    let config = format!(
        "[providers.test]\nclient_id = \"latchkey-test\"\nissuer = \"{}\"\n",
        server.issuer()
    );
    let daemon = daemon_with_config(&env, &config, "info");
    let mut rpc = Rpc::connect(&daemon.socket);

    // Another issuer: refused before the code is exchanged, error responses included.
    server.set_authorization_iss(Some("http://127.0.0.1:1"));
    let (done, page) = login(&mut rpc, "wrong");
    assert_refused(&done, &page, "another issuer");
    server.deny_next_authorization();
    let (done, page) = login(&mut rpc, "wrong-denied");
    assert_refused(&done, &page, "another issuer");
    assert_eq!(
        server.code_exchanges(),
        0,
        "a code from a mix-up was exchanged"
    );

    // The provider's own issuer: the login completes.
    server.set_authorization_iss(Some(&server.issuer()));
    let (done, page) = login(&mut rpc, "right");
    assert_eq!(done["result"]["entry"]["account"], "right", "{done}");
    assert_eq!(page.status, 200, "{}", page.body);

    // An issuer whose metadata promises `iss` must send it (the daemon rediscovers on start).
    drop(rpc);
    let (exit, _) = daemon.stop();
    assert!(exit.success());
    server.advertise_iss(true);
    server.set_authorization_iss(None);
    let daemon = daemon_with_config(&env, &config, "info");
    let mut rpc = Rpc::connect(&daemon.socket);
    let (done, page) = login(&mut rpc, "missing");
    assert_refused(&done, &page, "lacks the issuer");
    server.set_authorization_iss(Some(&server.issuer()));
    let (done, _) = login(&mut rpc, "present");
    assert_eq!(done["result"]["entry"]["account"], "present", "{done}");
    assert_eq!(server.code_exchanges(), 2);
}

#[test]
fn an_iss_that_cannot_be_checked_is_refused() {
    let server = TokenServer::start();
    let env = TestEnv::bare();
    // Explicit endpoints: latchkey knows no issuer for this provider.
    let daemon = daemon_with_config(&env, &provider_section("test", &server, false), "info");
    let mut rpc = Rpc::connect(&daemon.socket);
    let (done, _) = login(&mut rpc, "plain");
    assert_eq!(done["result"]["entry"]["account"], "plain", "{done}");
    server.set_authorization_iss(Some(&server.issuer()));
    let (done, page) = login(&mut rpc, "with-iss");
    assert_refused(&done, &page, "cannot check");
    assert_eq!(server.code_exchanges(), 1);
}
