//! latchkey's OAuth 2.0 I/O with providers, on the `oauth2` crate over `reqwest` with rustls
//! (on Apple targets, the system's TLS through `native-tls`).
//!
//! [`OAuth`] holds the configured [`Provider`]s and does everything that talks to them:
//! refreshing (it implements the core's [`Refresher`]: bounded retries with backoff and
//! jitter for what may pass, no redirects, anything it cannot trust refused so nothing is
//! written), browser logins (authorization code + PKCE S256 on a one-shot loopback redirect,
//! RFC 8252), device logins (RFC 8628), revocation (RFC 7009) and OpenID Connect discovery.
//! It never stores anything: the daemon decides what to keep.
#![deny(missing_docs)]

mod browser;
mod device;
mod discovery;
mod http_client;
pub mod loopback;
mod provider;
mod provider_text;
pub mod register;
mod revoke;
mod tokens;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use latchkey_core::{
    RefreshError, RefreshFuture, RefreshRequest, Refreshed, Refresher, RevokeFuture,
};
use latchkey_proto::Secret;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError, RevocationUrl, TokenUrl,
};
use tracing::debug;

pub use browser::BrowserLogin;
pub use device::DeviceLogin;
pub use provider::{Endpoints, Provider, ProviderError, ProviderSpec, Source, BUILTIN};

use http_client::{HttpFailure, TokenHttp};

/// Attempts per refresh, the first included.
const ATTEMPTS: u32 = 3;
/// The longest `Retry-After` honoured; a longer one fails the refresh as retryable.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// How long one HTTP request to a provider may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The `oauth2` client type with every endpoint latchkey may use.
type OAuthClient =
    BasicClient<EndpointMaybeSet, EndpointMaybeSet, EndpointNotSet, EndpointMaybeSet, EndpointSet>;

/// A login that has started; awaiting it waits for the user and the token exchange.
pub type LoginFuture = Pin<Box<dyn Future<Output = Result<Completed, LoginError>> + Send>>;

/// The tokens of a completed login. A browser that is still waiting for its page is answered
/// by [`Completed::finish`], once the caller has stored the tokens (or failed to).
#[derive(Debug)]
pub struct Completed {
    /// The tokens.
    pub tokens: Refreshed,
    page: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl Completed {
    /// Tells the waiting browser (if any) whether the login ended well; `Err` carries a
    /// message for people.
    pub fn finish(mut self, outcome: Result<(), String>) {
        if let Some(page) = self.page.take() {
            let _ = page.send(outcome);
        }
    }
}

/// Where client secrets of confidential clients come from (the daemon's store).
pub trait ClientSecrets: Send + Sync + 'static {
    /// The client secret stored for `provider`, if any.
    fn client_secret<'a>(
        &'a self,
        provider: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<Secret>> + Send + 'a>>;
}

/// Why a login could not start or did not complete. Messages never hold a code or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// No provider of that name is configured.
    #[error(
        "no provider named {0} is configured (add [providers.{0}] with a client_id to config.toml)"
    )]
    UnknownProvider(String),
    /// The provider lacks what this login needs (an endpoint).
    #[error("{0}")]
    Unsupported(String),
    /// The user (or the provider) denied the authorization.
    #[error("the authorization was denied")]
    Denied,
    /// The login was not completed in time.
    #[error("the login expired before it was completed")]
    Expired,
    /// The login was cancelled.
    #[error("the login was cancelled")]
    Cancelled,
    /// The provider refused or answered something unusable.
    #[error("the provider refused the login: {0}")]
    Rejected(String),
    /// The provider could not be reached; trying again later may work.
    #[error("the provider is unreachable: {0}")]
    Unavailable(String),
}

impl LoginError {
    /// Whether the same login may succeed if tried again.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            LoginError::Expired | LoginError::Cancelled | LoginError::Unavailable(_)
        )
    }
}

/// A configured provider and its endpoints once discovered.
#[derive(Debug)]
struct Known {
    provider: Provider,
    resolved: tokio::sync::OnceCell<Endpoints>,
}

/// Talks to the configured providers.
pub struct OAuth {
    providers: BTreeMap<String, Known>,
    http: TokenHttp,
    secrets: OnceLock<Arc<dyn ClientSecrets>>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// A client for `providers` (by name), with the default request timeout.
    pub fn new(providers: BTreeMap<String, Provider>) -> Result<Self, ProviderError> {
        Self::with_timeout(providers, DEFAULT_TIMEOUT)
    }

