//! Providers: the built-in templates, a provider's settings from `config.toml` merged over its
//! template, and the checks every endpoint URL passes (https, or http on loopback only).

use oauth2::url::Url;

/// Why a provider's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A URL does not parse.
    #[error("provider {name}: {field} is not a URL")]
    BadUrl {
        /// The provider.
        name: String,
        /// Which setting.
        field: &'static str,
    },
    /// Plain HTTP to a host other than loopback.
    #[error(
        "provider {name}: {field} must use https (http only for 127.0.0.1, [::1] or localhost)"
    )]
    Insecure {
        /// The provider.
        name: String,
        /// Which setting.
        field: &'static str,
    },
    /// The client id is missing or empty.
    #[error(
        "provider {name}: client_id is not set (add it under [providers.{name}] in config.toml)"
    )]
    NoClientId {
        /// The provider.
        name: String,
    },
    /// Neither a token endpoint, an issuer nor a built-in template.
    #[error("provider {name}: set token_url (and authorization_url, ...) or issuer; it is not a built-in template")]
    NoEndpoints {
        /// The provider.
        name: String,
    },
    /// Both an issuer and explicit endpoints.
    #[error("provider {name}: set either issuer (endpoints by discovery) or explicit endpoints, not both")]
    IssuerAndEndpoints {
        /// The provider.
        name: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// A provider's settings as written in `config.toml`; every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The OAuth client id (the only setting a built-in template needs).
    pub client_id: Option<String>,
    /// An OpenID Connect issuer whose endpoints are found by discovery.
    pub issuer: Option<String>,
    /// The authorization endpoint (browser logins).
    pub authorization_url: Option<String>,
    /// The token endpoint.
    pub token_url: Option<String>,
    /// The RFC 7009 revocation endpoint.
    pub revocation_url: Option<String>,
    /// The RFC 8628 device authorization endpoint.
    pub device_authorization_url: Option<String>,
    /// Scopes asked for when a login names none.
    pub scopes: Option<Vec<String>>,
}

/// A provider's endpoints once known (from settings, a template or discovery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Authorization endpoint, for browser logins.
    pub authorization: Option<Url>,
    /// Token endpoint.
    pub token: Url,
    /// Revocation endpoint.
    pub revocation: Option<Url>,
    /// Device authorization endpoint.
    pub device_authorization: Option<Url>,
    /// The issuer identifier, when known (a template's, or the discovery document's
    /// `issuer`): the `iss` of an authorization response (RFC 9207) must equal it.
    pub issuer: Option<String>,
    /// Whether the issuer's metadata says every authorization response carries `iss`
    /// (`authorization_response_iss_parameter_supported`), so one without it is refused.
    pub iss_required: bool,
}

/// Where a provider's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Known from the settings or the template.
    Fixed(Box<Endpoints>),
    /// Found at the issuer's discovery document on first use.
    Issuer(Url),
}

/// One provider, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// Its name (`github`, or the `[providers.NAME]` key).
    pub name: String,
    /// The public client id.
    pub client_id: String,
    /// Its endpoints.
    pub source: Source,
    /// Scopes asked for when a login names none.
    pub default_scopes: Vec<String>,
    /// Extra authorization-request parameters the provider needs before it issues a refresh
    /// token (Google's `access_type=offline`, `prompt=consent`).
    pub extra_auth_params: Vec<(String, String)>,
    /// Whether the settings came from a built-in template.
    pub builtin: bool,
    /// Whether asking for `offline_access` adds `prompt=consent` (OpenID Connect Core §11);
    /// Microsoft issues refresh tokens without it.
    pub offline_needs_consent: bool,
}

/// A built-in template.
struct Template {
    authorization: &'static str,
    token: &'static str,
    revocation: Option<&'static str>,
    device: Option<&'static str>,
    scopes: &'static [&'static str],
    extra: &'static [(&'static str, &'static str)],
    /// The issuer identifier its authorization responses carry as `iss` (RFC 9207), if any.
    issuer: Option<&'static str>,
}

/// The names of the built-in templates.
pub const BUILTIN: [&str; 5] = ["github", "google", "microsoft", "gitlab", "discord"];

