//! Every byte `latchkey` writes goes through here. Standard output has one writer,
//! [`write()`], which tells a reader that went away (`latchkey list | head -1`: the pipe is
//! closed, a write fails with `EPIPE`, since Rust ignores `SIGPIPE`) from a real failure (a full
//! disk); `main` ends quietly on the first and reports the second. Notes for people go to
//! standard error through [`note!`], which never panics (`eprintln!` does when stderr is full).

use std::fmt;
use std::io::Write;

/// A write to standard output that failed.
#[derive(Debug)]
pub enum StdoutError {
    /// The reader closed the pipe: nobody wants the rest, which is not an error.
    Closed,
    /// Any other failure (a full disk, a revoked descriptor).
    Io(std::io::Error),
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StdoutError::Closed => f.write_str("the reader of standard output went away"),
            StdoutError::Io(e) => write!(f, "cannot write to standard output: {e}"),
        }
    }
}

impl std::error::Error for StdoutError {}

impl StdoutError {
    fn of(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            StdoutError::Closed
        } else {
            StdoutError::Io(err)
        }
    }

    /// Whether `err` (or anything in its chain) is a closed standard output.
    pub fn is_closed(err: &anyhow::Error) -> bool {
        err.chain()
            .any(|cause| matches!(cause.downcast_ref(), Some(StdoutError::Closed)))
    }
}

/// Writes `bytes` to standard output and flushes them, so a failure shows here and not at
/// exit.
pub fn write(bytes: impl AsRef<[u8]>) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes.as_ref())
        .and_then(|()| out.flush())
        .map_err(StdoutError::of)
}

/// Writes one line (`text` and a newline) to standard output.
pub fn line(text: impl fmt::Display) -> Result<(), StdoutError> {
    write(format!("{text}\n"))
}

/// Writes `args` to standard error and ignores a failure: a note that cannot be shown must not
/// change what the command does or its exit code.
pub fn note_args(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.flush();
}

/// `eprintln!` that never panics: a line on standard error, for people.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::out::note_args(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use note;

/// `eprint!` that never panics (no newline: a spinner's frame).
macro_rules! note_raw {
    ($($arg:tt)*) => {
        $crate::out::note_args(format_args!($($arg)*))
    };
}
pub(crate) use note_raw;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_told_apart() {
        let closed = StdoutError::of(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, StdoutError::Closed));
        let wrapped = anyhow::Error::new(closed).context("while listing");
        assert!(StdoutError::is_closed(&wrapped));
        let full = StdoutError::of(std::io::Error::from_raw_os_error(28));
        assert!(matches!(full, StdoutError::Io(_)));
        assert!(!StdoutError::is_closed(&anyhow::Error::new(full)));
    }
}
