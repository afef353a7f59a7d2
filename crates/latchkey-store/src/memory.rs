//! A store that keeps entries in the daemon's memory only. Nothing survives a restart; the
//! daemon says so loudly when it falls back to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use latchkey_core::{EntryKey, EntryRecord, Listed, SecretBytes, Store, StoreFuture};

/// The memory backend.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<EntryKey, (SecretBytes, Arc<EntryRecord>)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<EntryKey, (SecretBytes, Arc<EntryRecord>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn persistent(&self) -> bool {
        false
    }

    fn locked(&self) -> Option<bool> {
        None
    }

    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        let listed = self
            .entries()
            .iter()
            .map(|(key, (_, record))| Listed {
                key: key.clone(),
                record: Some(record.clone()),
            })
            .collect();
        Box::pin(async move { Ok(listed) })
    }

    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        let doc = self.entries().get(key).map(|(doc, _)| doc.clone());
        Box::pin(async move { Ok(doc) })
    }

    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        self.entries()
            .insert(key.clone(), (document.clone(), Arc::clone(record)));
        Box::pin(async move { Ok(()) })
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        let removed = self.entries().remove(key).is_some();
        Box::pin(async move { Ok(removed) })
    }
}
