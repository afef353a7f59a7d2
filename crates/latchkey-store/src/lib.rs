//! Keychain backends for latchkey, one module each, and the `auto` choice between them.
//!
//! - [`memory::MemoryStore`]: entries live in the daemon's memory and die with it.
//! - `secret_service::SecretServiceStore` (Linux): one Secret Service item per entry, found by
//!   its attributes, plus a non-secret [`index::IndexFile`] so listing never unlocks anything.
//! - `refresh_lock` (Unix): per-entry lock files beside an index, so daemons sharing a
//!   store refresh an entry one at a time.
//! - [`select`]: turns a [`Backend`] choice into an open store, saying which and why.
#![deny(missing_docs)]

pub mod index;
pub mod memory;
#[cfg(unix)]
pub mod refresh_lock;
#[cfg(target_os = "linux")]
pub mod secret_service;
mod select;

pub use select::{open, Backend, Selection};
