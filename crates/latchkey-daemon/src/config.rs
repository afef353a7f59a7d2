//! Daemon settings: defaults, then `config.toml`, then command-line flags, validated once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_oauth::ProviderSpec;
use latchkey_store::Backend;
use serde::Deserialize;

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
    /// Where persistent stores keep their non-secret index.
    pub data_dir: PathBuf,
    /// Request limits.
    pub limits: Limits,
    /// OAuth providers by name, as written (checked when the OAuth client is built).
    pub providers: BTreeMap<String, ProviderSpec>,
    /// How long one HTTP request to a provider may take.
    pub http_timeout: Duration,
    /// How long a login waits for the user.
    pub login_timeout: Duration,
}

/// The `config.toml` file. Every key is optional; unknown sections (such as `providers`, used
/// by later versions) are ignored.
#[derive(Debug, Default, Deserialize)]
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
pub struct StoreSection {
    /// `auto`, `secret-service` or `memory`.
    pub backend: Option<String>,
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

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid configuration in {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Value(String),
}

impl FileConfig {
    /// Reads `path`; a missing file is an error only when `required`.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }
}

/// Command-line values that override the file.
#[derive(Debug, Default)]
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

impl Config {
    /// Combines defaults, the file and the flags, and checks the result.
    pub fn resolve(
        file: FileConfig,
        flags: Overrides,
        data_dir: PathBuf,
    ) -> Result<Self, ConfigError> {
        let backend = match (flags.backend, file.store.backend) {
            (Some(b), _) => b,
            (None, Some(name)) => name.parse().map_err(ConfigError::Value)?,
            (None, None) => Backend::Auto,
        };
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
            return Err(ConfigError::Value(
                "max_line must be between 256 bytes and 16 MiB".into(),
            ));
        }
        if !(1..=65_536).contains(&limits.max_connections) {
            return Err(ConfigError::Value(
                "max_connections must be between 1 and 65536".into(),
            ));
        }
        for (name, value) in [
            ("idle_timeout_secs", limits.idle_timeout),
            ("request_timeout_secs", limits.request_timeout),
            ("write_timeout_secs", limits.write_timeout),
        ] {
            if value.is_zero() || value > Duration::from_secs(86_400) {
                return Err(ConfigError::Value(format!(
                    "{name} must be between 1 and 86400"
                )));
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
            return Err(ConfigError::Value(
                "oauth.timeout_secs must be between 1 and 300".into(),
            ));
        }
        let login_timeout = file
            .oauth
            .login_timeout_secs
            .map_or(crate::login::LIFETIME, Duration::from_secs);
        if login_timeout.is_zero() || login_timeout > Duration::from_secs(3600) {
            return Err(ConfigError::Value(
                "oauth.login_timeout_secs must be between 1 and 3600".into(),
            ));
        }
        Ok(Self {
            socket,
            backend,
            data_dir,
            limits,
            providers: file.providers,
            http_timeout,
            login_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file() {
        let file: FileConfig = toml::from_str(
            "[store]\nbackend = \"memory\"\n[limits]\nmax_line = 1024\n[providers.github]\nclient_id = \"x\"\n",
        )
        .unwrap();
        let cfg = Config::resolve(
            file,
            Overrides {
                max_line: Some(2048),
                socket: Some("/tmp/x.sock".into()),
                ..Overrides::default()
            },
            "/tmp".into(),
        )
        .unwrap();
        assert_eq!(cfg.backend, Backend::Memory);
        assert_eq!(cfg.limits.max_line, 2048);
        assert_eq!(cfg.socket, PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn bad_values_are_refused() {
        let file: FileConfig = toml::from_str("[store]\nbackend = \"floppy\"\n").unwrap();
        assert!(Config::resolve(file, Overrides::default(), "/tmp".into()).is_err());
        let tiny = Overrides {
            max_line: Some(3),
            ..Overrides::default()
        };
        assert!(Config::resolve(FileConfig::default(), tiny, "/tmp".into()).is_err());
        assert!(toml::from_str::<FileConfig>("[limits]\nmax_lines = 3\n").is_err());
        let zero: FileConfig = toml::from_str("[limits]\nwrite_timeout_secs = 0\n").unwrap();
        assert!(Config::resolve(zero, Overrides::default(), "/tmp".into()).is_err());
    }

    #[test]
    fn deadlines_come_from_the_file_and_flags() {
        let file: FileConfig =
            toml::from_str("[limits]\nrequest_timeout_secs = 3\nwrite_timeout_secs = 4\n").unwrap();
        let flags = Overrides {
            write_timeout_secs: Some(2),
            ..Overrides::default()
        };
        let limits = Config::resolve(file, flags, "/tmp".into()).unwrap().limits;
        assert_eq!(limits.request_timeout, Duration::from_secs(3));
        assert_eq!(limits.write_timeout, Duration::from_secs(2));
        let defaults = Config::resolve(FileConfig::default(), Overrides::default(), "/tmp".into())
            .unwrap()
            .limits;
        assert_eq!(defaults.request_timeout, Duration::from_secs(10));
        assert_eq!(defaults.write_timeout, Duration::from_secs(10));
    }
}
