//! `latchkey proxy`: a loopback HTTP proxy that lets an AI agent (or any program with an HTTP
//! SDK) use an API without ever holding its key.
//!
//! The agent is given `http://127.0.0.1:PORT/ROUTE` as its base URL and a grant (with the
//! `proxy` operation) as its API key. For each request the proxy takes the grant out of the
//! route's header, asks latchkeyd for the route's credential under that grant
//! ([`credentials`]), puts the credential in the header instead and forwards the request over
//! TLS ([`forward`]); the answer streams back as it arrives. Routes come from the `[proxy]`
//! section of `config.toml` ([`config`]); upstreams must be public addresses unless a route
//! allows private ones ([`address`]).
//!
//! [`serve`] takes a listener bound by the caller (the CLI binds 127.0.0.1 only) and runs until
//! its shutdown future completes. While an answer streams, the grant is checked again at most
//! every `[proxy] recheck_ms`, and the stream is cut once it is refused (the `watch` module).
#![deny(missing_docs)]

pub mod address;
pub mod config;
pub mod credentials;
pub mod forward;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use latchkey_client::Target;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::debug;

pub use config::{ConfigError, ProxyConfig, Route};
pub use credentials::{CredentialError, Credentials};
pub use watch::Cut;

/// Largest request head (request line and headers) accepted, in bytes; a larger one is
/// answered `431` by hyper.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the proxy could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A route's `ca_file` cannot be read or is not a PEM certificate.
    #[error("route {route}: cannot use ca_file {path}: {reason}")]
    CaFile {
        /// The route.
        route: String,
        /// The file.
        path: String,
        /// Why not.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("route {route}: cannot build its HTTP client: {reason}")]
    Client {
        /// The route.
        route: String,
        /// Why not.
        reason: String,
    },
}

/// A route and the HTTP client that reaches its upstream.
#[derive(Debug)]
pub struct Upstream {
    /// The route.
    pub route: Route,
    /// Its client: redirects not followed, no system proxy, public addresses only unless the
    /// route allows private ones, the route's extra root trusted.
    client: reqwest::Client,
}

/// The proxy's state: routes, their clients and the daemon. Shared by every connection.
#[derive(Debug)]
pub struct Proxy {
    routes: BTreeMap<String, Upstream>,
    credentials: Arc<Credentials>,
    /// How old the last check of a grant may be when a chunk of a streamed answer goes out.
    recheck: Duration,
    /// The port it listens on, the only one a request's `Host` may name.
    port: u16,
}

impl Proxy {
    /// The proxy for `config`, getting credentials from the daemon at `target`, answering on
    /// `port`.
    pub fn new(config: ProxyConfig, target: Target, port: u16) -> Result<Self, SetupError> {
        let recheck = config.recheck;
        let mut routes = BTreeMap::new();
        for (name, route) in config.routes {
            let client = client_for(&name, &route)?;
            routes.insert(name, Upstream { route, client });
        }
        Ok(Self {
            routes,
            credentials: Arc::new(Credentials::new(target)),
            recheck,
            port,
        })
    }
}

fn client_for(name: &str, route: &Route) -> Result<reqwest::Client, SetupError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .https_only(true);
    if !route.allow_private {
        builder = builder.dns_resolver(Arc::new(address::PublicOnly));
    }
    if let Some(path) = &route.ca_file {
        let ca_error = |reason: String| SetupError::CaFile {
            route: name.to_owned(),
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| SetupError::Client {
        route: name.to_owned(),
        reason: e.to_string(),
    })
}

/// Serves `listener` until `shutdown` completes; connections still open then are dropped.
pub async fn serve(listener: TcpListener, proxy: Proxy, shutdown: impl Future<Output = ()>) {
    let proxy = Arc::new(proxy);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (stream, _) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                debug!(%error, "accept failed");
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(|request| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(forward::handle(&proxy, request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                debug!(%error, "connection ended with an error");
            }
        });
    }
}
