//! Locking the store after a time without reads (`[store] lock_after_secs`).
//!
//! Unlocking starts a watcher task; every read moves the deadline. When the deadline passes
//! with no read, the watcher calls the store's lock and ends. Locking by hand, or dropping the
//! store, stops it. Time is tokio's, so tests drive it with paused time.
//!
//! A read is a read of the store: a `get` the daemon serves from its cache of secrets does not
//! reach the store, so it does not move the deadline.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::info;

/// The idle timer of one store.
pub(crate) struct IdleLock {
    /// How long without a read before locking.
    after: Duration,
    /// When the store was last read (or unlocked); shared with the watcher.
    last_use: Arc<Mutex<Instant>>,
    /// The watcher, while the store is unlocked.
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl IdleLock {
    /// A timer that locks after `after` without a read.
    pub(crate) fn new(after: Duration) -> Self {
        Self {
            after,
            last_use: Arc::new(Mutex::new(Instant::now())),
            watcher: Mutex::new(None),
        }
    }

    /// Notes a read now.
    pub(crate) fn touch(&self) {
        *self.last_use.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Starts (or restarts) the watcher, which calls `lock` once the store was idle long
    /// enough. Must run inside a tokio runtime.
    pub(crate) fn start(&self, lock: impl FnOnce() + Send + 'static) {
        self.touch();
        let last_use = Arc::clone(&self.last_use);
        let after = self.after;
        let watcher = tokio::spawn(async move {
            loop {
                let deadline = *last_use.lock().unwrap_or_else(PoisonError::into_inner) + after;
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep_until(deadline).await;
            }
            info!(
                idle_secs = after.as_secs(),
                "the file store was not read for a while: locking it"
            );
            lock();
        });
        let previous = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(watcher);
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Stops the watcher, if it runs.
    pub(crate) fn stop(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
    }
}

impl Drop for IdleLock {
    fn drop(&mut self) {
        self.stop();
    }
}
