//! The stream transports (a Unix socket, a Windows named pipe): a
//! [`Listener`] yields each client's byte stream with its [`Peer`](crate::peer::Peer), and one
//! generic loop accepts connections under a limit (with eviction when it is reached, see
//! `slots`) and runs each one (peer check, framing, pipelined requests, idle, line and write
//! deadlines).

mod connection;
pub mod listener;
mod slots;
#[cfg(unix)]
pub mod unix;
#[cfg(windows)]
pub mod windows_pipe;

pub use listener::Listener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::handler::Handler;

/// Serves `listener` until `shutdown` is cancelled, then waits for open connections to finish
/// the requests they are running. Each connection takes the `limits` in force when it is
/// accepted (a reload changes them); the number of slots is fixed at start.
pub async fn serve<L: Listener>(
    mut listener: L,
    handler: Handler,
    limits: tokio::sync::watch::Receiver<Limits>,
    shutdown: CancellationToken,
) {
    let slots = slots::Slots::new(limits.borrow().max_connections, &shutdown);
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    // Out of descriptors or similar: give the system a moment instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Accepted first, then given a slot: a full house evicts only for someone who came.
        let slot = tokio::select! {
            slot = slots.claim() => slot,
            _ = shutdown.cancelled() => break,
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let in_force = *limits.borrow();
        tracker.spawn(async move {
            connection::run(stream, peer, &handler, in_force, &slot, &shutdown).await;
            drop(slot);
        });
    }
    slots.close();
    debug!(
        open = tracker.len(),
        "no longer accepting; draining connections"
    );
    tracker.close();
    tracker.wait().await;
}
