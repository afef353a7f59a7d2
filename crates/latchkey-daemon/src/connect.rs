//! Login links: when `get` finds no usable token for a configured provider, its
//! `authentication_required` error carries a `login_url` — a loopback address served here
//! that starts (or rejoins) a browser login and redirects to the provider, so an agent can
//! hand the user one link. Links hold an unguessable token, name one entry, and expire after
//! the login lifetime; the server starts on the first link and listens on 127.0.0.1 only.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use latchkey_proto::LoginParams;
use tracing::{debug, info};

use crate::login::Logins;

/// Links remembered at once; the oldest is dropped past this.
const MAX_LINKS: usize = 64;
/// How long one connection may stay open.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

struct Link {
    provider: String,
    account: String,
    scopes: Vec<String>,
    created: Instant,
}

struct Inner {
    logins: Logins,
    server: tokio::sync::OnceCell<SocketAddr>,
    links: Mutex<HashMap<String, Link>>,
}

/// The login-link server. Cheap to clone.
#[derive(Clone)]
pub struct Connect {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect").finish_non_exhaustive()
    }
}

impl Connect {
    /// Links that start logins through `logins`.
    pub fn new(logins: Logins) -> Self {
        Self {
            inner: Arc::new(Inner {
                logins,
                server: tokio::sync::OnceCell::new(),
                links: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.inner.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A link that logs (service, account) in, if `service` is a provider with browser logins.
    pub async fn link(&self, service: &str, account: &str, scopes: &[String]) -> Option<String> {
        let provider = self.inner.logins.oauth()?.provider(service)?;
        if let latchkey_oauth::Source::Fixed(endpoints) = &provider.source {
            endpoints.authorization.as_ref()?;
        }
        let address = self
            .inner
            .server
            .get_or_try_init(|| serve(self.clone()))
            .await
            .map_err(|e| debug!(error = %e, "cannot start the login-link server"))
            .ok()?;
        let mut links = self.links();
        let lifetime = self.inner.logins.lifetime();
        links.retain(|_, l| l.created.elapsed() < lifetime);
        let existing = links
            .iter()
            .find(|(_, l)| l.provider == service && l.account == account && l.scopes == scopes)
            .map(|(token, _)| token.clone());
        let token = match existing {
            Some(token) => token,
            None => {
                if links.len() >= MAX_LINKS {
                    let oldest = links
                        .iter()
                        .min_by_key(|(_, l)| l.created)
                        .map(|(t, _)| t.clone());
                    if let Some(oldest) = oldest {
                        links.remove(&oldest);
                    }
                }
                let token = latchkey_oauth::random_id();
                links.insert(
                    token.clone(),
                    Link {
                        provider: service.to_owned(),
                        account: account.to_owned(),
                        scopes: scopes.to_vec(),
                        created: Instant::now(),
                    },
                );
                token
            }
        };
        Some(format!("http://{address}/login/{token}"))
    }

    /// Answers one request to the link server.
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let token = request
            .uri()
            .path()
            .strip_prefix("/login/")
            .filter(|_| request.method() == hyper::Method::GET)
            .map(str::to_owned);
        let link = token.and_then(|token| {
            self.links()
                .get(&token)
                .filter(|l| l.created.elapsed() < self.inner.logins.lifetime())
                .map(|l| (l.provider.clone(), l.account.clone(), l.scopes.clone()))
        });
        let Some((provider, account, scopes)) = link else {
            return page(
                StatusCode::NOT_FOUND,
                "This login link is unknown or has expired. Ask for the token again to get a new one.",
            );
        };
        let logins = &self.inner.logins;
        let started = match logins.waiting_browser_login(&provider, &account) {
            Some(started) => Ok(started),
            None => {
                logins
                    .start(&LoginParams {
                        provider: provider.clone(),
                        account: Some(account.clone()),
                        scopes,
                        device: false,
                    })
                    .await
            }
        };
        match started.map(|s| s.authorization_url) {
            Ok(Some(url)) => {
                info!(target: "latchkey::audit", method = "login_link", entry = %format!("{provider}/{account}"), result = "ok");
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header("location", url)
                    .header("cache-control", "no-store")
                    .header("referrer-policy", "no-referrer")
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_default()
            }
            Ok(None) => page(StatusCode::BAD_GATEWAY, "The login did not start."),
            Err(err) => page(StatusCode::BAD_GATEWAY, &err.message),
        }
    }
}

fn page(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let text = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>latchkey</title></head>\
         <body><h1>latchkey</h1><p>{text}</p></body></html>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// Starts the link server on 127.0.0.1 at a random port; it runs as long as the daemon.
async fn serve(connect: Connect) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    info!(%address, "login links served");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, say: wait a little instead of spinning.
                    debug!(error = %err, "login-link accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let connect = connect.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let connect = connect.clone();
                    async move { Ok::<_, std::convert::Infallible>(connect.answer(request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
            });
        }
    });
    Ok(address)
}
