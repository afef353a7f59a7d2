//! The server as a whole: discovery, faults queued per endpoint, and connection-level faults.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{authorize, exchange, refresh, revoke, try_post, VERIFIER};
use crate::http;
use crate::oauth_server::{Endpoint, Fault, TokenServer, DEVICE_CODE_GRANT};

#[test]
fn discovery_names_every_endpoint() {
    let server = TokenServer::start();
    let reply = http::get(&format!(
        "{}/.well-known/openid-configuration",
        server.base_url()
    ));
    assert_eq!(reply.status, 200);
    let doc: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(doc["issuer"], server.issuer());
    assert_eq!(doc["authorization_endpoint"], server.authorize_url());
    assert_eq!(doc["token_endpoint"], server.token_url());
    assert_eq!(doc["revocation_endpoint"], server.revocation_url());
    assert_eq!(
        doc["device_authorization_endpoint"],
        server.device_authorization_url()
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    for grant in ["authorization_code", "refresh_token", DEVICE_CODE_GRANT] {
        assert!(grants.contains(&json!(grant)), "{grant} missing");
    }
    assert_eq!(server.requests(Endpoint::Discovery), 1);
}

#[test]
fn faults_queue_per_endpoint() {
    let server = TokenServer::start();
    server.fail_next_at(Endpoint::Revocation, &[Fault::Status(503)]);
    server.fail_next_at(Endpoint::Discovery, &[Fault::Garbage]);
    server.fail_next(&[Fault::TooManyRequests(7)]);
    assert_eq!(revoke(&server, "x").status, 503);
    assert_eq!(revoke(&server, "x").status, 200);
    let discovery = http::get(&server.discovery_url());
    assert!(serde_json::from_str::<Value>(&discovery.body).is_err());
    // Token faults hit any grant.
    let code = authorize(&server, "read");
    let limited = exchange(&server, &code, VERIFIER);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"].to_str().unwrap(), "7");
    assert_eq!(exchange(&server, &code, VERIFIER).status, 200);
    assert_eq!(server.code_exchanges(), 2);
    assert_eq!(server.refresh_requests(), 0);
    assert_eq!(server.requests(Endpoint::Token), 2);
    assert_eq!(server.requests(Endpoint::Revocation), 2);
    assert_eq!(server.requests(Endpoint::DeviceAuthorization), 0);
}

#[test]
fn a_hang_times_the_client_out_and_dropping_the_server_is_prompt() {
    let server = TokenServer::start();
    server.seed("SEED");
    server.fail_next(&[Fault::Hang, Fault::Hang]);
    let form = [("grant_type", "refresh_token"), ("refresh_token", "SEED")];
    let err = try_post(&server.token_url(), &form, None, Duration::from_millis(200))
        .err()
        .expect("a hung request has no answer");
    assert!(err.is_timeout(), "{err:?}");
    // A second hung request stays open while the server goes away.
    let address = server.base_url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let body = "grant_type=refresh_token&refresh_token=SEED";
    write!(
        stream,
        "POST /token HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.refresh_requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second request never arrived"
        );
        std::thread::yield_now();
    }
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        response.is_empty(),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

#[test]
fn a_reset_closes_the_connection_without_a_response() {
    let server = TokenServer::start();
    server.seed("SEED");
    server.fail_next(&[Fault::Reset, Fault::Reset]);
    let form = [("grant_type", "refresh_token"), ("refresh_token", "SEED")];
    let err = try_post(&server.token_url(), &form, None, Duration::from_secs(5))
        .err()
        .expect("a reset request has no answer");
    assert!(!err.is_timeout(), "{err:?}");

    let address = server.base_url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let body = "grant_type=refresh_token&refresh_token=SEED";
    write!(
        stream,
        "POST /token HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        response.is_empty(),
        "{}",
        String::from_utf8_lossy(&response)
    );
    // The token was never spent.
    assert_eq!(refresh(&server, "SEED").status, 200);
}

#[test]
fn echo_faults_repeat_the_submitted_secrets_and_hostile_text_is_hostile() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    server.fail_next(&[
        Fault::EchoSecrets,
        Fault::EchoSecretsInContentType,
        Fault::HostileText,
    ]);
    let echo = refresh(&server, "RTOKEN-0");
    assert_eq!(echo.error(), (400, "RTOKEN-0".to_owned()));
    assert!(echo.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("RTOKEN-0"));
    let quoted = refresh(&server, "RTOKEN-0");
    assert_eq!(quoted.status, 200);
    assert_eq!(
        quoted.headers["content-type"].to_str().unwrap(),
        "text/plain; echo=RTOKEN-0"
    );
    let hostile = refresh(&server, "RTOKEN-0");
    let (status, error) = hostile.error();
    assert_eq!(status, 400);
    assert!(error.contains('\u{1b}') && error.contains(crate::oauth_server::HOSTILE_MARK));
    assert!(hostile.json()["error_description"].as_str().unwrap().len() > 100_000);
    // The faults spent, the token still works.
    assert_eq!(refresh(&server, "RTOKEN-0").status, 200);
}
