//! Reloading `config.toml` while the daemon runs (`reload`, and SIGHUP on Unix).
//!
//! A reload reads the file as start-up did (the same path, the same checks, the same flags
//! on top) and either applies all of it or nothing: a file that is not valid leaves the
//! running configuration in force, and the error names the file and the line.
//!
//! What changes live:
//! - providers (`[providers.*]`: client ids, endpoints, issuers, default scopes) and
//!   `[oauth] timeout_secs`: new logins, refreshes and logouts use them at once; a login or a
//!   refresh already under way finishes with the provider it started with;
//! - `[oauth] login_timeout_secs`, for logins started from then on;
//! - `[limits]` `max_line`, `idle_timeout_secs`, `request_timeout_secs`,
//!   `write_timeout_secs`, for connections accepted from then on.
//!
//! What needs a restart (reported in the answer and the log, not applied): `[store] backend`
//! and `lock_after_secs` (the store is open), `[daemon] socket` (it is bound), `[policy]`
//! (`require_grant`, and `confirm` with its timeout: the prompts' memory starts with the daemon),
//! `[limits] max_connections` (the connection slots are sized at start), and `[audit]` (its
//! writer starts with the daemon).
//!
//! Client secrets live in the keychain and are read at each use, so `provider set-secret`
//! needs no reload. Reloads run one at a time; one that arrives while another runs waits for
//! it and then reads the file again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use latchkey_core::{Refresher, TokenService};
use latchkey_oauth::OAuth;
use latchkey_proto::{ErrorKind, ReloadResult, RpcError};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, ConfigError, Limits};
use crate::login::{LoginSettings, Logins, StoredClientSecrets};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The daemon's settings did not come from a file (a caller built them).
    #[error(
        "this latchkeyd was not started from a configuration file, so there is nothing to reload"
    )]
    NoFile,
    /// The file is not valid (or not readable); the running configuration stays.
    #[error("the configuration was not reloaded, the running one stays: {0}")]
    Config(#[from] ConfigError),
    /// The OAuth client for the new providers could not be built.
    #[error("the configuration was not reloaded, the running one stays: cannot set up the OAuth client: {0}")]
    OAuth(#[from] latchkey_oauth::ProviderError),
}

impl ReloadError {
    /// The error as sent on the wire: the request was fine, the file it names was not.
    pub fn to_rpc(&self) -> RpcError {
        let kind = match self {
            ReloadError::OAuth(_) => ErrorKind::Internal,
            _ => ErrorKind::InvalidRequest,
        };
        let mut rpc = RpcError::new(kind, self.to_string());
        if let ReloadError::Config(_) = self {
            rpc.data.hint = Some("fix the file, then run `latchkey reload` again".to_owned());
        }
        rpc
    }
}

/// Reloads the configuration. Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

struct Inner {
    /// Held for a whole reload, so reloads apply one after the other.
    running: tokio::sync::Mutex<()>,
    /// The configuration in force: the live settings as last applied, the others as at
    /// start. Owned here; changed only under `running`.
    current: Mutex<Config>,
    service: TokenService,
    logins: Logins,
    /// The limits new connections take; each listener holds a receiver.
    limits: watch::Sender<Limits>,
    /// Whether refreshing goes through the configured providers (false when the caller gave
    /// a refresher of its own, which a reload leaves alone).
    refresh_through_providers: bool,
}

/// The login settings for `config`: the OAuth client for its usable providers (`None` when
/// there is none) and the providers refused, with why (naming the file).
pub(crate) fn login_settings(
    config: &Config,
) -> Result<LoginSettings, latchkey_oauth::ProviderError> {
    let mut providers = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    let file = config
        .source
        .path
        .as_ref()
        .map_or_else(|| "config.toml".to_owned(), |p| p.display().to_string());
    for (name, spec) in &config.providers {
        match latchkey_oauth::Provider::from_spec(name, spec) {
            Ok(provider) => {
                providers.insert(name.clone(), provider);
            }
            Err(err) => {
                warn!(provider = %name, config = %file, error = %err, "provider not usable");
                problems.push((name.clone(), format!("{file}: {err}")));
            }
        }
    }
    let oauth = if providers.is_empty() {
        None
    } else {
        Some(Arc::new(OAuth::with_timeout(
            providers,
            config.http_timeout,
        )?))
    };
    Ok(LoginSettings {
        oauth,
        problems,
        lifetime: config.login_timeout,
        config_file: config.source.path.clone(),
    })
}

/// Connects a new OAuth client to the client secrets in `service`'s store.
pub(crate) fn attach_secrets(settings: &LoginSettings, service: &TokenService) {
    if let Some(oauth) = &settings.oauth {
        oauth.set_client_secrets(Arc::new(StoredClientSecrets(service.clone())));
    }
}

/// What differs between two configurations: (applied live, needing a restart).
fn differences(old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
    let mut live = Vec::new();
    let names: BTreeSet<&String> = old.providers.keys().chain(new.providers.keys()).collect();
    for name in names {
        if old.providers.get(name) != new.providers.get(name) {
            live.push(format!("providers.{name}"));
        }
    }
    let (o, n) = (&old.limits, &new.limits);
    // Each setting: whether it changed, and its name in the file.
    let applied_live = [
        (old.http_timeout != new.http_timeout, "oauth.timeout_secs"),
        (
            old.login_timeout != new.login_timeout,
            "oauth.login_timeout_secs",
        ),
        (o.max_line != n.max_line, "limits.max_line"),
        (o.idle_timeout != n.idle_timeout, "limits.idle_timeout_secs"),
        (
            o.request_timeout != n.request_timeout,
            "limits.request_timeout_secs",
        ),
        (
            o.write_timeout != n.write_timeout,
            "limits.write_timeout_secs",
        ),
    ];
    let need_restart = [
        (old.backend != new.backend, "store.backend"),
        (old.lock_after != new.lock_after, "store.lock_after_secs"),
        (old.socket != new.socket, "daemon.socket"),
        (old.policy != new.policy, "policy.require_grant"),
        (
            old.confirm.patterns() != new.confirm.patterns(),
            "policy.confirm",
        ),
        (
            old.confirm.timeout() != new.confirm.timeout(),
            "policy.confirm_timeout_secs",
        ),
        (
            o.max_connections != n.max_connections,
            "limits.max_connections",
        ),
        (old.audit.enabled != new.audit.enabled, "audit.enabled"),
        (
            old.audit.max_bytes != new.audit.max_bytes,
            "audit.max_bytes",
        ),
        (old.audit.keep != new.audit.keep, "audit.keep"),
    ];
    live.extend(changed(&applied_live));
    let restart = changed(&need_restart).collect();
    (live, restart)
}

impl Reloader {
    /// A reloader for a daemon running with `config`, whose logins are `logins` over
    /// `service`; `refresh_through_providers` is false when the caller gave the refresher.
    pub(crate) fn new(
        config: Config,
        service: TokenService,
        logins: Logins,
        refresh_through_providers: bool,
    ) -> Self {
        let limits = watch::Sender::new(config.limits);
        Self {
            inner: Arc::new(Inner {
                running: tokio::sync::Mutex::new(()),
                current: Mutex::new(config),
                service,
                logins,
                limits,
                refresh_through_providers,
            }),
        }
    }

    /// The limits in force, for a listener: it reads them for each connection it accepts.
    pub fn limits(&self) -> watch::Receiver<Limits> {
        self.inner.limits.subscribe()
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Config> {
        self.inner.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration file, as the start-up line names it.
    pub fn describe_file(&self) -> String {
        self.current().describe_file()
    }

    /// Reads the configuration file again and applies what can change while running;
    /// `trigger` says what asked (`SIGHUP`, `reload`) for the log.
    pub async fn reload(&self, trigger: &str) -> Result<ReloadResult, ReloadError> {
        let _one_at_a_time = self.inner.running.lock().await;
        let outcome = self.apply().await;
        match &outcome {
            Ok(result) => {
                info!(
                    trigger,
                    config = %result.config,
                    changed = %list(&result.changed),
                    "configuration reloaded"
                );
                if !result.restart_needed.is_empty() {
                    warn!(
                        config = %result.config,
                        settings = %list(&result.restart_needed),
                        "these settings changed in the configuration file but take effect only when latchkeyd restarts"
                    );
                }
            }
            Err(err) => warn!(trigger, error = %err, "configuration not reloaded"),
        }
        outcome
    }

    async fn apply(&self) -> Result<ReloadResult, ReloadError> {
        let (source, data_dir) = {
            let current = self.current();
            (current.source.clone(), current.data_dir.clone())
        };
        if source.path.is_none() {
            return Err(ReloadError::NoFile);
        }
        // Reading the file is blocking I/O (bounded: a checked regular file of at most 1 MiB).
        let read = tokio::task::spawn_blocking(move || Config::reload(&source, data_dir)).await;
        let new = match read {
            Ok(new) => new?,
            Err(join) => {
                return Err(ReloadError::Config(ConfigError::Value {
                    origin: "reload".to_owned(),
                    message: format!("reading the file failed: {join}"),
                }))
            }
        };
        let old = self.current().clone();
        let (changed, restart_needed) = differences(&old, &new);
        let providers_changed = old.providers != new.providers
            || old.http_timeout != new.http_timeout
            || old.login_timeout != new.login_timeout
            || old.source.path != new.source.path;
        if providers_changed {
            let settings = login_settings(&new)?;
            attach_secrets(&settings, &self.inner.service);
            if self.inner.refresh_through_providers {
                self.inner
                    .service
                    .set_refresher(settings.oauth.clone().map(|o| o as Arc<dyn Refresher>));
            }
            self.inner.logins.replace_settings(settings);
        }
        // Settings that need a restart keep their running values.
        let mut applied = new;
        applied.backend = old.backend;
        applied.lock_after = old.lock_after;
        applied.socket = old.socket.clone();
        applied.limits.max_connections = old.limits.max_connections;
        applied.audit = old.audit.clone();
        self.inner.limits.send_replace(applied.limits);
        let config = applied.describe_file();
        *self.current() = applied;
        Ok(ReloadResult {
            config,
            changed,
            restart_needed,
        })
    }
}

/// The names of the settings that changed.
fn changed<'a>(settings: &'a [(bool, &str)]) -> impl Iterator<Item = String> + 'a {
    settings
        .iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, name)| (*name).to_owned())
}

