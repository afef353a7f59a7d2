//! The token endpoint, `POST /token` (RFC 6749): the `refresh_token` grant with rotation and
//! reuse detection, the `authorization_code` grant with PKCE (RFC 7636), and the device grant
//! (RFC 8628 §3.4) with its polling interval.

use std::time::Instant;

use hyper::header::HeaderMap;
use hyper::StatusCode;

use super::device::Consent;
use super::reply::{device_error, invalid_grant, invalid_request, oauth_error, Reply};
use super::request::Params;
use super::state::{is_subset, normalize_scope, State};
use super::{pkce_challenge, CODE_LIFETIME, DEVICE_CODE_GRANT, POLL_TOLERANCE, SLOW_DOWN_STEP};

impl State {
    pub(super) fn token(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        match params.get("grant_type") {
            Some("refresh_token") => self.refresh_grant(headers, params),
            Some("authorization_code") => self.code_grant(headers, params),
            Some(DEVICE_CODE_GRANT) => self.device_grant(headers, params),
            None => invalid_request("grant_type is missing"),
            Some(_) => oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "this grant type is not supported",
            ),
        }
    }

    fn refresh_grant(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        let Some(presented) = params.get("refresh_token") else {
            return invalid_request("refresh_token is missing");
        };
        let family_id = self.refresh_tokens.get(presented).map(|t| t.family);
        let bound = family_id.and_then(|f| self.families[&f].client.clone());
        // Seeded families belong to no client, so any client_id may refresh them (as before
        // clients existed here) unless the client is confidential.
        let client = if bound.is_none() && self.settings.client_secret.is_none() {
            None
        } else {
            match self.authenticate(headers, params) {
                Ok(id) => Some(id),
                Err(refusal) => return refusal.reply(),
            }
        };
        let Some(family_id) = family_id else {
            return invalid_grant("unknown refresh token");
        };
        let token = self.refresh_tokens.get_mut(presented).unwrap();
        if token.used {
            // Reuse of a rotated token: revoke the whole family.
            self.counters.reuse_detected += 1;
            self.revoke_family(family_id);
            return invalid_grant("refresh token already used; its family is revoked");
        }
        let family = &self.families[&family_id];
        if family.revoked {
            return invalid_grant("refresh token revoked");
        }
        if bound.is_some() && client != bound {
            return invalid_grant("refresh token issued to another client");
        }
        let scope = match params.get("scope") {
            Some(asked) if !family.scope.is_empty() => {
                if !is_subset(asked, &family.scope) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        "scope exceeds the granted scope",
                    );
                }
                normalize_scope(asked)
            }
            _ => family.scope.clone(),
        };
        self.refresh_tokens.get_mut(presented).unwrap().used = true;
        self.issue(family_id, &scope)
    }

    fn code_grant(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        let client = match self.authenticate(headers, params) {
            Ok(id) => id,
            Err(refusal) => return refusal.reply(),
        };
        let Some(presented) = params.get("code") else {
            return invalid_request("code is missing");
        };
        self.grants_seen.push(presented.to_owned());
        if let Some(verifier) = params.get("code_verifier") {
            self.grants_seen.push(verifier.to_owned());
        }
        let Some(code) = self.codes.get_mut(presented) else {
            return invalid_grant("unknown authorization code");
        };
        if code.used {
            // RFC 6749 §4.1.2: a code used twice revokes what it granted.
            if let Some(family) = code.family {
                self.revoke_family(family);
            }
            return invalid_grant("authorization code already used; its tokens are revoked");
        }
        // Any presentation spends the code, so a wrong verifier cannot be retried.
        code.used = true;
        let code = code.clone();
        if code.forced_expiry || code.issued_at.elapsed() >= CODE_LIFETIME {
            return invalid_grant("authorization code expired");
        }
        if code.client != client {
            return invalid_grant("authorization code issued to another client");
        }
        if params.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
            return invalid_grant("redirect_uri differs from the authorization request's");
        }
        let Some(verifier) = params.get("code_verifier") else {
            return invalid_request("code_verifier is missing");
        };
        if !is_code_verifier(verifier) {
            return invalid_request("code_verifier is not 43 to 128 unreserved characters");
        }
        if pkce_challenge(verifier) != code.challenge {
            return invalid_grant("code_verifier does not match the code_challenge");
        }
        let family = self.new_family(Some(client), code.scope.clone());
        self.codes.get_mut(presented).unwrap().family = Some(family);
        self.issue(family, &code.scope)
    }

    fn device_grant(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        let client = match self.authenticate(headers, params) {
            Ok(id) => id,
            Err(refusal) => return refusal.reply(),
        };
        let Some(presented) = params.get("device_code") else {
            return invalid_request("device_code is missing");
        };
        if !self.grants_seen.iter().any(|g| g == presented) {
            self.grants_seen.push(presented.to_owned());
        }
        let force_slow_down = self.force_slow_down_next;
        let Some(device) = self.device_codes.get_mut(presented) else {
            return invalid_grant("unknown device code");
        };
        if device.client != client {
            return invalid_grant("device code issued to another client");
        }
        if device.consent == Consent::Redeemed {
            return invalid_grant("device code already redeemed");
        }
        let now = Instant::now();
        if device.expired(now) {
            return device_error("expired_token", "the device code has expired");
        }
        let last_poll = device.last_poll.replace(now);
        if force_slow_down {
            self.force_slow_down_next = false;
            return device_error("slow_down", "forced by the test");
        }
        if let Some(last) = last_poll {
            if now.duration_since(last) + POLL_TOLERANCE < device.interval {
                device.interval += SLOW_DOWN_STEP;
                return device_error("slow_down", "polled sooner than the interval");
            }
        }
        match device.consent {
            Consent::Pending => {
                device_error("authorization_pending", "the user has not decided yet")
            }
            Consent::Denied => device_error("access_denied", "the user denied the request"),
            Consent::Approved => {
                device.consent = Consent::Redeemed;
                let (client, scope) = (device.client.clone(), device.scope.clone());
                let family = self.new_family(Some(client), scope.clone());
                self.issue(family, &scope)
            }
            Consent::Redeemed => unreachable!("checked above"),
        }
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}
