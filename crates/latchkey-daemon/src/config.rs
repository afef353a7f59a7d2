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
    /// `[audit]`
    #[serde(default)]
    pub audit: AuditSection,
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
    /// The file is not valid TOML, or not the settings latchkeyd knows.
    #[error("invalid configuration in {path}{}: {message}", at(*line, *column))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where in the file (1-based), when known.
        line: Option<usize>,
        /// The column (1-based, in characters), when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or not one of those allowed.
    #[error("{origin}: {message}")]
    Value {
        /// Where the value came from: the file's path, or the flag.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The path is not a regular file (a directory, a FIFO, a device, ...).
    #[error("{path} is {found}, not a regular file: point --config at a config.toml")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        found: &'static str,
    },
    /// The file is larger than a configuration could need.
    #[error(
        "{path} is {size} bytes, larger than the {MAX_CONFIG_BYTES} bytes a configuration may have"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file belongs to another user, who could change what this daemon does.
    #[error("{path} is owned by uid {owner}, not by you (uid {me}) or root: `chown {me} {path}` or use a config of your own")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// No folder for latchkey's data: no home folder, and no `LATCHKEY_DATA_DIR`.
    #[error("cannot find a home folder for latchkey's data; set LATCHKEY_DATA_DIR")]
    NoDataDir,
    /// Others than the owner may write the file, and so change what this daemon does.
    #[error("{path} is writable by group or others (mode {mode:04o}): run `chmod go-w {path}`")]
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// ", line L, column C" for a position in the file, or nothing.
fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(", line {line}, column {column}"),
        (Some(line), None) => format!(", line {line}"),
        _ => String::new(),
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    // A span inside a multi-byte character is moved back to its start.
    let offset = (0..=offset)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A TOML or settings error as it may be shown: serde quotes a string value it did not
/// expect (`invalid type: string "...", expected ...`), and a value in the wrong place could
/// be something private, so quoted strings are left out.
fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("string \"") {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        let after = &rest[start + "string \"".len()..];
        // serde writes the value with Rust's escapes, so an inner quote is `\"`.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(end) => rest = &after[end + 1..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

impl ConfigError {
    /// A TOML error in `text`, read from `path`, with the line and column it points at.
    fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = match err.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        let mut message = unquoted(err.message().trim());
        if message.starts_with("unknown field `provider`") {
            message.push_str(" (providers go under [providers.NAME])");
        }
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// Longest accepted `[store] lock_after_secs`: 30 days.
pub const MAX_LOCK_AFTER_SECS: u64 = 30 * 86_400;

/// Largest accepted `config.toml`, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl FileConfig {
    /// Reads `path`; a missing file is an error only when `required`. The file must be a
    /// regular file of at most [`MAX_CONFIG_BYTES`], owned by this user or root and not
    /// writable by group or others; anything else is refused at once, without blocking.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        Self::load_present(path, required).map(|(file, _)| file)
    }

    /// Like [`FileConfig::load`], and whether the file was there (a missing one that is not
    /// `required` gives the defaults).
    pub fn load_present(path: &Path, required: bool) -> Result<(Self, bool), ConfigError> {
        let text = match read_checked(path) {
            Ok(text) => text,
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !required =>
            {
                return Ok((Self::default(), false))
            }
            Err(err) => return Err(err),
        };
        Ok((Self::parse(path, &text)?, true))
    }

    /// Parses `text`, the contents of `path`; an error names the file, the line and the column.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut file: Self =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        file.path = Some(path.to_owned());
        Ok(file)
    }
}

