//! The one [`Store`] every persistent keychain shares: a [`Keychain`] for the secret
//! documents, the non-secret [`IndexFile`] beside it for the records (so `status` and `list`
//! never unlock or prompt), the reconciliation of the two, and the per-entry refresh locks.
//!
//! A write stores the document first and then the record: if the keychain refuses, nothing
//! changed; if the index cannot be written, the secret is safe and the index heals on the next
//! listing. A listing asks the keychain for its keys and drops index records of entries the
//! keychain no longer has. A keychain that cannot enumerate its items (Credential Manager and
//! macOS Keychain through `keyring`) is listed by its index alone.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use latchkey_core::{
    EntryKey, EntryRecord, Listed, RefreshLock, SecretBytes, Store, StoreFuture, Unlocking,
};
use latchkey_proto::Secret;
use tracing::{info, warn};

use crate::index::IndexFile;
use crate::keychain::Keychain;

/// A keychain with its index and refresh locks.
pub struct IndexedStore<K> {
    keychain: K,
    index: IndexFile,
    /// The folder of the per-entry refresh locks, beside the index.
    locks: PathBuf,
    /// Held open for the store's life: marks this daemon as a user of the store.
    _joined: Option<File>,
}

impl<K: Keychain> IndexedStore<K> {
    /// Puts `keychain` together with the index at `index` (loaded now; its refresh locks go in
    /// a folder beside it).
    pub fn new(keychain: K, index: PathBuf) -> Self {
        let index = IndexFile::load(index);
        let locks = crate::refresh_lock::folder_for(index.path());
        info!(
            store = keychain.name(),
            index = %index.path().display(),
            trusted = index.trusted(),
            "store opened"
        );
        Self {
            _joined: crate::refresh_lock::join(&locks),
            keychain,
            index,
            locks,
        }
    }

    /// The keychain underneath.
    pub fn keychain(&self) -> &K {
        &self.keychain
    }

    fn index_listing(&self) -> Vec<Listed> {
        self.index
            .all()
            .into_iter()
            .map(|record| Listed {
                key: record.key.clone(),
                record: Some(record),
            })
            .collect()
    }

    /// The keychain's keys with the index's records, after dropping index records of entries
    /// the keychain no longer holds.
    async fn reconcile(&self, keys: Vec<EntryKey>) -> Vec<Listed> {
        let mut present = HashSet::new();
        let mut listed = Vec::new();
        for key in keys {
            if present.insert(key.clone()) {
                let record = self.index.get(&key);
                listed.push(Listed { key, record });
            }
        }
        if let Err(err) = self.index.retain(|k| present.contains(k)).await {
            warn!(error = %err, "could not prune the index");
        }
        listed
    }
}

