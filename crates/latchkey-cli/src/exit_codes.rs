//! The exit codes of `latchkey`, one per outcome a script may branch on.

use latchkey_client::ClientError;
use latchkey_proto::ErrorKind;

/// Exit codes, documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Done.
    Success = 0,
    /// An unexpected failure.
    Failure = 1,
    /// The command line or the input was wrong (also clap's usage errors).
    Usage = 2,
    /// No such entry.
    NotFound = 3,
    /// The user must log in (or store a new token) again.
    AuthenticationRequired = 4,
    /// The entry lacks a requested scope.
    InsufficientScope = 5,
    /// The keychain is locked.
    Locked = 6,
    /// latchkeyd is not running, or its keychain is unreachable.
    Unavailable = 7,
    /// The daemon refused this caller.
    PermissionDenied = 8,
    /// A token refresh failed.
    RefreshFailed = 9,
    /// A login did not complete (denied, expired or refused).
    LoginFailed = 10,
    /// What answers as latchkeyd is not this user's (a foreign socket folder, listener, pipe
    /// server or bus name owner); nothing was sent.
    Untrusted = 11,
    /// The passphrase was wrong (or too many were wrong in a row: wait and try again).
    WrongPassphrase = 12,
    /// The entry needs the user's confirmation and did not get it (denied, not answered in
    /// time, no notification server).
    NotConfirmed = 13,
    /// `latchkey run`: the command was found but could not be started.
    CommandNotRunnable = 126,
    /// `latchkey run`: the command was not found.
    CommandNotFound = 127,
    /// Interrupted (Ctrl-C); a pending login was cancelled.
    Interrupted = 130,
}

/// The exit-code table shown by `--help`.
pub const HELP: &str = "Exit codes: 0 ok, 1 failure, 2 usage or invalid input, 3 not found, \
4 authentication required, 5 insufficient scope, 6 keychain locked, 7 daemon or keychain \
unavailable, 8 permission denied, 9 refresh failed, 10 login failed, 11 the daemon's socket, pipe or bus name is not this user's (nothing sent), \
12 wrong passphrase, 13 not confirmed by the user (a [policy] confirm entry), \
126 / 127 `run`: the command cannot be started / was not found (otherwise `run` exits with the \
command's own status), \
130 interrupted.";

impl ExitCode {
    /// A stable snake_case name, the `kind` of a JSON error that did not come from the daemon.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Failure => "failure",
            ExitCode::Usage => "usage",
            ExitCode::NotFound => "not_found",
            ExitCode::AuthenticationRequired => "authentication_required",
            ExitCode::InsufficientScope => "insufficient_scope",
            ExitCode::Locked => "locked",
            ExitCode::Unavailable => "unavailable",
            ExitCode::PermissionDenied => "permission_denied",
            ExitCode::RefreshFailed => "refresh_failed",
            ExitCode::LoginFailed => "login_failed",
            ExitCode::Untrusted => "untrusted",
            ExitCode::WrongPassphrase => "wrong_passphrase",
            ExitCode::NotConfirmed => "not_confirmed",
            ExitCode::CommandNotRunnable => "command_not_runnable",
            ExitCode::CommandNotFound => "command_not_found",
            ExitCode::Interrupted => "interrupted",
        }
    }

    /// The code for an error.
    pub fn of(err: &ClientError) -> Self {
        match err {
            ClientError::NotRunning { .. }
            | ClientError::PipeNotServed { .. }
            | ClientError::NotOnBus
            | ClientError::Bus(_) => ExitCode::Unavailable,
            ClientError::Closed => ExitCode::PermissionDenied,
            ClientError::Untrusted(_) => ExitCode::Untrusted,
            // `--transport dbus` where there is no D-Bus.
            ClientError::Unsupported(_) => ExitCode::Usage,
            ClientError::Daemon(e) => match e.kind() {
                ErrorKind::NotFound => ExitCode::NotFound,
                ErrorKind::AuthenticationRequired => ExitCode::AuthenticationRequired,
                ErrorKind::InsufficientScope => ExitCode::InsufficientScope,
                ErrorKind::Locked => ExitCode::Locked,
                ErrorKind::BackendUnavailable => ExitCode::Unavailable,
                ErrorKind::RefreshFailed => ExitCode::RefreshFailed,
                ErrorKind::InvalidRequest | ErrorKind::TooLarge => ExitCode::Usage,
                ErrorKind::PermissionDenied => ExitCode::PermissionDenied,
                ErrorKind::LoginFailed => ExitCode::LoginFailed,
                ErrorKind::WrongPassphrase => ExitCode::WrongPassphrase,
                ErrorKind::NotConfirmed => ExitCode::NotConfirmed,
                _ => ExitCode::Failure,
            },
            _ => ExitCode::Failure,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
