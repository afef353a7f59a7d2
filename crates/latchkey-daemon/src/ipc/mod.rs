//! The Unix-socket transport: binding the socket safely, accepting connections under a limit
//! (with eviction when it is reached, see [`slots`]), and running each connection (peer check,
//! framing, pipelined requests, idle, line and write deadlines).

pub mod bind;
mod connection;
pub mod peer;
mod slots;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::handler::Handler;

/// Serves `listener` until `shutdown` is cancelled, then waits for open connections to finish
/// the requests they are running.
pub async fn serve(
    listener: UnixListener,
    handler: Handler,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let slots = slots::Slots::new(limits.max_connections);
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
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
        tracker.spawn(async move {
            connection::run(stream, &handler, limits, &slot, &shutdown).await;
            drop(slot);
        });
    }
    debug!(
        open = tracker.len(),
        "no longer accepting; draining connections"
    );
    tracker.close();
    tracker.wait().await;
}