fn template(name: &str) -> Option<Template> {
    Some(match name {
        // GitHub has no RFC 7009 endpoint (its grant deletion is a different API).
        "github" => Template {
            authorization: "https://github.com/login/oauth/authorize",
            token: "https://github.com/login/oauth/access_token",
            revocation: None,
            device: Some("https://github.com/login/device/code"),
            scopes: &[],
            extra: &[],
            issuer: None,
        },
        // Google issues a refresh token only with access_type=offline, and again on a later
        // login only with prompt=consent.
        "google" => Template {
            authorization: "https://accounts.google.com/o/oauth2/v2/auth",
            token: "https://oauth2.googleapis.com/token",
            revocation: Some("https://oauth2.googleapis.com/revoke"),
            device: Some("https://oauth2.googleapis.com/device/code"),
            scopes: &["openid", "email"],
            extra: &[("access_type", "offline"), ("prompt", "consent")],
            issuer: Some("https://accounts.google.com"),
        },
        // The common tenant; a refresh token needs the offline_access scope.
        "microsoft" => Template {
            authorization: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            token: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            revocation: None,
            device: Some("https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"),
            scopes: &["openid", "offline_access"],
            extra: &[],
            issuer: None,
        },
        "gitlab" => Template {
            authorization: "https://gitlab.com/oauth/authorize",
            token: "https://gitlab.com/oauth/token",
            revocation: Some("https://gitlab.com/oauth/revoke"),
            device: Some("https://gitlab.com/oauth/authorize_device"),
            scopes: &["read_user"],
            extra: &[],
            issuer: Some("https://gitlab.com"),
        },
        "discord" => Template {
            authorization: "https://discord.com/oauth2/authorize",
            token: "https://discord.com/api/oauth2/token",
            revocation: Some("https://discord.com/api/oauth2/token/revoke"),
            device: None,
            scopes: &["identify"],
            extra: &[],
            issuer: None,
        },
        _ => return None,
    })
}

/// Parses and checks an endpoint URL: https, or plain http to a loopback host.
pub(crate) fn checked_url(
    name: &str,
    field: &'static str,
    url: &str,
) -> Result<Url, ProviderError> {
    let parsed = Url::parse(url).map_err(|_| ProviderError::BadUrl {
        name: name.to_owned(),
        field,
    })?;
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1") | Some("[::1]") | Some("::1") | Some("localhost")
    );
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(ProviderError::Insecure {
            name: name.to_owned(),
            field,
        }),
    }
}

fn optional(
    name: &str,
    field: &'static str,
    url: Option<&str>,
) -> Result<Option<Url>, ProviderError> {
    url.map(|u| checked_url(name, field, u)).transpose()
}

impl Provider {
    /// A provider known only by its token endpoint: it can refresh, not log in.
    pub fn new(name: &str, token_url: &str, client_id: &str) -> Result<Self, ProviderError> {
        Self::from_spec(
            name,
            &ProviderSpec {
                client_id: Some(client_id.to_owned()),
                token_url: Some(token_url.to_owned()),
                ..ProviderSpec::default()
            },
        )
    }

