//! Unix: SIGTERM and SIGINT end the daemon, SIGHUP reloads its configuration, systemd or launchd may pass the listening socket
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

/// SIGHUP: read the configuration file again. Installed before the daemon serves, since
/// SIGHUP's default action would end the process.
pub struct ReloadSignal(tokio::signal::unix::Signal);

impl ReloadSignal {
    /// Starts catching SIGHUP (inside a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map(Self)
    }

    /// Completes at the next SIGHUP (signals arriving meanwhile are merged into one).
    pub async fn recv(&mut self) {
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
