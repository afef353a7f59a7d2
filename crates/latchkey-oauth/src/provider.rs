//! A configured provider: its token endpoint and client id, checked once.

use oauth2::TokenUrl;

/// Why a provider's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The URL does not parse.
    #[error("provider {name}: token_url is not a URL")]
    BadUrl {
        /// The provider.
        name: String,
    },
    /// Plain HTTP to a host other than loopback.
    #[error(
        "provider {name}: token_url must use https (http only for 127.0.0.1, [::1] or localhost)"
    )]
    Insecure {
        /// The provider.
        name: String,
    },
    /// The client id is empty.
    #[error("provider {name}: client_id is empty")]
    NoClientId {
        /// The provider.
        name: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The token endpoints of the built-in provider templates: with one of these names, only the
/// client id needs configuring.
pub fn builtin_token_url(name: &str) -> Option<&'static str> {
    Some(match name {
        "github" => "https://github.com/login/oauth/access_token",
        "google" => "https://oauth2.googleapis.com/token",
        "microsoft" => "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "gitlab" => "https://gitlab.com/oauth/token",
        "discord" => "https://discord.com/api/oauth2/token",
        _ => return None,
    })
}

/// One provider.
#[derive(Clone, Debug)]
pub struct Provider {
    /// The token endpoint.
    pub token_url: TokenUrl,
    /// The public client id.
    pub client_id: String,
}

impl Provider {
    /// Checks a provider's settings.
    pub fn new(name: &str, token_url: &str, client_id: &str) -> Result<Self, ProviderError> {
        let url = TokenUrl::new(token_url.to_owned()).map_err(|_| ProviderError::BadUrl {
            name: name.to_owned(),
        })?;
        let parsed = url.url();
        let loopback = matches!(
            parsed.host_str(),
            Some("127.0.0.1") | Some("[::1]") | Some("::1") | Some("localhost")
        );
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(ProviderError::Insecure {
                    name: name.to_owned(),
                })
            }
        }
        if client_id.is_empty() {
            return Err(ProviderError::NoClientId {
                name: name.to_owned(),
            });
        }
        Ok(Self {
            token_url: url,
            client_id: client_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(Provider::new("a", "https://idp.example.com/token", "id").is_ok());
        assert!(Provider::new("a", "http://127.0.0.1:8080/token", "id").is_ok());
        assert!(Provider::new("a", "http://localhost/token", "id").is_ok());
        assert!(matches!(
            Provider::new("a", "http://idp.example.com/token", "id"),
            Err(ProviderError::Insecure { .. })
        ));
        assert!(matches!(
            Provider::new("a", "not a url", "id"),
            Err(ProviderError::BadUrl { .. })
        ));
        assert!(matches!(
            Provider::new("a", "https://x/token", ""),
            Err(ProviderError::NoClientId { .. })
        ));
    }
}
