//! The latchkey wire protocol, shared by the daemon and every client.
//!
//! This crate owns the shape of what crosses the local socket and nothing else: the JSON-RPC 2.0
//! envelope ([`message`]), the typed parameters and results of each method ([`types`]), the stable
//! error kinds ([`error`]), the newline-delimited framing with its size cap ([`codec`]), the
//! [`Secret`] string that carries secret values without ever printing them, and which
//! characters names may not hold and clients escape ([`text`]). It has no async runtime and
//! does no I/O (where the socket lives is `latchkey-paths`' job).
#![deny(missing_docs)]

mod bundle_check;
pub mod codec;
#[cfg(feature = "dbus")]
pub mod dbus;
pub mod error;
mod fast_get;
mod fingerprint;
pub mod grant;
pub mod message;
mod secret;
pub mod text;
mod timestamp;
pub mod types;

pub use bundle_check::BundleJsonError;
pub use error::{ErrorData, ErrorKind, RpcError};
pub use fingerprint::TokenFingerprint;
pub use grant::*;
pub use message::{Call, Id, Request, Response};
pub use secret::Secret;
pub use types::*;

/// Version of the JSON-RPC method set spoken on the socket. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// The account used when a request names none.
pub const DEFAULT_ACCOUNT: &str = "default";
