//! Revocation at logout (RFC 7009): the refresh token first (which ends the whole grant at
//! most providers), then the access token, each reported honestly.

use latchkey_proto::Secret;
use oauth2::basic::BasicRevocationErrorResponse;
use oauth2::{
    AccessToken, RefreshToken, RequestTokenError, RevocationErrorResponseType,
    StandardRevocableToken,
};
use serde::Serialize;
use tracing::debug;

use crate::http_client::HttpFailure;
use crate::OAuth;

/// What the provider said about the revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// The provider confirmed it (HTTP 200).
    Revoked,
    /// The provider has no revocation endpoint, or refuses this token type.
    Unsupported,
    /// No answer (timeout, 503, connection failure): the tokens may still be honoured.
    Unconfirmed,
    /// The provider refused the request.
    Failed,
}

impl Revocation {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Revocation::Revoked => "revoked",
            Revocation::Unsupported => "unsupported",
            Revocation::Unconfirmed => "unconfirmed",
            Revocation::Failed => "failed",
        }
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
        let client = match self.client(provider).await {
            Ok((client, endpoints)) if endpoints.revocation.is_some() => client,
            Ok(_) => return Revocation::Unsupported,
            Err(crate::LoginError::Unavailable(_)) => return Revocation::Unconfirmed,
            Err(_) => return Revocation::Unsupported,
        };
        let mut tokens = Vec::new();
        if let Some(refresh) = refresh_token {
            tokens.push(StandardRevocableToken::RefreshToken(RefreshToken::new(
                refresh.expose().to_owned(),
            )));
        }
        if let Some(access) = access_token {
            tokens.push(StandardRevocableToken::AccessToken(AccessToken::new(
                access.expose().to_owned(),
            )));
        }
        let had_refresh = refresh_token.is_some();
        let mut outcome = None::<Revocation>;
        for (i, token) in tokens.into_iter().enumerate() {
            let result = match client.revoke_token(token) {
                Ok(request) => classify(request.request_async(&self.http).await),
                Err(_) => Revocation::Unsupported,
            };
            // Revoking the refresh token ends the grant; a provider that then refuses the
            // access token's type has not left anything usable for long.
            let result = if i == 1 && had_refresh && result == Revocation::Unsupported {
                Revocation::Revoked
            } else {
                result
            };
            debug!(provider, outcome = result.as_str(), "revocation answered");
            outcome = Some(outcome.map_or(result, |o| o.max(result)));
        }
        outcome.unwrap_or(Revocation::Revoked)
    }
}

fn classify(
    result: Result<(), RequestTokenError<HttpFailure, BasicRevocationErrorResponse>>,
) -> Revocation {
    match result {
        Ok(()) => Revocation::Revoked,
        Err(RequestTokenError::ServerResponse(error)) => match error.error() {
            RevocationErrorResponseType::UnsupportedTokenType => Revocation::Unsupported,
            _ => Revocation::Failed,
        },
        Err(RequestTokenError::Request(HttpFailure::Status { status: 503, .. }))
        | Err(RequestTokenError::Request(HttpFailure::Status { status: 429, .. }))
        | Err(RequestTokenError::Request(HttpFailure::Transport(_))) => Revocation::Unconfirmed,
        Err(_) => Revocation::Failed,
    }
}
