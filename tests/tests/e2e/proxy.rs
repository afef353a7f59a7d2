//! `latchkey proxy` end to end: the built daemon (memory store) and CLI, and an HTTPS upstream
//! in the test, with a CA and a server certificate made here with `openssl`, which records the
//! requests it sees, streams, and answers 401 once where asked.
//!
//! An agent's request carries a grant with the `proxy` operation where the route's header holds
//! the API key; the upstream must see the key instead and never the grant; everything refused
//! (no grant, a forged, revoked or unfitting one, hostile paths and headers) must not reach the
//! upstream at all.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use latchkey_tests::proxy::{make_certs, ProxyProcess, TlsServer, UpBody};
use latchkey_tests::{stderr, stdout, Daemon, TestEnv};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

use crate::support::Rpc;

mod refresh;
mod revoke;

const KEY: &str = "sk-upstream-key-4d1b";

/// The streamed body: one first event, then this many bytes of events.
const STREAM_BYTES: usize = 10 * 1024 * 1024;
const FIRST_EVENT: &[u8] = b"data: first\n\n";
const SECOND_EVENT: &[u8] = b"data: second\n\n";
const LAST_EVENT: &[u8] = b"data: last\n\n";

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Vec<String>,
    header_names: Vec<String>,
}

/// What the upstream shares with the test.
#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// Lets the streamed body go on after its first event.
    release: Notify,
    /// Set once the whole streamed body was handed to hyper.
    finished: AtomicBool,
}

