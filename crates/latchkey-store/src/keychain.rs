//! The narrow trait a keychain backend implements: the raw items, one secret document per
//! entry key, and the keychain's lock state. Everything else a [`Store`] does (the non-secret
//! index, reconciling it with the keychain, refresh locks) lives once, in
//! [`IndexedStore`](crate::indexed::IndexedStore), on top of any `Keychain`.
//!
//! A backend whose library blocks implements [`BlockingKeychain`](crate::blocking::BlockingKeychain)
//! instead and is wrapped in [`OnBlockingThreads`](crate::blocking::OnBlockingThreads).
//!
//! [`Store`]: latchkey_core::Store

use latchkey_core::{EntryKey, SecretBytes, StoreFuture, Unlocking};
use latchkey_proto::Secret;

/// A keychain that holds one secret document per entry.
///
/// Errors are [`StoreError`](latchkey_core::StoreError)s and never carry secret bytes: a
/// locked keychain (or one that may not prompt, as over SSH on macOS) is `Locked`, one that
/// cannot be reached is `Unavailable`.
pub trait Keychain: Send + Sync + 'static {
    /// The backend's name, as the `--store` flag spells it (`secret-service`, ...).
    fn name(&self) -> &'static str;

    /// Whether the keychain is locked, as last observed; `None` if it cannot tell (yet).
    /// Must be cheap: it is asked on every `get`.
    fn locked(&self) -> Option<bool>;

    /// The keys of every entry the keychain holds, without reading a secret; `None` when the
    /// keychain cannot enumerate its items (the index is then the only list there is).
    fn list(&self) -> StoreFuture<'_, Option<Vec<EntryKey>>>;

    /// The secret document of an entry; `None` if it has none.
    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>>;

    /// Stores an entry's document whole: afterwards a read returns either the new document or,
    /// if this failed, the old one; never a mix.
    fn write<'a>(&'a self, key: &'a EntryKey, document: &'a SecretBytes) -> StoreFuture<'a, ()>;

    /// Removes an entry's document; `true` if there was one.
    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool>;

    /// How the keychain is unlocked; the default: by the platform, never by latchkey.
    fn unlocking(&self) -> Unlocking {
        Unlocking::Keychain
    }

    /// Unlocks it ([`Store::unlock`](latchkey_core::Store::unlock)); the default refuses.
    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret>, create: bool) -> StoreFuture<'a, ()> {
        let _ = (passphrase, create);
        Box::pin(async move { Err(latchkey_core::refused_lock(self.name())) })
    }

    /// Locks it ([`Store::lock`](latchkey_core::Store::lock)); the default refuses.
    fn lock(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Err(latchkey_core::refused_lock(self.name())) })
    }

    /// Changes its passphrase; the default refuses.
    fn change_passphrase<'a>(&'a self, old: &'a Secret, new: &'a Secret) -> StoreFuture<'a, ()> {
        let _ = (old, new);
        Box::pin(async move {
            Err(latchkey_core::StoreError::Refused(format!(
                "the {} store has no passphrase of latchkey's",
                self.name()
            )))
        })
    }
}
