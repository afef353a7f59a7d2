//! Revocation at logout (RFC 7009): the refresh token first (which ends the whole grant at
//! most providers), then the access token, each reported honestly.
//!
//! The request is a plain form POST sent with reqwest: the `oauth2` crate refuses revocation
//! endpoints that are not https, which would leave loopback providers (and the tests' server)
//! without revocation.

use latchkey_proto::{RevocationOutcome as Revocation, Secret};
use tracing::debug;

use crate::OAuth;

/// How bad an outcome is, to report the worst of the two revocations.
fn severity(outcome: Revocation) -> u8 {
    match outcome {
        Revocation::Revoked => 0,
        Revocation::Unsupported => 1,
        Revocation::Unconfirmed => 2,
        Revocation::Failed => 3,
    }
}

impl OAuth {
    /// Revokes an entry's tokens at `provider`.
    pub async fn revoke(
        &self,
        provider: &str,
        refresh_token: Option<&Secret>,
        access_token: Option<&Secret>,
    ) -> Revocation {
        let url = match self.endpoints(provider).await {
            Ok(endpoints) => match endpoints.revocation {
                Some(url) => url,
                None => return Revocation::Unsupported,
            },
            Err(crate::LoginError::Unavailable(_)) => return Revocation::Unconfirmed,
            Err(_) => return Revocation::Unsupported,
        };
        let Some(client_id) = self.provider(provider).map(|p| p.client_id.clone()) else {
            return Revocation::Unsupported;
        };
        let client_secret = self.client_secret(provider).await;
        let tokens = [
            refresh_token.map(|t| (t, "refresh_token")),
            access_token.map(|t| (t, "access_token")),
        ];
        let mut outcome = None::<Revocation>;
        for (token, hint) in tokens.into_iter().flatten() {
            let mut form = vec![
                ("token", token.expose()),
                ("token_type_hint", hint),
                ("client_id", client_id.as_str()),
            ];
            if let Some(secret) = &client_secret {
                form.push(("client_secret", secret.expose()));
            }
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            let result = self
                .http
                .0
                .post(url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body)
                .send()
                .await;
            let mut result = classify(result).await;
            // Revoking the refresh token ends the grant and, at most providers, its access
            // tokens (RFC 7009 §2.1): one that then refuses the access token (its type, or as
            // already invalid, as Google does) has left nothing usable.
            if hint == "access_token"
                && outcome == Some(Revocation::Revoked)
                && matches!(result, Revocation::Unsupported | Revocation::Failed)
            {
                result = Revocation::Revoked;
            }
            debug!(
                provider,
                token = hint,
                outcome = result.as_str(),
                "revocation answered"
            );
            outcome = Some(outcome.map_or(result, |o| {
                std::cmp::max_by_key(o, result, |r| severity(*r))
            }));
        }
        outcome.unwrap_or(Revocation::Revoked)
    }
}

async fn classify(result: Result<reqwest::Response, reqwest::Error>) -> Revocation {
    let response = match result {
        Ok(response) => response,
        Err(_) => return Revocation::Unconfirmed,
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => Revocation::Revoked,
        429 | 500..=599 => Revocation::Unconfirmed,
        400 => {
            let body = crate::http_client::read_capped(response)
                .await
                .unwrap_or_default();
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
            if error.as_deref() == Some("unsupported_token_type") {
                Revocation::Unsupported
            } else {
                Revocation::Failed
            }
        }
        _ => Revocation::Failed,
    }
}