    /// A client whose every HTTP request to a provider may take at most `timeout`.
    pub fn with_timeout(
        providers: BTreeMap<String, Provider>,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ProviderError::Http(e.to_string()))?;
        Ok(Self {
            providers: providers
                .into_iter()
                .map(|(name, provider)| {
                    (
                        name,
                        Known {
                            provider,
                            resolved: tokio::sync::OnceCell::new(),
                        },
                    )
                })
                .collect(),
            http: TokenHttp(http),
            secrets: OnceLock::new(),
        })
    }

    /// Sets where client secrets are looked up (once; later calls are ignored).
    pub fn set_client_secrets(&self, secrets: Arc<dyn ClientSecrets>) {
        let _ = self.secrets.set(secrets);
    }

    /// The configured providers.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values().map(|k| &k.provider)
    }

    /// A configured provider.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name).map(|k| &k.provider)
    }

    /// A provider's endpoints, discovering them on first use for an issuer.
    pub async fn endpoints(&self, name: &str) -> Result<Endpoints, LoginError> {
        let known = self
            .providers
            .get(name)
            .ok_or_else(|| LoginError::UnknownProvider(name.to_owned()))?;
        match &known.provider.source {
            Source::Fixed(endpoints) => Ok((**endpoints).clone()),
            Source::Issuer(issuer) => known
                .resolved
                .get_or_try_init(|| discovery::discover(&self.http.0, name, issuer))
                .await
                .cloned()
                .map_err(LoginError::Unavailable),
        }
    }

    /// A provider's endpoints if known without asking the network: configured, or already
    /// discovered.
    pub fn known_endpoints(&self, name: &str) -> Option<Endpoints> {
        let known = self.providers.get(name)?;
        match &known.provider.source {
            Source::Fixed(endpoints) => Some((**endpoints).clone()),
            Source::Issuer(_) => known.resolved.get().cloned(),
        }
    }

    /// An `oauth2` client for the provider, with its client secret if one is stored (also
    /// returned, as a secret the provider's answers must not echo).
    async fn client(
        &self,
        name: &str,
    ) -> Result<(OAuthClient, Endpoints, Option<Secret>), LoginError> {
        let endpoints = self.endpoints(name).await?;
        let provider = &self.providers[name].provider;
        let mut client = BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_auth_uri_option(endpoints.authorization.clone().map(AuthUrl::from_url))
            .set_device_authorization_url_option(
                endpoints
                    .device_authorization
                    .clone()
                    .map(DeviceAuthorizationUrl::from_url),
            )
            .set_revocation_url_option(endpoints.revocation.clone().map(RevocationUrl::from_url))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_auth_type(AuthType::RequestBody);
        let secret = self.client_secret(name).await;
        if let Some(secret) = &secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok((client, endpoints, secret))
    }

    /// The stored client secret of a confidential client.
    async fn client_secret(&self, name: &str) -> Option<Secret> {
        self.secrets.get()?.client_secret(name).await
    }

    /// The scopes a login asks for: the caller's, else the provider's defaults.
    pub fn login_scopes_for(&self, name: &str, scopes: &[String]) -> Vec<String> {
        if !scopes.is_empty() {
            return scopes.to_vec();
        }
        self.provider(name)
            .map(|p| p.default_scopes.clone())
            .unwrap_or_default()
    }

    async fn exchange(&self, provider: &str, refresh_token: &str) -> Result<Refreshed, Attempt> {
        let (client, _, client_secret) = self.client(provider).await.map_err(|e| match e {
            LoginError::Unavailable(reason) => Attempt::Retry {
                reason,
                after: None,
            },
            other => Attempt::Final(RefreshError::Rejected(other.to_string())),
        })?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await;
        let secrets = [refresh_token, secret_str(&client_secret)];
        match response {
            Ok(response) => tokens::accept(&response).map_err(Attempt::Final),
            Err(RequestTokenError::ServerResponse(error)) => {
                let code = error.error();
                Err(Attempt::Final(match code {
                    BasicErrorResponseType::InvalidGrant => RefreshError::InvalidGrant,
                    // GitHub's name for a refresh token it no longer honours.
                    BasicErrorResponseType::Extension(e) if e == "bad_refresh_token" => {
                        RefreshError::InvalidGrant
                    }
                    other => RefreshError::Rejected(format!(
                        "the provider answered {}",
                        provider_text::provider_error(
                            other.as_ref(),
                            error.error_description().map(String::as_str),
                            &secrets
                        )
                    )),
                }))
            }
            Err(RequestTokenError::Request(failure)) => match failure {
                HttpFailure::Status {
                    status,
                    retry_after,
                } => Err(Attempt::Retry {
                    reason: format!("HTTP {status}"),
                    after: retry_after,
                }),
                HttpFailure::Transport(reason) => Err(Attempt::Retry {
                    reason,
                    after: None,
                }),
                HttpFailure::Redirect(status) => {
                    Err(Attempt::Final(RefreshError::Rejected(format!(
                        "the token endpoint redirected (HTTP {status}); redirects are not followed"
                    ))))
                }
            },
            Err(RequestTokenError::Parse(..)) => Err(Attempt::Final(RefreshError::Rejected(
                "the token response is not a valid token response".into(),
            ))),
            Err(RequestTokenError::Other(reason)) => Err(Attempt::Final(RefreshError::Rejected(
                other_reason(&reason, "token endpoint", &secrets),
            ))),
        }
    }
}

