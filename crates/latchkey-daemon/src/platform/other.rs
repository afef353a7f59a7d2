//! Platforms without a module of their own (neither Unix nor Windows): Ctrl-C ends the
//! daemon, nothing is handed over by a service manager, and no hardening is applied.

use tracing::{info, warn};

/// Completes on Ctrl-C (never, if the handler cannot be installed).
pub async fn shutdown_signal() {
    match tokio::signal::ctrl_c().await {
        Ok(()) => info!("Ctrl-C: shutting down"),
        Err(err) => {
            warn!(error = %err, "cannot install the Ctrl-C handler");
            std::future::pending().await
        }
    }
}

/// No service manager to tell.
pub fn notify_ready() {}

/// Nothing to disable here yet.
pub fn disable_core_dumps() -> Result<(), std::io::Error> {
    Ok(())
}

/// No reload signal on this platform: `latchkey reload` asks the daemon instead.
pub struct ReloadSignal;

impl ReloadSignal {
    /// Nothing to install.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self)
    }

    /// Never completes.
    pub async fn recv(&mut self) {
        std::future::pending::<()>().await;
    }
}
