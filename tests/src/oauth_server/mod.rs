//! A strict OAuth 2.0 authorization server on 127.0.0.1 for the tests, over real HTTP (hyper):
//!
//! - `POST /token` (RFC 6749): the `authorization_code` grant with PKCE (RFC 7636, S256 only),
//!   `refresh_token` with rotation on every use and reuse detection that revokes the whole token
//!   family (as production providers do), and the device grant (RFC 8628 §3.4).
//! - `GET /authorize`: the "user" consents at once, and the server redirects to a loopback
//!   `redirect_uri` with a single-use code bound to the request.
//! - `POST /revoke` (RFC 7009), `POST /device_authorization` with the user's `GET /device` page
//!   (RFC 8628), and `GET /.well-known/openid-configuration` (discovery).
//!
//! Tests steer it (faults queued per endpoint, a denied consent, a forced `slow_down`, device
//! codes approved, denied or expired, a required client secret) and read it back (counters, and
//! whether a token is revoked). All state is one `State` behind one mutex; a request is handled
//! synchronously under it once its body is read, so the lock is never held across an await.
//!
//! Token values are counters (`ATOKEN-n`, `RTOKEN-n`, numbered in order of issue), never derived
//! from time; codes and device codes are random-looking.
//!
//! One module per concern: `state` (what the server knows), `serve` (the HTTP plumbing and
//! routing), `request` and `reply`, and one module per endpoint (`authorize`, `token`, `device`,
//! `revoke`, `discovery`).

mod authorize;
mod device;
mod discovery;
mod reply;
mod request;
mod revoke;
mod serve;
mod state;
#[cfg(test)]
mod tests;
mod token;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use hyper::Method;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::loopback::{LoopbackServer, Stopped};
use device::Consent;
use serve::serve;
use state::{RefreshToken, State};

/// The client id accepted until [`TokenServer::set_client_id`] changes it.
pub const DEFAULT_CLIENT_ID: &str = "latchkey-test";

/// The device grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long an authorization code may be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// What `slow_down` adds to a device code's polling interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// A poll this much early still counts as on time, so a client that waits exactly `interval`
/// is not told to slow down because of scheduling jitter.
const POLL_TOLERANCE: Duration = Duration::from_millis(100);

/// The largest request body read.
const MAX_BODY: usize = 64 * 1024;

/// A fault to answer instead of the endpoint's normal reply.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This status with an empty JSON object.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooManyRequests(u64),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 without `access_token`.
    MissingAccessToken,
    /// 200 with a `token_type` that is not Bearer.
    UnknownTokenType,
    /// 400 `invalid_grant`.
    InvalidGrant,
    /// Read the request and never answer; when the server is dropped the connection closes
    /// without a response.
    Hang,
    /// Close the connection without any response.
    Reset,
    /// 400 whose `error` is the first secret the request submitted (`refresh_token`, `code`
    /// or `device_code`) and whose `error_description` repeats every one it submitted
    /// (those, `code_verifier` and `client_secret`), as a careless provider might.
    EchoSecrets,
    /// 200 with a `Content-Type` that quotes the request's first secret (which the `oauth2`
    /// crate would quote in turn).
    EchoSecretsInContentType,
    /// 400 whose `error` and `error_description` carry [`HOSTILE_MARK`] among control
    /// characters and ANSI escape sequences, the description 100 000 characters long.
    HostileText,
}

/// A word in [`Fault::HostileText`]'s texts, which must never be shown.
pub const HOSTILE_MARK: &str = "HOSTILEMARK";

/// An endpoint with its own fault queue and request counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /token`, every grant type.
    Token,
    /// `POST /revoke`.
    Revocation,
    /// `POST /device_authorization`.
    DeviceAuthorization,
    /// `GET /authorize`.
    Authorize,
    /// `GET /.well-known/openid-configuration`.
    Discovery,
}

impl Endpoint {
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }

    fn from_path(path: &str) -> Option<Self> {
        match path {
            "/token" => Some(Self::Token),
            "/revoke" => Some(Self::Revocation),
            "/device_authorization" => Some(Self::DeviceAuthorization),
            "/authorize" => Some(Self::Authorize),
            "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
                Some(Self::Discovery)
            }
            _ => None,
        }
    }

    fn method(self) -> Method {
        match self {
            Self::Authorize | Self::Discovery => Method::GET,
            Self::Token | Self::Revocation | Self::DeviceAuthorization => Method::POST,
        }
    }
}

