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
//! whether a token is revoked). All state is one [`State`] behind one mutex; a request is handled
//! synchronously under it once its body is read, so the lock is never held across an await.
//!
//! Token values are counters (`ATOKEN-n`, `RTOKEN-n`, numbered in order of issue), never derived
//! from time; codes and device codes are random-looking.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

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
}

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
    address: SocketAddr,
    shared: Arc<Shared>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the connection tasks share with the test.
struct Shared {
    state: Mutex<State>,
    /// Becomes `true` when the server is dropped: ends the accept loop and hung requests.
    shutdown: watch::Sender<bool>,
}

impl TokenServer {
    /// Starts the server on a random loopback port.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(format!("http://{address}"))),
            shutdown: watch::channel(false).0,
        });
        runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            address,
            shared,
            runtime: Some(runtime),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    // --- Addresses -----------------------------------------------------------------------

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
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

    // --- Observations --------------------------------------------------------------------

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

    /// Every authorization code, PKCE verifier and device code presented at the token endpoint.
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

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which is not allowed inside another runtime.
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                drop(runtime);
            }
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.subscribe();
    loop {
        let stream = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| serve(Arc::clone(&shared), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

/// What a request gets: a reply, or a fault at the connection level.
enum Outcome {
    Reply(Reply),
    Hang,
    Reset,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

/// Answers one request. An `Err` makes hyper close the connection without a response.
async fn serve(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Reply, io::Error> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Ok(page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request is too large.",
            ))
        }
    };
    let outcome = shared.state.lock().unwrap().handle(&parts, &body);
    match outcome {
        Outcome::Reply(reply) => Ok(reply),
        Outcome::Hang => {
            let mut stop = shared.shutdown.subscribe();
            let _ = stop.wait_for(|stopped| *stopped).await;
            Err(io::Error::other("hang fault: the server stopped"))
        }
        Outcome::Reset => Err(io::Error::other("reset fault")),
    }
}

// --- State ---------------------------------------------------------------------------------

/// The tokens descending from one grant, or from one `seed`.
struct Family {
    /// The client it was granted to; `None` for seeded families.
    client: Option<String>,
    /// The granted scope, space separated; empty for seeded families.
    scope: String,
    revoked: bool,
}

struct RefreshToken {
    family: u64,
    /// Rotated away: presenting it again is reuse.
    used: bool,
}

struct AccessToken {
    family: u64,
    revoked: bool,
}

