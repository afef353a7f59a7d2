//! What every token response (refresh, code or device grant) must satisfy before anything is
//! written: a non-empty access token, the Bearer type and a sensible lifetime. A refused
//! response that carries a refresh token hands it back ([`RefreshError::RejectedRotated`]):
//! a rotating provider has spent the old one, so the new one must be kept.

use latchkey_core::{RefreshError, Refreshed};
use oauth2::basic::{BasicTokenResponse, BasicTokenType};
use oauth2::TokenResponse;

/// Longest accepted `expires_in`: ten years.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// Checks a token response; a refusal names what was wrong, never a value.
pub(crate) fn accept(response: &BasicTokenResponse) -> Result<Refreshed, RefreshError> {
    let refuse = |reason: &str| match response.refresh_token() {
        Some(rotated) if !rotated.secret().is_empty() => RefreshError::RejectedRotated {
            reason: reason.to_owned(),
            refresh_token: latchkey_proto::Secret::new(rotated.secret().clone()),
        },
        _ => RefreshError::Rejected(reason.to_owned()),
    };
    let access_token = response.access_token().secret();
    if access_token.is_empty() {
        return Err(refuse("the access token is empty"));
    }
    if *response.token_type() != BasicTokenType::Bearer {
        return Err(refuse("the token type is not Bearer"));
    }
    let expires_in = match response.expires_in() {
        None => None,
        Some(d) if d.as_secs() >= 1 && d.as_secs() <= MAX_EXPIRES_IN => Some(d.as_secs() as i64),
        Some(_) => return Err(refuse("expires_in is out of range")),
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
    use super::*;

    fn response(json: &str) -> BasicTokenResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_refused_answer_hands_back_its_rotated_refresh_token() {
        let refused = accept(&response(
            r#"{"access_token":"a","token_type":"MAC","expires_in":60,"refresh_token":"r2"}"#,
        ));
        match refused {
            Err(RefreshError::RejectedRotated {
                reason,
                refresh_token,
            }) => {
                assert_eq!(refresh_token.expose(), "r2");
                assert!(!reason.contains("r2"));
            }
            other => panic!("expected RejectedRotated, got {other:?}"),
        }
        let refused = accept(&response(
            r#"{"access_token":"a","token_type":"Bearer","expires_in":0,"refresh_token":"r3"}"#,
        ));
        assert!(matches!(refused, Err(RefreshError::RejectedRotated { .. })));
        // Without a refresh token there is nothing to keep.
        let refused = accept(&response(r#"{"access_token":"a","token_type":"MAC"}"#));
        assert!(matches!(refused, Err(RefreshError::Rejected(_))));
    }

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(
            granted(["repo,gist", "read:org"].into_iter()),
            Some(vec!["repo".into(), "gist".into(), "read:org".into()])
        );
        assert_eq!(granted([""].into_iter()), None);
    }
}
