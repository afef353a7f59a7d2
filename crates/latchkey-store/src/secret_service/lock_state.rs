//! The collection's lock state as the keychain last saw it, and the service's epochs.
//!
//! An epoch is one presence of the Secret Service on the bus: it ends when the owner of
//! `org.freedesktop.secrets` goes away. A service that went away cannot vouch for its lock
//! state, and the one that comes next usually starts locked (gnome-keyring unlocks its login
//! collection only from the desktop login), so the state is *locked* from the moment the
//! owner leaves until a connection to the next owner reads the real `Locked` property. An
//! observation made on a connection of an older epoch is dropped: a read of the old service
//! that lands after it left must not unlock the state again.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// The lock state shared by the keychain, its connections' lock watchers and the presence
/// task. `locked` is read on every `get`, so it is one atomic; the epoch is a watch channel so
/// that a prompt in progress wakes when the service leaves.
pub(super) struct LockState {
    /// Whether the collection is locked, as last observed (locked while the service is gone).
    locked: AtomicBool,
    /// The current epoch. Its lock is held while an observation is stored (read) and while an
    /// epoch ends (write), so the two never interleave.
    epoch: watch::Sender<u64>,
}

impl LockState {
    /// Locked, in epoch 0, until a first connection says otherwise.
    pub(super) fn new() -> Self {
        Self {
            locked: AtomicBool::new(true),
            epoch: watch::Sender::new(0),
        }
    }

    /// Whether the collection is locked, as last observed.
    pub(super) fn locked(&self) -> bool {
        self.locked.load(Ordering::SeqCst)
    }

    /// The current epoch.
    pub(super) fn epoch(&self) -> u64 {
        *self.epoch.borrow()
    }

    /// Wakes on the end of the current epoch (the service left).
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Records `locked` as read on a connection of `epoch`, returning the state before;
    /// ignored, and `None`, if the service went away since.
    pub(super) fn observe(&self, epoch: u64, locked: bool) -> Option<bool> {
        let current = self.epoch.borrow();
        if *current != epoch {
            return None;
        }
        Some(self.locked.swap(locked, Ordering::SeqCst))
    }

    /// A read or write found the collection locked. True in any epoch: it only ever locks.
    pub(super) fn saw_locked(&self) {
        self.locked.store(true, Ordering::SeqCst);
    }

    /// The service went away: the state is locked from now until a connection to the next
    /// owner reads it. Returns the new epoch.
    pub(super) fn service_gone(&self) -> u64 {
        let mut now = 0;
        self.epoch.send_modify(|epoch| {
            *epoch += 1;
            now = *epoch;
            self.locked.store(true, Ordering::SeqCst);
        });
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_until_a_connection_says_otherwise() {
        let state = LockState::new();
        assert!(state.locked());
        assert_eq!(state.observe(0, false), Some(true));
        assert!(!state.locked());
    }

    #[test]
    fn the_service_leaving_locks_and_starts_a_new_epoch() {
        let state = LockState::new();
        state.observe(0, false);
        assert_eq!(state.service_gone(), 1);
        assert!(state.locked());
        assert_eq!(state.epoch(), 1);
    }

    #[test]
    fn an_observation_of_the_old_service_is_dropped() {
        let state = LockState::new();
        state.observe(0, false);
        state.service_gone();
        // A read that started before the service left lands afterwards.
        assert_eq!(state.observe(0, false), None);
        assert!(
            state.locked(),
            "a service that left cannot unlock the state"
        );
        // The next service's connection is believed.
        assert_eq!(state.observe(1, false), Some(true));
        assert!(!state.locked());
    }

    #[test]
    fn a_locked_read_locks_in_any_epoch() {
        let state = LockState::new();
        state.observe(0, false);
        state.saw_locked();
        assert!(state.locked());
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_service_leaves() {
        let state = LockState::new();
        let mut waiter = state.subscribe();
        state.service_gone();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter.changed())
            .await
            .expect("woken")
            .expect("the state is alive");
        assert_eq!(*waiter.borrow(), 1);
    }
}