/// What a path is, for a message about a config path that is not a regular file.
#[cfg(unix)]
fn file_type_name(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn file_type_name(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without blocking (a FIFO would otherwise wait for a writer).
#[cfg(unix)]
fn open_config(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_config(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Refuses a file another user owns or may write: whoever can change it changes what this
/// daemon does.
#[cfg(unix)]
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let me = latchkey_paths::effective_uid();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(ConfigError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(ConfigError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

// WINDOWS: the file's owner SID and DACL, once latchkey-paths can read them.
#[cfg(not(unix))]
fn check_owner(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    Ok(())
}

/// Opens `path` without blocking, checks what the open file is, then reads at most
/// [`MAX_CONFIG_BYTES`].
fn read_checked(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = open_config(path).map_err(read_error)?;
    // The checks look at the opened file, so the path cannot be swapped in between.
    let meta = file.metadata().map_err(read_error)?;
    if !meta.file_type().is_file() {
        return Err(ConfigError::NotRegular {
            path: path.to_owned(),
            found: file_type_name(meta.file_type()),
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
        });
    }
    check_owner(path, &meta)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        // It grew after the check.
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(
            &String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]),
            usize::MAX,
        );
        ConfigError::Invalid {
            path: path.to_owned(),
            line: Some(line),
            column: Some(column),
            message: "the file is not UTF-8 text".to_owned(),
        }
    })
}

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
    fn the_file_store_locks_after_the_idle_time_the_file_gives() {
        let resolve = |text: &str| {
            let file: FileConfig = toml::from_str(text).unwrap();
            Config::resolve(file, Overrides::default(), "/tmp".into())
        };
        assert_eq!(resolve("").unwrap().lock_after, None);
        assert_eq!(
            resolve("[store]\nbackend = \"file\"\nlock_after_secs = 900\n")
                .unwrap()
                .lock_after,
            Some(Duration::from_secs(900))
        );
        for bad in ["0", "2592001", "9223372036854775807"] {
            let err = resolve(&format!("[store]\nlock_after_secs = {bad}\n")).unwrap_err();
            assert!(err.to_string().contains("lock_after_secs"), "{bad}: {err}");
        }
        assert!(toml::from_str::<FileConfig>("[store]\nlock_after_secs = -1\n").is_err());
        assert!(toml::from_str::<FileConfig>("[store]\nlock_after_secs = \"5\"\n").is_err());
        assert!(toml::from_str::<FileConfig>("[store]\nlock_after = 5\n").is_err());
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

    #[test]
    fn unknown_keys_are_refused_in_every_section() {
        for text in [
            "[store]\nbackend = \"memory\"\nbakend = \"memory\"\n",
            "[store]\nlock_after_sec = 60\n",
            "colour = \"blue\"\n",
            "[stores]\nbackend = \"memory\"\n",
            "[daemon]\nsockt = \"/tmp/x\"\n",
            "[oauth]\ntimeout = 3\n",
            "[providers.github]\nclient = \"x\"\n",
        ] {
            let err = toml::from_str::<FileConfig>(text).unwrap_err();
            assert!(err.message().contains("unknown"), "{text}: {err}");
        }
    }

    /// Parses `text` as if read from /etc/latchkey-test.toml; the error's text.
    fn refusal(text: &str) -> String {
        FileConfig::parse(Path::new("/etc/latchkey-test.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_sections_and_keys_name_the_file_and_line() {
        for (text, line, key) in [
            ("[provider.github]\nclient_id = \"x\"\n", 1, "provider"),
            ("# a comment\n[store]\nbacknd = \"memory\"\n", 3, "backnd"),
            (
                "[providers.github]\nclient_id = \"x\"\nscope = [\"repo\"]\n",
                3,
                "scope",
            ),
            (
                "[limits]\nmax_line = 4096\n\n[oauth]\nlogin_timeout = 5\n",
                5,
                "login_timeout",
            ),
        ] {
            let err = refusal(text);
            assert!(
                err.starts_with("invalid configuration in /etc/latchkey-test.toml, line "),
                "{err}"
            );
            assert!(
                err.contains(&format!("line {line}, column")),
                "{text}: {err}"
            );
            assert!(err.contains("unknown field") && err.contains(key), "{err}");
            // The message is one line: no excerpt of the file.
            assert!(!err.contains('\n'), "{err}");
        }
        let err = refusal("[store]\nbackend = \"memory\n");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_string_in_the_wrong_place_is_not_repeated() {
        let err = refusal("[providers.corp]\nclient_id = \"x\"\nscopes = \"s3cr3t \\\" quote\"\n");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("invalid type: a string"), "{err}");
        assert!(!err.contains("s3cr3t") && !err.contains("quote"), "{err}");
        let err = refusal("[providers.corp]\nclient_secret = \"s3cr3t\"\n");
        assert!(
            err.contains("client_secret") && !err.contains("s3cr3t"),
            "{err}"
        );
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(line_column("", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = 1\nx", 3), (1, 3));
        // An offset inside a character, or past the end, stays inside the text.
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("a\n", 99), (2, 1));
    }

    #[test]
    fn the_readme_example_is_accepted() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Configuration").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let file = FileConfig::parse(Path::new("README.md"), example).unwrap();
        assert!(file.providers.contains_key("legacy"), "{example}");
        Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap();
    }

    #[test]
    fn value_errors_name_the_file_or_the_flag() {
        let file = FileConfig::parse(Path::new("/etc/l.toml"), "[limits]\nmax_line = 3\n").unwrap();
        let err = Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/l.toml: limits.max_line must be between 256 bytes and 16 MiB"
        );
        let flags = Overrides {
            idle_timeout_secs: Some(0),
            ..Overrides::default()
        };
        let err = Config::resolve(FileConfig::default(), flags, "/tmp".into()).unwrap_err();
        assert!(err.to_string().starts_with("--idle-timeout: "), "{err}");
        let file =
            FileConfig::parse(Path::new("/etc/l.toml"), "[store]\nbackend = \"floppy\"\n").unwrap();
        let err = Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/l.toml: store.backend: unknown store"),
            "{err}"
        );
    }

    #[test]
    fn unquoting_leaves_other_text_alone() {
        assert_eq!(unquoted("unknown field `x`"), "unknown field `x`");
        assert_eq!(
            unquoted("invalid type: string \"a\\\"b\", expected a sequence"),
            "invalid type: a string, expected a sequence"
        );
        assert_eq!(unquoted("string \"unterminated"), "a string");
    }

    // Modes, devices and FIFOs are Unix things.
    #[cfg(unix)]
    fn write(dir: &Path, name: &str, text: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    // Modes, devices and FIFOs are Unix things.
    #[cfg(unix)]
    #[test]
    fn only_a_small_private_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(
            dir.path(),
            "good.toml",
            b"[store]\nbackend = \"memory\"\n",
            0o600,
        );
        let file = FileConfig::load(&good, true).unwrap();
        assert_eq!(file.store.backend.as_deref(), Some("memory"));
        assert!(FileConfig::load(&write(dir.path(), "ro.toml", b"", 0o644), true).is_ok());

        let group = write(dir.path(), "group.toml", b"", 0o664);
        let err = FileConfig::load(&group, true).unwrap_err();
        assert!(
            matches!(err, ConfigError::Writable { mode: 0o664, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("group.toml") && text.contains("0664"),
            "{text}"
        );
        assert!(text.contains("chmod go-w"), "{text}");
        let others = write(dir.path(), "others.toml", b"", 0o602);
        assert!(matches!(
            FileConfig::load(&others, true),
            Err(ConfigError::Writable { .. })
        ));

        let big = vec![b'#'; MAX_CONFIG_BYTES as usize + 1];
        let big = write(dir.path(), "big.toml", &big, 0o600);
        assert!(matches!(
            FileConfig::load(&big, true),
            Err(ConfigError::TooLarge { .. })
        ));

        let err = FileConfig::load(dir.path(), true).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        let err = FileConfig::load(Path::new("/dev/zero"), true).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");

        let missing = dir.path().join("missing.toml");
        assert!(FileConfig::load(&missing, false).is_ok());
        assert!(matches!(
            FileConfig::load(&missing, true),
            Err(ConfigError::Read { .. })
        ));
    }

    // Modes, devices and FIFOs are Unix things.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK the open would wait for a writer forever.
        let err = FileConfig::load(&fifo, true).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }
}
