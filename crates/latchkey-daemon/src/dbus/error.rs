//! D-Bus errors: one named error per protocol error kind, under
//! `dev.latchkey.Latchkey1.Error.`, carrying the message for people.

use latchkey_proto::{ErrorKind, RpcError};

/// The errors the interface returns.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "dev.latchkey.Latchkey1.Error")]
#[allow(missing_docs)]
pub enum LatchkeyError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NotFound(String),
    AuthenticationRequired(String),
    InsufficientScope(String),
    Locked(String),
    BackendUnavailable(String),
    RefreshFailed(String),
    InvalidRequest(String),
    PermissionDenied(String),
    TooLarge(String),
    Internal(String),
    LoginFailed(String),
}

impl From<RpcError> for LatchkeyError {
    fn from(err: RpcError) -> Self {
        let mut message = err.message;
        if !err.data.missing_scopes.is_empty() {
            // The caller's own scopes, echoed: escaped like any text a terminal may show.
            let missing = latchkey_proto::text::escape(&err.data.missing_scopes.join(" "));
            message = format!("{message}; missing: {missing}");
        }
        if let Some(url) = &err.data.login_url {
            message = format!("{message}; log in at {url}");
        }
        match err.data.kind {
            ErrorKind::NotFound => Self::NotFound(message),
            ErrorKind::AuthenticationRequired => Self::AuthenticationRequired(message),
            ErrorKind::InsufficientScope => Self::InsufficientScope(message),
            ErrorKind::Locked => Self::Locked(message),
            ErrorKind::BackendUnavailable => Self::BackendUnavailable(message),
            ErrorKind::RefreshFailed => Self::RefreshFailed(message),
            ErrorKind::InvalidRequest => Self::InvalidRequest(message),
            ErrorKind::PermissionDenied => Self::PermissionDenied(message),
            ErrorKind::TooLarge => Self::TooLarge(message),
            ErrorKind::LoginFailed => Self::LoginFailed(message),
            _ => Self::Internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    #[test]
    fn every_kind_has_its_named_error() {
        for kind in ErrorKind::ALL {
            let err = LatchkeyError::from(RpcError::new(kind, "message for people"));
            assert_eq!(err.name().as_str(), latchkey_proto::dbus::error_name(kind));
            assert_eq!(err.description(), Some("message for people"));
        }
    }
}
