//! A strict OAuth 2.0 token endpoint on 127.0.0.1 for the tests: real HTTP (hyper), refresh
//! tokens that rotate on every use, reuse detection that revokes the whole token family
//! (as production providers do), request counters, and faults injected for the next requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

/// A fault to answer instead of tokens.
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
}

#[derive(Default)]
struct State {
    /// Refresh tokens that may be used, with their family.
    live: HashMap<String, u64>,
    /// Refresh tokens already used, with their family.
    spent: HashMap<String, u64>,
    revoked: HashSet<u64>,
    next_family: u64,
    issued: u64,
    refresh_requests: usize,
    reuse_detected: usize,
    faults: VecDeque<Fault>,
}

/// The running server. Dropping it stops it.
pub struct TokenServer {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

impl TokenServer {
    /// Starts the server on a random loopback port.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::clone(&state);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            state,
            _runtime: runtime,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.address)
    }

    /// Makes `refresh_token` valid, as the start of a new family.
    pub fn seed(&self, refresh_token: &str) {
        let mut state = self.state();
        state.next_family += 1;
        let family = state.next_family;
        state.live.insert(refresh_token.to_owned(), family);
    }

    /// Answers the next requests with these faults, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.state().faults.extend(faults.iter().cloned());
    }

    /// Refresh requests received.
    pub fn refresh_requests(&self) -> usize {
        self.state().refresh_requests
    }

    /// Refresh tokens presented a second time.
    pub fn reuse_detected(&self) -> usize {
        self.state().reuse_detected
    }
}

async fn handle(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != hyper::Method::POST || request.uri().path() != "/token" {
        return json(StatusCode::NOT_FOUND, "{}".into());
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json(StatusCode::BAD_REQUEST, "{}".into()),
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut state = state.lock().unwrap();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported_grant_type"}"#.into(),
        );
    }
    state.refresh_requests += 1;
    if let Some(fault) = state.faults.pop_front() {
        return match fault {
            Fault::Status(code) => json(StatusCode::from_u16(code).unwrap(), "{}".into()),
            Fault::TooManyRequests(secs) => {
                let mut response = json(StatusCode::TOO_MANY_REQUESTS, "{}".into());
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
                response
            }
            Fault::Garbage => json(StatusCode::OK, "<html>surprise</html>".into()),
            Fault::MissingAccessToken => json(
                StatusCode::OK,
                r#"{"token_type":"Bearer","expires_in":3600}"#.into(),
            ),
            Fault::UnknownTokenType => json(
                StatusCode::OK,
                r#"{"access_token":"x","token_type":"MAC","expires_in":3600}"#.into(),
            ),
            Fault::InvalidGrant => json(
                StatusCode::BAD_REQUEST,
                r#"{"error":"invalid_grant"}"#.into(),
            ),
        };
    }
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let Some(family) = state.live.remove(&presented) else {
        if let Some(family) = state.spent.get(&presented).copied() {
            // Reuse of a rotated token: revoke the whole family.
            state.reuse_detected += 1;
            state.revoked.insert(family);
            state.live.retain(|_, f| *f != family);
        }
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_grant"}"#.into(),
        );
    };
    state.spent.insert(presented, family);
    state.issued += 1;
    let n = state.issued;
    let refresh_token = format!("RTOKEN-{n}");
    state.live.insert(refresh_token.clone(), family);
    json(
        StatusCode::OK,
        format!(
            r#"{{"access_token":"ATOKEN-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"{refresh_token}"}}"#
        ),
    )
}
