//! Reading a request: its form or query parameters, its content type, and who the client
//! is (client authentication, RFC 6749 §2.3).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use hyper::header::{self, HeaderMap, HeaderValue};

use super::reply::{invalid_client, invalid_request, Reply};
use super::state::State;

impl State {
    /// The client's id, if it is the configured client and brings the secret when one is
    /// required; HTTP Basic or body parameters, not both.
    pub(super) fn authenticate(
        &self,
        headers: &HeaderMap,
        params: &Params,
    ) -> Result<String, Refusal> {
        let basic = match headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => match parse_basic(value) {
                Some(credentials) => Some(credentials),
                None => return Err(Refusal::Client("the Authorization header is not Basic")),
            },
        };
        if basic.is_some() && params.get("client_secret").is_some() {
            return Err(Refusal::Request(
                "more than one client authentication method",
            ));
        }
        let id = match (&basic, params.get("client_id")) {
            (Some((id, _)), Some(form)) if id != form => {
                return Err(Refusal::Client(
                    "client_id differs from the Basic credentials",
                ))
            }
            (Some((id, _)), _) => id.clone(),
            (None, Some(form)) => form.to_owned(),
            (None, None) => return Err(Refusal::Client("no client_id")),
        };
        if id != self.settings.client_id {
            return Err(Refusal::Client("unknown client"));
        }
        if let Some(required) = &self.settings.client_secret {
            let given = match &basic {
                Some((_, secret)) => Some(secret.as_str()),
                None => params.get("client_secret"),
            };
            if given != Some(required.as_str()) {
                return Err(Refusal::Client("client authentication failed"));
            }
        }
        Ok(id)
    }
}

/// Why client authentication failed.
pub(super) enum Refusal {
    /// 401 `invalid_client`.
    Client(&'static str),
    /// 400 `invalid_request`.
    Request(&'static str),
}

impl Refusal {
    pub(super) fn reply(self) -> Reply {
        match self {
            Self::Client(description) => invalid_client(description),
            Self::Request(description) => invalid_request(description),
        }
    }
}

/// Form or query parameters. An empty value counts as absent (RFC 6749 §3.1).
pub(super) struct Params {
    values: HashMap<String, String>,
    repeated: HashSet<String>,
}

impl Params {
    pub(super) fn parse(bytes: &[u8]) -> Self {
        let mut values = HashMap::new();
        let mut repeated = HashSet::new();
        for (name, value) in form_urlencoded::parse(bytes).into_owned() {
            if value.is_empty() {
                continue;
            }
            match values.entry(name) {
                Entry::Occupied(entry) => {
                    repeated.insert(entry.key().clone());
                }
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
            }
        }
        Self { values, repeated }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub(super) fn is_repeated(&self, name: &str) -> bool {
        self.repeated.contains(name)
    }

    /// A parameter given more than once (RFC 6749 §3.1 forbids it), if any.
    pub(super) fn repeated(&self) -> Option<&str> {
        self.repeated.iter().next().map(String::as_str)
    }
}

pub(super) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, decoded.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}
