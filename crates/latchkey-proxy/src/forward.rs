//! One request through the proxy: check where it came for, take the agent's grant out of the
//! route's header, swap it for the credential, send it upstream over TLS and stream the answer
//! back as it arrives.
//!
//! The answer's body streams through the `watch` module, which cuts it if the grant is refused
//! on a later check.
//!
//! What never goes upstream: the grant (the route's header is replaced, not added to), `Host`
//! (the upstream's own is set), hop-by-hop headers. What is never logged: any header value.
//! A `401` to an idempotent request without a body is answered by asking the daemon again,
//! naming the rejected credential by its fingerprint, and sending the request once more with
//! what the daemon gives: a refreshed token if it still held the rejected one and could
//! refresh it (one refresh however many requests were refused), else the one it holds now.

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use latchkey_proto::{GrantTokenText, Secret, TokenFingerprint};
use tracing::info;
use zeroize::Zeroizing;

use crate::config::Route;
use crate::credentials::CredentialError;
use crate::watch::{Watch, Watched};
use crate::Proxy;

/// The body type the proxy answers with.
pub type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// proxy-only ones: never forwarded either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether `name` is a hop-by-hop header (or `Transfer-Encoding`, which hyper sets itself).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name == header::TRANSFER_ENCODING
}

/// The headers `Connection` names: hop-by-hop for this message too.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect()
}

fn text(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The route's name and the rest of the path, or why the path is refused.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (name, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // No dot segments, plain or percent-encoded, and no encoded slash or backslash: the
    // upstream must get the path the agent's route names, not a neighbour of it.
    let hostile = tail.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase();
        let decoded = lower.replace("%2e", ".");
        decoded == "." || decoded == ".." || lower.contains("%2f") || lower.contains("%5c")
    }) || tail.contains('\\');
    if name.is_empty() || hostile {
        return None;
    }
    Some((name, tail))
}

/// Whether the `Host` the agent sent names this proxy (DNS rebinding: a web page whose name
/// resolves to 127.0.0.1 must not be able to use it).
fn host_is_loopback(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let (name, host_port) = match host.rsplit_once(':') {
        Some((name, p)) => (name, Some(p)),
        None => (host, None),
    };
    let name_ok = matches!(name, "127.0.0.1" | "localhost");
    let port_ok = host_port.is_none_or(|p| p.parse() == Ok(port));
    name_ok && port_ok
}

/// The grant out of the route's header: the value with the route's format around it.
fn grant_of(route: &Route, headers: &HeaderMap) -> Option<GrantTokenText> {
    let mut values = headers.get_all(&route.header).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (before, after) = &route.format;
    let starts = value.len() >= before.len()
        && value.is_char_boundary(before.len())
        && value[..before.len()].eq_ignore_ascii_case(before);
    if !starts {
        return None;
    }
    let token = value[before.len()..].strip_suffix(after.as_str())?.trim();
    if token.is_empty() {
        return None;
    }
    GrantTokenText::new(token.to_owned())
}

