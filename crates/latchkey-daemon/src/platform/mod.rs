//! What differs per operating system outside the transports: shutdown and reload signals, hand-over from
//! the service manager and its readiness notification, and process hardening. Each platform
//! has one module here with the same functions; `main.rs` and [`crate::Daemon`] call them
//! through this module only.
//!
//! `windows` sits beside `unix`; `other` covers any remaining target; `no_reload` is the
//! reload signal of all but Unix.

#[cfg(unix)]
mod unix;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use unix::return_large_buffers;
#[cfg(unix)]
pub use unix::{activation, disable_core_dumps, notify_ready, shutdown_signal, ReloadSignal};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{disable_core_dumps, notify_ready, shutdown_signal};

#[cfg(not(any(unix, windows)))]
mod other;
#[cfg(not(any(unix, windows)))]
pub use other::{disable_core_dumps, notify_ready, shutdown_signal};

#[cfg(not(unix))]
mod no_reload;
#[cfg(not(unix))]
pub use no_reload::ReloadSignal;
