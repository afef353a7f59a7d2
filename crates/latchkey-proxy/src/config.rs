//! The `[proxy]` section of `config.toml`: the routes, each checked once when it is read.
//!
//! ```toml
//! [proxy]
//! recheck_ms = 1000          # default; while an answer streams, the grant is checked this often
//!
//! [proxy.routes.openai]
//! upstream = "https://api.openai.com"
//! service = "openai"
//! header = "Authorization"   # default
//! format = "Bearer {}"       # default
//! ```
//!
//! An upstream must be `https`. One whose host is a loopback, private, link-local or otherwise
//! non-public address is refused unless the route says `allow_private = true`; host names are
//! checked where they are resolved, at every connection ([`crate::address`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use url::Url;

use crate::address;

/// `recheck_ms` when the file says nothing.
pub const DEFAULT_RECHECK_MS: u64 = 1000;
/// The largest `recheck_ms`: a revoked grant stops a stream within a minute at worst.
pub const MAX_RECHECK_MS: u64 = 60_000;

/// Why the `[proxy]` section was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or has unknown keys.
    #[error("the [proxy] section is not valid: {0}")]
    Syntax(String),
    /// The file has no route.
    #[error("no [proxy.routes.NAME] in the configuration: nothing to proxy")]
    NoRoutes,
    /// `recheck_ms` is beyond its bound.
    #[error("[proxy] recheck_ms = {0}: at most {MAX_RECHECK_MS} (a minute)")]
    Recheck(u64),
    /// A route's name is not letters, digits, `-` and `_`.
    #[error("route name {0:?}: use letters, digits, '-' and '_' only")]
    BadName(String),
    /// A route's setting is wrong.
    #[error("route {route}: {problem}")]
    Route {
        /// The route's name.
        route: String,
        /// What is wrong.
        problem: String,
    },
}

/// `[proxy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    recheck_ms: Option<u64>,
    #[serde(default)]
    routes: BTreeMap<String, RouteSpec>,
}

/// `[proxy.routes.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    upstream: String,
    service: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    allow_private: bool,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// The proxy's settings, checked.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `port`: where to listen on 127.0.0.1 when the command line names no port.
    pub port: Option<u16>,
    /// `recheck_ms`: while an answer streams, how old the last check of the agent's grant may
    /// be when a chunk goes out (0: checked before every chunk).
    pub recheck: Duration,
    /// The routes by name (the first segment of a request's path).
    pub routes: BTreeMap<String, Route>,
}

/// One route, checked.
#[derive(Clone, Debug)]
pub struct Route {
    /// The upstream's base URL (`https`, no query or fragment); a request's path after the
    /// route's name is appended to its path.
    pub upstream: Url,
    /// The entry whose secret is sent upstream.
    pub service: String,
    /// Its account (`default` when absent).
    pub account: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The header that carries the agent's grant in, and the credential out.
    pub header: HeaderName,
    /// The header's value around the secret: what comes before `{}` and after it.
    pub format: (String, String),
    /// Whether the upstream may be a loopback or private address.
    pub allow_private: bool,
    /// An extra root certificate (PEM) to trust for this upstream.
    pub ca_file: Option<PathBuf>,
}

impl ProxyConfig {
    /// Reads the `[proxy]` section out of a whole `config.toml`; other sections are the
    /// daemon's and are not looked at.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.message().to_owned()))?;
        let section = match table.get("proxy") {
            Some(value) => Section::deserialize(value.clone())
                .map_err(|e| ConfigError::Syntax(e.message().to_owned()))?,
            None => Section::default(),
        };
        if section.routes.is_empty() {
            return Err(ConfigError::NoRoutes);
        }
        let routes = section
            .routes
            .into_iter()
            .map(|(name, spec)| {
                let route = Route::check(&name, spec)?;
                Ok((name, route))
            })
            .collect::<Result<_, ConfigError>>()?;
        let recheck_ms = section.recheck_ms.unwrap_or(DEFAULT_RECHECK_MS);
        if recheck_ms > MAX_RECHECK_MS {
            return Err(ConfigError::Recheck(recheck_ms));
        }
        Ok(Self {
            port: section.port,
            recheck: Duration::from_millis(recheck_ms),
            routes,
        })
    }
}

