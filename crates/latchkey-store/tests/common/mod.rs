//! Test stores shared by the service tests: the memory backend with failures injected.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use latchkey_core::{EntryKey, EntryRecord, Listed, SecretBytes, Store, StoreError, StoreFuture};
use latchkey_store::memory::MemoryStore;

/// A memory store whose writes and reads can be made to fail, to check what the service keeps.
#[derive(Default)]
pub struct Flaky {
    inner: MemoryStore,
    /// Writes fail while set.
    pub fail_writes: AtomicBool,
    /// Reads fail with `Locked`, and the store reports itself locked, while set.
    pub locked: AtomicBool,
    /// Reads asked of it (failed ones too).
    pub reads: AtomicUsize,
}

impl Store for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn locked(&self) -> Option<bool> {
        Some(self.locked.load(Ordering::SeqCst))
    }
    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        self.inner.list()
    }
    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.locked.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Locked) });
        }
        self.inner.read(key)
    }
    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a std::sync::Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Backend("injected".into())) });
        }
        self.inner.write(key, document, record)
    }
    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        self.inner.remove(key)
    }
}
