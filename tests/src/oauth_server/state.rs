//! What the server knows: settings, counters, fault queues, the token families with their
//! access and refresh tokens, and the codes in flight; and how a token pair is issued.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

use hyper::StatusCode;
use serde_json::json;

use super::authorize::AuthorizationCode;
use super::device::DeviceCode;
use super::reply::{json_reply, Reply};
use super::{Endpoint, Fault, DEFAULT_CLIENT_ID};

/// The tokens descending from one grant, or from one `seed`.
pub(super) struct Family {
    /// The client it was granted to; `None` for seeded families.
    pub(super) client: Option<String>,
    /// The granted scope, space separated; empty for seeded families.
    pub(super) scope: String,
    pub(super) revoked: bool,
}

pub(super) struct RefreshToken {
    pub(super) family: u64,
    /// Rotated away: presenting it again is reuse.
    pub(super) used: bool,
}

pub(super) struct AccessToken {
    pub(super) family: u64,
    pub(super) revoked: bool,
}

/// What the test configured.
pub(super) struct Settings {
    pub(super) client_id: String,
    pub(super) client_secret: Option<String>,
    pub(super) expires_in: u64,
    pub(super) device_expires_in: u64,
    pub(super) device_interval: u64,
    /// Token-endpoint answers as GitHub writes them (see `serve::as_github_would`).
    pub(super) github_style: bool,
    /// The `iss` added to authorization responses (RFC 9207), if any.
    pub(super) authorization_iss: Option<String>,
    /// `authorization_response_iss_parameter_supported` in the discovery document.
    pub(super) advertise_iss: bool,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests: [usize; Endpoint::COUNT],
    pub(super) refresh_requests: usize,
    pub(super) code_exchanges: usize,
    pub(super) device_polls: usize,
    pub(super) device_authorizations: usize,
    pub(super) revocation_requests: usize,
    pub(super) reuse_detected: usize,
    /// Token-endpoint answers held right now.
    pub(super) held: usize,
}

/// Everything the server knows; owned by [`Shared::state`](super::Shared::state).
pub(super) struct State {
    pub(super) base_url: String,
    pub(super) settings: Settings,
    pub(super) counters: Counters,
    pub(super) faults: [VecDeque<Fault>; Endpoint::COUNT],
    pub(super) deny_next_authorization: bool,
    pub(super) force_slow_down_next: bool,
    pub(super) families: HashMap<u64, Family>,
    pub(super) refresh_tokens: HashMap<String, RefreshToken>,
    pub(super) access_tokens: HashMap<String, AccessToken>,
    /// Token pairs issued so far; numbers `ATOKEN-n` and `RTOKEN-n`.
    pub(super) issued: u64,
    pub(super) codes: HashMap<String, AuthorizationCode>,
    pub(super) device_codes: HashMap<String, DeviceCode>,
    /// Normalized user code (upper case, no dash) to device code.
    pub(super) user_codes: HashMap<String, String>,
    /// Bumped for every random value drawn.
    pub(super) draws: u64,
    /// Every authorization code, PKCE verifier and device code presented at the token
    /// endpoint, so tests can look for them where they must never appear.
    pub(super) grants_seen: Vec<String>,
    /// Every token presented at the revocation endpoint.
    pub(super) revocation_log: Vec<String>,
}

impl State {
    pub(super) fn new(base_url: String) -> Self {
        Self {
            base_url,
            settings: Settings {
                client_id: DEFAULT_CLIENT_ID.to_owned(),
                client_secret: None,
                expires_in: 3600,
                device_expires_in: 600,
                device_interval: 1,
                github_style: false,
                authorization_iss: None,
                advertise_iss: false,
            },
            counters: Counters::default(),
            faults: Default::default(),
            deny_next_authorization: false,
            force_slow_down_next: false,
            families: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            issued: 0,
            codes: HashMap::new(),
            grants_seen: Vec::new(),
            revocation_log: Vec::new(),
            device_codes: HashMap::new(),
            user_codes: HashMap::new(),
            draws: 0,
        }
    }

    /// A random-looking value: a counter hashed with a fresh randomly keyed SipHash.
    pub(super) fn random(&mut self) -> u64 {
        self.draws += 1;
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(self.draws);
        hasher.finish()
    }

    pub(super) fn new_family(&mut self, client: Option<String>, scope: String) -> u64 {
        let id = self.families.len() as u64 + 1;
        self.families.insert(
            id,
            Family {
                client,
                scope,
                revoked: false,
            },
        );
        id
    }

    pub(super) fn revoke_family(&mut self, family: u64) {
        if let Some(family) = self.families.get_mut(&family) {
            family.revoked = true;
        }
    }

    /// Issues an access token and a refresh token in `family`.
    pub(super) fn issue(&mut self, family: u64, scope: &str) -> Reply {
        self.issued += 1;
        let n = self.issued;
        let access_token = format!("ATOKEN-{n}");
        let refresh_token = format!("RTOKEN-{n}");
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                family,
                revoked: false,
            },
        );
        self.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshToken {
                family,
                used: false,
            },
        );
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.settings.expires_in,
            "refresh_token": refresh_token,
        });
        if !scope.is_empty() {
            body["scope"] = scope.into();
        }
        json_reply(StatusCode::OK, &body)
    }
}

pub(super) fn normalize_scope(scope: &str) -> String {
    scope.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn is_subset(asked: &str, granted: &str) -> bool {
    let granted: HashSet<&str> = granted.split_whitespace().collect();
    asked.split_whitespace().all(|s| granted.contains(s))
}
