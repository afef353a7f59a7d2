//! What every token response (refresh, code or device grant) must satisfy before anything is
//! written: a non-empty access token, the Bearer type and a sensible lifetime.

use latchkey_core::{RefreshError, Refreshed};
use oauth2::basic::{BasicTokenResponse, BasicTokenType};
use oauth2::TokenResponse;

/// Longest accepted `expires_in`: ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// Checks a token response; a refusal names what was wrong, never a value.
pub(crate) fn accept(response: &BasicTokenResponse) -> Result<Refreshed, RefreshError> {
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
