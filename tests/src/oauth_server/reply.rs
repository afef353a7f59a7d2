//! The replies the endpoints send: JSON that is never cached, OAuth errors, small HTML pages
//! and redirects.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

pub(super) use crate::loopback::Reply;

pub(super) fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// Token responses must not be cached (RFC 6749 §5.1).
pub(super) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

pub(super) fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut reply = reply(status, "application/json", body.to_string());
    no_store(reply.headers_mut());
    reply
}

pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

pub(super) fn invalid_request(description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

pub(super) fn invalid_grant(description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

pub(super) fn invalid_client(description: &str) -> Reply {
    let mut reply = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"latchkey-test\""),
    );
    reply
}

/// A device grant error (RFC 8628 §3.5): all are 400.
pub(super) fn device_error(error: &str, description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// A small HTML page; `body` is HTML.
pub(super) fn page(status: StatusCode, body: &str) -> Reply {
    reply(
        status,
        "text/html; charset=utf-8",
        format!("<!DOCTYPE html><html><body><p>{body}</p></body></html>\n"),
    )
}

pub(super) fn escape_html(text: &str) -> String {
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
pub(super) fn redirect(
    redirect_uri: &str,
    params: &[(&str, String)],
    state: Option<&str>,
) -> Reply {
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
