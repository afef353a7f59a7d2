//! Keychain backends for latchkey, the one store they share, and the `auto` choice between
//! them.
//!
//! - [`keychain::Keychain`]: the narrow trait a backend implements (documents by entry key,
//!   lock state); [`blocking`] runs a blocking one (the `keyring` crate) on blocking threads.
//! - [`indexed::IndexedStore`]: latchkey-core's `Store` on top of any keychain: the non-secret
//!   [`index::IndexFile`] (so listing never unlocks anything), its reconciliation with the
//!   keychain, and the per-entry refresh locks ([`refresh_lock`]).
//! - Backends: `secret_service` (Linux, `oo7`), `credential_manager` (Windows, `keyring`,
//!   chunked by [`chunked`] under the 2,560-byte limit), `apple_keychain` (macOS, `keyring`),
//!   [`file`](mod@file) (Unix: latchkey's own encrypted files, age format, unlocked by a passphrase), and
//!   [`memory::MemoryStore`] (a `Store` of its own: nothing persists).
//! - [`registry`]: the backends each platform has, `auto`'s order, and [`open`].
#![deny(missing_docs)]

#[cfg(target_os = "macos")]
pub mod apple_keychain;
pub mod blocking;
pub mod chunked;
#[cfg(windows)]
pub mod credential_manager;
mod error_text;
#[cfg(unix)]
pub mod file;
pub mod index;
pub mod indexed;
pub mod keychain;
#[cfg(any(target_os = "macos", test))]
mod keychain_status;
pub mod memory;
pub mod refresh_lock;
pub mod registry;
#[cfg(target_os = "linux")]
pub mod secret_service;
#[cfg(test)]
mod test_support;

pub use registry::{open, Backend, Selection, StoreOptions};
