//! The HTTP client given to `oauth2`: reqwest without redirects, which reports the statuses
//! that call for a retry (5xx, 429 with its `Retry-After`) instead of handing them to the
//! token-response parser.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// reqwest (built without redirects) as `oauth2`'s HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct TokenHttp(pub(crate) reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = HttpFailure;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Why a request did not produce a response worth parsing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpFailure {
    /// 5xx or 429.
    #[error("HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// A redirect, which is never followed.
    #[error("redirect {0}")]
    Redirect(u16),
    /// Connection failure, reset, timeout.
    #[error("{0}")]
    Transport(String),
}

pub(crate) async fn send(
    client: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpFailure> {
    let request = reqwest::Request::try_from(request)
        .map_err(|e| HttpFailure::Transport(format!("bad request: {e}")))?;
    let response = client
        .execute(request)
        .await
        .map_err(|e| HttpFailure::Transport(describe(&e)))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(HttpFailure::Redirect(status.as_u16()));
    }
    if status.is_server_error() || status.as_u16() == 429 {
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(HttpFailure::Status {
            status: status.as_u16(),
            retry_after,
        });
    }
    let mut builder = http::Response::builder();
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = read_capped(response).await?;
    // Some providers (GitHub) answer token-endpoint errors with 200 and an `error` member;
    // RFC 6749 §5.2 says 400, which is what the `oauth2` crate reads errors from.
    let status = if status == http::StatusCode::OK && is_error_body(&body) {
        http::StatusCode::BAD_REQUEST
    } else {
        status
    };
    builder
        .status(status)
        .body(body)
        .map_err(|e| HttpFailure::Transport(e.to_string()))
}

/// The largest response body read from a provider.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Reads a response body, refusing one larger than [`MAX_BODY`].
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, HttpFailure> {
    let too_large = || HttpFailure::Transport("the answer is too large".into());
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HttpFailure::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON object with an `error` member and no `access_token`.
fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok_and(|o| {
        o.get("error").is_some_and(|e| e.is_string()) && !o.contains_key("access_token")
    })
}

/// A failure's kind, without the URL's query or any body.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "cannot connect".into()
    } else {
        "the connection failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::is_error_body;

    #[test]
    fn errors_in_a_200_are_recognised() {
        assert!(is_error_body(br#"{"error":"authorization_pending"}"#));
        assert!(!is_error_body(
            br#"{"access_token":"x","token_type":"bearer"}"#
        ));
        assert!(!is_error_body(b"<html>"));
    }
}
