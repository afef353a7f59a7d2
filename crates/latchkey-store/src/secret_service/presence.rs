//! Following the Secret Service's presence on the session bus through `NameOwnerChanged` for
//! `org.freedesktop.secrets`.
//!
//! - The owner leaves (the keyring daemon stopped, crashed or is being replaced): at once the
//!   lock state becomes *locked* (see [`LockState`](super::lock_state::LockState)), so the
//!   service drops its cached secrets on the next `get` and serves none of them, and the
//!   connection to the old owner is dropped.
//! - A new owner arrives: one connection is made to it, which reads the real `Locked` state.
//!   If that fails (a service still starting, a missing default collection), it is tried
//!   again after a pause that starts at [`FIRST_RETRY`] and doubles up to [`LAST_RETRY`]; the
//!   next owner change starts over. At most one connection attempt is in flight at a time.
//!
//! The task is the keychain's: it is aborted when the keychain is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use latchkey_core::StoreError;
use tracing::{info, warn};

use super::{Shared, SERVICE_NAME};

/// The pause before the first new attempt to connect to a service that just appeared.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest pause between attempts.
pub(super) const LAST_RETRY: Duration = Duration::from_secs(30);

/// The owner changes of `org.freedesktop.secrets`, filtered by the bus.
pub(super) type Changes = zbus::fdo::NameOwnerChangedStream;

/// Subscribes to the owner changes of `org.freedesktop.secrets` on `bus`. Done before the
/// first connection, so that no change after it is missed.
pub(super) async fn subscribe(bus: &zbus::Connection) -> Result<Changes, StoreError> {
    let failed = |e: zbus::Error| {
        StoreError::Unavailable(format!(
            "cannot follow the Secret Service on the session bus: {}",
            crate::error_text::bounded(e.to_string())
        ))
    };
    let dbus = zbus::fdo::DBusProxy::new(bus).await.map_err(failed)?;
    dbus.receive_name_owner_changed_with_args(&[(0, SERVICE_NAME)])
        .await
        .map_err(failed)
}

/// The pause after `failures` failed attempts in a row (at least one).
pub(super) fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(LAST_RETRY)
}

/// One connection attempt in flight.
type Attempt = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

fn attempt(shared: &Arc<Shared>) -> Attempt {
    let shared = Arc::clone(shared);
    Box::pin(async move { shared.connection().await.map(|_| ()) })
}

/// Follows the service's owner until the bus connection closes.
pub(super) async fn follow(shared: Arc<Shared>, mut changes: Changes) {
    let mut connecting: Option<Attempt> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut failures = 0;
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else {
                    // The session bus itself is gone: so is every way to the service.
                    shared.lock.service_gone();
                    shared.drop_connection();
                    warn!("the session bus connection closed; the keychain counts as locked from now on");
                    return;
                };
                let Ok(args) = change.args() else { continue };
                if args.name().as_str() != SERVICE_NAME {
                    continue;
                }
                if args.old_owner().is_some() {
                    // A connection being made may be to the owner that left: start over.
                    connecting = None;
                    retry_at = None;
                    let epoch = shared.lock.service_gone();
                    shared.drop_connection();
                    warn!(epoch, "the Secret Service left the session bus; the keychain counts as locked until it is back");
                }
                if args.new_owner().is_some() {
                    failures = 0;
                    retry_at = None;
                    connecting = Some(attempt(&shared));
                }
            }
            done = async {
                match connecting.as_mut() {
                    Some(attempt) => attempt.await,
                    None => std::future::pending().await,
                }
            } => {
                connecting = None;
                match done {
                    Ok(()) => {
                        failures = 0;
                        info!(locked = shared.lock.locked(), "the Secret Service is back");
                    }
                    Err(err) => {
                        failures += 1;
                        let wait = retry_after(failures);
                        warn!(error = %err, retry_in_ms = wait.as_millis() as u64, "could not connect to the Secret Service that appeared");
                        retry_at = Some(tokio::time::Instant::now() + wait);
                    }
                }
            }
            () = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                retry_at = None;
                connecting = Some(attempt(&shared));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_first_pause_up_to_the_last() {
        assert_eq!(retry_after(1), FIRST_RETRY);
        assert_eq!(retry_after(2), FIRST_RETRY * 2);
        assert_eq!(retry_after(3), FIRST_RETRY * 4);
        assert_eq!(retry_after(8), LAST_RETRY);
        assert_eq!(retry_after(u32::MAX), LAST_RETRY);
        let mut last = Duration::ZERO;
        for failures in 1..64 {
            let wait = retry_after(failures);
            assert!(wait >= last && wait <= LAST_RETRY);
            last = wait;
        }
    }
}
