//! Connection slots: the cap on connections served at once (`max_connections`) and what
//! happens when it is reached, so that no client can hold a slot forever.
//!
//! Each open connection holds a [`Slot`] that says which phase it is in:
//!
//! - **idle**: waiting for the first byte of a request line (bounded by `idle_timeout`);
//! - **reading**: inside a request line (bounded by `request_timeout`, counted from the first
//!   byte, whatever trickles in after it);
//! - **writing**: answers are being written (bounded by `write_timeout` per response);
//! - **busy**: a handler call runs (`get` refreshing a token, `login_wait` for the user).
//!
//! Policy: when a connection arrives and every slot is taken, the **oldest connection that is
//! idle, reading or writing** is closed to make room (oldest by accept order, so a newcomer is
//! never the victim and a flood of newcomers evicts each other before anyone it follows). A
//! connection running a handler call is never evicted: its request is honest work, and
//! cutting it would lose an answer (or a login). When every slot is busy, the newcomer waits in
//! the accept queue until a call ends or a connection turns evictable. So a client that
//! trickles bytes or does not read its answers costs a slot only until someone needs it, and
//! for at most the deadlines above when nobody does.
//!
//! An eviction and the connection's own move into `busy` are one compare-and-swap each, so a
//! connection that has just started a call cannot be evicted under it.
//!
//! A slot's one signal, [`Slot::closing`], fires when the connection is evicted or the daemon
//! shuts down (it is a child of the shutdown token), so a connection waits on one future, not
//! two. After [`Slots::close`], every move into a phase fails, so a connection whose reads
//! never wait still stops at its next request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// What a connection is doing, as far as eviction is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    /// Between requests.
    Idle = 0,
    /// Inside a request line.
    Reading = 1,
    /// Writing answers.
    Writing = 2,
    /// Running a handler call: never evicted.
    Busy = 3,
}

/// The phase value of a connection that was evicted.
const EVICTED: u8 = u8::MAX;

/// Returned when the connection was evicted (or the slots closed) and must close.
#[derive(Debug)]
pub(super) struct Evicted;

struct Shared {
    phase: AtomicU8,
    /// Cancelled by an eviction, or by the shutdown token it is a child of.
    closing: CancellationToken,
}

struct Inner {
    permits: Arc<Semaphore>,
    /// Open connections by accept order. Owned here; each entry removed by its slot's drop.
    open: Mutex<BTreeMap<u64, Arc<Shared>>>,
    next_id: AtomicU64,
    /// Told when a busy connection becomes evictable, for a newcomer waiting on a full house.
    evictable: Notify,
    /// The daemon's shutdown token, parent of every slot's `closing`.
    shutdown: CancellationToken,
    /// Set by [`Slots::close`]: no connection moves into another phase.
    closed: AtomicBool,
}

/// The slots of one listener. Cheap to clone.
#[derive(Clone)]
pub(super) struct Slots {
    inner: Arc<Inner>,
}

/// One connection's slot: its permit, its phase and its eviction signal. Dropping it frees
/// the slot.
pub(super) struct Slot {
    id: u64,
    shared: Arc<Shared>,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Slots {
    /// `max` slots, whose connections close when `shutdown` is cancelled.
    pub(super) fn new(max: usize, shutdown: &CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(max)),
                open: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
                evictable: Notify::new(),
                shutdown: shutdown.clone(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// From now on every connection's next move into a phase fails (on shutdown, once the
    /// shutdown token is cancelled: that wakes the connections waiting, this stops the ones
    /// that never wait).
    pub(super) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    /// Slots in use.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// A slot for a connection that has arrived: a free one, or one made free by evicting the
    /// oldest evictable connection, or the first one a busy connection gives up.
    pub(super) async fn claim(&self) -> Slot {
        let permit = loop {
            if let Ok(permit) = Arc::clone(&self.inner.permits).try_acquire_owned() {
                break permit;
            }
            // Registered before looking, so a connection turning evictable meanwhile is seen.
            let evictable = self.inner.evictable.notified();
            tokio::pin!(evictable);
            evictable.as_mut().enable();
            let evicted = self.evict_oldest();
            let acquire = Arc::clone(&self.inner.permits).acquire_owned();
            if evicted {
                // The evicted connection gives its permit back as it closes.
                break acquire.await.expect("the semaphore is never closed");
            }
            tokio::select! {
                permit = acquire => break permit.expect("the semaphore is never closed"),
                () = evictable => {}
            }
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            phase: AtomicU8::new(Phase::Idle as u8),
            closing: self.inner.shutdown.child_token(),
        });
        self.inner
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&shared));
        Slot {
            id,
            shared,
            inner: Arc::clone(&self.inner),
            _permit: permit,
        }
    }

    /// Evicts the oldest connection that is not busy; false if every one is.
    fn evict_oldest(&self) -> bool {
        let open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        for (id, shared) in open.iter() {
            let phase = shared.phase.load(Ordering::Acquire);
            if phase == Phase::Busy as u8 || phase == EVICTED {
                continue;
            }
            if shared
                .phase
                .compare_exchange(phase, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                debug!(
                    connection = id,
                    phase, "all slots taken; evicting the oldest"
                );
                shared.closing.cancel();
                return true;
            }
        }
        false
    }
}

