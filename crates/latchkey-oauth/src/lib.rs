//! Token-endpoint I/O for latchkey, on the `oauth2` crate over `reqwest` with rustls.
//!
//! [`HttpRefresher`] implements the core's [`Refresher`]: it exchanges a refresh token at the
//! provider's token endpoint (RFC 6749 §6), retries what may pass (connection failures,
//! timeouts, 5xx, 429 with `Retry-After`) a bounded number of times with backoff and jitter,
//! never follows redirects, and turns anything it cannot trust (garbage, a missing
//! `access_token`, an unknown `token_type`, a nonsensical `expires_in`) into a refusal so that
//! nothing is written. Logins and revocation come later.
#![deny(missing_docs)]

mod http_client;
mod provider;

use std::collections::BTreeMap;
use std::time::Duration;

use latchkey_core::{RefreshError, RefreshFuture, RefreshRequest, Refreshed, Refresher};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{AuthType, ClientId, RefreshToken, RequestTokenError, TokenResponse};
use tracing::debug;

pub use provider::{builtin_token_url, Provider, ProviderError};

use http_client::{HttpFailure, TokenHttp};

/// Attempts per refresh, the first included.
const ATTEMPTS: u32 = 3;
/// The longest `Retry-After` honoured; a longer one fails the refresh as retryable.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Longest accepted `expires_in`: ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// Refreshes tokens at the configured providers' token endpoints.
#[derive(Debug)]
pub struct HttpRefresher {
    providers: BTreeMap<String, Provider>,
    http: TokenHttp,
}

impl HttpRefresher {
    /// A refresher for `providers` (by name).
    pub fn new(providers: BTreeMap<String, Provider>) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ProviderError::Http(e.to_string()))?;
        Ok(Self {
            providers,
            http: TokenHttp(http),
        })
    }

    async fn exchange(
        &self,
        provider: &Provider,
        refresh_token: &str,
    ) -> Result<Refreshed, Attempt> {
        let client = BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_token_uri(provider.token_url.clone())
            .set_auth_type(AuthType::RequestBody);
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await;
        match response {
            Ok(response) => accept(&response).map_err(Attempt::Final),
            Err(RequestTokenError::ServerResponse(error)) => {
                let code = error.error();
                Err(Attempt::Final(match code {
                    BasicErrorResponseType::InvalidGrant => RefreshError::InvalidGrant,
                    other => RefreshError::Rejected(format!("the provider answered {other}")),
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
            Err(RequestTokenError::Other(reason)) => {
                Err(Attempt::Final(RefreshError::Rejected(reason)))
            }
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

/// Checks a token response before anything is written.
fn accept(response: &oauth2::basic::BasicTokenResponse) -> Result<Refreshed, RefreshError> {
    let access_token = response.access_token().secret();
    if access_token.is_empty() {
        return Err(RefreshError::Rejected("the access token is empty".into()));
    }
    if *response.token_type() != BasicTokenType::Bearer {
        return Err(RefreshError::Rejected(
            "the token type is not Bearer".into(),
        ));
    }
    let expires_in = match response.expires_in() {
        None => None,
        Some(d) if d.as_secs() >= 1 && d.as_secs() <= MAX_EXPIRES_IN => Some(d.as_secs() as i64),
        Some(_) => return Err(RefreshError::Rejected("expires_in is out of range".into())),
    };
    Ok(Refreshed {
        access_token: access_token.as_str().into(),
        refresh_token: response
            .refresh_token()
            .map(|t| latchkey_proto::Secret::new(t.secret().clone())),
        token_type: "Bearer".into(),
        expires_in,
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect()),
        id_token: None,
    })
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

impl Refresher for HttpRefresher {
    fn refresh<'a>(&'a self, request: RefreshRequest<'a>) -> RefreshFuture<'a> {
        Box::pin(async move {
            let provider = self
                .providers
                .get(request.provider)
                .ok_or(RefreshError::UnknownProvider)?;
            let mut last = String::new();
            for attempt in 1..=ATTEMPTS {
                match self
                    .exchange(provider, request.refresh_token.expose())
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
}
