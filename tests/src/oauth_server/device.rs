//! Device authorization (RFC 8628): `POST /device_authorization` issues a device code and a
//! user code, and the user's `GET /device` page (or the test) approves or denies it.

use std::time::{Duration, Instant};

use hyper::header::HeaderMap;
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::reply::{escape_html, json_reply, page, Reply};
use super::request::Params;
use super::state::{normalize_scope, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Consent {
    Pending,
    Approved,
    Denied,
    /// Approved, and the tokens were issued.
    Redeemed,
}

pub(super) struct DeviceCode {
    pub(super) client: String,
    pub(super) scope: String,
    pub(super) created: Instant,
    pub(super) lifetime: Duration,
    pub(super) forced_expiry: bool,
    /// The current polling interval; `slow_down` lengthens it.
    pub(super) interval: Duration,
    pub(super) last_poll: Option<Instant>,
    pub(super) consent: Consent,
}

impl DeviceCode {
    pub(super) fn expired(&self, now: Instant) -> bool {
        self.forced_expiry || now.duration_since(self.created) >= self.lifetime
    }
}

impl State {
    pub(super) fn device_authorization(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        let client = match self.authenticate(headers, params) {
            Ok(id) => id,
            Err(refusal) => return refusal.reply(),
        };
        let device_code = format!("DEVICE-{:016x}{:016x}", self.random(), self.random());
        let user_code = loop {
            let code = user_code(self.random());
            if !self.user_codes.contains_key(&normalize_user_code(&code)) {
                break code;
            }
        };
        let settings = &self.settings;
        let (lifetime, interval) = (settings.device_expires_in, settings.device_interval);
        let scope = normalize_scope(params.get("scope").unwrap_or_default());
        self.device_codes.insert(
            device_code.clone(),
            DeviceCode {
                client,
                scope,
                created: Instant::now(),
                lifetime: Duration::from_secs(lifetime),
                forced_expiry: false,
                interval: Duration::from_secs(interval),
                last_poll: None,
                consent: Consent::Pending,
            },
        );
        self.user_codes
            .insert(normalize_user_code(&user_code), device_code.clone());
        self.counters.device_authorizations += 1;
        let verification_uri = format!("{}/device", self.base_url);
        let complete = format!("{verification_uri}?user_code={user_code}");
        json_reply(
            StatusCode::OK,
            &json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": complete,
                "expires_in": lifetime,
                "interval": interval,
            }),
        )
    }

    /// Records the user's decision on a pending, unexpired device code.
    pub(super) fn decide(&mut self, user_code: &str, consent: Consent) -> Result<(), &'static str> {
        let device = self.device_by_user_code(user_code)?;
        if device.consent != Consent::Pending {
            return Err("this code was already used");
        }
        device.consent = consent;
        Ok(())
    }

    fn device_by_user_code(&mut self, user_code: &str) -> Result<&mut DeviceCode, &'static str> {
        let device = self
            .user_codes
            .get(&normalize_user_code(user_code))
            .and_then(|device_code| self.device_codes.get_mut(device_code))
            .ok_or("unknown code")?;
        if device.expired(Instant::now()) {
            return Err("this code has expired");
        }
        Ok(device)
    }

    /// `GET /device`: the user's side of the device flow. `?user_code=X` shows the request,
    /// `&action=approve` or `&action=deny` decides it.
    pub(super) fn verification_page(&mut self, parts: &Parts) -> Reply {
        if parts.method != Method::GET {
            return page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
        }
        let params = Params::parse(parts.uri.query().unwrap_or_default().as_bytes());
        let Some(user_code) = params.get("user_code") else {
            return page(
                StatusCode::OK,
                "<form action=\"/device\"><input name=\"user_code\"><button>Next</button></form>",
            );
        };
        let consent = match params.get("action") {
            None => None,
            Some("approve") => Some(Consent::Approved),
            Some("deny") => Some(Consent::Denied),
            Some(_) => return page(StatusCode::BAD_REQUEST, "Unknown action."),
        };
        let code = escape_html(user_code);
        let Some(consent) = consent else {
            return match self.device_by_user_code(user_code) {
                Ok(device) => page(
                    StatusCode::OK,
                    &format!(
                        "A device asks for {}. <a href=\"/device?user_code={code}&amp;action=approve\">Approve</a> <a href=\"/device?user_code={code}&amp;action=deny\">Deny</a>",
                        escape_html(&device.scope)
                    ),
                ),
                Err(why) => page(StatusCode::BAD_REQUEST, why),
            };
        };
        match self.decide(user_code, consent) {
            Ok(()) if consent == Consent::Approved => {
                page(StatusCode::OK, &format!("Device {code} approved."))
            }
            Ok(()) => page(StatusCode::OK, &format!("Device {code} denied.")),
            Err(why) => page(StatusCode::BAD_REQUEST, why),
        }
    }
}

/// `BCDF-1234`: four consonants (RFC 8628 §6.1 suggests no vowels) and four digits.
fn user_code(random: u64) -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let letters: String = (0..4)
        .map(|i| LETTERS[((random >> (i * 8)) % LETTERS.len() as u64) as usize] as char)
        .collect();
    format!("{letters}-{:04}", (random >> 32) % 10_000)
}

fn normalize_user_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}
