//! latchkeyd as a library: configuration, the request handler shared by every transport, and
//! the Unix-socket transport with its peer checks and limits. `main.rs` only parses arguments,
//! sets up logging and signals, and calls in here; tests run the same code in-process.
#![deny(missing_docs)]

pub mod activation;
pub mod config;
pub mod connect;
pub mod dbus;
pub mod handler;
pub mod hardening;
pub mod ipc;
pub mod login;

pub use config::{Config, Limits};
pub use handler::Handler;
