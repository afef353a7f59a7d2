//! Windows: console control events end the daemon (Ctrl-C, Ctrl-Break, the console window
//! closed, the user logging off, the system shutting down), there is no service manager to hand
//! a pipe over or to hear about readiness (the daemon starts from the user's Run key, see
//! `latchkey install`), and no hardening is applied at run time.

use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_logoff, ctrl_shutdown};
use tracing::{info, warn};

/// Completes on the first console control event (never, if no handler can be installed).
pub async fn shutdown_signal() {
    let (Ok(mut c), Ok(mut brk), Ok(mut close), Ok(mut logoff), Ok(mut shutdown)) = (
        ctrl_c(),
        ctrl_break(),
        ctrl_close(),
        ctrl_logoff(),
        ctrl_shutdown(),
    ) else {
        warn!("cannot install console control handlers");
        return std::future::pending().await;
    };
    let event = tokio::select! {
        _ = c.recv() => "Ctrl-C",
        _ = brk.recv() => "Ctrl-Break",
        _ = close.recv() => "console closed",
        _ = logoff.recv() => "logoff",
        _ = shutdown.recv() => "system shutdown",
    };
    info!("{event}: shutting down");
}

/// No service manager waits for readiness: the Run key starts the daemon and moves on.
pub fn notify_ready() {}

/// Nothing to turn off: Windows writes no core files of its own accord (Windows Error
/// Reporting keeps crash dumps only where an administrator enabled local dumps), and another
/// process of the same user can read this one's memory anyway, as on any desktop.
pub fn disable_core_dumps() -> Result<(), std::io::Error> {
    Ok(())
}
