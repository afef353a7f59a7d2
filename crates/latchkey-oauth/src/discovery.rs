//! OpenID Connect discovery: a provider configured by `issuer` learns its endpoints from
//! `{issuer}/.well-known/openid-configuration`, checked like configured ones.

use oauth2::url::Url;
use serde::Deserialize;

use crate::provider::{checked_url, Endpoints};

/// The part of a discovery document latchkey uses.
#[derive(Debug, Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Fetches and checks the issuer's endpoints.
pub(crate) async fn discover(
    http: &reqwest::Client,
    name: &str,
    issuer: &Url,
) -> Result<Endpoints, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    );
    let response = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            format!(
                "discovery at the issuer failed: {}",
                crate::http_client::describe(&e)
            )
        })?;
    if !response.status().is_success() {
        return Err(format!(
            "discovery at the issuer answered HTTP {}",
            response.status().as_u16()
        ));
    }
    let body = crate::http_client::read_capped(response)
        .await
        .map_err(|e| format!("discovery at the issuer failed: {e}"))?;
    let doc: Document = serde_json::from_slice(&body)
        .map_err(|_| "the issuer's discovery document is not valid".to_owned())?;
    // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched from.
    if !same_issuer(&doc.issuer, issuer.as_str()) {
        return Err("the discovery document names a different issuer".into());
    }
    let check = |field, url: &str| checked_url(name, field, url).map_err(|e| e.to_string());
    Ok(Endpoints {
        authorization: doc
            .authorization_endpoint
            .as_deref()
            .map(|u| check("authorization_endpoint", u))
            .transpose()?,
        token: check("token_endpoint", &doc.token_endpoint)?,
        revocation: doc
            .revocation_endpoint
            .as_deref()
            .map(|u| check("revocation_endpoint", u))
            .transpose()?,
        device_authorization: doc
            .device_authorization_endpoint
            .as_deref()
            .map(|u| check("device_authorization_endpoint", u))
            .transpose()?,
        // The document's own spelling: RFC 9207 compares `iss` with it as a plain string.
        issuer: Some(doc.issuer),
        iss_required: doc.authorization_response_iss_parameter_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::same_issuer;

    #[test]
    fn issuers_compare_without_a_trailing_slash() {
        assert!(same_issuer(
            "https://idp.example.com/",
            "https://idp.example.com"
        ));
        assert!(!same_issuer(
            "https://evil.example.com",
            "https://idp.example.com"
        ));
    }
}