/// A stored client secret as text, empty when there is none.
fn secret_str(secret: &Option<Secret>) -> &str {
    secret.as_ref().map_or("", Secret::expose)
}

/// A reason the `oauth2` crate gave (it may quote the answer, e.g. its Content-Type), as it
/// may be shown.
fn other_reason(reason: &str, what: &str, secrets: &[&str]) -> String {
    match provider_text::sanitize(reason, provider_text::DESCRIPTION_LIMIT, secrets) {
        Some(reason) => format!("the {what}'s answer is not usable: {reason}"),
        None => format!("the {what}'s answer is not usable"),
    }
}

/// Turns a failed code or device exchange into a login error. `secrets` are those the
/// request carried: the provider's text is shown only if it echoes none of them.
fn login_error<TE: oauth2::ErrorResponse>(
    err: RequestTokenError<HttpFailure, TE>,
    what: &str,
    secrets: &[&str],
) -> LoginError {
    match err {
        RequestTokenError::ServerResponse(error) => {
            let value = serde_json::to_value(&error).unwrap_or_default();
            let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            let code = field("error").unwrap_or_default();
            match code.as_str() {
                "access_denied" => LoginError::Denied,
                "expired_token" => LoginError::Expired,
                _ => LoginError::Rejected(format!(
                    "the {what} answered {}",
                    provider_text::provider_error(
                        &code,
                        field("error_description").as_deref(),
                        secrets
                    )
                )),
            }
        }
        RequestTokenError::Request(HttpFailure::Status { status, .. }) => {
            LoginError::Unavailable(format!("the {what} answered HTTP {status}"))
        }
        RequestTokenError::Request(HttpFailure::Transport(reason)) => {
            LoginError::Unavailable(reason)
        }
        RequestTokenError::Request(HttpFailure::Redirect(status)) => LoginError::Rejected(format!(
            "the {what} redirected (HTTP {status}); redirects are not followed"
        )),
        RequestTokenError::Parse(..) => {
            LoginError::Rejected(format!("the {what}'s answer is not valid"))
        }
        RequestTokenError::Other(reason) => {
            LoginError::Rejected(other_reason(&reason, what, secrets))
        }
    }
}

/// One attempt's failure.
enum Attempt {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Final(RefreshError),
}

/// Backoff before attempt `n` (1-based retries): 250 ms doubling, with up to 50 % jitter.
fn backoff(retry: u32) -> Duration {
    let base = Duration::from_millis(250) * 2u32.pow(retry.saturating_sub(1));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

impl Refresher for OAuth {
    fn refresh<'a>(&'a self, request: RefreshRequest<'a>) -> RefreshFuture<'a> {
        Box::pin(async move {
            if !self.providers.contains_key(request.provider) {
                return Err(RefreshError::UnknownProvider);
            }
            let mut last = String::new();
            for attempt in 1..=ATTEMPTS {
                match self
                    .exchange(request.provider, request.refresh_token.expose())
                    .await
                {
                    Ok(refreshed) => return Ok(refreshed),
                    Err(Attempt::Final(err)) => return Err(err),
                    Err(Attempt::Retry { reason, after }) => {
                        debug!(provider = request.provider, attempt, %reason, "token endpoint failed");
                        last = reason;
                        if attempt == ATTEMPTS {
                            break;
                        }
                        let wait = match after {
                            Some(after) if after > MAX_RETRY_AFTER => break,
                            Some(after) => after,
                            None => backoff(attempt),
                        };
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            Err(RefreshError::Transient(last))
        })
    }

    fn revoke_orphan<'a>(
        &'a self,
        provider: &'a str,
        refresh_token: &'a Secret,
    ) -> RevokeFuture<'a> {
        Box::pin(async move {
            let outcome = self.revoke(provider, Some(refresh_token), None).await;
            debug!(
                provider,
                outcome = outcome.as_str(),
                "revoked the refresh token of an entry logged out during its refresh"
            );
        })
    }
}

/// A random, unguessable identifier (128 bits, URL-safe), for login ids and connect links.
pub fn random_id() -> String {
    oauth2::CsrfToken::new_random().secret().clone()
}
