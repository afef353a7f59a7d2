//! D-Bus errors: one named error per protocol error kind, under
//! `dev.latchkey.Latchkey1.Error.`, carrying the message for people. The body stays `(s)`:
//! GLib clients (gdbus) drop the message of an error whose body has any other type, so the
//! structured data travels as the name (the kind) and inside the message (the missing
//! scopes, escaped and bounded, and the login link).
//!
//! An `InsufficientScope` message names the missing scopes, which come from the caller and
//! may be long or hostile: each is escaped (control characters as `\u{..}`) and the list is
//! bounded to [`MISSING_LIMIT`] characters, saying how many more were left out.

use latchkey_proto::dbus::error_name;
use latchkey_proto::{ErrorData, ErrorKind, RpcError};
use zbus::message::{Header, Message};
use zbus::names::ErrorName;

/// The errors the interface returns: a protocol error, named after its kind and keeping its
/// typed data, or a bus failure. On the bus a protocol error's body is its message (`(s)`).
#[derive(Debug)]
pub enum LatchkeyError {
    /// A failure of the bus or of a message, sent as the bus's own error.
    ZBus(zbus::fdo::Error),
    /// A latchkey error.
    Rpc(Box<Failure>),
}

/// A latchkey error as the bus sends it.
#[derive(Debug)]
pub struct Failure {
    /// `dev.latchkey.Latchkey1.Error.<Kind>`.
    name: String,
    /// For people; for `insufficient_scope` and `authentication_required` it also names the
    /// missing scopes and the login link, for clients that show only the message.
    message: String,
    /// For programs.
    data: ErrorData,
}

impl LatchkeyError {
    /// An error of `kind` with only a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RpcError::new(kind, message).into()
    }

    /// The machine-readable data, for a latchkey error.
    pub fn data(&self) -> Option<&ErrorData> {
        match self {
            LatchkeyError::Rpc(failure) => Some(&failure.data),
            LatchkeyError::ZBus(_) => None,
        }
    }
}

impl From<zbus::Error> for LatchkeyError {
    fn from(err: zbus::Error) -> Self {
        LatchkeyError::ZBus(err.into())
    }
}

impl From<zbus::fdo::Error> for LatchkeyError {
    fn from(err: zbus::fdo::Error) -> Self {
        LatchkeyError::ZBus(err)
    }
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
        LatchkeyError::Rpc(Box::new(Failure {
            name: error_name(err.data.kind),
            message,
            data: err.data,
        }))
    }
}

impl zbus::DBusError for LatchkeyError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        match self {
            LatchkeyError::ZBus(err) => err.create_reply(call),
            // `(s)`: GLib (gdbus, GDBus programs) shows an error's message only for a body
            // of exactly that type, so the data travels in the name (the kind) and in the
            // message (missing scopes, login link).
            LatchkeyError::Rpc(failure) => {
                Message::error(call, self.name())?.build(&(failure.message.as_str(),))
            }
        }
    }

    fn name(&self) -> ErrorName<'_> {
        match self {
            LatchkeyError::ZBus(err) => err.name(),
            LatchkeyError::Rpc(failure) => ErrorName::from_str_unchecked(&failure.name),
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            LatchkeyError::ZBus(err) => err.description(),
            LatchkeyError::Rpc(failure) => Some(&failure.message),
        }
    }
}

impl std::fmt::Display for LatchkeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use zbus::DBusError;
        write!(f, "{}: {}", self.name(), self.description().unwrap_or(""))
    }
}

impl std::error::Error for LatchkeyError {}

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
            assert_eq!(err.data().map(|d| d.kind), Some(kind));
        }
    }

    #[test]
    fn structured_data_travels_with_the_error() {
        let mut rpc = RpcError::new(ErrorKind::InsufficientScope, "missing scopes");
        rpc.data.missing_scopes = vec!["repo".into()];
        rpc.data.hint = Some("log in with more scopes".into());
        let err = LatchkeyError::from(rpc.clone());
        assert_eq!(err.data(), Some(&rpc.data));
        assert_eq!(err.description(), Some("missing scopes; missing: repo"));
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
