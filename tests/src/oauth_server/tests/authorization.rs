//! PKCE, the authorization endpoint, and redeeming its codes at the token endpoint.

use super::{
    authorize, authorize_url, exchange, post, query, refresh, CHALLENGE, CLIENT, REDIRECT, VERIFIER,
};
use crate::http;
use crate::oauth_server::{pkce_challenge, Endpoint, TokenServer};

#[test]
fn the_pkce_challenge_matches_rfc_7636_appendix_b() {
    assert_eq!(pkce_challenge(VERIFIER), CHALLENGE);
}

#[test]
fn a_code_is_exchanged_once_and_a_replay_revokes_its_tokens() {
    let server = TokenServer::start();
    server.set_expires_in(120);
    // The redirect keeps its own query and gets the code and state URL-encoded.
    let reply = http::get(&authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", "http://127.0.0.1:4711/cb?from=latchkey"),
            ("state", "a b&c"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("scope", "read write"),
        ],
    ));
    assert_eq!(reply.status, 302);
    let location = reply.location.unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:4711/cb?from=latchkey&code=CODE-1-"),
        "{location}"
    );
    assert!(location.ends_with("&state=a+b%26c"), "{location}");
    let code = query(&location)["code"].clone();
    assert!(code.len() > "CODE-1-".len() + 8, "{code}");

    let answer = post(
        &server.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:4711/cb?from=latchkey"),
            ("client_id", CLIENT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.headers["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let tokens = answer.json();
    assert_eq!(tokens["access_token"], "ATOKEN-1");
    assert_eq!(tokens["refresh_token"], "RTOKEN-1");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 120);
    assert_eq!(tokens["scope"], "read write");
    assert!(server.access_token_valid("ATOKEN-1"));

    let replay = post(
        &server.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:4711/cb?from=latchkey"),
            ("client_id", CLIENT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(replay.error(), (400, "invalid_grant".into()));
    assert!(!server.access_token_valid("ATOKEN-1"));
    assert!(server.is_revoked("RTOKEN-1"));
    assert_eq!(refresh(&server, "RTOKEN-1").error().1, "invalid_grant");
    assert_eq!(server.code_exchanges(), 2);
}

#[test]
fn a_wrong_verifier_is_invalid_grant_and_spends_the_code() {
    let server = TokenServer::start();
    let code = authorize(&server, "read");
    let wrong = "x".repeat(43);
    assert_eq!(
        exchange(&server, &code, &wrong).error(),
        (400, "invalid_grant".into())
    );
    assert_eq!(
        exchange(&server, &code, VERIFIER).error(),
        (400, "invalid_grant".into())
    );
    // A malformed verifier is a malformed request.
    let code = authorize(&server, "read");
    assert_eq!(
        exchange(&server, &code, "short").error(),
        (400, "invalid_request".into())
    );
}

#[test]
fn a_code_needs_its_redirect_uri_and_client_and_expires() {
    let server = TokenServer::start();
    let code = authorize(&server, "read");
    let other_redirect = post(
        &server.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("client_id", CLIENT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(other_redirect.error(), (400, "invalid_grant".into()));

    let code = authorize(&server, "read");
    let other_client = post(
        &server.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "someone-else"),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(other_client.error(), (401, "invalid_client".into()));
    assert!(other_client.headers.contains_key("www-authenticate"));

    server.expire_authorization_codes();
    assert_eq!(
        exchange(&server, &code, VERIFIER).error().1,
        "invalid_grant"
    );
    assert_eq!(
        exchange(&server, "CODE-9-0000", VERIFIER).error().1,
        "invalid_grant"
    );
}

#[test]
fn authorize_refuses_bad_clients_and_redirects_bad_requests() {
    let server = TokenServer::start();
    let good = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let with = |name: &str, value: Option<&str>| -> http::HttpReply {
        let pairs: Vec<(&str, &str)> = good
            .iter()
            .filter(|(n, _)| *n != name)
            .copied()
            .chain(value.map(|v| (name, v)))
            .collect();
        http::get(&authorize_url(&server, &pairs))
    };
    // No redirect to an unverified place.
    for reply in [
        with("client_id", Some("stranger")),
        with("client_id", None),
        with("redirect_uri", None),
        with("redirect_uri", Some("https://127.0.0.1:9/cb")),
        with("redirect_uri", Some("http://localhost:9/cb")),
        with("redirect_uri", Some("http://127.0.0.1/cb")),
        with("redirect_uri", Some("http://127.0.0.1:9")),
        with("redirect_uri", Some("http://127.0.0.1:9/cb#frag")),
    ] {
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.location, None);
    }
    // Redirected errors carry the state.
    for (reply, error) in [
        (with("code_challenge", None), "invalid_request"),
        (
            with("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (with("code_challenge_method", None), "invalid_request"),
        (with("code_challenge", Some("too-short")), "invalid_request"),
        (
            with("response_type", Some("token")),
            "unsupported_response_type",
        ),
    ] {
        assert_eq!(reply.status, 302, "{}", reply.body);
        let query = query(reply.location.as_deref().unwrap());
        assert_eq!(query["error"], error);
        assert_eq!(query["state"], "xyz");
        assert!(!query.contains_key("code"));
    }
    server.deny_next_authorization();
    let denied = with("scope", Some("read"));
    let query_denied = query(denied.location.as_deref().unwrap());
    assert_eq!(query_denied["error"], "access_denied");
    assert_eq!(query_denied["state"], "xyz");
    assert_eq!(with("scope", Some("read")).status, 302);
    assert_eq!(server.requests(Endpoint::Authorize), 15);
}

#[test]
fn follow_walks_the_redirects_hop_by_hop() {
    let server = TokenServer::start();
    let callback = format!("{}/callback", server.base_url());
    let url = authorize_url(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", &callback),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    );
    let hops = http::follow(&url, 5);
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0].status, 302);
    assert!(hops[0]
        .location
        .as_deref()
        .unwrap()
        .starts_with(&format!("{callback}?code=CODE-1-")));
    // The callback is not a page of this server.
    assert_eq!(hops[1].status, 404);
    assert_eq!(http::follow(&url, 0).len(), 1);
}

#[test]
fn authorization_responses_carry_iss_when_asked() {
    let server = TokenServer::start();
    let location = |server: &TokenServer| {
        let reply = http::get(&authorize_url(
            server,
            &[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", REDIRECT),
                ("state", "s1"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        ));
        query(reply.location.as_deref().unwrap())
    };
    assert!(!location(&server).contains_key("iss"));
    server.set_authorization_iss(Some("https://elsewhere.example"));
    let with_code = location(&server);
    assert_eq!(with_code["iss"], "https://elsewhere.example");
    assert!(with_code.contains_key("code"));
    server.deny_next_authorization();
    let denied = location(&server);
    assert_eq!(denied["iss"], "https://elsewhere.example");
    assert_eq!(denied["error"], "access_denied");
    server.set_authorization_iss(None);
    assert!(!location(&server).contains_key("iss"));
    server.advertise_iss(true);
    let doc: serde_json::Value =
        serde_json::from_str(&http::get(&server.discovery_url()).body).unwrap();
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
}
