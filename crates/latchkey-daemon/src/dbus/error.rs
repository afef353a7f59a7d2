//! D-Bus errors: one named error per protocol error kind, under
//! `dev.latchkey.Latchkey1.Error.`, carrying the message for people.
//!
//! An `InsufficientScope` message names the missing scopes, which come from the caller and
//! may be long or hostile: each is escaped (control characters as `\u{..}`) and the list is
//! bounded to [`MISSING_LIMIT`] characters, saying how many more were left out.

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
            message = format!(
                "{message}; missing: {}",
                missing_list(&err.data.missing_scopes)
            );
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

/// The most characters of missing scopes a message lists.
pub const MISSING_LIMIT: usize = 512;

/// `scopes` escaped and space separated, at most [`MISSING_LIMIT`] characters of them, then
/// how many were left out.
fn missing_list(scopes: &[String]) -> String {
    let mut list = String::new();
    let mut used = 0;
    for (shown, scope) in scopes.iter().enumerate() {
        // The caller's own scopes, echoed: escaped like any text a terminal may show.
        let escaped = latchkey_proto::text::escape(scope);
        let width = escaped.chars().count() + usize::from(shown > 0);
        if used + width > MISSING_LIMIT {
            let mut left = scopes.len() - shown;
            if shown == 0 {
                // One huge scope: show its start rather than nothing.
                list.extend(escaped.chars().take(MISSING_LIMIT - 3));
                list.push_str("...");
                left -= 1;
            }
            if left > 0 {
                list.push_str(&format!(" (and {left} more)"));
            }
            return list;
        }
        if shown > 0 {
            list.push(' ');
        }
        list.push_str(&escaped);
        used += width;
    }
    list
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

    #[test]
    fn missing_scopes_are_escaped_and_bounded() {
        assert_eq!(
            missing_list(&["a".into(), "b\u{1b}[2J\n".into()]),
            "a b\\u{1b}[2J\\u{a}"
        );
        let many: Vec<String> = (0..1000).map(|i| format!("scope-{i:04}")).collect();
        let list = missing_list(&many);
        assert!(list.chars().count() <= MISSING_LIMIT + 20, "{list}");
        // 46 of 10 characters plus a space fit in 512.
        assert!(list.ends_with("scope-0045 (and 954 more)"), "{list}");
        let huge = missing_list(&["x".repeat(100_000), "y".into()]);
        assert_eq!(
            huge,
            format!("{}... (and 1 more)", "x".repeat(MISSING_LIMIT - 3))
        );
        assert_eq!(
            missing_list(&["x".repeat(MISSING_LIMIT)]),
            "x".repeat(MISSING_LIMIT)
        );
    }
}
