//! The browser login: authorization code + PKCE (S256) with a loopback redirect (RFC 8252).
//!
//! A listener on 127.0.0.1 at a random port waits for the one redirect that carries the
//! login's `state`. Requests to other paths, without a `state` or with another one, are
//! answered with an error page and leave the login waiting; the first request with the right
//! `state` consumes it (single use) and the listener closes. The code is then exchanged with
//! the PKCE verifier, which never leaves this task.
//!
//! The issuer (RFC 9207): a response carrying `iss` is accepted only if it equals the
//! provider's issuer identifier (its discovery document's `issuer`, or a template's). A
//! provider without a known issuer (explicit endpoints, templates whose issuer depends on the
//! tenant) cannot have its `iss` checked, so a response that carries one is refused rather
//! than trusted (RFC 9207 §2.4 leaves unchecked values no standing); a response without `iss`
//! is accepted unless the issuer's metadata says it always sends one. Either refusal fails
//! the login for good, error responses included: an answer from another issuer is not this
//! provider's to give.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use tokio::sync::oneshot;

use crate::loopback::page;
use latchkey_proto::Secret;

use crate::provider_text::provider_error;
use crate::{login_error, secret_str, Completed, LoginError, LoginFuture, OAuth};

/// The path of the redirect URI.
const CALLBACK_PATH: &str = "/callback";
/// How long the browser's page waits for the tokens to be exchanged and stored.
const PAGE_WAIT: Duration = Duration::from_secs(20);

/// A started browser login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserLogin {
    /// Where the user's browser goes to authorize.
    pub authorization_url: String,
    /// The loopback redirect URI the provider sends the browser back to.
    pub redirect_uri: String,
}

/// What the redirect brought, as it came (it is checked by the login's task).
struct Arrival {
    /// The `iss` parameter (RFC 9207), if any.
    iss: Option<String>,
    answer: Answer,
}

enum Answer {
    Code(String),
    Error {
        code: String,
        description: Option<String>,
    },
}

/// What an authorization response's `iss` must be.
struct ExpectedIssuer {
    provider: String,
    issuer: Option<String>,
    required: bool,
}

impl ExpectedIssuer {
    fn check(&self, iss: Option<&str>) -> Result<(), LoginError> {
        let provider = &self.provider;
        match (iss, self.issuer.as_deref()) {
            (None, _) if self.required => Err(LoginError::Rejected(format!(
                "the authorization response lacks the issuer (iss) that provider {provider}'s \
                 metadata promises (RFC 9207); the login is refused"
            ))),
            (None, _) => Ok(()),
            (Some(iss), Some(expected)) if iss == expected => Ok(()),
            (Some(_), Some(_)) => Err(LoginError::Rejected(format!(
                "the authorization response names another issuer (iss) than provider \
                 {provider}'s (RFC 9207 mix-up defence); the login is refused"
            ))),
            (Some(_), None) => Err(LoginError::Rejected(format!(
                "the authorization response names an issuer (iss) that latchkey cannot check: \
                 provider {provider} has no known issuer (configure it by `issuer`, so its \
                 discovery document names it); the login is refused"
            ))),
        }
    }
}

/// The page shown once the login is decided.
type PageSender = oneshot::Sender<Result<(), String>>;

struct Waiting {
    state: String,
    /// Taken by the first request with the right state.
    slot: Mutex<Option<oneshot::Sender<(Arrival, PageSender)>>>,
}

