//! The authorization endpoint, `GET /authorize`: checks the client, the loopback
//! `redirect_uri` and the PKCE challenge, then the "user" consents at once (or denies, if the
//! test asked) and the server redirects with a single-use code bound to the request.

use std::time::Instant;

use hyper::StatusCode;

use super::reply::{escape_html, page, redirect, Reply};
use super::request::Params;
use super::state::{normalize_scope, State};

#[derive(Clone)]
pub(super) struct AuthorizationCode {
    pub(super) client: String,
    pub(super) redirect_uri: String,
    pub(super) challenge: String,
    pub(super) scope: String,
    pub(super) issued_at: Instant,
    pub(super) forced_expiry: bool,
    /// Presented once already (successfully or not).
    pub(super) used: bool,
    /// The family its redemption started, revoked if the code is presented again.
    pub(super) family: Option<u64>,
}

impl State {
    pub(super) fn authorize(&mut self, params: &Params) -> Reply {
        if params.is_repeated("client_id")
            || params.get("client_id") != Some(self.settings.client_id.as_str())
        {
            return page(StatusCode::BAD_REQUEST, "Unknown or missing client_id.");
        }
        let Some(redirect_uri) = params.get("redirect_uri") else {
            return page(StatusCode::BAD_REQUEST, "Missing redirect_uri.");
        };
        if params.is_repeated("redirect_uri") {
            return page(StatusCode::BAD_REQUEST, "Repeated redirect_uri.");
        }
        if let Err(why) = check_loopback_redirect(redirect_uri) {
            return page(StatusCode::BAD_REQUEST, &escape_html(why));
        }
        let state = params.get("state");
        let iss = self.settings.authorization_iss.clone();
        let with_iss = |mut pairs: Vec<(&'static str, String)>| {
            if let Some(iss) = &iss {
                pairs.push(("iss", iss.clone()));
            }
            pairs
        };
        let refuse = |error: &str, description: &str| {
            let pairs = with_iss(vec![
                ("error", error.to_owned()),
                ("error_description", description.to_owned()),
            ]);
            redirect(redirect_uri, &pairs, state)
        };
        if let Some(name) = params.repeated() {
            return refuse("invalid_request", &format!("{name} is repeated"));
        }
        match params.get("response_type") {
            Some("code") => {}
            None => return refuse("invalid_request", "response_type is missing"),
            Some(_) => return refuse("unsupported_response_type", "only code is supported"),
        }
        if params.get("code_challenge_method") != Some("S256") {
            return refuse("invalid_request", "code_challenge_method must be S256");
        }
        let Some(challenge) = params.get("code_challenge") else {
            return refuse("invalid_request", "code_challenge is missing");
        };
        if !is_s256_challenge(challenge) {
            return refuse(
                "invalid_request",
                "code_challenge is not an unpadded base64url SHA-256 digest",
            );
        }
        if std::mem::take(&mut self.deny_next_authorization) {
            return refuse("access_denied", "the user denied the request");
        }
        let serial = self.codes.len() + 1;
        let code = format!("CODE-{serial}-{:016x}", self.random());
        self.codes.insert(
            code.clone(),
            AuthorizationCode {
                client: self.settings.client_id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scope: normalize_scope(params.get("scope").unwrap_or_default()),
                issued_at: Instant::now(),
                forced_expiry: false,
                used: false,
                family: None,
            },
        );
        redirect(redirect_uri, &with_iss(vec![("code", code)]), state)
    }
}

/// A loopback redirect URI as RFC 8252 §7.3 allows: `http://127.0.0.1:<port>/...`, any port.
fn check_loopback_redirect(uri: &str) -> Result<(), &'static str> {
    let malformed = "redirect_uri must be http://127.0.0.1:<port>/...";
    let rest = uri.strip_prefix("http://127.0.0.1:").ok_or(malformed)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let port: u16 = rest[..digits].parse().map_err(|_| malformed)?;
    if port == 0 || !rest[digits..].starts_with('/') {
        return Err(malformed);
    }
    if uri.contains('#') {
        return Err("redirect_uri must not have a fragment");
    }
    reqwest::Url::parse(uri).map_err(|_| "redirect_uri is not a valid URL")?;
    Ok(())
}

/// A SHA-256 digest in unpadded base64url: 43 characters of that alphabet.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
