//! Why a configuration is refused, and where in the file: [`ConfigError`], the line and
//! column of a TOML error, and its message with any quoted value left out.

use std::path::{Path, PathBuf};

use super::MAX_CONFIG_BYTES;

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
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
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
pub(super) fn unquoted(message: &str) -> String {
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
    pub(super) fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
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