    /// A provider from its `config.toml` settings, over its built-in template if it has one.
    pub fn from_spec(name: &str, spec: &ProviderSpec) -> Result<Self, ProviderError> {
        let client_id = spec
            .client_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ProviderError::NoClientId {
                name: name.to_owned(),
            })?;
        let template = template(name);
        let explicit = [
            &spec.authorization_url,
            &spec.token_url,
            &spec.revocation_url,
            &spec.device_authorization_url,
        ];
        if spec.issuer.is_some() && explicit.iter().any(|e| e.is_some()) {
            return Err(ProviderError::IssuerAndEndpoints {
                name: name.to_owned(),
            });
        }
        let source = if let Some(issuer) = spec.issuer.as_deref() {
            Source::Issuer(checked_url(name, "issuer", issuer)?)
        } else {
            let token = match (spec.token_url.as_deref(), template.as_ref()) {
                (Some(url), _) => checked_url(name, "token_url", url)?,
                (None, Some(t)) => checked_url(name, "token_url", t.token)?,
                (None, None) => {
                    return Err(ProviderError::NoEndpoints {
                        name: name.to_owned(),
                    })
                }
            };
            // Explicit endpoints replace the template's; without a token_url of its own a
            // provider keeps every template endpoint it does not override.
            let from_template = spec.token_url.is_none();
            fn pick<'a>(
                own: Option<&'a str>,
                builtin: Option<&'a str>,
                inherit: bool,
            ) -> Option<&'a str> {
                own.or(if inherit { builtin } else { None })
            }
            Source::Fixed(Box::new(Endpoints {
                authorization: optional(
                    name,
                    "authorization_url",
                    pick(
                        spec.authorization_url.as_deref(),
                        template.as_ref().map(|t| t.authorization),
                        from_template,
                    ),
                )?,
                token,
                revocation: optional(
                    name,
                    "revocation_url",
                    pick(
                        spec.revocation_url.as_deref(),
                        template.as_ref().and_then(|t| t.revocation),
                        from_template,
                    ),
                )?,
                device_authorization: optional(
                    name,
                    "device_authorization_url",
                    pick(
                        spec.device_authorization_url.as_deref(),
                        template.as_ref().and_then(|t| t.device),
                        from_template,
                    ),
                )?,
                // A template's issuer holds only for the template's own endpoints.
                issuer: template
                    .as_ref()
                    .and_then(|t| t.issuer)
                    .filter(|_| from_template && spec.authorization_url.is_none())
                    .map(str::to_owned),
                iss_required: false,
            }))
        };
        let default_scopes = match (&spec.scopes, &template) {
            (Some(scopes), _) => scopes.clone(),
            (None, Some(t)) => t.scopes.iter().map(|s| (*s).to_owned()).collect(),
            (None, None) => Vec::new(),
        };
        let extra_auth_params = template
            .as_ref()
            .map(|t| {
                t.extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            name: name.to_owned(),
            client_id,
            source,
            default_scopes,
            extra_auth_params,
            builtin: template.is_some(),
            offline_needs_consent: name != "microsoft",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer_of(name: &str, spec: ProviderSpec) -> Option<String> {
        let spec = ProviderSpec {
            client_id: Some("id".into()),
            ..spec
        };
        match Provider::from_spec(name, &spec).unwrap().source {
            Source::Fixed(endpoints) => endpoints.issuer,
            Source::Issuer(_) => panic!("not fixed"),
        }
    }

    #[test]
    fn a_templates_issuer_holds_only_for_its_own_authorization_endpoint() {
        assert_eq!(
            issuer_of("google", ProviderSpec::default()).as_deref(),
            Some("https://accounts.google.com")
        );
        assert_eq!(issuer_of("github", ProviderSpec::default()), None);
        let elsewhere = ProviderSpec {
            authorization_url: Some("https://idp.example.com/auth".into()),
            ..ProviderSpec::default()
        };
        assert_eq!(issuer_of("google", elsewhere), None);
    }

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

    #[test]
    fn a_template_needs_only_a_client_id() {
        let spec = ProviderSpec {
            client_id: Some("abc".into()),
            ..ProviderSpec::default()
        };
        let google = Provider::from_spec("google", &spec).unwrap();
        let Source::Fixed(endpoints) = &google.source else {
            panic!("a template has fixed endpoints");
        };
        assert!(endpoints.authorization.is_some());
        assert!(endpoints.revocation.is_some());
        assert!(endpoints.device_authorization.is_some());
        assert!(google
            .extra_auth_params
            .contains(&("access_type".into(), "offline".into())));
        assert!(Provider::from_spec("corp", &spec).is_err());
        assert!(matches!(
            Provider::from_spec("github", &ProviderSpec::default()),
            Err(ProviderError::NoClientId { .. })
        ));
    }

    #[test]
    fn an_issuer_is_discovered_later_and_must_be_secure() {
        let spec = ProviderSpec {
            client_id: Some("abc".into()),
            issuer: Some("https://idp.example.com".into()),
            ..ProviderSpec::default()
        };
        let corp = Provider::from_spec("corp", &spec).unwrap();
        assert!(matches!(corp.source, Source::Issuer(_)));
        let insecure = ProviderSpec {
            issuer: Some("http://idp.example.com".into()),
            ..spec
        };
        assert!(matches!(
            Provider::from_spec("corp", &insecure),
            Err(ProviderError::Insecure {
                field: "issuer",
                ..
            })
        ));
    }
}