impl Route {
    fn check(name: &str, spec: RouteSpec) -> Result<Self, ConfigError> {
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_name {
            return Err(ConfigError::BadName(name.to_owned()));
        }
        let problem = |problem: String| ConfigError::Route {
            route: name.to_owned(),
            problem,
        };
        let upstream = Url::parse(&spec.upstream)
            .map_err(|e| problem(format!("upstream is not a URL: {e}")))?;
        if upstream.scheme() != "https" {
            return Err(problem("upstream must be an https:// URL".into()));
        }
        if upstream.query().is_some() || upstream.fragment().is_some() {
            return Err(problem("upstream must have no query or fragment".into()));
        }
        if !upstream.username().is_empty() || upstream.password().is_some() {
            return Err(problem("upstream must carry no user or password".into()));
        }
        match upstream.host() {
            Some(url::Host::Ipv4(ip)) if !spec.allow_private && !address::is_public(ip.into()) => {
                return Err(problem(
                    "upstream is a loopback or private address; set allow_private = true to allow it"
                        .into(),
                ))
            }
            Some(url::Host::Ipv6(ip)) if !spec.allow_private && !address::is_public(ip.into()) => {
                return Err(problem(
                    "upstream is a loopback or private address; set allow_private = true to allow it"
                        .into(),
                ))
            }
            Some(_) => {}
            None => return Err(problem("upstream has no host".into())),
        }
        if spec.service.is_empty() {
            return Err(problem("service is empty".into()));
        }
        let header = HeaderName::try_from(spec.header.as_deref().unwrap_or("Authorization"))
            .map_err(|_| problem("header is not a valid header name".into()))?;
        if crate::forward::is_hop_by_hop(&header) || header == http::header::HOST {
            return Err(problem(format!(
                "header {header} cannot carry a credential"
            )));
        }
        let format = spec.format.as_deref().unwrap_or("Bearer {}");
        let mut parts = format.split("{}");
        let (Some(before), Some(after), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(problem("format must contain {} exactly once".into()));
        };
        Ok(Self {
            upstream,
            service: spec.service,
            account: spec.account,
            scopes: spec.scopes,
            header,
            format: (before.to_owned(), after.to_owned()),
            allow_private: spec.allow_private,
            ca_file: spec.ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(body: &str) -> Result<ProxyConfig, ConfigError> {
        ProxyConfig::from_toml(&format!("[proxy.routes.openai]\n{body}\n"))
    }

    #[test]
    fn a_route_has_defaults() {
        let cfg = route("upstream = \"https://api.openai.com\"\nservice = \"openai\"").unwrap();
        let r = &cfg.routes["openai"];
        assert_eq!(r.header, http::header::AUTHORIZATION);
        assert_eq!(r.format, ("Bearer ".to_owned(), String::new()));
        assert!(!r.allow_private);
    }

    #[test]
    fn other_sections_are_not_looked_at() {
        let cfg = ProxyConfig::from_toml(
            "[store]\nbackend = \"memory\"\n[proxy]\nport = 9\n[proxy.routes.a]\nupstream = \"https://example.com/v1\"\nservice = \"a\"\n",
        )
        .unwrap();
        assert_eq!(cfg.port, Some(9));
        assert_eq!(cfg.recheck, Duration::from_millis(DEFAULT_RECHECK_MS));
    }

    #[test]
    fn recheck_is_bounded() {
        let with = |value: &str| {
            ProxyConfig::from_toml(&format!(
                "[proxy]\nrecheck_ms = {value}\n[proxy.routes.a]\nupstream = \"https://a.example\"\nservice = \"a\"\n"
            ))
        };
        assert_eq!(with("0").unwrap().recheck, Duration::ZERO);
        assert_eq!(
            with("60000").unwrap().recheck,
            Duration::from_millis(MAX_RECHECK_MS)
        );
        assert!(matches!(with("60001"), Err(ConfigError::Recheck(60001))));
        for bad in ["-1", "\"1s\"", "1.5"] {
            assert!(matches!(with(bad), Err(ConfigError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn bad_routes_are_refused() {
        for body in [
            "upstream = \"http://api.openai.com\"\nservice = \"openai\"",
            "upstream = \"https://127.0.0.1:8443\"\nservice = \"openai\"",
            "upstream = \"https://[::1]\"\nservice = \"openai\"",
            "upstream = \"https://10.1.2.3\"\nservice = \"openai\"",
            "upstream = \"https://169.254.169.254\"\nservice = \"openai\"",
            "upstream = \"https://a.example?x=1\"\nservice = \"openai\"",
            "upstream = \"https://u:p@a.example\"\nservice = \"openai\"",
            "upstream = \"https://a.example\"\nservice = \"\"",
            "upstream = \"https://a.example\"\nservice = \"x\"\nformat = \"Bearer\"",
            "upstream = \"https://a.example\"\nservice = \"x\"\nformat = \"{}{}\"",
            "upstream = \"https://a.example\"\nservice = \"x\"\nheader = \"bad header\"",
            "upstream = \"https://a.example\"\nservice = \"x\"\nheader = \"Connection\"",
            "upstream = \"https://a.example\"\nservice = \"x\"\ntypo = 1",
        ] {
            assert!(route(body).is_err(), "{body}");
        }
        assert!(ProxyConfig::from_toml("").is_err());
        assert!(ProxyConfig::from_toml(
            "[proxy.routes.\"a/b\"]\nupstream = \"https://a.example\"\nservice = \"x\"\n"
        )
        .is_err());
    }

    #[test]
    fn private_upstreams_need_a_yes() {
        let cfg = route(
            "upstream = \"https://127.0.0.1:8443\"\nservice = \"openai\"\nallow_private = true",
        )
        .unwrap();
        assert!(cfg.routes["openai"].allow_private);
    }
}
