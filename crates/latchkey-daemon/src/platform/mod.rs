//! What differs per operating system outside the transports: shutdown signals, hand-over from
//! the service manager and its readiness notification, and process hardening. Each platform
//! has one module here with the same functions; `main.rs` and [`crate::Daemon`] call them
//! through this module only.
//!
//! A Windows module (console control events, no activation, a process mitigation policy) sits
//! beside `unix` and replaces `other` there.

#[cfg(unix)]
mod unix;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use unix::return_large_buffers;
#[cfg(unix)]
pub use unix::{activation, disable_core_dumps, notify_ready, shutdown_signal};

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
pub use other::{disable_core_dumps, notify_ready, shutdown_signal};