impl OAuth {
    /// Starts a browser login at `provider` for `scopes` (the provider's defaults when empty).
    /// The returned future completes with the tokens, or fails when the user denies, the
    /// provider refuses, or `lifetime` passes.
    pub async fn start_browser(
        &self,
        provider: &str,
        scopes: &[String],
        lifetime: Duration,
    ) -> Result<(BrowserLogin, LoginFuture), LoginError> {
        let (client, endpoints, client_secret) = self.client(provider).await?;
        let expected = ExpectedIssuer {
            provider: provider.to_owned(),
            issuer: endpoints.issuer.clone(),
            required: endpoints.iss_required,
        };
        if endpoints.authorization.is_none() {
            return Err(LoginError::Unsupported(format!(
                "provider {provider} has no authorization endpoint; use a device login"
            )));
        }
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| LoginError::Unavailable(format!("cannot listen on 127.0.0.1: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| LoginError::Unavailable(e.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
        let client = client.set_redirect_uri(
            RedirectUrl::new(redirect_uri.clone())
                .map_err(|e| LoginError::Unavailable(e.to_string()))?,
        );
        let scopes = self.login_scopes_for(provider, scopes);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        // A copy of what the exchange carries, which its answer must not echo.
        let verifier_copy = Secret::new(verifier.secret().clone());
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .map_err(|e| LoginError::Unsupported(e.to_string()))?
            .add_scopes(scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        let extra = &self.providers[provider].provider.extra_auth_params;
        for (name, value) in extra {
            request = request.add_extra_param(name.clone(), value.clone());
        }
        // OpenID Connect Core §11: offline_access needs prompt=consent.
        if self.providers[provider].provider.offline_needs_consent
            && scopes.iter().any(|s| s == "offline_access")
            && !extra.iter().any(|(k, _)| k == "prompt")
        {
            request = request.add_extra_param("prompt", "consent");
        }
        let (url, state) = request.url();
        let http = self.http.clone();
        let waiting = Arc::new(Waiting {
            state: state.secret().clone(),
            slot: Mutex::new(None),
        });
        let future = Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            *waiting.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            let arrival = tokio::select! {
                arrived = rx => arrived.map_err(|_| LoginError::Cancelled),
                () = crate::loopback::serve(listener, {
                    let waiting = Arc::clone(&waiting);
                    move |request| {
                        let waiting = Arc::clone(&waiting);
                        async move { callback(&waiting, request).await }
                    }
                }) => Err(LoginError::Unavailable("the redirect listener failed".into())),
                () = tokio::time::sleep(lifetime) => Err(LoginError::Expired),
            };
            // The listener is closed here: a replayed redirect finds nobody listening.
            let (arrival, page) = arrival?;
            let state = waiting.state.as_str();
            let outcome = match (expected.check(arrival.iss.as_deref()), arrival.answer) {
                (Err(err), _) => Err(err),
                (Ok(()), Answer::Error { code, .. }) if code == "access_denied" => {
                    Err(LoginError::Denied)
                }
                (Ok(()), Answer::Error { code, description }) => {
                    let secrets = [state, verifier_copy.expose()];
                    Err(LoginError::Rejected(format!(
                        "the authorization endpoint answered {}",
                        provider_error(&code, description.as_deref(), &secrets)
                    )))
                }
                (Ok(()), Answer::Code(code)) => {
                    let code = Secret::new(code);
                    let secrets = [
                        code.expose(),
                        verifier_copy.expose(),
                        state,
                        secret_str(&client_secret),
                    ];
                    client
                        .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
                        .set_pkce_verifier(verifier)
                        .request_async(&http)
                        .await
                        .map_err(|e| login_error(e, "token endpoint", &secrets))
                        .and_then(|response| {
                            crate::tokens::accept(&response)
                                .map_err(|e| LoginError::Rejected(e.to_string()))
                        })
                }
            };
            match outcome {
                Ok(tokens) => Ok(Completed {
                    tokens,
                    page: Some(page),
                }),
                Err(err) => {
                    let _ = page.send(Err(err.to_string()));
                    Err(err)
                }
            }
        }) as LoginFuture;
        Ok((
            BrowserLogin {
                authorization_url: url.to_string(),
                redirect_uri,
            },
            future,
        ))
    }
}

/// Constant-time comparison, so the state cannot be guessed byte by byte from timings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn callback(waiting: &Waiting, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != hyper::Method::GET || request.uri().path() != CALLBACK_PATH {
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "This address is not part of a latchkey login.",
        );
    }
    let (mut state, mut code, mut error, mut description, mut iss) = (None, None, None, None, None);
    for (name, value) in form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
        let slot = match name.as_ref() {
            "state" => &mut state,
            "code" => &mut code,
            "error" => &mut error,
            "error_description" => &mut description,
            "iss" => &mut iss,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    if !state.as_deref().is_some_and(|s| same(s, &waiting.state)) {
        return page(
            StatusCode::BAD_REQUEST,
            "Not this login",
            "This sign-in response does not match the pending latchkey login, which is still waiting.",
        );
    }
    let answer = match (code, error) {
        (_, Some(code)) => Answer::Error { code, description },
        (Some(code), None) if !code.is_empty() => Answer::Code(code),
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Incomplete response",
                "The sign-in response carries neither a code nor an error.",
            )
        }
    };
    let Some(slot) = waiting
        .slot
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Already used",
            "This sign-in response was already used.",
        );
    };
    let (page_tx, page_rx) = oneshot::channel();
    if slot.send((Arrival { iss, answer }, page_tx)).is_err() {
        return page(
            StatusCode::GONE,
            "Login ended",
            "The latchkey login is no longer waiting.",
        );
    }
    match tokio::time::timeout(PAGE_WAIT, page_rx).await {
        Ok(Ok(Ok(()))) => page(
            StatusCode::OK,
            "Signed in",
            "latchkey has your new token. You can close this tab.",
        ),
        Ok(Ok(Err(reason))) => page(StatusCode::BAD_REQUEST, "Sign-in failed", &reason),
        _ => page(
            StatusCode::OK,
            "Sign-in received",
            "latchkey is no longer waiting for this answer; `latchkey status` shows whether the login completed.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{same, ExpectedIssuer};

    fn expected(issuer: Option<&str>, required: bool) -> ExpectedIssuer {
        ExpectedIssuer {
            provider: "p".into(),
            issuer: issuer.map(str::to_owned),
            required,
        }
    }

    #[test]
    fn iss_must_equal_a_known_issuer_and_is_refused_when_unknown() {
        let idp = "https://idp.example.com";
        assert!(expected(Some(idp), false).check(Some(idp)).is_ok());
        assert!(expected(Some(idp), false).check(None).is_ok());
        // A plain string comparison: no normalisation.
        for other in [
            "https://idp.example.com/",
            "https://IDP.example.com",
            "https://evil.example",
        ] {
            let err = expected(Some(idp), false).check(Some(other)).unwrap_err();
            assert!(!err.retryable());
            assert!(err.to_string().contains("another issuer"), "{err}");
        }
        assert!(expected(Some(idp), true).check(None).is_err());
        assert!(expected(None, false).check(None).is_ok());
        let err = expected(None, false).check(Some(idp)).unwrap_err();
        assert!(err.to_string().contains("cannot check"), "{err}");
    }

    #[test]
    fn states_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