#[derive(Clone)]
struct AuthorizationCode {
    client: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    issued_at: Instant,
    forced_expiry: bool,
    /// Presented once already (successfully or not).
    used: bool,
    /// The family its redemption started, revoked if the code is presented again.
    family: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Consent {
    Pending,
    Approved,
    Denied,
    /// Approved, and the tokens were issued.
    Redeemed,
}

struct DeviceCode {
    client: String,
    scope: String,
    created: Instant,
    lifetime: Duration,
    forced_expiry: bool,
    /// The current polling interval; `slow_down` lengthens it.
    interval: Duration,
    last_poll: Option<Instant>,
    consent: Consent,
}

impl DeviceCode {
    fn expired(&self, now: Instant) -> bool {
        self.forced_expiry || now.duration_since(self.created) >= self.lifetime
    }
}

/// What the test configured.
struct Settings {
    client_id: String,
    client_secret: Option<String>,
    expires_in: u64,
    device_expires_in: u64,
    device_interval: u64,
}

#[derive(Default)]
struct Counters {
    requests: [usize; Endpoint::COUNT],
    refresh_requests: usize,
    code_exchanges: usize,
    device_polls: usize,
    device_authorizations: usize,
    revocation_requests: usize,
    reuse_detected: usize,
}

/// Everything the server knows; owned by [`Shared::state`].
struct State {
    base_url: String,
    settings: Settings,
    counters: Counters,
    faults: [VecDeque<Fault>; Endpoint::COUNT],
    deny_next_authorization: bool,
    force_slow_down_next: bool,
    families: HashMap<u64, Family>,
    refresh_tokens: HashMap<String, RefreshToken>,
    access_tokens: HashMap<String, AccessToken>,
    /// Token pairs issued so far; numbers `ATOKEN-n` and `RTOKEN-n`.
    issued: u64,
    codes: HashMap<String, AuthorizationCode>,
    device_codes: HashMap<String, DeviceCode>,
    /// Normalized user code (upper case, no dash) to device code.
    user_codes: HashMap<String, String>,
    /// Bumped for every random value drawn.
    draws: u64,
    /// Every authorization code, PKCE verifier and device code presented at the token
    /// endpoint, so tests can look for them where they must never appear.
    grants_seen: Vec<String>,
}

impl State {
    fn new(base_url: String) -> Self {
        Self {
            base_url,
            settings: Settings {
                client_id: DEFAULT_CLIENT_ID.to_owned(),
                client_secret: None,
                expires_in: 3600,
                device_expires_in: 600,
                device_interval: 1,
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
            device_codes: HashMap::new(),
            user_codes: HashMap::new(),
            draws: 0,
        }
    }

    /// A random-looking value: a counter hashed with a fresh randomly keyed SipHash.
    fn random(&mut self) -> u64 {
        self.draws += 1;
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(self.draws);
        hasher.finish()
    }

    fn new_family(&mut self, client: Option<String>, scope: String) -> u64 {
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

    fn revoke_family(&mut self, family: u64) {
        if let Some(family) = self.families.get_mut(&family) {
            family.revoked = true;
        }
    }

    /// Issues an access token and a refresh token in `family`.
    fn issue(&mut self, family: u64, scope: &str) -> Reply {
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

    fn handle(&mut self, parts: &Parts, body: &[u8]) -> Outcome {
        let path = parts.uri.path();
        if path == "/device" {
            return self.verification_page(parts).into();
        }
        let Some(endpoint) = Endpoint::from_path(path) else {
            return page(StatusCode::NOT_FOUND, "No such page.").into();
        };
        self.counters.requests[endpoint.index()] += 1;
        let post = parts.method == Method::POST;
        let params = if post {
            Params::parse(body)
        } else {
            Params::parse(parts.uri.query().unwrap_or_default().as_bytes())
        };
        match endpoint {
            Endpoint::Token if post => match params.get("grant_type") {
                Some("refresh_token") => self.counters.refresh_requests += 1,
                Some("authorization_code") => self.counters.code_exchanges += 1,
                Some(DEVICE_CODE_GRANT) => self.counters.device_polls += 1,
                _ => {}
            },
            Endpoint::Revocation if post => self.counters.revocation_requests += 1,
            _ => {}
        }
        if let Some(fault) = self.faults[endpoint.index()].pop_front() {
            return fault_outcome(fault);
        }
        if parts.method != endpoint.method() {
            let mut reply = page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
            reply.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_str(endpoint.method().as_str()).unwrap(),
            );
            return reply.into();
        }
        if post {
            if !is_form(&parts.headers) {
                return invalid_request("the body must be application/x-www-form-urlencoded")
                    .into();
            }
            if let Some(name) = params.repeated() {
                return invalid_request(&format!("{name} is repeated")).into();
            }
        }
        match endpoint {
            Endpoint::Token => self.token(&parts.headers, &params),
            Endpoint::Revocation => self.revoke(&parts.headers, &params),
            Endpoint::DeviceAuthorization => self.device_authorization(&parts.headers, &params),
            Endpoint::Authorize => self.authorize(&params),
            Endpoint::Discovery => self.discovery(),
        }
        .into()
    }

    // --- Client authentication (RFC 6749 §2.3) -------------------------------------------

    /// The client's id, if it is the configured client and brings the secret when one is
    /// required; HTTP Basic or body parameters, not both.
    fn authenticate(&self, headers: &HeaderMap, params: &Params) -> Result<String, Refusal> {
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

    // --- Token endpoint ------------------------------------------------------------------

    fn token(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
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

    // --- Authorization endpoint ----------------------------------------------------------

    fn authorize(&mut self, params: &Params) -> Reply {
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
        let refuse = |error: &str, description: &str| {
            redirect(
                redirect_uri,
                &[("error", error), ("error_description", description)],
                state,
            )
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
        redirect(redirect_uri, &[("code", &code)], state)
    }

    // --- Revocation endpoint (RFC 7009) --------------------------------------------------

    fn revoke(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        let client = match self.authenticate(headers, params) {
            Ok(id) => id,
            Err(refusal) => return refusal.reply(),
        };
        let Some(token) = params.get("token") else {
            return invalid_request("token is missing");
        };
        // token_type_hint only speeds up a real server's lookup; both kinds are searched.
        let family = self
            .refresh_tokens
            .get(token)
            .map(|t| t.family)
            .or_else(|| self.access_tokens.get(token).map(|t| t.family));
        if let Some(family) = family {
            let owner = self.families[&family].client.as_deref();
            if owner.is_some_and(|owner| owner != client) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "the token was issued to another client",
                );
            }
            if self.refresh_tokens.contains_key(token) {
                self.revoke_family(family);
            } else if let Some(access) = self.access_tokens.get_mut(token) {
                access.revoked = true;
            }
        }
        // Unknown tokens get 200 as well (RFC 7009 §2.2).
        let mut reply = Response::new(Full::new(Bytes::new()));
        no_store(reply.headers_mut());
        reply
    }

    // --- Device authorization (RFC 8628) -------------------------------------------------

    fn device_authorization(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
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
    fn decide(&mut self, user_code: &str, consent: Consent) -> Result<(), &'static str> {
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
    fn verification_page(&mut self, parts: &Parts) -> Reply {
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

    // --- Discovery -----------------------------------------------------------------------

    fn discovery(&self) -> Reply {
        let base = &self.base_url;
        let auth_methods = if self.settings.client_secret.is_some() {
            json!(["client_secret_basic", "client_secret_post"])
        } else {
            json!(["none"])
        };
        json_reply(
            StatusCode::OK,
            &json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "revocation_endpoint": format!("{base}/revoke"),
                "device_authorization_endpoint": format!("{base}/device_authorization"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": auth_methods,
                "revocation_endpoint_auth_methods_supported": auth_methods,
            }),
        )
    }
}

// --- Requests ------------------------------------------------------------------------------

/// Why client authentication failed.
enum Refusal {
    /// 401 `invalid_client`.
    Client(&'static str),
    /// 400 `invalid_request`.
    Request(&'static str),
}

impl Refusal {
    fn reply(self) -> Reply {
        match self {
            Self::Client(description) => invalid_client(description),
            Self::Request(description) => invalid_request(description),
        }
    }
}

/// Form or query parameters. An empty value counts as absent (RFC 6749 §3.1).
struct Params {
    values: HashMap<String, String>,
    repeated: HashSet<String>,
}

impl Params {
    fn parse(bytes: &[u8]) -> Self {
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

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn is_repeated(&self, name: &str) -> bool {
        self.repeated.contains(name)
    }

    /// A parameter given more than once (RFC 6749 §3.1 forbids it), if any.
    fn repeated(&self) -> Option<&str> {
        self.repeated.iter().next().map(String::as_str)
    }
}

fn is_form(headers: &HeaderMap) -> bool {
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

/// BASE64URL-NOPAD(SHA256(verifier)) (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// A SHA-256 digest in unpadded base64url: 43 characters of that alphabet.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn normalize_scope(scope: &str) -> String {
    scope.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_subset(asked: &str, granted: &str) -> bool {
    let granted: HashSet<&str> = granted.split_whitespace().collect();
    asked.split_whitespace().all(|s| granted.contains(s))
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

// --- Replies -------------------------------------------------------------------------------

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// Token responses must not be cached (RFC 6749 §5.1).
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut reply = reply(status, "application/json", body.to_string());
    no_store(reply.headers_mut());
    reply
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn invalid_request(description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client(description: &str) -> Reply {
    let mut reply = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"latchkey-test\""),
    );
    reply
}

/// A device grant error (RFC 8628 §3.5): all are 400.
fn device_error(error: &str, description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// A small HTML page; `body` is HTML.
fn page(status: StatusCode, body: &str) -> Reply {
    reply(
        status,
        "text/html; charset=utf-8",
        format!("<!DOCTYPE html><html><body><p>{body}</p></body></html>\n"),
    )
}

fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// 302 to `redirect_uri` with `params` and `state` added to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Reply {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params);
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    let separator = match redirect_uri.find('?') {
        None => "?",
        Some(_) if redirect_uri.ends_with(['?', '&']) => "",
        Some(_) => "&",
    };
    let location = format!("{redirect_uri}{separator}{}", query.finish());
    let mut reply = page(StatusCode::FOUND, "Redirecting.");
    reply.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a URL-encoded location"),
    );
    no_store(reply.headers_mut());
    reply
}

fn fault_outcome(fault: Fault) -> Outcome {
    let reply = match fault {
        Fault::Status(code) => json_reply(StatusCode::from_u16(code).unwrap(), &json!({})),
        Fault::TooManyRequests(secs) => {
            let mut reply = json_reply(StatusCode::TOO_MANY_REQUESTS, &json!({}));
            reply
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            reply
        }
        Fault::Garbage => reply(
            StatusCode::OK,
            "application/json",
            "<html>surprise</html>".into(),
        ),
        Fault::MissingAccessToken => json_reply(
            StatusCode::OK,
            &json!({ "token_type": "Bearer", "expires_in": 3600 }),
        ),
        Fault::UnknownTokenType => json_reply(
            StatusCode::OK,
            &json!({ "access_token": "x", "token_type": "MAC", "expires_in": 3600 }),
        ),
        Fault::InvalidGrant => json_reply(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "invalid_grant" }),
        ),
        Fault::Hang => return Outcome::Hang,
        Fault::Reset => return Outcome::Reset,
    };
    reply.into()
}

#[cfg(test)]
mod tests {
    //! Each endpoint over real HTTP with reqwest, as a client would see it.

    use std::collections::HashMap;
    use std::future::Future;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use super::{pkce_challenge, Endpoint, Fault, TokenServer, DEVICE_CODE_GRANT};
    use crate::http;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const CLIENT: &str = "latchkey-test";

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn client(timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .unwrap()
    }

    struct Answer {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: String,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|_| panic!("not JSON ({}): {:?}", self.status, self.body))
        }

        /// The OAuth error code, with the status it came with.
        fn error(&self) -> (u16, String) {
            let error = self.json()["error"].as_str().unwrap_or_default().to_owned();
            (self.status, error)
        }
    }

    fn try_post(
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<Answer, reqwest::Error> {
        run(async {
            let mut request = client(timeout).post(url).form(form);
            if let Some((id, secret)) = basic {
                request = request.basic_auth(id, Some(secret));
            }
            let response = request.send().await?;
            Ok(Answer {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.text().await?,
            })
        })
    }

    fn post(url: &str, form: &[(&str, &str)]) -> Answer {
        try_post(url, form, None, Duration::from_secs(10)).unwrap()
    }

    fn query(location: &str) -> HashMap<String, String> {
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    fn authorize_url(server: &TokenServer, pairs: &[(&str, &str)]) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}?{query}", server.authorize_url())
    }

    const REDIRECT: &str = "http://127.0.0.1:9/callback";

    /// A valid authorization request for `scope`; returns the code.
    fn authorize(server: &TokenServer, scope: &str) -> String {
        let reply = http::get(&authorize_url(
            server,
            &[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", REDIRECT),
                ("state", "s1"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("scope", scope),
            ],
        ));
        assert_eq!(reply.status, 302, "{}", reply.body);
        let query = query(reply.location.as_deref().unwrap());
        assert_eq!(query["state"], "s1");
        query["code"].clone()
    }

    fn exchange(server: &TokenServer, code: &str, verifier: &str) -> Answer {
        post(
            &server.token_url(),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", verifier),
            ],
        )
    }

    fn refresh(server: &TokenServer, token: &str) -> Answer {
        post(
            &server.token_url(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", CLIENT),
            ],
        )
    }

    fn revoke(server: &TokenServer, token: &str) -> Answer {
        post(
            &server.revocation_url(),
            &[("token", token), ("client_id", CLIENT)],
        )
    }

    fn start_device(server: &TokenServer) -> Value {
        let answer = post(
            &server.device_authorization_url(),
            &[("client_id", CLIENT), ("scope", "read  write")],
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    fn poll(server: &TokenServer, device_code: &str) -> Answer {
        post(
            &server.token_url(),
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", device_code),
                ("client_id", CLIENT),
            ],
        )
    }

    #[test]
    fn the_pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(pkce_challenge(VERIFIER), CHALLENGE);
    }

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

        // One interval after the last poll: on time.
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
}
