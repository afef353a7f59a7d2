//! The HTTP side of the server, over [`crate::loopback`] (which accepts connections and reads
//! bodies): routing a request to its endpoint under the state's lock (counting it, answering
//! a queued fault, checking method and form), and turning a fault into a reply or a dropped
//! connection.

use std::io;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::reply::{invalid_request, json_reply, oauth_error, page, reply, Reply};
use super::request::{is_form, Params};
use super::state::State;
use super::{Endpoint, Fault, Shared, DEVICE_CODE_GRANT, HOSTILE_MARK};
use crate::loopback::TooLarge;

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
pub(super) async fn serve(
    shared: Arc<Shared>,
    parts: Parts,
    body: Result<Bytes, TooLarge>,
) -> Result<Reply, io::Error> {
    let body = match body {
        Ok(body) => body,
        Err(TooLarge) => {
            return Ok(page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request is too large.",
            ))
        }
    };
    let token_endpoint = parts.uri.path() == "/token";
    let (outcome, github_style) = {
        let mut state = shared.state.lock().unwrap();
        let outcome = state.handle(&parts, &body);
        (outcome, state.settings.github_style && token_endpoint)
    };
    if token_endpoint {
        hold(&shared).await;
    }
    match outcome {
        Outcome::Reply(reply) if github_style => Ok(as_github_would(reply).await),
        Outcome::Reply(reply) => Ok(reply),
        Outcome::Hang => {
            shared.stopped.wait().await;
            Err(io::Error::other("hang fault: the server stopped"))
        }
        Outcome::Reset => Err(io::Error::other("reset fault")),
    }
}

/// Waits while the test holds the token endpoint's answers (or until the server stops).
async fn hold(shared: &Shared) {
    let mut held = shared.hold.subscribe();
    if !*held.borrow_and_update() {
        return;
    }
    shared.state.lock().unwrap().counters.held += 1;
    tokio::select! {
        _ = held.wait_for(|held| !*held) => {}
        _ = shared.stopped.wait() => {}
    }
    shared.state.lock().unwrap().counters.held -= 1;
}

impl State {
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
            if endpoint == Endpoint::Token {
                // What a faulted grant presented counts as seen too.
                for name in ["code", "code_verifier", "device_code"] {
                    if let Some(value) = params.get(name) {
                        if !self.grants_seen.iter().any(|g| g == value) {
                            self.grants_seen.push(value.to_owned());
                        }
                    }
                }
            }
            return fault_outcome(fault, &params);
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
}

/// What a request submitted that its answer must not echo, in that order.
const SECRET_PARAMS: [&str; 5] = [
    "refresh_token",
    "code",
    "device_code",
    "code_verifier",
    "client_secret",
];

fn fault_outcome(fault: Fault, params: &Params) -> Outcome {
    let secrets: Vec<&str> = SECRET_PARAMS.iter().filter_map(|n| params.get(n)).collect();
    let first = secrets.first().copied().unwrap_or("nothing");
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
        Fault::EchoSecrets => oauth_error(
            StatusCode::BAD_REQUEST,
            first,
            &format!("rejected {}", secrets.join(" and ")),
        ),
        Fault::EchoSecretsInContentType => {
            let mut reply = json_reply(StatusCode::OK, &json!({}));
            reply.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("text/plain; echo={first}")).unwrap(),
            );
            reply
        }
        Fault::HostileText => oauth_error(
            StatusCode::BAD_REQUEST,
            &format!("invalid_request\u{1b}[2J\u{1b}]0;{HOSTILE_MARK}\u{7}"),
            &format!(
                "\u{1b}[31m{HOSTILE_MARK}{}\r\n\u{1b}[0m{HOSTILE_MARK}",
                "A".repeat(100_000)
            ),
        ),
        Fault::Hang => return Outcome::Hang,
        Fault::Reset => return Outcome::Reset,
    };
    reply.into()
}

/// The token endpoint's answer as GitHub writes it: errors with status 200, a spent refresh
/// token called `bad_refresh_token`, scopes separated by commas.
async fn as_github_would(reply: Reply) -> Reply {
    let (mut parts, body) = reply.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Reply::from_parts(parts, http_body_util::Full::new(bytes));
    };
    if value.get("error").is_some() {
        parts.status = StatusCode::OK;
        if value["error"] == "invalid_grant" {
            value["error"] = json!("bad_refresh_token");
        }
    }
    if let Some(scope) = value
        .get("scope")
        .and_then(|s| s.as_str())
        .map(|s| s.replace(' ', ","))
    {
        value["scope"] = json!(scope);
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Reply::from_parts(parts, http_body_util::Full::new(body.into()))
}