impl Slot {
    /// Moves to `phase`; `Err` if the connection was evicted, or the slots closed, and it
    /// must close.
    pub(super) fn enter(&self, phase: Phase) -> Result<(), Evicted> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Evicted);
        }
        let mut current = self.shared.phase.load(Ordering::Acquire);
        loop {
            if current == EVICTED {
                return Err(Evicted);
            }
            if current == phase as u8 {
                return Ok(());
            }
            match self.shared.phase.compare_exchange_weak(
                current,
                phase as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if current == Phase::Busy as u8 {
            self.inner.evictable.notify_one();
        }
        Ok(())
    }

    /// Completes once the connection is evicted or the daemon shuts down. A busy connection
    /// is never evicted, so while it runs a call this completes on shutdown only.
    pub(super) fn closing(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shared.closing.cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_house_evicts_the_oldest_that_is_not_busy() {
        let slots = Slots::new(3, &CancellationToken::new());
        let first = slots.claim().await;
        let second = slots.claim().await;
        let third = slots.claim().await;
        first.enter(Phase::Busy).unwrap();
        second.enter(Phase::Reading).unwrap();
        third.enter(Phase::Writing).unwrap();
        let claiming = tokio::spawn({
            let slots = slots.clone();
            async move { slots.claim().await }
        });
        second.closing().await;
        assert!(second.enter(Phase::Idle).is_err());
        assert!(third.enter(Phase::Idle).is_ok());
        assert!(first.enter(Phase::Idle).is_ok());
        drop(second);
        let fourth = tokio::time::timeout(Duration::from_secs(5), claiming)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(slots.open(), 3);
        drop((first, third, fourth));
        assert_eq!(slots.open(), 0);
    }

    #[tokio::test]
    async fn a_shutdown_closes_every_slot_busy_or_not() {
        let shutdown = CancellationToken::new();
        let slots = Slots::new(2, &shutdown);
        let idle = slots.claim().await;
        let busy = slots.claim().await;
        busy.enter(Phase::Busy).unwrap();
        shutdown.cancel();
        // Both signals fire (a busy call must not hold up the shutdown)...
        idle.closing().await;
        busy.closing().await;
        // ...and once the slots are closed no connection moves on, busy or not.
        assert!(idle.enter(Phase::Reading).is_ok(), "not closed yet");
        slots.close();
        assert!(idle.enter(Phase::Idle).is_err());
        assert!(busy.enter(Phase::Idle).is_err());
        assert!(busy.enter(Phase::Writing).is_err());
    }

    #[tokio::test]
    async fn when_all_are_busy_a_newcomer_waits_for_one_to_turn_evictable() {
        let slots = Slots::new(2, &CancellationToken::new());
        let first = slots.claim().await;
        let second = slots.claim().await;
        first.enter(Phase::Busy).unwrap();
        second.enter(Phase::Busy).unwrap();
        let claiming = tokio::spawn({
            let slots = slots.clone();
            async move { slots.claim().await }
        });
        tokio::task::yield_now().await;
        assert!(!claiming.is_finished());
        second.enter(Phase::Idle).unwrap();
        second.closing().await;
        assert!(first.enter(Phase::Writing).is_ok(), "the busy one is kept");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), claiming)
            .await
            .unwrap()
            .unwrap();
    }
}
