//! Reading `config.toml`: only a small regular file owned by this user (or root) and not
//! writable by others is read, opened without blocking so that a FIFO cannot hang the daemon.

use std::path::Path;

use super::error::line_column;
use super::{ConfigError, FileConfig};

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
