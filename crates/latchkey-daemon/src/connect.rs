//! Login links: when `get` finds no usable token for a configured provider, its
//! `authentication_required` error carries a `login_url` — a loopback address served here
//! that starts (or rejoins) a browser login and redirects to the provider, so an agent can
//! hand the user one link. Links hold an unguessable token, name one entry and its scopes,
//! start at most one login (opening the link again rejoins it while it waits; once it is over
//! the link is spent), and expire after the login lifetime. The server starts on the first
//! link and listens on 127.0.0.1 only.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use latchkey_oauth::loopback::{self, Reply};
use latchkey_proto::LoginParams;
use tracing::{debug, info};

use crate::login::Logins;

/// Marks a link whose login is being started.
const STARTING: &str = "";
/// Links remembered at once; the oldest is dropped past this.
const MAX_LINKS: usize = 64;

struct Link {
    provider: String,
    account: String,
    scopes: Vec<String>,
    created: Instant,
    /// The login this link started, once opened.
    login: Option<String>,
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
        let oauth = self.inner.logins.oauth()?;
        if let latchkey_oauth::Source::Fixed(endpoints) = &oauth.provider(service)?.source {
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
        let logins = &self.inner.logins;
        let existing = links
            .iter()
            .find(|(_, l)| {
                l.provider == service
                    && l.account == account
                    && l.scopes == scopes
                    && l.login.as_deref().is_none_or(|id| logins.is_waiting(id))
            })
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
                        login: None,
                    },
                );
                token
            }
        };
        Some(format!("http://{address}/login/{token}"))
    }

    /// Answers one request to the link server.
    async fn answer(&self, request: Request<Incoming>) -> Reply {
        let token = request
            .uri()
            .path()
            .strip_prefix("/login/")
            .filter(|_| request.method() == hyper::Method::GET)
            .map(str::to_owned);
        let lifetime = self.inner.logins.lifetime();
        // Looked up and, if unused, claimed in one step: two opens at once start one login.
        let found = token.as_ref().and_then(|token| {
            let mut links = self.links();
            let link = links
                .get_mut(token)
                .filter(|l| l.created.elapsed() < lifetime)?;
            let login = link.login.clone();
            if login.is_none() {
                link.login = Some(STARTING.to_owned());
            }
            Some((
                link.provider.clone(),
                link.account.clone(),
                link.scopes.clone(),
                login,
            ))
        });
        let (Some(token), Some((provider, account, scopes, login))) = (token, found) else {
            return page(
                StatusCode::NOT_FOUND,
                "This login link is unknown or has expired. Ask for the token again to get a new one.",
            );
        };
        let logins = &self.inner.logins;
        if login.as_deref() == Some(STARTING) {
            return page(
                StatusCode::CONFLICT,
                "This login is starting; reload the page in a moment.",
            );
        }
        if let Some(login_id) = login {
            // The login this link started: rejoin it while it waits; afterwards it is spent.
            return match logins.waiting_login(&login_id, &provider, &account, &scopes) {
                Some(started) => match started.authorization_url {
                    Some(url) => loopback::redirect(&url),
                    None => page(StatusCode::BAD_GATEWAY, "The login did not start."),
                },
                None => page(
                    StatusCode::GONE,
                    "This login link was used. Ask for the token again to get a new one.",
                ),
            };
        }
        let started = logins
            .start(&LoginParams {
                provider: provider.clone(),
                account: Some(account.clone()),
                scopes,
                device: false,
            })
            .await;
        match started {
            Ok(started) => {
                if let Some(link) = self.links().get_mut(&token) {
                    link.login = Some(started.login_id.clone());
                }
                info!(target: "latchkey::audit", method = "login_link", entry = %format!("{provider}/{account}"), result = "ok");
                match started.authorization_url {
                    Some(url) => loopback::redirect(&url),
                    None => page(StatusCode::BAD_GATEWAY, "The login did not start."),
                }
            }
            Err(err) => {
                // Nothing started: the link may be tried again.
                if let Some(link) = self.links().get_mut(&token) {
                    link.login = None;
                }
                page(StatusCode::BAD_GATEWAY, &err.message)
            }
        }
    }
}

fn page(status: StatusCode, text: &str) -> Reply {
    loopback::page(status, "login", text)
}

/// Starts the link server on 127.0.0.1 at a random port; it runs as long as the daemon.
async fn serve(connect: Connect) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    info!(%address, "login links served");
    tokio::spawn(loopback::serve(listener, move |request| {
        let connect = connect.clone();
        async move { connect.answer(request).await }
    }));
    Ok(address)
}