/// A body fed by a channel, so the upstream decides when each part goes.
struct Channel(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn full(status: u16, body: &'static str) -> Response<UpBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r
}

async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Response<UpBody> {
    let seen = Seen {
        method: request.method().to_string(),
        path: request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authorization: request
            .headers()
            .get_all("authorization")
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect(),
        header_names: request.headers().keys().map(|k| k.to_string()).collect(),
    };
    let count = {
        let mut all = shared.seen.lock().unwrap();
        all.push(seen.clone());
        all.iter().filter(|s| s.path == seen.path).count()
    };
    if seen.authorization != [format!("Bearer {KEY}")] {
        return full(401, "wrong key\n");
    }
    match seen.path.split('?').next().unwrap() {
        "/base/v1/echo" => full(200, "echo\n"),
        // 401 to the first request on each of these paths, then 200.
        "/base/v1/flaky" | "/base/v1/flaky-post" if count == 1 => full(401, "expired\n"),
        "/base/v1/flaky" | "/base/v1/flaky-post" => full(200, "fine\n"),
        // Three events; the last two once the test releases them.
        "/base/v1/events" => {
            let (tx, rx) = mpsc::channel(4);
            let shared = shared.clone();
            tokio::spawn(async move {
                tx.send(Bytes::from_static(FIRST_EVENT)).await.unwrap();
                shared.release.notified().await;
                for event in [SECOND_EVENT, LAST_EVENT] {
                    if tx.send(Bytes::from_static(event)).await.is_err() {
                        return;
                    }
                }
                drop(tx);
                shared.finished.store(true, Ordering::SeqCst);
            });
            let mut r = Response::new(Channel(rx).boxed());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
        "/base/v1/stream" => {
            let (tx, rx) = mpsc::channel(4);
            let shared = shared.clone();
            tokio::spawn(async move {
                tx.send(Bytes::from_static(FIRST_EVENT)).await.unwrap();
                shared.release.notified().await;
                let line = format!("data: {}\n\n", "x".repeat(65536 - 8));
                let mut sent = 0;
                while sent < STREAM_BYTES {
                    if tx.send(Bytes::from(line.clone())).await.is_err() {
                        return;
                    }
                    sent += line.len();
                }
                drop(tx);
                shared.finished.store(true, Ordering::SeqCst);
            });
            let mut r = Response::new(Channel(rx).boxed());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
        _ => full(404, "no\n"),
    }
}

/// The HTTPS upstream on 127.0.0.1.
struct Upstream {
    address: SocketAddr,
    shared: Arc<Shared>,
    _server: TlsServer,
}

impl Upstream {
    fn start(dir: &Path) -> Self {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let server = TlsServer::start(dir, move |request| answer(state.clone(), request));
        Self {
            address: server.address,
            shared,
            _server: server,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

/// The daemon (memory store, the proxy's routes in its own config file), the upstream, an
/// entry holding the key, and the running proxy.
struct World {
    env: TestEnv,
    daemon: Daemon,
    upstream: Upstream,
    proxy: ProxyProcess,
}

fn config_text(upstream: SocketAddr, ca: &Path, proxy_section: &str) -> String {
    format!(
        "{proxy_section}[policy]\nrequire_grant = [\"openai\"]\n\n\
         [proxy.routes.openai]\nupstream = \"https://{upstream}/base/\"\nservice = \"openai\"\n\
         allow_private = true\nca_file = \"{ca}\"\n\n\
         [proxy.routes.nameonly]\nupstream = \"https://localhost:{port}/base\"\nservice = \"openai\"\n\
         ca_file = \"{ca}\"\n",
        ca = ca.display(),
        port = upstream.port(),
    )
}

fn world() -> World {
    world_with("")
}

/// The world with `proxy_section` (`[proxy]` and its settings) at the top of the config.
fn world_with(proxy_section: &str) -> World {
    let env = TestEnv::bare();
    let certs = env.root().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certs(&certs);
    let upstream = Upstream::start(&certs);
    let config = env.root().join("config.toml");
    std::fs::write(
        &config,
        config_text(upstream.address, &certs.join("ca.pem"), proxy_section),
    )
    .unwrap();
    let daemon = env.start_daemon_with(
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    );
    let out = env.cli(&daemon.socket, &["set", "openai"], KEY);
    assert!(out.status.success(), "{}", stderr(&out));
    let proxy = ProxyProcess::start(&env, &daemon, &config);
    World {
        env,
        daemon,
        upstream,
        proxy,
    }
}

impl World {
    /// A grant made with `latchkey grant create`: (token, id).
    fn grant(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["grant", "create", "--json", "--ttl", "1h"];
        all.extend_from_slice(args);
        let out = self.env.cli(&self.daemon.socket, &all, "");
        assert!(out.status.success(), "{}", stderr(&out));
        let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
        (
            created["token"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Asserts that neither log holds the key or `grant`.
    fn assert_logs_clean(&self, grant: &str) {
        for (name, log) in [("proxy", self.proxy.log()), ("daemon", self.daemon.logs())] {
            assert!(!log.contains(KEY), "the key is in the {name} log:\n{log}");
            assert!(!log.contains(grant), "a grant is in the {name} log:\n{log}");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A plain-HTTP client for the proxy; a proxy that buffered the stream would hold the first
/// event back until the upstream finished, which waits for the test: the timeout ends that.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[test]
fn the_upstream_gets_the_key_never_the_grant_and_streams_pass_through() {
    let w = world();
    let (grant, _) = w.grant(&["--service", "openai", "--ops", "proxy"]);
    let http = client();
    runtime().block_on(async {
        // Header injection: the upstream sees the key in place of the grant, and nothing of
        // the agent's hop-by-hop headers.
        let response = http
            .get(w.proxy.url("/openai/v1/echo?model=x"))
            .bearer_auth(&grant)
            .header("x-agent", "yes")
            .header("connection", "x-drop-me")
            .header("x-drop-me", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "echo\n");
        let seen = w.upstream.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/base/v1/echo?model=x");
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].authorization, [format!("Bearer {KEY}")]);
        assert!(seen[0].header_names.contains(&"x-agent".to_owned()));
        assert!(!seen[0].header_names.contains(&"x-drop-me".to_owned()));

        // Streaming: the first event arrives while the upstream still holds back the rest.
        let mut response = http
            .get(w.proxy.url("/openai/v1/stream"))
            .bearer_auth(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut got = Vec::new();
        while got.len() < FIRST_EVENT.len() {
            let chunk = response.chunk().await.unwrap().expect("the first event");
            got.extend_from_slice(&chunk);
        }
        assert!(got.starts_with(FIRST_EVENT));
        assert!(
            !w.upstream.shared.finished.load(Ordering::SeqCst),
            "the first bytes came before the upstream finished"
        );
        w.upstream.shared.release.notify_one();
        let mut total = got.len();
        while let Some(chunk) = response.chunk().await.unwrap() {
            total += chunk.len();
        }
        let line = 65536;
        let expected = FIRST_EVENT.len() + STREAM_BYTES.div_ceil(line) * line;
        assert_eq!(total, expected);
        assert!(w.upstream.shared.finished.load(Ordering::SeqCst));

        // 401 once: an idempotent request without a body is sent once more, with the
        // credential asked for again.
        let response = http
            .get(w.proxy.url("/openai/v1/flaky"))
            .bearer_auth(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let flaky = |path: &str| w.upstream.seen().iter().filter(|s| s.path == path).count();
        assert_eq!(flaky("/base/v1/flaky"), 2);
        // ... a POST is not: its 401 comes back as it is.
        let response = http
            .post(w.proxy.url("/openai/v1/flaky-post"))
            .bearer_auth(&grant)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(flaky("/base/v1/flaky-post"), 1);
    });
    for seen in w.upstream.seen() {
        assert_eq!(seen.authorization, [format!("Bearer {KEY}")], "{seen:?}");
    }
    let log = w.proxy.wait_for_log("retried=true");
    assert!(
        log.contains("route=\"openai\"") || log.contains("route=openai"),
        "{log}"
    );
    w.assert_logs_clean(&grant);
}

#[test]
fn requests_without_a_fitting_grant_never_reach_the_upstream() {
    let w = world();
    let (proxy_grant, proxy_id) = w.grant(&["--service", "openai", "--ops", "proxy"]);
    let (get_grant, _) = w.grant(&["--service", "openai"]);
    let (other_grant, _) = w.grant(&["--service", "github", "--ops", "proxy"]);
    let http = client();
    runtime().block_on(async {
        let status = |auth: Option<String>| {
            let http = http.clone();
            let url = w.proxy.url("/openai/v1/echo");
            async move {
                let mut request = http.get(url);
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                request.send().await.unwrap().status().as_u16()
            }
        };
        assert_eq!(status(None).await, 401, "no grant");
        assert_eq!(status(Some("Bearer ".into())).await, 401, "empty");
        assert_eq!(
            status(Some(format!("Basic {proxy_grant}"))).await,
            401,
            "scheme"
        );
        assert_eq!(
            status(Some("Bearer not.a.grant".into())).await,
            403,
            "forged"
        );
        assert_eq!(
            status(Some(format!("Bearer {get_grant}"))).await,
            403,
            "get only"
        );
        assert_eq!(
            status(Some(format!("Bearer {other_grant}"))).await,
            403,
            "other"
        );
        assert_eq!(status(Some(format!("Bearer {KEY}"))).await, 403, "the key");
        assert_eq!(
            status(Some(format!("Bearer {proxy_grant}"))).await,
            200,
            "fits"
        );

        // A route to a name that resolves to loopback, without allow_private.
        let response = http
            .get(w.proxy.url("/nameonly/v1/echo"))
            .bearer_auth(&proxy_grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
    });
    assert_eq!(w.upstream.seen().len(), 1, "only the fitting request");

    // Hostile input, as raw bytes.
    let auth = format!("Authorization: Bearer {proxy_grant}\r\n");
    let req = |line: &str, host: &str, extra: &str| {
        format!("{line}\r\nHost: {host}\r\n{auth}{extra}Connection: close\r\n\r\n")
    };
    let huge = format!("X-Big: {}\r\n", "a".repeat(200 * 1024));
    for (request, expected, case) in [
        (
            req("GET /openai/../admin HTTP/1.1", "127.0.0.1:PORT", ""),
            400,
            "dot dot",
        ),
        (
            req("GET /openai/v1/%2e%2e/x HTTP/1.1", "127.0.0.1:PORT", ""),
            400,
            "encoded",
        ),
        (
            req("GET /nope/v1 HTTP/1.1", "127.0.0.1:PORT", ""),
            404,
            "unknown route",
        ),
        (
            req("GET /openai/v1/echo HTTP/1.1", "evil.example", ""),
            421,
            "foreign host",
        ),
        (
            req(
                "GET /openai/v1/echo HTTP/1.1",
                "127.0.0.1.evil.example:PORT",
                "",
            ),
            421,
            "host trick",
        ),
        (
            req("GET https://evil.example/ HTTP/1.1", "127.0.0.1:PORT", ""),
            400,
            "absolute form",
        ),
        (
            req("GET /openai/v1/echo HTTP/1.1", "127.0.0.1:PORT", &huge),
            431,
            "huge header",
        ),
    ] {
        let status = w.proxy.raw(&request);
        if case == "huge header" && status.is_none() {
            // The proxy answered 431 and closed with the rest of the head unread, and the
            // kernel's reset overtook the answer: refused all the same.
            continue;
        }
        assert_eq!(status, Some(expected), "{case}");
    }
    assert_eq!(
        w.upstream.seen().len(),
        1,
        "nothing hostile reached the upstream"
    );

    // The daemon's side: a proxy get needs a grant with the proxy operation, and a proxy
    // grant is no good for a plain get.
    let mut rpc = Rpc::connect(&w.daemon.socket);
    for (params, case) in [
        (
            json!({"service": "openai", "proxy": true}),
            "proxy get, no grant",
        ),
        (
            json!({"service": "other", "proxy": true}),
            "unprotected entry, no grant",
        ),
        (
            json!({"service": "openai", "proxy": true, "grant": get_grant}),
            "get grant",
        ),
        (
            json!({"service": "openai", "grant": proxy_grant}),
            "plain get, proxy grant",
        ),
    ] {
        let response = rpc.call("get", params);
        assert_eq!(
            response["error"]["data"]["kind"], "permission_denied",
            "{case}: {response}"
        );
    }
    let ok = rpc.ok(
        "get",
        json!({"service": "openai", "proxy": true, "grant": proxy_grant}),
    );
    assert_eq!(ok["secret"], KEY);

    // A revoked grant stops working at once.
    let out = w
        .env
        .cli(&w.daemon.socket, &["grant", "revoke", &proxy_id], "");
    assert!(out.status.success(), "{}", stderr(&out));
    runtime().block_on(async {
        let response = http
            .get(w.proxy.url("/openai/v1/echo"))
            .bearer_auth(&proxy_grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    });
    assert_eq!(w.upstream.seen().len(), 1);
    w.assert_logs_clean(&proxy_grant);
    w.assert_logs_clean(&get_grant);
}

#[test]
fn a_private_upstream_or_the_bus_is_refused_at_start() {
    let env = TestEnv::bare();
    let config = env.root().join("config.toml");
    std::fs::write(
        &config,
        "[proxy.routes.openai]\nupstream = \"https://127.0.0.1:9\"\nservice = \"openai\"\n",
    )
    .unwrap();
    let mut cmd = env.command(&latchkey_tests::bin("latchkey"));
    cmd.args(["proxy", "--port", "0", "--config"]).arg(&config);
    let out = latchkey_tests::run_with_stdin(&mut cmd, "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("allow_private"), "{}", stderr(&out));

    // The bus is refused too: D-Bus `Get` cannot say that a request is proxied.
    let mut cmd = env.command(&latchkey_tests::bin("latchkey"));
    cmd.args(["--transport", "dbus", "proxy", "--port", "0", "--config"])
        .arg(&config);
    let out = latchkey_tests::run_with_stdin(&mut cmd, "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("session bus"), "{}", stderr(&out));
}
