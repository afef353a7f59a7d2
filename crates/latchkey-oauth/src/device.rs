//! The device login (RFC 8628): the user enters a short code on another device while the
//! daemon polls the token endpoint, honouring `interval`, `slow_down` (+5 s for this and later
//! polls), `authorization_pending`, `expired_token` and `access_denied`. The polling loop is
//! the `oauth2` crate's; the device code never leaves this task.

use std::time::Duration;

use oauth2::Scope;

use crate::{login_error, Completed, LoginError, LoginFuture, OAuth};

/// The longest wait between polls after network errors.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A started device login: what the user must see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceLogin {
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the code filled in, if the provider offers it.
    pub verification_uri_complete: Option<String>,
    /// The code the user types (shown to the user; not a credential on its own).
    pub user_code: String,
    /// How long the code is valid.
    pub expires_in: Duration,
}

impl OAuth {
    /// Starts a device login at `provider` for `scopes` (the provider's defaults when empty),
    /// ending after the device code's lifetime or `lifetime`, whichever is shorter.
    pub async fn start_device(
        &self,
        provider: &str,
        scopes: &[String],
        lifetime: Duration,
    ) -> Result<(DeviceLogin, LoginFuture), LoginError> {
        let (client, endpoints, client_secret) = self.client(provider).await?;
        if endpoints.device_authorization.is_none() {
            return Err(LoginError::Unsupported(format!(
                "provider {provider} has no device authorization endpoint; use a browser login"
            )));
        }
        let scopes = self.login_scopes_for(provider, scopes);
        let details: oauth2::StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .map_err(|e| LoginError::Unsupported(e.to_string()))?
            .add_scopes(scopes.into_iter().map(Scope::new))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                login_error(
                    e,
                    "device authorization endpoint",
                    &[crate::secret_str(&client_secret)],
                )
            })?;
        let expires_in = details.expires_in().min(lifetime);
        // What the user is shown and may open: checked like any endpoint, never raw.
        let verification_uri =
            crate::provider::checked_url(provider, "verification_uri", details.verification_uri())
                .map_err(|e| LoginError::Rejected(e.to_string()))?
                .to_string();
        let verification_uri_complete = details
            .verification_uri_complete()
            .and_then(|u| {
                crate::provider::checked_url(provider, "verification_uri_complete", u.secret()).ok()
            })
            .map(|u| u.to_string());
        // Shown to the user as it is, so held to the error charset (no escapes, no
        // look-alikes) and uncut.
        let user_code = details.user_code().secret().clone();
        if crate::provider_text::sanitize(&user_code, 64, &[]).as_ref() != Some(&user_code) {
            return Err(LoginError::Rejected(
                "the user code is not printable".into(),
            ));
        }
        let details = with_sane_interval(details)?;
        let started = DeviceLogin {
            verification_uri,
            verification_uri_complete,
            user_code,
            expires_in,
        };
        let http = self.http.clone();
        // What the polls carry, which their answers must not echo.
        let device_code = latchkey_proto::Secret::new(details.device_code().secret().clone());
        let future = Box::pin(async move {
            // The poll loop's deadline runs on a monotonic clock: a wall clock jumping by hours
            // neither ends the login at once nor keeps it polling for hours.
            let (base, started) = (chrono::Utc::now(), std::time::Instant::now());
            let monotonic =
                move || base + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
            let poll = client
                .exchange_device_access_token(&details)
                .set_time_fn(monotonic)
                .set_max_backoff_interval(MAX_BACKOFF)
                .request_async(&http, tokio::time::sleep, Some(expires_in));
            let response = tokio::time::timeout(expires_in + MAX_BACKOFF, poll)
                .await
                .map_err(|_| LoginError::Expired)?
                .map_err(|e| {
                    let secrets = [device_code.expose(), crate::secret_str(&client_secret)];
                    login_error(e, "token endpoint", &secrets)
                })?;
            let tokens = crate::tokens::accept(&response)
                .map_err(|e| LoginError::Rejected(e.to_string()))?;
            Ok(Completed { tokens, page: None })
        }) as LoginFuture;
        Ok((started, future))
    }
}

/// The device response with a polling interval of at least one second: a provider saying 0
/// (or nothing, which the `oauth2` crate reads as 5 s) must not make the daemon spin.
fn with_sane_interval(
    details: oauth2::StandardDeviceAuthorizationResponse,
) -> Result<oauth2::StandardDeviceAuthorizationResponse, LoginError> {
    if details.interval() >= Duration::from_secs(1) {
        return Ok(details);
    }
    let mut value = serde_json::to_value(&details)
        .map_err(|_| LoginError::Rejected("the device answer is not valid".into()))?;
    value["interval"] = serde_json::json!(DEFAULT_INTERVAL);
    serde_json::from_value(value)
        .map_err(|_| LoginError::Rejected("the device answer is not valid".into()))
}

/// RFC 8628 §3.2: the interval when a provider gives none.
const DEFAULT_INTERVAL: u64 = 5;
