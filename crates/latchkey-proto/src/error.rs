//! Errors on the wire: JSON-RPC codes for framing and a stable `data.kind` for programs.
//!
//! Every error latchkey sends carries a [`ErrorKind`] in `data.kind`. Messages are written for
//! people and may change; kinds are a contract. No error ever quotes what the client sent.

use std::fmt;

use serde::{Deserialize, Serialize};

/// JSON-RPC code: the line was not valid JSON (or not UTF-8).
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC code: valid JSON but not a valid request object (or too large).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC code: the method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC code: the params do not match the method.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC code used for every application error; `data.kind` says which.
pub const APPLICATION_ERROR: i64 = -32000;

/// The stable, machine-readable error kinds of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No entry for that service and account.
    NotFound,
    /// The entry cannot serve without the user logging in again.
    AuthenticationRequired,
    /// The entry lacks some requested scopes; `data.missing_scopes` names them.
    InsufficientScope,
    /// The keychain is locked; unlock it and retry.
    Locked,
    /// The keychain cannot be reached.
    BackendUnavailable,
    /// Refreshing the token failed; `data.retryable` says whether to try again.
    RefreshFailed,
    /// The request was malformed or its values are not acceptable.
    InvalidRequest,
    /// The caller is not allowed to talk to this daemon.
    PermissionDenied,
    /// The request exceeds a size limit.
    TooLarge,
    /// Something went wrong inside the daemon.
    Internal,
    /// A login did not complete (denied, expired, cancelled or refused by the provider);
    /// `data.retryable` says whether starting it again may help.
    LoginFailed,
    /// The passphrase given to unlock the store was wrong, or too many were wrong in a row
    /// (`data.hint` then says how long to wait).
    WrongPassphrase,
    /// The entry is served only after the user allows the asking program in a desktop
    /// prompt (`[policy] confirm`), and that did not happen: the user denied it, nobody
    /// answered in time, no notification server could ask, or the program is unknown. The
    /// message says which.
    NotConfirmed,
    /// A kind this side does not know: a newer daemon sent it. Never sent by latchkeyd; a
    /// client reads it as a plain failure (the message still says what happened) instead of
    /// failing to read the whole answer.
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// All kinds, in declaration order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::NotFound,
        ErrorKind::AuthenticationRequired,
        ErrorKind::InsufficientScope,
        ErrorKind::Locked,
        ErrorKind::BackendUnavailable,
        ErrorKind::RefreshFailed,
        ErrorKind::InvalidRequest,
        ErrorKind::PermissionDenied,
        ErrorKind::TooLarge,
        ErrorKind::Internal,
        ErrorKind::LoginFailed,
        ErrorKind::WrongPassphrase,
        ErrorKind::NotConfirmed,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AuthenticationRequired => "authentication_required",
            ErrorKind::InsufficientScope => "insufficient_scope",
            ErrorKind::Locked => "locked",
            ErrorKind::BackendUnavailable => "backend_unavailable",
            ErrorKind::RefreshFailed => "refresh_failed",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Internal => "internal",
            ErrorKind::LoginFailed => "login_failed",
            ErrorKind::WrongPassphrase => "wrong_passphrase",
            ErrorKind::NotConfirmed => "not_confirmed",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` member of every latchkey error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// What went wrong, for programs.
    pub kind: ErrorKind,
    /// For `refresh_failed` and `login_failed`: whether retrying later may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// For `insufficient_scope`: the requested scopes the entry lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_scopes: Vec<String>,
    /// A short suggestion for people (for example the command that fixes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For `authentication_required`: a URL that starts a login when opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    /// For `locked`, when the store named in the request takes a passphrase (`migrate`'s
    /// target): whether it has one (`passphrase`) or the request chooses it
    /// (`new_passphrase`), so a client knows whether to ask for it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_with: Option<crate::types::UnlockWith>,
}

impl ErrorData {
    /// Data with only a kind.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            retryable: None,
            missing_scopes: Vec::new(),
            hint: None,
            login_url: None,
            unlock_with: None,
        }
    }
}

/// A JSON-RPC error object as latchkey sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// The JSON-RPC code (framing codes or [`APPLICATION_ERROR`]).
    pub code: i64,
    /// A message for people.
    pub message: String,
    /// The machine-readable part.
    pub data: ErrorData,
}

impl RpcError {
    /// An application error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            code: APPLICATION_ERROR,
            message: message.into(),
            data: ErrorData::new(kind),
        }
    }

    /// A framing or envelope error with a JSON-RPC code other than the application one.
    pub fn with_code(code: i64, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: ErrorData::new(kind),
        }
    }

    /// The line was not JSON.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::with_code(PARSE_ERROR, ErrorKind::InvalidRequest, message)
    }

    /// The JSON was not a valid request object.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::with_code(INVALID_REQUEST, ErrorKind::InvalidRequest, message)
    }

    /// The params did not fit the method.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::with_code(INVALID_PARAMS, ErrorKind::InvalidRequest, message)
    }

    /// The method is unknown. The name is not repeated back.
    pub fn method_not_found() -> Self {
        Self::with_code(
            METHOD_NOT_FOUND,
            ErrorKind::InvalidRequest,
            "unknown method; see the protocol section of the README",
        )
    }

    /// The request line exceeded the size limit.
    pub fn too_large(limit: usize) -> Self {
        Self::with_code(
            INVALID_REQUEST,
            ErrorKind::TooLarge,
            format!("request line exceeds the limit of {limit} bytes"),
        )
    }

    /// The kind in `data`.
    pub fn kind(&self) -> ErrorKind {
        self.data.kind
    }

    /// Adds a hint for people.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.data.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.data.kind)
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_from_a_newer_daemon_is_read_as_unknown() {
        let data: ErrorData =
            serde_json::from_str(r#"{"kind":"quota_exceeded","hint":"later"}"#).unwrap();
        assert_eq!(data.kind, ErrorKind::Unknown);
        assert!(!ErrorKind::ALL.contains(&ErrorKind::Unknown));
    }

    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: ErrorKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn error_wire_shape_is_pinned() {
        let mut err = RpcError::new(ErrorKind::InsufficientScope, "missing scopes");
        err.data.missing_scopes = vec!["repo".into()];
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"code":-32000,"message":"missing scopes","data":{"kind":"insufficient_scope","missing_scopes":["repo"]}}"#
        );
    }
}
