//! Daemon settings: defaults, then `config.toml`, then command-line flags, validated once.
//!
//! This module holds the settings' types and how they combine; `error` says why a
//! configuration is refused and `read` reads the file with its checks.

mod error;
mod read;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use latchkey_oauth::ProviderSpec;
use latchkey_store::Backend;
use serde::Deserialize;

pub use error::ConfigError;
pub use read::MAX_CONFIG_BYTES;

/// Bounds on what one client may cost the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted request line, in bytes.
    pub max_line: usize,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// Longest time from the first byte of a request line to its newline; a connection still
    /// inside a line after this is closed, however many bytes trickle in.
    pub request_timeout: Duration,
    /// Longest time one response may take to be written; a connection whose client does not
    /// read its answers is closed after this.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: latchkey_proto::codec::DEFAULT_MAX_LINE,
            max_connections: 512,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything the daemon needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen.
    pub socket: PathBuf,
    /// Which store to open.
    pub backend: Backend,
    /// Where persistent stores keep their non-secret index (and the file store its files).
    pub data_dir: PathBuf,
    /// Lock the file store again after this long without a read; `None`: only by hand.
    pub lock_after: Option<Duration>,
    /// Request limits.
    pub limits: Limits,
    /// OAuth providers by name, as written (checked when the OAuth client is built).
    pub providers: BTreeMap<String, ProviderSpec>,
    /// How long one HTTP request to a provider may take.
    pub http_timeout: Duration,
    /// How long a login waits for the user.
    pub login_timeout: Duration,
    /// Where the settings came from, so that a reload reads them the same way.
    pub source: Source,
    /// Whether the configuration file existed and was read (a missing `config.toml` in the
    /// default place is not an error: the defaults apply).
    pub file_read: bool,
    /// `[policy]`: which entries need a grant.
    pub policy: latchkey_grants::Policy,
    /// `[policy] confirm` and `confirm_timeout_secs`: which entries need the user's
    /// confirmation, and how long a prompt waits.
    pub confirm: crate::confirm::ConfirmPolicy,
    /// The audit file and its rotation.
    pub audit: AuditConfig,
}

/// Where the audit file is and when it is rotated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Whether the audit file is written (`[audit] enabled`).
    pub enabled: bool,
    /// The file; `None` writes no audit file (a caller that built its settings itself, or no
    /// home folder). [`Config::load`] sets `audit.jsonl` in the state folder.
    pub path: Option<PathBuf>,
    /// Rotate once the file would pass this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

impl AuditConfig {
    /// The writer's settings, when there is a file.
    pub fn settings(&self) -> Option<latchkey_audit::Settings> {
        if !self.enabled {
            return None;
        }
        Some(latchkey_audit::Settings {
            path: self.path.clone()?,
            max_bytes: self.max_bytes,
            keep: self.keep,
        })
    }
}

/// `[audit]` in `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Rotate the audit file once it would pass this many bytes (default 10 MiB).
    pub max_bytes: Option<u64>,
    /// Rotated audit files kept (default 3).
    pub keep: Option<u32>,
    /// Whether to write the audit file at all (default true).
    pub enabled: Option<bool>,
}

/// Smallest accepted `[audit] max_bytes`.
pub const MIN_AUDIT_BYTES: u64 = 1024;
/// Largest accepted `[audit] keep`.
pub const MAX_AUDIT_KEEP: u32 = 100;

/// Where the configuration comes from, kept so that a reload reads it the same way.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The file: `--config`, else `config.toml` in the platform's config folder. `None` when
    /// there is no config folder, or when the caller built the settings itself.
    pub path: Option<PathBuf>,
    /// Whether the file must exist (it was named with `--config`).
    pub required: bool,
    /// Command-line values; they beat the file at every reload too.
    pub overrides: Overrides,
}

/// The `config.toml` file. Every key is optional; an unknown key or section, in any section, is
/// refused (a typo would otherwise silently do nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[store]`
    #[serde(default)]
    pub store: StoreSection,
    /// `[limits]`
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[daemon]`
    #[serde(default)]
    pub daemon: DaemonSection,
    /// `[providers.NAME]`
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSpec>,
    /// `[oauth]`
    #[serde(default)]
    pub oauth: OauthSection,
    /// `[policy]`
    #[serde(default)]
    pub policy: PolicySection,
    /// `[audit]`
    #[serde(default)]
    pub audit: AuditSection,
    /// `[proxy]`: read by `latchkey proxy` (the `latchkey-proxy` crate checks it), not by the
    /// daemon, which only lets it stand in the file.
    #[serde(default)]
    pub proxy: Option<toml::Table>,
    /// The file these settings were read from, to name it in errors about their values.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `[oauth]` in `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OauthSection {
    /// How long one HTTP request to a provider may take, in seconds (default 15).
    pub timeout_secs: Option<u64>,
    /// How long a login waits for the user, in seconds (default 600).
    pub login_timeout_secs: Option<u64>,
}

