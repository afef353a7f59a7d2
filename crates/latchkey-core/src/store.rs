//! The one trait every keychain backend implements.
//!
//! A store keeps, per entry, an opaque secret document (the serialized [`StoredBundle`]) and the
//! entry's non-secret [`EntryRecord`]. Listing records must never unlock the keychain or prompt.
//! Methods return boxed futures so the service can hold any backend as `Arc<dyn Store>`; a
//! backend whose library blocks runs those calls off the async runtime itself. A store that
//! several daemons may share offers a refresh lock per entry, so that they never spend the same
//! refresh token twice.
//!
//! [`StoredBundle`]: crate::StoredBundle

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use latchkey_proto::Secret;
use zeroize::Zeroizing;

use crate::key::EntryKey;
use crate::record::EntryRecord;

/// Secret bytes (a serialized bundle), wiped on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// The future a store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// An entry as listed by a store: its key, and its record when the store has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The entry.
    pub key: EntryKey,
    /// Its non-secret record, if the store keeps one for it (a keychain item written by an
    /// older daemon, or whose index was lost, has none until its document is read). Shared:
    /// the service keeps this very record, not a copy.
    pub record: Option<Arc<EntryRecord>>,
}

/// Why a store operation failed. Never carries secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The keychain is locked; nothing was read or written.
    #[error("the keychain is locked")]
    Locked,
    /// The keychain cannot be reached right now.
    #[error("the keychain is unavailable: {0}")]
    Unavailable(String),
    /// The keychain answered with an error.
    #[error("the keychain failed: {0}")]
    Backend(String),
    /// The passphrase given to unlock (or to change the passphrase) was wrong.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Too many wrong passphrases in a row: no attempt is checked until the wait is over.
    #[error("too many wrong passphrases; try again in {secs} s")]
    TooSoon {
        /// Seconds until the next attempt is checked.
        secs: u64,
    },
    /// The store cannot do what was asked (the memory store has no lock, a passphrase store
    /// has no passphrase yet, ...); the message says what to do instead.
    #[error("{0}")]
    Refused(String),
}

/// How a store is unlocked, for `status` and for the CLI's `unlock` (which asks for a
/// passphrase only when the store takes one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlocking {
    /// It never locks (memory).
    Never,
    /// By the platform keychain itself: the desktop login, or its own prompt when asked.
    Keychain,
    /// By a passphrase given to `latchkey unlock`; `set` says whether one was chosen yet
    /// (the first unlock chooses it).
    Passphrase {
        /// Whether a passphrase exists.
        set: bool,
    },
}

/// Held while an entry refreshes, by a store that other processes may share: while one daemon
/// holds it, no other process refreshes that entry. Dropping it releases it.
pub struct RefreshLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl RefreshLock {
    /// A lock released when `guard` is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self(Box::new(guard))
    }
}

impl std::fmt::Debug for RefreshLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshLock")
    }
}

/// A place to keep secrets.
pub trait Store: Send + Sync + 'static {
    /// A short name for status output and logs (`secret-service`, `memory`, ...).
    fn name(&self) -> &'static str;

    /// Whether entries survive a restart of the daemon.
    fn persistent(&self) -> bool;

    /// Whether the keychain is locked right now, as last observed; `None` if it cannot tell.
    /// Must be cheap: it is asked on every `get`.
    fn locked(&self) -> Option<bool>;

    /// Every entry the store holds, without reading any secret.
    fn list(&self) -> StoreFuture<'_, Vec<Listed>>;

    /// The entries the store's own index knows, from memory, when that index was read whole:
    /// the service then serves them at once and checks them against [`Store::list`] later
    /// (listing a keychain of thousands of items takes seconds). `None` (the default) when the
    /// store keeps no such index or it was missing or unreadable: `list` is asked first.
    fn indexed(&self) -> Option<Vec<Listed>> {
        None
    }

    /// The secret document of an entry.
    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>>;

    /// Writes an entry whole: either the new document and record are stored, or the old ones
    /// stay as they were. The record is the service's own: a store that keeps records keeps
    /// a reference to it (at 10,000 entries a copy per store costs megabytes).
    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()>;

    /// Removes an entry; `true` if it existed.
    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool>;

    /// Takes the entry's refresh lock, shared with every process using the same store, waiting
    /// while another holds it; held across reading, refreshing and writing the entry.
    /// `None` for a store only this process uses (the default), which needs none.
    fn refresh_lock<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<RefreshLock>> {
        let _ = key;
        Box::pin(async { Ok(None) })
    }

    /// How this store is unlocked. The default: it never locks.
    fn unlocking(&self) -> Unlocking {
        Unlocking::Never
    }

    /// Unlocks the store. A passphrase store needs `passphrase`; with `create` and no
    /// passphrase chosen yet, it chooses this one. A keychain store asks the keychain to
    /// unlock (the one place a prompt may appear: the user asked for it).
    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret>, create: bool) -> StoreFuture<'a, ()> {
        let _ = (passphrase, create);
        Box::pin(async move { Err(refused_lock(self.name())) })
    }

    /// Locks the store: secrets cannot be read until the next unlock.
    fn lock(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Err(refused_lock(self.name())) })
    }

    /// Changes the passphrase of a passphrase store.
    fn change_passphrase<'a>(&'a self, old: &'a Secret, new: &'a Secret) -> StoreFuture<'a, ()> {
        let _ = (old, new);
        Box::pin(async move {
            Err(StoreError::Refused(format!(
                "the {} store has no passphrase of latchkey's",
                self.name()
            )))
        })
    }
}

/// The refusal of a store that has no lock of latchkey's.
pub fn refused_lock(store: &str) -> StoreError {
    StoreError::Refused(format!(
        "the {store} store has no lock that latchkey controls"
    ))
}