/// The route's header value around `secret`.
fn credential_header(route: &Route, secret: &Secret) -> Option<HeaderValue> {
    let (before, after) = &route.format;
    let text = Zeroizing::new(format!("{before}{}{after}", secret.expose()));
    let mut value = HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// Handles one request; never fails (every failure is an answer).
pub async fn handle(proxy: &Proxy, request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let (route_name, response, retried) = forward(proxy, request).await;
    info!(
        target: "latchkey::proxy",
        route = route_name.as_deref().unwrap_or("-"),
        method = %method,
        status = response.status().as_u16(),
        retried,
        // To the response's head: a streamed body goes on after this.
        us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

async fn forward(
    proxy: &Proxy,
    request: Request<Incoming>,
) -> (Option<String>, Response<ProxyBody>, bool) {
    let (parts, body) = request.into_parts();
    // Origin-form only: the proxy is not a forward proxy for arbitrary URLs.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        return (
            None,
            text(StatusCode::BAD_REQUEST, "origin-form requests only\n"),
            false,
        );
    }
    if !host_is_loopback(&parts.headers, proxy.port) {
        return (
            None,
            text(
                StatusCode::MISDIRECTED_REQUEST,
                "this proxy answers to 127.0.0.1 only\n",
            ),
            false,
        );
    }
    let Some((name, tail)) = split_path(parts.uri.path()) else {
        return (None, text(StatusCode::BAD_REQUEST, "bad path\n"), false);
    };
    let Some(upstream) = proxy.routes.get(name) else {
        return (None, text(StatusCode::NOT_FOUND, "no such route\n"), false);
    };
    let name = Some(name.to_owned());
    let route = &upstream.route;
    let Some(grant) = grant_of(route, &parts.headers) else {
        return (
            name,
            text(
                StatusCode::UNAUTHORIZED,
                "a grant is needed, in the route's header\n",
            ),
            false,
        );
    };

    let mut url = route.upstream.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}{tail}"));
    url.set_query(parts.uri.query());

    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let named = connection_named(&parts.headers);
    for (key, value) in &parts.headers {
        if is_hop_by_hop(key) || key == header::HOST || key == route.header || named.contains(key) {
            continue;
        }
        headers.append(key.clone(), value.clone());
    }

    let mut body = if body.is_end_stream() {
        None
    } else {
        Some(body)
    };
    let retry_allowed = body.is_none() && is_idempotent(&parts.method);
    let mut retried = false;
    let mut rejected = None;
    let mut granted_at;
    loop {
        let asked = proxy.credentials.get(route, grant.clone(), rejected.take());
        let secret = match asked.await {
            Ok(secret) => {
                granted_at = Instant::now();
                secret
            }
            Err(CredentialError::Refused) => {
                return (
                    name,
                    text(StatusCode::FORBIDDEN, "the grant was refused\n"),
                    retried,
                )
            }
            Err(CredentialError::Daemon(kind)) => {
                tracing::warn!(target: "latchkey::proxy", kind, "no credential");
                return (
                    name,
                    text(
                        StatusCode::BAD_GATEWAY,
                        "latchkeyd could not give the credential\n",
                    ),
                    retried,
                );
            }
            Err(CredentialError::Unreachable(error)) => {
                tracing::warn!(target: "latchkey::proxy", %error, "latchkeyd is not reachable");
                return (
                    name,
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "latchkeyd is not reachable\n",
                    ),
                    retried,
                );
            }
        };
        let Some(value) = credential_header(route, &secret) else {
            return (
                name,
                text(
                    StatusCode::BAD_GATEWAY,
                    "the credential cannot go in a header\n",
                ),
                retried,
            );
        };
        let fingerprint = retry_allowed.then(|| TokenFingerprint::of(&secret));
        drop(secret);
        let mut out = headers.clone();
        out.insert(route.header.clone(), value);
        let mut builder = upstream
            .client
            .request(parts.method.clone(), url.clone())
            .headers(out);
        if let Some(body) = body.take() {
            builder = builder.body(reqwest::Body::wrap(body));
        }
        let answer = match builder.send().await {
            Ok(answer) => answer,
            Err(error) => {
                // Without the URL: its query could carry something private.
                tracing::warn!(target: "latchkey::proxy", error = %error.without_url(), "upstream failed");
                return (
                    name,
                    text(
                        StatusCode::BAD_GATEWAY,
                        "the upstream could not be reached\n",
                    ),
                    retried,
                );
            }
        };
        if answer.status() == StatusCode::UNAUTHORIZED && retry_allowed && !retried {
            retried = true;
            rejected = fingerprint;
            continue;
        }
        let answer: Response<reqwest::Body> = answer.into();
        let (mut head, body) = answer.into_parts();
        let named = connection_named(&head.headers);
        let drop: Vec<HeaderName> = head
            .headers
            .keys()
            .filter(|key| is_hop_by_hop(key) || named.contains(key))
            .cloned()
            .collect();
        for key in drop {
            head.headers.remove(key);
        }
        let body = body
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            .boxed_unsync();
        // While it streams, the grant is checked again (and the stream cut once refused).
        let watch = Watch {
            credentials: proxy.credentials.clone(),
            route: route.clone(),
            grant,
            every: proxy.recheck,
            route_name: name.clone().unwrap_or_default(),
        };
        let body = Watched::new(body, watch, granted_at).boxed_unsync();
        return (name, Response::from_parts(head, body), retried);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        crate::config::ProxyConfig::from_toml(
            "[proxy.routes.x]\nupstream = \"https://a.example\"\nservice = \"x\"\n",
        )
        .unwrap()
        .routes
        .remove("x")
        .unwrap()
    }

    #[test]
    fn paths_split_and_dot_segments_are_refused() {
        assert_eq!(
            split_path("/openai/v1/models"),
            Some(("openai", "/v1/models"))
        );
        assert_eq!(split_path("/openai"), Some(("openai", "")));
        for bad in [
            "/openai/../x",
            "/openai/v1/..",
            "/openai/%2e%2e/x",
            "/openai/%2E./x",
            "/openai/./x",
            "/openai/a%2fb",
            "/openai/a\\b",
            "//x",
            "",
        ] {
            assert_eq!(split_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_loopback_hosts() {
        let mut h = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("127.0.0.1", true),
            ("127.0.0.1:9", false),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example:8080", false),
        ] {
            h.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(host_is_loopback(&h, 8080), ok, "{host}");
        }
        assert!(!host_is_loopback(&HeaderMap::new(), 8080));
    }

    #[test]
    fn the_grant_comes_out_of_the_format() {
        let r = route();
        let mut h = HeaderMap::new();
        assert!(grant_of(&r, &h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(grant_of(&r, &h).unwrap().expose(), "abc.def");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(grant_of(&r, &h).unwrap().expose(), "abc");
        for bad in ["Basic abc", "Bearer ", "Bearer", "é"] {
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(header::AUTHORIZATION, v);
                assert!(grant_of(&r, &h).is_none(), "{bad}");
            }
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert!(grant_of(&r, &h).is_none(), "two values");
        let long = format!(
            "Bearer {}",
            "a".repeat(latchkey_proto::MAX_GRANT_TOKEN_LEN + 1)
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&long).unwrap());
        assert!(grant_of(&r, &h).is_none(), "too long");
    }

    #[test]
    fn the_credential_header_is_sensitive() {
        let value = credential_header(&route(), &Secret::new("sk-1".into())).unwrap();
        assert_eq!(value, "Bearer sk-1");
        assert!(value.is_sensitive());
        assert!(credential_header(&route(), &Secret::new("a\nb".into())).is_none());
    }
}
