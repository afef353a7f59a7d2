//! Which latchkey entries a git request maps to.
//!
//! Two sources, tried in this order by `get`:
//!
//! 1. A **provider entry** the user keeps (an OAuth login, or an API key): the one named by
//!    `--service NAME` (and `--account`), for every request this helper gets; otherwise, for
//!    a request over https to a host in [`KNOWN_HOSTS`], that host's provider entry
//!    (`github.com` → `github`). Read only: `store` and `erase` never change it. The
//!    username git gets is git's own if the request has one, else `--username`, else the
//!    host's convention (`x-access-token` for GitHub, `oauth2` for GitLab), else
//!    `x-access-token`.
//! 2. **Stored entries**, which `store` writes: service `git:PROTOCOL://HOST` (lower-cased
//!    host, `:PORT` kept) plus `/PATH` when git sends a path, one entry per username (the
//!    account). A request with a path matches only entries stored with that path, as in git's
//!    own `credential-store`.
//!
//! A host-mapped provider entry that does not exist falls through to stored entries; one
//! named by `--service` does not (that helper serves nothing else).

use latchkey_core::EntryKey;
use latchkey_proto::DEFAULT_ACCOUNT;

use super::protocol::Request;

/// Hosts whose provider entry serves git over https without configuration: host, service
/// (the name `latchkey login` stores a provider's login under) and the username the host
/// expects with a token.
pub const KNOWN_HOSTS: &[(&str, &str, &str)] = &[
    ("github.com", "github", "x-access-token"),
    ("gitlab.com", "gitlab", "oauth2"),
];

/// The username sent with a token when nothing else names one.
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// The prefix of every service this helper stores.
pub const SERVICE_PREFIX: &str = "git:";

/// How the helper was configured (the arguments in `credential.helper`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Serve this entry for every request (`--service`).
    pub service: Option<String>,
    /// The account of that entry (`--account`; default `default`).
    pub account: Option<String>,
    /// The username to give git with a provider's token (`--username`).
    pub username: Option<String>,
}

/// A provider entry that serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The entry.
    pub key: EntryKey,
    /// The username to give git with its token.
    pub username: String,
    /// Named by `--service` (no fallback to stored entries).
    pub explicit: bool,
}

/// Why a request cannot be mapped to an entry name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the entry name for this request is not valid: {0}")]
pub struct NameError(#[from] pub latchkey_core::KeyError);

/// The provider entry for `request`, if one is configured or the host is known.
pub fn provider(request: &Request, options: &Options) -> Result<Option<Provider>, NameError> {
    let account = options.account.as_deref().unwrap_or(DEFAULT_ACCOUNT);
    let host = request.host.to_ascii_lowercase();
    let known = KNOWN_HOSTS.iter().find(|(known, _, _)| *known == host);
    let (service, convention, explicit) = match (&options.service, known) {
        (Some(service), _) => (service.as_str(), known.map(|k| k.2), true),
        (None, Some((_, service, username))) if request.protocol == "https" => {
            (*service, Some(*username), false)
        }
        _ => return Ok(None),
    };
    let key = EntryKey::new(service, Some(account))?;
    let username = request
        .username
        .clone()
        .or_else(|| options.username.clone())
        .unwrap_or_else(|| convention.unwrap_or(DEFAULT_TOKEN_USERNAME).to_owned());
    Ok(Some(Provider {
        key,
        username,
        explicit,
    }))
}

/// The service of the entries `store` keeps for `request`.
pub fn stored_service(request: &Request) -> Result<String, NameError> {
    let mut service = format!(
        "{SERVICE_PREFIX}{}://{}",
        request.protocol,
        request.host.to_ascii_lowercase()
    );
    if let Some(path) = &request.path {
        service.push('/');
        service.push_str(path.trim_start_matches('/'));
    }
    latchkey_core::check_service(&service)?;
    Ok(service)
}

/// The stored entry for `request`'s username, if it has one.
pub fn stored_key(request: &Request) -> Result<Option<EntryKey>, NameError> {
    let service = stored_service(request)?;
    match &request.username {
        Some(username) => Ok(Some(EntryKey::new(&service, Some(username))?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocol: &str, host: &str, path: Option<&str>, user: Option<&str>) -> Request {
        Request {
            protocol: protocol.into(),
            host: host.into(),
            path: path.map(Into::into),
            username: user.map(Into::into),
            password: None,
        }
    }

    #[test]
    fn stored_names() {
        let r = request("https", "Example.COM:8443", None, Some("alice"));
        assert_eq!(stored_service(&r).unwrap(), "git:https://example.com:8443");
        let key = stored_key(&r).unwrap().unwrap();
        assert_eq!(key.account(), "alice");
        let r = request("http", "127.0.0.1:9000", Some("org/repo.git"), None);
        assert_eq!(
            stored_service(&r).unwrap(),
            "git:http://127.0.0.1:9000/org/repo.git"
        );
        assert_eq!(stored_key(&r).unwrap(), None);
    }

    #[test]
    fn names_past_the_limits_are_refused() {
        let long_path = "p".repeat(latchkey_core::MAX_SERVICE_LEN);
        let r = request("https", "h", Some(&long_path), None);
        assert!(stored_service(&r).is_err());
        let r = request("https", "h", None, Some(&"u".repeat(300)));
        assert!(stored_key(&r).is_err());
        // Characters a name may not hold (a bidi control) in a username.
        let r = request("https", "h", None, Some("a\u{202e}b"));
        assert!(stored_key(&r).is_err());
    }

    #[test]
    fn known_hosts_map_over_https_only() {
        let options = Options::default();
        let github = provider(&request("https", "GitHub.com", None, None), &options)
            .unwrap()
            .unwrap();
        assert_eq!(github.key.service(), "github");
        assert_eq!(github.key.account(), "default");
        assert_eq!(github.username, "x-access-token");
        assert!(!github.explicit);
        let gitlab = provider(&request("https", "gitlab.com", None, Some("me")), &options)
            .unwrap()
            .unwrap();
        assert_eq!(gitlab.key.service(), "gitlab");
        assert_eq!(gitlab.username, "me");
        assert_eq!(
            provider(&request("http", "github.com", None, None), &options).unwrap(),
            None
        );
        assert_eq!(
            provider(
                &request("https", "github.com.evil.example", None, None),
                &options
            )
            .unwrap(),
            None
        );
        assert_eq!(
            provider(&request("https", "example.com", None, None), &options).unwrap(),
            None
        );
    }

    #[test]
    fn a_configured_service_serves_every_request() {
        let options = Options {
            service: Some("forge".into()),
            account: Some("work".into()),
            username: Some("oauth2".into()),
        };
        let p = provider(&request("http", "127.0.0.1:1", None, None), &options)
            .unwrap()
            .unwrap();
        assert_eq!((p.key.service(), p.key.account()), ("forge", "work"));
        assert_eq!(p.username, "oauth2");
        assert!(p.explicit);
        let bad = Options {
            service: Some("a\nb".into()),
            ..Options::default()
        };
        assert!(provider(&request("https", "h", None, None), &bad).is_err());
    }
}
