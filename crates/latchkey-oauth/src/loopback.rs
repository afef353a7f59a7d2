//! The small HTTP servers latchkey runs on 127.0.0.1 (a login's redirect listener, the
//! daemon's login links): bounded connections, a header deadline and a total deadline per
//! connection, no keep-alive, and pages that never render what they are given as markup.
//!
//! Connection policy: at most [`MAX_CONNECTIONS`] at once. When a connection arrives and all
//! are taken, the oldest one that is not running an answer (still sending its request head,
//! half-open, or not reading its reply) is closed to make room, so connections that trickle
//! bytes or never finish cannot keep the browser's callback out. A connection whose request is
//! being answered (a callback waiting for the token exchange) is never evicted; when all of
//! them are answering, the newcomer is closed unanswered. Answers are bounded in time.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::sync::Notify;
use tracing::debug;

/// A reply: status, headers and a small body.
pub type Reply = Response<Full<Bytes>>;

/// Connections served at once; past this the oldest that is not being answered is closed.
const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open in all.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// A connection waiting for its request head or writing its reply: may be evicted.
const WAITING: u8 = 0;
/// A connection whose request is being answered: kept.
const ANSWERING: u8 = 1;
/// A connection closed to make room.
const EVICTED: u8 = 2;

/// One open connection, as the eviction policy sees it.
struct Conn {
    state: AtomicU8,
    /// Told once, when the connection is evicted.
    evicted: Notify,
}

impl Conn {
    /// Marks the request as being answered; false if the connection was evicted meanwhile.
    fn start_answer(&self) -> bool {
        self.state
            .compare_exchange(WAITING, ANSWERING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn finish_answer(&self) {
        let _ =
            self.state
                .compare_exchange(ANSWERING, WAITING, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The open connections of one server, by accept order.
#[derive(Default)]
struct Open {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Open {
    fn conns(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, evicting the oldest evictable one if all are taken;
    /// `None` if every connection is being answered.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut conns = self.conns();
        if conns.len() >= MAX_CONNECTIONS {
            let victim = conns.iter().find_map(|(id, conn)| {
                conn.state
                    .compare_exchange(WAITING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                    .then_some(*id)
            })?;
            debug!("loopback server full; closing its oldest idle connection");
            if let Some(conn) = conns.remove(&victim) {
                conn.evicted.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            state: AtomicU8::new(WAITING),
            evicted: Notify::new(),
        });
        conns.insert(id, Arc::clone(&conn));
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.conns().remove(&id);
    }
}

/// Serves `listener` with `answer` until the returned future is dropped. Connections already
/// accepted finish on their own (within [`CONNECTION_LIMIT`]).
pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let open = Arc::new(Open::default());
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
        let Some((id, conn)) = open.admit() else {
            debug!("loopback server busy answering; connection closed");
            continue;
        };
        let answer = answer.clone();
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            let service = hyper::service::service_fn({
                let conn = Arc::clone(&conn);
                move |request| {
                    let conn = Arc::clone(&conn);
                    let reply = conn.start_answer().then(|| answer(request));
                    async move {
                        let reply = match reply {
                            Some(reply) => reply.await,
                            None => page(StatusCode::SERVICE_UNAVAILABLE, "Busy", "Try again."),
                        };
                        conn.finish_answer();
                        Ok::<_, std::convert::Infallible>(reply)
                    }
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIMIT, connection) => {}
                () = conn.evicted.notified() => {}
            }
            open.remove(id);
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
    fn a_full_server_evicts_its_oldest_connection_not_being_answered() {
        let open = Open::default();
        let admitted: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| open.admit().unwrap())
            .collect();
        assert!(admitted[0].1.start_answer());
        let (_, newcomer) = open.admit().expect("room is made");
        assert_eq!(admitted[0].1.state.load(Ordering::Acquire), ANSWERING);
        assert_eq!(admitted[1].1.state.load(Ordering::Acquire), EVICTED);
        assert!(
            !admitted[1].1.start_answer(),
            "an evicted connection answers nothing"
        );
        assert_eq!(open.conns().len(), MAX_CONNECTIONS);
        for conn in open.conns().values() {
            assert!(conn.start_answer() || Arc::ptr_eq(conn, &admitted[0].1));
        }
        assert!(open.admit().is_none(), "all are being answered");
        newcomer.finish_answer();
        assert!(open.admit().is_some());
    }

    #[test]
    fn pages_escape_what_they_show() {
        let reply = page(StatusCode::OK, "<b>", "a \"<script>\" & more");
        let body = format!("{:?}", reply.body());
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
    }
}
