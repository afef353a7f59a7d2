//! The store in use, which `migrate` swaps for another while the service runs.
//!
//! [`CurrentStore`] is itself a [`Store`] that hands every call to the store in use at the
//! moment of the call, so the service calls it as it would call any store. Reading which
//! store is in use takes a read lock held for a pointer copy only; `locked()`, asked on every
//! `get`, holds it for that call and clones nothing. An async call holds its own reference to
//! the store it started on, so a swap never pulls a store from under a call in flight.

use std::sync::{Arc, PoisonError, RwLock};

use latchkey_proto::Secret;

use crate::key::EntryKey;
use crate::record::EntryRecord;
use crate::store::{Listed, RefreshLock, SecretBytes, Store, StoreFuture, Unlocking};

/// The store in use; see the module comment.
pub(super) struct CurrentStore(RwLock<Arc<dyn Store>>);

impl CurrentStore {
    pub(super) fn new(store: Arc<dyn Store>) -> Self {
        Self(RwLock::new(store))
    }

    /// The store in use now.
    pub(super) fn get(&self) -> Arc<dyn Store> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Uses `store` from now on.
    pub(super) fn replace(&self, store: Arc<dyn Store>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = store;
    }

    fn with<T>(&self, f: impl FnOnce(&dyn Store) -> T) -> T {
        f(&**self.0.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Whether two handles are the same store.
pub(super) fn same(a: &Arc<dyn Store>, b: &Arc<dyn Store>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl Store for CurrentStore {
    fn name(&self) -> &'static str {
        self.with(|s| s.name())
    }

    fn persistent(&self) -> bool {
        self.with(|s| s.persistent())
    }

    fn locked(&self) -> Option<bool> {
        self.with(|s| s.locked())
    }

    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        let store = self.get();
        Box::pin(async move { store.list().await })
    }

    fn indexed(&self) -> Option<Vec<Listed>> {
        self.with(|s| s.indexed())
    }

    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        let store = self.get();
        Box::pin(async move { store.read(key).await })
    }

    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        let store = self.get();
        Box::pin(async move { store.write(key, document, record).await })
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        let store = self.get();
        Box::pin(async move { store.remove(key).await })
    }

    fn refresh_lock<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<RefreshLock>> {
        let store = self.get();
        Box::pin(async move { store.refresh_lock(key).await })
    }

    fn unlocking(&self) -> Unlocking {
        self.with(|s| s.unlocking())
    }

    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret>, create: bool) -> StoreFuture<'a, ()> {
        let store = self.get();
        Box::pin(async move { store.unlock(passphrase, create).await })
    }

    fn lock(&self) -> StoreFuture<'_, ()> {
        let store = self.get();
        Box::pin(async move { store.lock().await })
    }

    fn change_passphrase<'a>(&'a self, old: &'a Secret, new: &'a Secret) -> StoreFuture<'a, ()> {
        let store = self.get();
        Box::pin(async move { store.change_passphrase(old, new).await })
    }
}