/// The running server. Dropping it stops it, hung requests included.
pub struct TokenServer {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

/// What the connection tasks share with the test.
struct Shared {
    state: Mutex<State>,
    /// While `true`, token-endpoint answers are held after the request was handled (a token
    /// rotated, say) and before the reply goes out: a slow provider.
    hold: watch::Sender<bool>,
    /// Fires when the server is dropped: ends hung requests and held answers.
    stopped: Stopped,
}

impl TokenServer {
    /// Starts the server on a random loopback port.
    pub fn start() -> Self {
        let mut shared = None;
        let server = LoopbackServer::start(MAX_BODY, |address, stopped| {
            let state = Arc::new(Shared {
                state: Mutex::new(State::new(format!("http://{address}"))),
                hold: watch::channel(false).0,
                stopped,
            });
            shared = Some(Arc::clone(&state));
            move |parts, body| serve(Arc::clone(&state), parts, body)
        });
        Self {
            shared: shared.expect("the server was set up"),
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    // --- Addresses -----------------------------------------------------------------------

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.address())
    }

    /// The issuer in the discovery document (the base URL).
    pub fn issuer(&self) -> String {
        self.base_url()
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The authorization endpoint's URL.
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    /// The device authorization endpoint's URL.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/device_authorization", self.base_url())
    }

    /// The revocation endpoint's URL.
    pub fn revocation_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    /// The page where the "user" enters a device flow's user code.
    pub fn verification_uri(&self) -> String {
        format!("{}/device", self.base_url())
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base_url())
    }

    // --- Configuration -------------------------------------------------------------------

    /// Makes `refresh_token` valid, as the start of a new family. Seeded families belong to no
    /// client: any `client_id` may refresh them, unless a client secret is required.
    pub fn seed(&self, refresh_token: &str) {
        let mut state = self.state();
        let family = state.new_family(None, String::new());
        state.refresh_tokens.insert(
            refresh_token.to_owned(),
            RefreshToken {
                family,
                used: false,
            },
        );
    }

    /// The one client id accepted from now on (default [`DEFAULT_CLIENT_ID`]).
    pub fn set_client_id(&self, client_id: &str) {
        self.state().settings.client_id = client_id.to_owned();
    }

    /// Makes the client confidential: the token, device authorization and revocation endpoints
    /// answer 401 `invalid_client` unless the request carries this secret, as `client_secret`
    /// or with HTTP Basic (form-url-encoded `id:secret`).
    pub fn require_client_secret(&self, secret: &str) {
        self.state().settings.client_secret = Some(secret.to_owned());
    }

    /// The `expires_in` of tokens issued from now on (default 3600).
    pub fn set_expires_in(&self, secs: u64) {
        self.state().settings.expires_in = secs;
    }

    /// The lifetime of device codes issued from now on (default 600 s).
    pub fn set_device_expires_in(&self, secs: u64) {
        self.state().settings.device_expires_in = secs;
    }

    /// Answers at the token endpoint as GitHub does: errors (`authorization_pending`,
    /// `slow_down`, ...) with status 200, a spent refresh token as `bad_refresh_token`, and
    /// granted scopes separated by commas.
    pub fn set_github_style(&self) {
        self.state().settings.github_style = true;
    }

    /// The polling interval of device codes issued from now on (default 1 s).
    pub fn set_device_interval(&self, secs: u64) {
        self.state().settings.device_interval = secs;
    }

    // --- Steering ------------------------------------------------------------------------