/// `[store]` in `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `auto`, `secret-service`, `file` or `memory` (this platform's names).
    pub backend: Option<String>,
    /// Lock the file store again after this many seconds without a read (default: never).
    pub lock_after_secs: Option<u64>,
}

/// `[limits]` in `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Longest request line in bytes.
    pub max_line: Option<usize>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Idle timeout in seconds.
    pub idle_timeout_secs: Option<u64>,
    /// Deadline for one request line, in seconds.
    pub request_timeout_secs: Option<u64>,
    /// Deadline for writing one response, in seconds.
    pub write_timeout_secs: Option<u64>,
}

/// `[daemon]` in `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Socket path.
    pub socket: Option<PathBuf>,
}

/// `[policy]` in `config.toml`: which entries need a grant (see `crate::grants`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Service names or patterns (`openai`, `github:*`, `*`) whose entries are served only to
    /// a client that presents a grant covering them.
    #[serde(default)]
    pub require_grant: Vec<String>,
    /// Service names or patterns whose entries are served to a program only after the user
    /// allowed it in a desktop notification (see `crate::confirm`).
    #[serde(default)]
    pub confirm: Vec<String>,
    /// How long a confirmation prompt waits for the user, in seconds (default 20).
    pub confirm_timeout_secs: Option<u64>,
}

/// Longest accepted `[store] lock_after_secs`: 30 days.
pub const MAX_LOCK_AFTER_SECS: u64 = 30 * 86_400;

