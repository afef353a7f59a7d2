//! The device flow: polling, `slow_down`, expiry, and the user's decision.

use std::time::Duration;

use super::{poll, start_device};
use crate::http;
use crate::oauth_server::TokenServer;

#[test]
fn the_device_flow_goes_pending_then_slow_down_then_approved() {
    let server = TokenServer::start();
    server.set_device_interval(1);
    let device = start_device(&server);
    let user_code = device["user_code"].as_str().unwrap();
    let device_code = device["device_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(device["verification_uri"], server.verification_uri());
    assert_eq!(
        device["verification_uri_complete"],
        format!("{}?user_code={user_code}", server.verification_uri())
    );
    assert_eq!(device["expires_in"], 600);
    assert_eq!(device["interval"], 1);

    assert_eq!(
        poll(&server, device_code).error(),
        (400, "authorization_pending".into())
    );
    server.force_slow_down_next();
    assert_eq!(poll(&server, device_code).error().1, "slow_down");

    // The user approves in the browser.
    let page = http::get(device["verification_uri_complete"].as_str().unwrap());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("read write"), "{}", page.body);
    let approved = http::get(&format!(
        "{}?user_code={}&action=approve",
        server.verification_uri(),
        user_code.to_lowercase()
    ));
    assert_eq!(approved.status, 200, "{}", approved.body);

    // One interval after the last poll: on time. The server times polls by the real clock, and
    // letting the interval pass is what this checks, so the sleep stays.
    std::thread::sleep(Duration::from_secs(1));
    let tokens = poll(&server, device_code);
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let tokens = tokens.json();
    assert_eq!(tokens["access_token"], "ATOKEN-1");
    assert_eq!(tokens["scope"], "read write");
    assert_eq!(poll(&server, device_code).error().1, "invalid_grant");
    assert_eq!(server.device_polls(), 4);
    assert_eq!(server.device_authorizations(), 1);
}

#[test]
fn polling_too_soon_is_slow_down() {
    let server = TokenServer::start();
    server.set_device_interval(1);
    let device = start_device(&server);
    let device_code = device["device_code"].as_str().unwrap();
    assert_eq!(
        poll(&server, device_code).error().1,
        "authorization_pending"
    );
    assert_eq!(poll(&server, device_code).error().1, "slow_down");
    // The interval grew to 6 s, so the next quick poll is too soon as well.
    assert_eq!(poll(&server, device_code).error().1, "slow_down");
}

#[test]
fn device_codes_expire_and_can_be_denied() {
    let server = TokenServer::start();
    server.set_device_expires_in(0);
    let device = start_device(&server);
    let device_code = device["device_code"].as_str().unwrap();
    assert_eq!(
        poll(&server, device_code).error(),
        (400, "expired_token".into())
    );
    let page = http::get(device["verification_uri_complete"].as_str().unwrap());
    assert_eq!(page.status, 400);

    server.set_device_expires_in(600);
    let device = start_device(&server);
    let device_code = device["device_code"].as_str().unwrap();
    server.expire_device_codes();
    assert_eq!(poll(&server, device_code).error().1, "expired_token");

    let device = start_device(&server);
    let device_code = device["device_code"].as_str().unwrap();
    let denied = http::get(&format!(
        "{}&action=deny",
        device["verification_uri_complete"].as_str().unwrap()
    ));
    assert_eq!(denied.status, 200);
    assert_eq!(poll(&server, device_code).error().1, "access_denied");

    let device = start_device(&server);
    server.deny_device(device["user_code"].as_str().unwrap());
    assert_eq!(
        poll(&server, device["device_code"].as_str().unwrap())
            .error()
            .1,
        "access_denied"
    );
    let device = start_device(&server);
    server.approve_device(device["user_code"].as_str().unwrap());
    assert_eq!(
        poll(&server, device["device_code"].as_str().unwrap()).status,
        200
    );
}