    /// Answers the token endpoint's next requests (any grant) with these faults, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.fail_next_at(Endpoint::Token, faults);
    }

    /// Answers `endpoint`'s next requests with these faults, in order.
    pub fn fail_next_at(&self, endpoint: Endpoint, faults: &[Fault]) {
        self.state().faults[endpoint.index()].extend(faults.iter().cloned());
    }

    /// Adds `iss` (RFC 9207) with this value to every authorization response from now on
    /// (codes and errors); `None` stops it.
    pub fn set_authorization_iss(&self, iss: Option<&str>) {
        self.state().settings.authorization_iss = iss.map(str::to_owned);
    }

    /// Whether the discovery document says every authorization response carries `iss`
    /// (`authorization_response_iss_parameter_supported`).
    pub fn advertise_iss(&self, supported: bool) {
        self.state().settings.advertise_iss = supported;
    }

    /// The "user" denies the next valid authorization request: it redirects with
    /// `error=access_denied`.
    pub fn deny_next_authorization(&self) {
        self.state().deny_next_authorization = true;
    }

    /// The next device grant poll (of any device code that is neither redeemed nor expired)
    /// answers `slow_down` whatever its timing. Unlike a poll that came too soon, it does not
    /// lengthen the code's interval, but it counts as the code's last poll.
    pub fn force_slow_down_next(&self) {
        self.state().force_slow_down_next = true;
    }

    /// Expires every device code issued so far: their polls answer `expired_token`.
    pub fn expire_device_codes(&self) {
        for device in self.state().device_codes.values_mut() {
            device.forced_expiry = true;
        }
    }

    /// Expires every authorization code issued so far: redeeming one is `invalid_grant`.
    pub fn expire_authorization_codes(&self) {
        for code in self.state().codes.values_mut() {
            code.forced_expiry = true;
        }
    }

    /// The "user" approves the device flow of `user_code` (dashes and case ignored); panics if
    /// the code is unknown, expired or already decided.
    pub fn approve_device(&self, user_code: &str) {
        if let Err(why) = self.state().decide(user_code, Consent::Approved) {
            panic!("cannot approve {user_code}: {why}");
        }
    }

    /// The "user" denies the device flow of `user_code`; panics as [`Self::approve_device`].
    pub fn deny_device(&self, user_code: &str) {
        if let Err(why) = self.state().decide(user_code, Consent::Denied) {
            panic!("cannot deny {user_code}: {why}");
        }
    }

    /// Holds the token endpoint's answers from now on: each request is handled (a refresh
    /// token rotates) but its reply waits until [`Self::release_token_endpoint`].
    pub fn hold_token_endpoint(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Sends every held token-endpoint answer and holds no more.
    pub fn release_token_endpoint(&self) {
        self.shared.hold.send_replace(false);
    }

    // --- Observations --------------------------------------------------------------------

    /// Token-endpoint answers being held right now.
    pub fn held_answers(&self) -> usize {
        self.state().counters.held
    }

    /// Every token presented at `POST /revoke`, in order, refused requests included.
    pub fn revocation_log(&self) -> Vec<String> {
        self.state().revocation_log.clone()
    }

    /// Requests received at `endpoint`, faulted and refused ones included.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.state().counters.requests[endpoint.index()]
    }

    /// `refresh_token` grant requests received, faulted ones included.
    pub fn refresh_requests(&self) -> usize {
        self.state().counters.refresh_requests
    }

    /// `authorization_code` grant requests received, faulted ones included.
    pub fn code_exchanges(&self) -> usize {
        self.state().counters.code_exchanges
    }

    /// Device grant polls received, faulted ones included.
    pub fn device_polls(&self) -> usize {
        self.state().counters.device_polls
    }

    /// Device codes issued.
    pub fn device_authorizations(&self) -> usize {
        self.state().counters.device_authorizations
    }

    /// `POST /revoke` requests received, faulted and refused ones included.
    pub fn revocation_requests(&self) -> usize {
        self.state().counters.revocation_requests
    }

    /// Refresh tokens presented a second time.
    pub fn reuse_detected(&self) -> usize {
        self.state().counters.reuse_detected
    }

    /// Whether `token` (access or refresh) was issued or seeded here and is revoked, by
    /// itself or with its family.
    pub fn is_revoked(&self, token: &str) -> bool {
        let state = self.state();
        if let Some(refresh) = state.refresh_tokens.get(token) {
            return state.families[&refresh.family].revoked;
        }
        if let Some(access) = state.access_tokens.get(token) {
            return access.revoked || state.families[&access.family].revoked;
        }
        false
    }

    /// Every authorization code, PKCE verifier and device code presented at the token endpoint
    /// (in requests answered with a fault too).
    pub fn grants_seen(&self) -> Vec<String> {
        self.state().grants_seen.clone()
    }

    /// Whether `token` is an access token issued here and not revoked (expiry is not checked).
    pub fn access_token_valid(&self, token: &str) -> bool {
        let state = self.state();
        state
            .access_tokens
            .get(token)
            .is_some_and(|access| !access.revoked && !state.families[&access.family].revoked)
    }
}

/// BASE64URL-NOPAD(SHA256(verifier)) (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}
