//! latchkeyd as a library: configuration, the request handler shared by every transport, the
//! stream transports behind one listener trait (a Unix socket today) with their peer checks
//! and limits, the D-Bus transport (Linux), per-platform signals, activation and hardening,
//! and [`DaemonBuilder`], which wires them together. `main.rs` only parses arguments, sets up
//! logging and signals, and calls in here; tests run the same code in-process.
#![deny(missing_docs)]

pub mod config;
pub mod confirm;
pub mod connect;
mod daemon;
#[cfg(target_os = "linux")]
pub mod dbus;
pub mod grants;
pub mod handler;
pub mod ipc;
pub mod login;
mod login_help;
mod migrate;
pub mod peer;
pub mod platform;
pub mod reload;
pub mod store_choice;

pub use config::{Config, Limits};
pub use daemon::{Daemon, DaemonBuilder, DaemonError, Endpoints, Running, StreamEndpoint};
pub use handler::Handler;
pub use peer::{Peer, PeerUser};