/// Command-line values that override the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--socket` or `LATCHKEY_SOCKET`.
    pub socket: Option<PathBuf>,
    /// `--store`.
    pub backend: Option<Backend>,
    /// `--max-line`.
    pub max_line: Option<usize>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--idle-timeout`.
    pub idle_timeout_secs: Option<u64>,
    /// `--request-timeout`.
    pub request_timeout_secs: Option<u64>,
    /// `--write-timeout`.
    pub write_timeout_secs: Option<u64>,
}

/// The variable naming the data folder (the systemd unit sets it to its state folder).
pub const DATA_DIR_ENV: &str = "LATCHKEY_DATA_DIR";

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "latchkey", "latchkey")
}

impl Config {
    /// The configuration the daemon runs with: `file` if named (it must exist), else
    /// `config.toml` in the platform's config folder if there is one, combined with `flags`.
    /// Data goes to `LATCHKEY_DATA_DIR` if set, else the platform's data folder.
    pub fn load(file: Option<PathBuf>, flags: Overrides) -> Result<Self, ConfigError> {
        let source = match file {
            Some(path) => Source {
                path: Some(path),
                required: true,
                overrides: flags,
            },
            None => Source {
                path: default_path(),
                required: false,
                overrides: flags,
            },
        };
        let data_dir = match std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => latchkey_paths::Folders::of_current_user()
                .map(|folders| folders.data)
                .ok_or(ConfigError::NoDataDir)?,
        };
        let mut config = Self::reload(&source, data_dir)?;
        config.audit.path = latchkey_audit::default_path();
        Ok(config)
    }

    /// Reads `source` again (the file as it is now, the same flags) into a configuration
    /// whose data folder is `data_dir`.
    pub fn reload(source: &Source, data_dir: PathBuf) -> Result<Self, ConfigError> {
        let (file, file_read) = match &source.path {
            Some(path) => FileConfig::load_present(path, source.required)?,
            None => (FileConfig::default(), false),
        };
        let mut config = Self::resolve(file, source.overrides.clone(), data_dir)?;
        config.source = source.clone();
        config.file_read = file_read;
        Ok(config)
    }

    /// The configuration file for the start-up line and messages: its path, and whether it
    /// exists.
    pub fn describe_file(&self) -> String {
        match (&self.source.path, self.file_read) {
            (Some(path), true) => path.display().to_string(),
            (Some(path), false) => format!("{} (absent: defaults apply)", path.display()),
            (None, _) => "none (no config folder)".to_owned(),
        }
    }

    /// Combines defaults, the file and the flags, and checks the result.
    pub fn resolve(
        file: FileConfig,
        flags: Overrides,
        data_dir: PathBuf,
    ) -> Result<Self, ConfigError> {
        let file_label = file
            .path
            .as_ref()
            .map_or_else(|| "config.toml".to_owned(), |p| p.display().to_string());
        // Where a value came from: its flag if one was given, else the file.
        let origin = |flag: Option<&str>| flag.map_or_else(|| file_label.clone(), str::to_owned);
        let value_error = |flag: Option<&str>, message: String| ConfigError::Value {
            origin: origin(flag),
            message,
        };
        let backend = match (flags.backend, file.store.backend) {
            (Some(b), _) => b,
            (None, Some(name)) => name
                .parse()
                .map_err(|e: String| value_error(None, format!("store.backend: {e}")))?,
            (None, None) => Backend::Auto,
        };
        let flag = |set: bool, name: &'static str| set.then_some(name);
        let defaults = Limits::default();
        let limits = Limits {
            max_line: flags
                .max_line
                .or(file.limits.max_line)
                .unwrap_or(defaults.max_line),
            max_connections: flags
                .max_connections
                .or(file.limits.max_connections)
                .unwrap_or(defaults.max_connections),
            idle_timeout: flags
                .idle_timeout_secs
                .or(file.limits.idle_timeout_secs)
                .map_or(defaults.idle_timeout, Duration::from_secs),
            request_timeout: flags
                .request_timeout_secs
                .or(file.limits.request_timeout_secs)
                .map_or(defaults.request_timeout, Duration::from_secs),
            write_timeout: flags
                .write_timeout_secs
                .or(file.limits.write_timeout_secs)
                .map_or(defaults.write_timeout, Duration::from_secs),
        };
        if !(256..=16 * 1024 * 1024).contains(&limits.max_line) {
            return Err(value_error(
                flag(flags.max_line.is_some(), "--max-line"),
                "limits.max_line must be between 256 bytes and 16 MiB".into(),
            ));
        }
        if !(1..=65_536).contains(&limits.max_connections) {
            return Err(value_error(
                flag(flags.max_connections.is_some(), "--max-connections"),
                "limits.max_connections must be between 1 and 65536".into(),
            ));
        }
        for (name, value, from_flag) in [
            (
                "idle_timeout_secs",
                limits.idle_timeout,
                flag(flags.idle_timeout_secs.is_some(), "--idle-timeout"),
            ),
            (
                "request_timeout_secs",
                limits.request_timeout,
                flag(flags.request_timeout_secs.is_some(), "--request-timeout"),
            ),
            (
                "write_timeout_secs",
                limits.write_timeout,
                flag(flags.write_timeout_secs.is_some(), "--write-timeout"),
            ),
        ] {
            if value.is_zero() || value > Duration::from_secs(86_400) {
                return Err(value_error(
                    from_flag,
                    format!("limits.{name} must be between 1 and 86400"),
                ));
            }
        }
        let socket = flags
            .socket
            .or(file.daemon.socket)
            .unwrap_or_else(latchkey_paths::default_socket_path);
        let http_timeout = file
            .oauth
            .timeout_secs
            .map_or(latchkey_oauth::DEFAULT_TIMEOUT, Duration::from_secs);
        if http_timeout.is_zero() || http_timeout > Duration::from_secs(300) {
            return Err(value_error(
                None,
                "oauth.timeout_secs must be between 1 and 300".into(),
            ));
        }
        let login_timeout = file
            .oauth
            .login_timeout_secs
            .map_or(crate::login::LIFETIME, Duration::from_secs);
        if login_timeout.is_zero() || login_timeout > Duration::from_secs(3600) {
            return Err(value_error(
                None,
                "oauth.login_timeout_secs must be between 1 and 3600".into(),
            ));
        }
        let lock_after = match file.store.lock_after_secs {
            None => None,
            Some(secs @ 1..=MAX_LOCK_AFTER_SECS) => Some(Duration::from_secs(secs)),
            Some(_) => {
                return Err(value_error(None, format!(
                    "store.lock_after_secs must be between 1 and {MAX_LOCK_AFTER_SECS} (leave it out to lock only with `latchkey lock`)"
                )))
            }
        };
        let policy = crate::grants::policy(&file.policy.require_grant)
            .map_err(|e| value_error(None, format!("policy.require_grant: {e}")))?;
        let confirm = crate::confirm::ConfirmPolicy::new(
            &file.policy.confirm,
            file.policy.confirm_timeout_secs,
        )
        .map_err(|e| value_error(None, e.to_string()))?;
        let audit_max_bytes = file
            .audit
            .max_bytes
            .unwrap_or(latchkey_audit::DEFAULT_MAX_BYTES);
        if !(MIN_AUDIT_BYTES..=1 << 40).contains(&audit_max_bytes) {
            return Err(value_error(
                None,
                format!("audit.max_bytes must be between {MIN_AUDIT_BYTES} and 1 TiB"),
            ));
        }
        let audit_keep = file.audit.keep.unwrap_or(latchkey_audit::DEFAULT_KEEP);
        if audit_keep > MAX_AUDIT_KEEP {
            return Err(value_error(
                None,
                format!("audit.keep must be between 0 and {MAX_AUDIT_KEEP}"),
            ));
        }
        let audit = AuditConfig {
            enabled: file.audit.enabled.unwrap_or(true),
            path: None,
            max_bytes: audit_max_bytes,
            keep: audit_keep,
        };
        Ok(Self {
            audit,
            policy,
            confirm,
            socket,
            backend,
            data_dir,
            lock_after,
            limits,
            providers: file.providers,
            http_timeout,
            login_timeout,
            source: Source {
                path: file.path,
                required: false,
                overrides: Overrides::default(),
            },
            file_read: false,
        })
    }
}

/// `config.toml` in the platform's config folder, if there is one.
pub fn default_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}
