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
            .and_then(|scopes| granted(scopes.iter().map(|s| s.as_str()))),
        id_token: None,
    })
}

/// The granted scopes as a provider wrote them: space separated (RFC 6749 §3.3) or, as GitHub
/// does, comma separated. An empty list means the provider did not say, so the requested
/// scopes stand (RFC 6749 §5.1).
fn granted<'a>(words: impl Iterator<Item = &'a str>) -> Option<Vec<String>> {
    let scopes: Vec<String> = words
        .flat_map(|w| w.split([',', ' ']))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!scopes.is_empty()).then_some(scopes)
}

#[cfg(test)]
mod tests {
    use super::granted;

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(
            granted(["repo,gist", "read:org"].into_iter()),
            Some(vec!["repo".into(), "gist".into(), "read:org".into()])
        );
        assert_eq!(granted([""].into_iter()), None);
    }
}