/// A list of setting names for a log line; `-` when empty.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileConfig, Overrides};

    fn config(text: &str) -> Config {
        let file = FileConfig::parse(Path::new("/etc/l.toml"), text).unwrap();
        Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap()
    }

    #[test]
    fn differences_sort_live_settings_from_those_that_need_a_restart() {
        let old = config("[providers.github]\nclient_id = \"a\"\n[providers.corp]\nclient_id = \"c\"\nissuer = \"https://idp.example.com\"\n");
        let new = config(concat!(
            "[store]\nbackend = \"memory\"\nlock_after_secs = 60\n",
            "[daemon]\nsocket = \"/tmp/other.sock\"\n",
            "[limits]\nmax_connections = 7\nidle_timeout_secs = 5\n",
            "[oauth]\nlogin_timeout_secs = 30\n",
            "[providers.github]\nclient_id = \"b\"\n[providers.gitlab]\nclient_id = \"g\"\n",
        ));
        let (live, restart) = differences(&old, &new);
        assert_eq!(
            live,
            [
                "providers.corp",
                "providers.github",
                "providers.gitlab",
                "oauth.login_timeout_secs",
                "limits.idle_timeout_secs"
            ]
        );
        assert_eq!(
            restart,
            [
                "store.backend",
                "store.lock_after_secs",
                "daemon.socket",
                "limits.max_connections"
            ]
        );
        assert_eq!(differences(&new, &new), (Vec::new(), Vec::new()));
    }

    #[test]
    fn refused_providers_name_the_file() {
        let settings = login_settings(&config("[providers.corp]\nclient_id = \"c\"\n")).unwrap();
        assert!(settings.oauth.is_none());
        let (name, problem) = &settings.problems[0];
        assert_eq!(name, "corp");
        assert!(
            problem.starts_with("/etc/l.toml: provider corp"),
            "{problem}"
        );
    }
}