impl<K: Keychain> Store for IndexedStore<K> {
    fn name(&self) -> &'static str {
        self.keychain.name()
    }

    fn persistent(&self) -> bool {
        true
    }

    fn locked(&self) -> Option<bool> {
        self.keychain.locked()
    }

    fn indexed(&self) -> Option<Vec<Listed>> {
        self.index.trusted().then(|| self.index_listing())
    }

    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        Box::pin(async move {
            match self.keychain.list().await {
                Ok(Some(keys)) => Ok(self.reconcile(keys).await),
                Ok(None) => Ok(self.index_listing()),
                Err(err) => {
                    warn!(error = %err, "cannot list keychain items; serving the index as it is");
                    Ok(self.index_listing())
                }
            }
        })
    }

    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        self.keychain.read(key)
    }

    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.keychain.write(key, document).await?;
            if let Err(err) = self.index.put(Arc::clone(record)).await {
                // The secret is stored; the index heals on the next listing.
                warn!(error = %err, "entry stored but the index was not updated");
            }
            Ok(())
        })
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let removed = self.keychain.remove(key).await?;
            if let Err(err) = self.index.remove(key).await {
                warn!(error = %err, "entry removed but the index was not updated");
            }
            Ok(removed)
        })
    }

    /// Another daemon of this user may share the keychain and the data folder: a lock file per
    /// entry beside the index.
    fn refresh_lock<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<RefreshLock>> {
        Box::pin(crate::refresh_lock::take(&self.locks, key))
    }

    fn unlocking(&self) -> Unlocking {
        self.keychain.unlocking()
    }

    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret>, create: bool) -> StoreFuture<'a, ()> {
        self.keychain.unlock(passphrase, create)
    }

    fn lock(&self) -> StoreFuture<'_, ()> {
        self.keychain.lock()
    }

    fn change_passphrase<'a>(&'a self, old: &'a Secret, new: &'a Secret) -> StoreFuture<'a, ()> {
        self.keychain.change_passphrase(old, new)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use latchkey_core::StoreError;
    use zeroize::Zeroizing;

    use super::*;
    use crate::blocking::{BlockingKeychain, OnBlockingThreads};

    /// Documents in memory, shared with the test so it can change them behind the store's
    /// back; `enumerates` says whether `list` answers.
    #[derive(Clone, Default)]
    struct Shelf {
        documents: Arc<Mutex<BTreeMap<EntryKey, Vec<u8>>>>,
        enumerates: bool,
    }

    impl BlockingKeychain for Shelf {
        fn name(&self) -> &'static str {
            "shelf"
        }
        fn list(&self) -> Result<Option<Vec<EntryKey>>, StoreError> {
            let documents = self.documents.lock().unwrap();
            Ok(self.enumerates.then(|| documents.keys().cloned().collect()))
        }
        fn read(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError> {
            let documents = self.documents.lock().unwrap();
            Ok(documents.get(key).map(|d| Zeroizing::new(d.clone())))
        }
        fn write(&self, key: &EntryKey, document: &[u8]) -> Result<(), StoreError> {
            if document == b"refused" {
                return Err(StoreError::Locked);
            }
            let mut documents = self.documents.lock().unwrap();
            documents.insert(key.clone(), document.to_vec());
            Ok(())
        }
        fn remove(&self, key: &EntryKey) -> Result<bool, StoreError> {
            Ok(self.documents.lock().unwrap().remove(key).is_some())
        }
    }

    fn record(service: &str) -> Arc<EntryRecord> {
        crate::test_support::api_key_record(EntryKey::new(service, None).unwrap())
    }

    async fn put(store: &impl Store, service: &str, document: &[u8]) -> Result<(), StoreError> {
        let record = record(service);
        let document = Zeroizing::new(document.to_vec());
        store.write(&record.key, &document, &record).await
    }

    fn services(listed: &[Listed]) -> Vec<&str> {
        listed.iter().map(|l| l.key.service()).collect()
    }

    #[tokio::test]
    async fn a_listing_drops_index_records_the_keychain_no_longer_has() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("shelf-index.json");
        let shelf = Shelf {
            enumerates: true,
            ..Shelf::default()
        };
        let store = IndexedStore::new(OnBlockingThreads::new(shelf.clone()), index.clone());
        assert_eq!(store.indexed(), None, "no index file yet: not trusted");
        put(&store, "a", b"doc a").await.unwrap();
        put(&store, "b", b"doc b").await.unwrap();
        // Removed from the keychain by someone else.
        shelf
            .documents
            .lock()
            .unwrap()
            .remove(&EntryKey::new("b", None).unwrap());
        let listed = store.list().await.unwrap();
        assert_eq!(services(&listed), ["a"]);
        assert!(listed[0].record.is_some());
        drop(store);
        let again = IndexedStore::new(OnBlockingThreads::new(shelf), index);
        assert_eq!(services(&again.indexed().unwrap()), ["a"]);
        assert_eq!(again.locked(), None, "nothing observed yet");
        assert_eq!(
            again
                .read(&EntryKey::new("a", None).unwrap())
                .await
                .unwrap()
                .map(|d| d.to_vec()),
            Some(b"doc a".to_vec())
        );
        assert_eq!(again.locked(), Some(false));
    }

    #[tokio::test]
    async fn a_keychain_that_cannot_enumerate_is_listed_by_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let shelf = Shelf::default();
        let store = IndexedStore::new(
            OnBlockingThreads::new(shelf.clone()),
            dir.path().join("shelf-index.json"),
        );
        put(&store, "a", b"doc a").await.unwrap();
        put(&store, "b", b"doc b").await.unwrap();
        assert_eq!(services(&store.list().await.unwrap()), ["a", "b"]);
        assert!(store
            .remove(&EntryKey::new("a", None).unwrap())
            .await
            .unwrap());
        assert_eq!(services(&store.list().await.unwrap()), ["b"]);
        assert_eq!(shelf.documents.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_refused_write_changes_neither_keychain_nor_index() {
        let dir = tempfile::tempdir().unwrap();
        let shelf = Shelf::default();
        let store = IndexedStore::new(
            OnBlockingThreads::new(shelf.clone()),
            dir.path().join("shelf-index.json"),
        );
        put(&store, "a", b"doc a").await.unwrap();
        assert_eq!(put(&store, "a", b"refused").await, Err(StoreError::Locked));
        assert_eq!(store.locked(), Some(true));
        assert_eq!(
            store
                .read(&EntryKey::new("a", None).unwrap())
                .await
                .unwrap()
                .map(|d| d.to_vec()),
            Some(b"doc a".to_vec())
        );
        assert_eq!(
            put(&store, "new", b"refused").await,
            Err(StoreError::Locked)
        );
        assert_eq!(services(&store.list().await.unwrap()), ["a"]);
    }
}
