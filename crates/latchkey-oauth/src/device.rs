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
        let (client, endpoints) = self.client(provider).await?;
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
            .map_err(|e| login_error(e, "device authorization endpoint"))?;
        let expires_in = details.expires_in().min(lifetime);
        let started = DeviceLogin {
            verification_uri: details.verification_uri().to_string(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().clone()),
            user_code: details.user_code().secret().clone(),
            expires_in,
        };
        let http = self.http.clone();
        let future = Box::pin(async move {
            let response = client
                .exchange_device_access_token(&details)
                .set_max_backoff_interval(MAX_BACKOFF)
                .request_async(&http, tokio::time::sleep, Some(expires_in))
                .await
                .map_err(|e| login_error(e, "token endpoint"))?;
            let tokens = crate::tokens::accept(&response)
                .map_err(|e| LoginError::Rejected(e.to_string()))?;
            Ok(Completed { tokens, page: None })
        }) as LoginFuture;
        Ok((started, future))
    }
}
