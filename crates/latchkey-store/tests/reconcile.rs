//! A service opened from a store's index serves those records at once, and `reconcile` then
//! brings them in line with the store's own list without undoing a `set` or `clear` made
//! meanwhile.

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use latchkey_core::{
    EntryKey, EntryRecord, Listed, ManualClock, SecretBytes, Store, StoreFuture, TokenService,
};
use latchkey_proto::{BundleInput, KeyParams, SetParams};
use latchkey_store::memory::MemoryStore;

/// The memory store, plus an index that says what `indexed` returns and, when set, a listing
/// taken earlier that `list` returns (a slow listing that began before later changes).
struct Indexed {
    inner: MemoryStore,
    index: Mutex<Option<Vec<Listed>>>,
    stale_listing: Mutex<Option<Vec<Listed>>>,
}

impl Store for Indexed {
    fn name(&self) -> &'static str {
        "indexed"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn locked(&self) -> Option<bool> {
        None
    }
    fn indexed(&self) -> Option<Vec<Listed>> {
        self.index.lock().unwrap().clone()
    }
    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        match self.stale_listing.lock().unwrap().clone() {
            Some(listed) => Box::pin(async move { Ok(listed) }),
            None => self.inner.list(),
        }
    }
    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        self.inner.read(key)
    }
    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a std::sync::Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        self.inner.write(key, document, record)
    }
    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        self.inner.remove(key)
    }
}

fn set(service: &str) -> SetParams {
    SetParams {
        service: service.into(),
        account: None,
        bundle: BundleInput::ApiKey {
            key: "k".to_owned().into(),
        },
    }
}

fn services(service: &TokenService) -> Vec<String> {
    service.list().into_iter().map(|m| m.service).collect()
}

#[tokio::test]
async fn index_first_then_reconciled_keeping_changes_made_meanwhile() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap(),
    ));
    let store = Arc::new(Indexed {
        inner: MemoryStore::new(),
        index: Mutex::new(None),
        stale_listing: Mutex::new(None),
    });
    // The keychain holds "kept", "unindexed" and "cleared-later".
    let writer = TokenService::open(store.clone(), clock.clone())
        .await
        .unwrap();
    for name in ["kept", "unindexed", "cleared-later"] {
        writer.set(set(name)).await.unwrap();
    }
    // Its index knows "kept", "cleared-later" and a "ghost" the keychain lost.
    let listed = store.inner.list().await.unwrap();
    *store.stale_listing.lock().unwrap() = Some(listed.clone());
    let mut indexed: Vec<Listed> = listed
        .into_iter()
        .filter(|l| l.key.service() != "unindexed")
        .collect();
    let mut ghost = indexed[0].clone();
    ghost.key = EntryKey::new("ghost", None).unwrap();
    std::sync::Arc::make_mut(ghost.record.as_mut().unwrap()).key = ghost.key.clone();
    indexed.push(ghost);
    *store.index.lock().unwrap() = Some(indexed);

    let service = TokenService::open(store.clone(), clock).await.unwrap();
    assert_eq!(services(&service), ["cleared-later", "ghost", "kept"]);
    // Changes made while the (stale) listing runs: they stand whatever it says.
    service.set(set("new")).await.unwrap();
    service
        .clear(KeyParams {
            service: "cleared-later".into(),
            account: None,
        })
        .await
        .unwrap();
    service.reconcile().await;
    assert_eq!(services(&service), ["kept", "new", "unindexed"]);
    // Once is enough.
    service.reconcile().await;
    assert_eq!(services(&service), ["kept", "new", "unindexed"]);
}
