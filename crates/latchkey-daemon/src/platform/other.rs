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
