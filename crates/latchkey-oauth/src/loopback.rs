//! The small HTTP servers latchkey runs on 127.0.0.1 (a login's redirect listener, the
//! daemon's login links): bounded connections, a header deadline and a total deadline per
//! connection, no keep-alive, and pages that never render what they are given as markup.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tracing::debug;

/// A reply: status, headers and a small body.
pub type Reply = Response<Full<Bytes>>;

/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open in all.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// Serves `listener` with `answer` until the returned future is dropped. Connections already
/// accepted finish on their own (within [`CONNECTION_LIMIT`]).
pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors, say: wait a little instead of spinning.
                debug!(error = %err, "loopback accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            debug!("loopback server busy; connection closed");
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                let reply = answer(request);
                async move { Ok::<_, std::convert::Infallible>(reply.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
        });
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small HTML page; `title` and `text` are escaped.
pub fn page(status: StatusCode, title: &str, text: &str) -> Reply {
    let (title, text) = (escape(title), escape(text));
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>latchkey: {title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// A redirect to `location`.
pub fn redirect(location: &str) -> Reply {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location)
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let reply = page(StatusCode::OK, "<b>", "a \"<script>\" & more");
        let body = format!("{:?}", reply.body());
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
    }
}
