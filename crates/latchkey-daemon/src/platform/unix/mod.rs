//! Unix: SIGTERM and SIGINT end the daemon, systemd or launchd may pass the listening socket
//! and hear when it is ready, and core dumps and ptrace are turned off.

pub mod activation;
mod hardening;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod memory;

pub use activation::notify_ready;
pub use hardening::disable_core_dumps;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use memory::return_large_buffers;
use tracing::{info, warn};

/// Completes on SIGTERM or SIGINT (never, if the handlers cannot be installed).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}
