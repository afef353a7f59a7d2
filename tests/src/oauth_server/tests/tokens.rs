//! Refresh token rotation and reuse, revocation, and confidential clients.

use std::time::Duration;

use super::{post, refresh, revoke, try_post, CLIENT};
use crate::oauth_server::TokenServer;

#[test]
fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let server = TokenServer::start();
    server.seed("SEED");
    let first = refresh(&server, "SEED").json();
    assert_eq!(first["access_token"], "ATOKEN-1");
    assert_eq!(first["expires_in"], 3600);
    assert!(first.get("scope").is_none());
    assert_eq!(
        refresh(&server, "RTOKEN-1").json()["refresh_token"],
        "RTOKEN-2"
    );
    assert_eq!(refresh(&server, "RTOKEN-1").error().1, "invalid_grant");
    assert_eq!(server.reuse_detected(), 1);
    assert_eq!(refresh(&server, "RTOKEN-2").error().1, "invalid_grant");
    assert!(server.is_revoked("ATOKEN-2"));
    assert_eq!(server.refresh_requests(), 4);
    // Seeded families take any client id, as the benchmark's "bench" client.
    server.seed("OTHER");
    let answer = post(
        &server.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "OTHER"),
            ("client_id", "bench"),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let unknown = post(&server.token_url(), &[("grant_type", "password")]);
    assert_eq!(unknown.error(), (400, "unsupported_grant_type".into()));
}

#[test]
fn revoking_a_refresh_token_revokes_its_family() {
    let server = TokenServer::start();
    server.seed("RTOKEN-0");
    refresh(&server, "RTOKEN-0");
    let answer = revoke(&server, "RTOKEN-1");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(server.is_revoked("RTOKEN-0"));
    assert!(server.is_revoked("RTOKEN-1"));
    assert!(server.is_revoked("ATOKEN-1"));
    assert!(!server.access_token_valid("ATOKEN-1"));
    assert_eq!(refresh(&server, "RTOKEN-1").error().1, "invalid_grant");

    // An access token alone; the family lives on.
    server.seed("LIVE");
    refresh(&server, "LIVE");
    assert!(server.access_token_valid("ATOKEN-2"));
    let answer = post(
        &server.revocation_url(),
        &[
            ("token", "ATOKEN-2"),
            ("token_type_hint", "access_token"),
            ("client_id", CLIENT),
        ],
    );
    assert_eq!(answer.status, 200);
    assert!(server.is_revoked("ATOKEN-2"));
    assert!(!server.is_revoked("RTOKEN-2"));
    assert_eq!(refresh(&server, "RTOKEN-2").status, 200);

    // Unknown tokens are fine (RFC 7009 §2.2); a missing one is not.
    assert_eq!(revoke(&server, "never-issued").status, 200);
    assert!(!server.is_revoked("never-issued"));
    let missing = post(&server.revocation_url(), &[("client_id", CLIENT)]);
    assert_eq!(missing.error(), (400, "invalid_request".into()));
    assert_eq!(server.revocation_requests(), 4);
}

#[test]
fn a_client_secret_is_required_once_set() {
    let server = TokenServer::start();
    server.require_client_secret("s3cret");
    server.seed("SEED");
    let form = [("grant_type", "refresh_token"), ("refresh_token", "SEED")];
    let bare = try_post(&server.token_url(), &form, None, Duration::from_secs(5)).unwrap();
    assert_eq!(bare.error(), (401, "invalid_client".into()));
    let wrong = try_post(
        &server.token_url(),
        &form,
        Some((CLIENT, "guess")),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(wrong.error(), (401, "invalid_client".into()));
    let basic = try_post(
        &server.token_url(),
        &form,
        Some((CLIENT, "s3cret")),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(basic.status, 200, "{}", basic.body);
    let in_body = post(
        &server.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "RTOKEN-1"),
            ("client_id", CLIENT),
            ("client_secret", "s3cret"),
        ],
    );
    assert_eq!(in_body.status, 200, "{}", in_body.body);
    let both = try_post(
        &server.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "RTOKEN-2"),
            ("client_secret", "s3cret"),
        ],
        Some((CLIENT, "s3cret")),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(both.error(), (400, "invalid_request".into()));

    let device = post(&server.device_authorization_url(), &[("client_id", CLIENT)]);
    assert_eq!(device.error(), (401, "invalid_client".into()));
    assert_eq!(
        revoke(&server, "RTOKEN-2").error(),
        (401, "invalid_client".into())
    );
    assert!(!server.is_revoked("RTOKEN-2"));
}
