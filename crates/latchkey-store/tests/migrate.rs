//! `TokenService::migrate` between real stores: two memory stores, and an indexed store over
//! an in-memory keychain with real index and refresh-lock files. Every kind moves with right
//! counts; a target that fails or corrupts midway stops the move with nothing lost and a
//! re-run finishes it; a move cut off midway (as by `kill -9`) leaves the old store whole;
//! refreshes racing a move never lose a rotated refresh token.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use common::Flaky;
use latchkey_core::{
    EntryKey, EntryRecord, Error, Listed, ManualClock, MigrateError, RefreshError, RefreshFuture,
    RefreshRequest, Refreshed, Refresher, RevokeFuture, SecretBytes, Store, StoreError,
    StoreFuture, StoredBundle, TokenBundle, TokenService,
};
use latchkey_proto::{BundleInput, GetParams, Secret, SetParams};
use latchkey_store::blocking::{BlockingKeychain, OnBlockingThreads};
use latchkey_store::indexed::IndexedStore;
use latchkey_store::memory::MemoryStore;
use zeroize::Zeroizing;

/// Issues rotating tokens and refuses a refresh token presented twice; each refresh waits for
/// `hold` when it is set.
#[derive(Default)]
struct Provider {
    calls: AtomicUsize,
    spent: Mutex<HashSet<String>>,
    reused: AtomicUsize,
    hold: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

impl Refresher for Provider {
    fn refresh<'a>(&'a self, request: RefreshRequest<'a>) -> RefreshFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let hold = self.hold.lock().unwrap().clone();
            if let Some(hold) = hold {
                hold.notified().await;
            }
            if !self
                .spent
                .lock()
                .unwrap()
                .insert(request.refresh_token.expose().to_owned())
            {
                self.reused.fetch_add(1, Ordering::SeqCst);
                return Err(RefreshError::InvalidGrant);
            }
            Ok(Refreshed {
                access_token: format!("access-{n}").into(),
                refresh_token: Some(format!("refresh-{n}").into()),
                token_type: "Bearer".into(),
                expires_in: Some(3600),
                scopes: None,
                id_token: None,
            })
        })
    }

    fn revoke_orphan<'a>(&'a self, _provider: &'a str, _token: &'a Secret) -> RevokeFuture<'a> {
        Box::pin(async {})
    }
}

/// A memory store that can fail writes after a number of them, corrupt what one entry reads
/// back, and hold each write until a permit is given.
#[derive(Default)]
struct Target {
    inner: MemoryStore,
    /// Writes that may still succeed; `None`: all.
    writes_left: Mutex<Option<usize>>,
    /// The service whose documents read back altered.
    corrupt: Mutex<Option<String>>,
    /// When set, each write waits for a permit.
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// Writes started.
    started: AtomicUsize,
}

impl Store for Target {
    fn name(&self) -> &'static str {
        "target"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn locked(&self) -> Option<bool> {
        None
    }
    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        self.inner.list()
    }
    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        let corrupt = self.corrupt.lock().unwrap().as_deref() == Some(key.service());
        Box::pin(async move {
            let doc = self.inner.read(key).await?;
            Ok(doc.map(|mut d| {
                if corrupt {
                    d.push(b' ');
                }
                d
            }))
        })
    }
    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a std::sync::Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            let gate = self.gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            {
                let mut left = self.writes_left.lock().unwrap();
                match left.as_mut() {
                    Some(0) => return Err(StoreError::Unavailable("injected".into())),
                    Some(n) => *n -= 1,
                    None => {}
                }
            }
            self.inner.write(key, document, record).await
        })
    }
    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        self.inner.remove(key)
    }
}

/// A keychain in memory, for an [`IndexedStore`] with real index and lock files.
#[derive(Clone, Default)]
struct Shelf(Arc<Mutex<BTreeMap<EntryKey, Vec<u8>>>>);

impl BlockingKeychain for Shelf {
    fn name(&self) -> &'static str {
        "shelf"
    }
    fn list(&self) -> Result<Option<Vec<EntryKey>>, StoreError> {
        Ok(Some(self.0.lock().unwrap().keys().cloned().collect()))
    }
    fn read(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError> {
        Ok(self.0.lock().unwrap().get(key).cloned().map(Zeroizing::new))
    }
    fn write(&self, key: &EntryKey, document: &[u8]) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .insert(key.clone(), document.to_vec());
        Ok(())
    }
    fn remove(&self, key: &EntryKey) -> Result<bool, StoreError> {
        Ok(self.0.lock().unwrap().remove(key).is_some())
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap(),
    ))
}

fn oauth(service: &str, expires_in: i64) -> SetParams {
    SetParams {
        service: service.into(),
        account: None,
        bundle: BundleInput::Oauth2 {
            access_token: "access-0".into(),
            refresh_token: Some("refresh-0".into()),
            token_type: None,
            expires_at: None,
            expires_in: Some(expires_in),
            scopes: vec!["repo".into()],
            id_token: None,
            provider: Some("github".into()),
        },
    }
}

/// `n` entries of each kind: `key-i` (API key), `pw-i` (password, account `a`), `oa-i` (OAuth
/// with a refresh token).
async fn fill(service: &TokenService, n: usize) {
    for i in 0..n {
        service
            .set(SetParams {
                service: format!("key-{i}"),
                account: None,
                bundle: BundleInput::ApiKey {
                    key: format!("sk-{i}").into(),
                },
            })
            .await
            .unwrap();
        service
            .set(SetParams {
                service: format!("pw-{i}"),
                account: Some("a".into()),
                bundle: BundleInput::Password {
                    username: format!("user-{i}"),
                    password: format!("pass-{i}").into(),
                },
            })
            .await
            .unwrap();
        service.set(oauth(&format!("oa-{i}"), 3600)).await.unwrap();
    }
}

fn get(service: &str, account: Option<&str>) -> GetParams {
    GetParams {
        service: service.into(),
        account: account.map(str::to_owned),
        scopes: vec![],
        min_valid_secs: None,
        grant: None,
        proxy: false,
        rejected: None,
    }
}

/// Every entry of `fill(n)` is served with its own secret.
async fn all_served(service: &TokenService, n: usize) {
    for i in 0..n {
        let key = service.get(&get(&format!("key-{i}"), None)).await.unwrap();
        assert_eq!(key.secret.expose(), format!("sk-{i}"));
        let pw = service
            .get(&get(&format!("pw-{i}"), Some("a")))
            .await
            .unwrap();
        assert_eq!(pw.secret.expose(), format!("pass-{i}"));
        assert_eq!(pw.username, Some(format!("user-{i}")));
        let token = service.get(&get(&format!("oa-{i}"), None)).await.unwrap();
        assert_eq!(token.secret.expose(), "access-0");
    }
}

async fn count(store: &dyn Store) -> usize {
    store.list().await.unwrap().len()
}

/// The refresh token a store holds for `service`, if it holds the entry.
async fn refresh_token(store: &dyn Store, service: &str) -> Option<String> {
    let doc = store
        .read(&EntryKey::new(service, None).unwrap())
        .await
        .unwrap()?;
    match StoredBundle::from_document(&doc).unwrap().bundle {
        TokenBundle::OAuth2(b) => Some(b.refresh_token.unwrap().expose().to_owned()),
        _ => panic!("not an OAuth entry"),
    }
}

/// A fresh cache over `store` (nothing cached): what a restarted daemon would serve.
async fn reopened(store: Arc<dyn Store>) -> TokenService {
    TokenService::open(store, clock()).await.unwrap()
}

#[tokio::test]
async fn every_kind_moves_there_and_back_with_right_counts() {
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = TokenService::open(Arc::clone(&memory), clock())
        .await
        .unwrap();
    fill(&service, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let shelf = Shelf::default();
    let indexed: Arc<dyn Store> = Arc::new(IndexedStore::new(
        OnBlockingThreads::new(shelf.clone()),
        dir.path().join("shelf-index.json"),
    ));

    let moved = service.migrate(Arc::clone(&indexed)).await.unwrap();
    assert_eq!((moved.from, moved.to), ("memory", "shelf"));
    assert_eq!(
        (moved.copied, moved.already_there, moved.removed, moved.left),
        (30, 0, 30, 0)
    );
    assert_eq!(count(&*memory).await, 0);
    assert_eq!(shelf.0.lock().unwrap().len(), 30);
    assert_eq!(service.store_info().name, "shelf");
    assert_eq!(service.list().len(), 30);
    all_served(&service, 10).await;
    // What lands in the new store is whole: a fresh cache over it serves every entry, with its
    // record (the index was written too).
    all_served(&reopened(Arc::clone(&indexed)).await, 10).await;
    let index = IndexedStore::new(
        OnBlockingThreads::new(shelf.clone()),
        dir.path().join("shelf-index.json"),
    );
    assert_eq!(index.indexed().unwrap().len(), 30);
    // New writes go to the new store.
    service.set(oauth("later", 3600)).await.unwrap();
    assert_eq!(count(&*indexed).await, 31);
    assert_eq!(count(&*memory).await, 0);

    let back = service.migrate(Arc::clone(&memory)).await.unwrap();
    assert_eq!(
        (back.copied, back.already_there, back.removed, back.left),
        (31, 0, 31, 0)
    );
    assert!(shelf.0.lock().unwrap().is_empty());
    assert_eq!(count(&*memory).await, 31);
    all_served(&service, 10).await;

    assert!(matches!(
        service.migrate(Arc::clone(&memory)).await,
        Err(MigrateError::SameStore { store: "memory" })
    ));
}

#[tokio::test]
async fn a_target_failing_midway_loses_nothing_and_a_rerun_finishes() {
    let source: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = TokenService::open(Arc::clone(&source), clock())
        .await
        .unwrap();
    fill(&service, 4).await;
    let target = Arc::new(Target::default());
    *target.writes_left.lock().unwrap() = Some(5);

    let err = service.migrate(target.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::Write {
                store: "target",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), latchkey_proto::ErrorKind::BackendUnavailable);
    assert!(err
        .to_rpc()
        .data
        .hint
        .unwrap()
        .contains("nothing was removed"));
    // The old store is whole and still in use.
    assert_eq!(count(&*source).await, 12);
    assert_eq!(count(&*target).await, 5);
    assert_eq!(service.store_info().name, "memory");
    service.set(oauth("during", 60)).await.unwrap();
    assert_eq!(count(&*source).await, 13);
    all_served(&service, 4).await;

    *target.writes_left.lock().unwrap() = None;
    let rerun = service.migrate(target.clone()).await.unwrap();
    assert_eq!(
        (rerun.copied, rerun.already_there, rerun.removed),
        (8, 5, 13)
    );
    assert_eq!(count(&*source).await, 0);
    assert_eq!(count(&*target).await, 13);
    all_served(&service, 4).await;
}

#[tokio::test]
async fn a_copy_that_reads_back_wrong_stops_the_move_and_stays_in_the_old_store() {
    let source: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = TokenService::open(Arc::clone(&source), clock())
        .await
        .unwrap();
    fill(&service, 3).await;
    let target = Arc::new(Target::default());
    *target.corrupt.lock().unwrap() = Some("oa-1".into());

    let err = service.migrate(target.clone()).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::Mismatch { entry, .. } if entry.service() == "oa-1"),
        "{err}"
    );
    assert_eq!(err.to_rpc().data.kind, latchkey_proto::ErrorKind::Internal);
    assert_eq!(count(&*source).await, 9);
    // The wrong copy is not left behind to be counted as already there.
    let key = EntryKey::new("oa-1", None).unwrap();
    assert!(target.inner.read(&key).await.unwrap().is_none());
    assert_eq!(service.store_info().name, "memory");
    all_served(&service, 3).await;

    *target.corrupt.lock().unwrap() = None;
    let rerun = service.migrate(target.clone()).await.unwrap();
    assert_eq!(rerun.copied + rerun.already_there, 9);
    assert_eq!(rerun.removed, 9);
    all_served(&reopened(target).await, 3).await;
}

#[tokio::test]
async fn a_move_cut_off_midway_leaves_the_old_store_whole_and_a_rerun_counts_what_got_there() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("shelf-index.json");
    let shelf = Shelf::default();
    let source: Arc<dyn Store> = Arc::new(IndexedStore::new(
        OnBlockingThreads::new(shelf.clone()),
        index.clone(),
    ));
    let service = TokenService::open(Arc::clone(&source), clock())
        .await
        .unwrap();
    fill(&service, 5).await;
    let target = Arc::new(Target::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(4));
    *target.gate.lock().unwrap() = Some(gate.clone());

    // The move stops for good at the fifth write, like a daemon killed there.
    let cut = {
        let service = service.clone();
        let target: Arc<dyn Store> = target.clone();
        tokio::spawn(async move { service.migrate(target).await })
    };
    while target.started.load(Ordering::SeqCst) < 5 {
        tokio::task::yield_now().await;
    }
    cut.abort();
    assert!(cut.await.unwrap_err().is_cancelled());
    assert_eq!(count(&*target).await, 4);
    assert_eq!(shelf.0.lock().unwrap().len(), 15);
    // A restarted daemon finds the old store whole.
    drop(service);
    drop(source);
    let source: Arc<dyn Store> = Arc::new(IndexedStore::new(
        OnBlockingThreads::new(shelf.clone()),
        index,
    ));
    let service = reopened(Arc::clone(&source)).await;
    all_served(&service, 5).await;

    gate.add_permits(1000);
    let rerun = service.migrate(target.clone()).await.unwrap();
    assert_eq!(
        (rerun.copied, rerun.already_there, rerun.removed),
        (11, 4, 15)
    );
    assert!(shelf.0.lock().unwrap().is_empty());
    assert_eq!(count(&*target).await, 15);
    all_served(&service, 5).await;
}

#[tokio::test]
async fn a_failed_switch_changes_nothing() {
    let source: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = TokenService::open(Arc::clone(&source), clock())
        .await
        .unwrap();
    fill(&service, 2).await;
    let target: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let err = service
        .migrate_with(Arc::clone(&target), || Err("disk full"))
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Switch { .. }), "{err}");
    assert!(err.to_string().contains("disk full"));
    assert_eq!(count(&*source).await, 6);
    service.set(oauth("after", 60)).await.unwrap();
    assert_eq!(count(&*source).await, 7);
    // The copies made count as already there next time.
    let rerun = service.migrate(target).await.unwrap();
    assert_eq!((rerun.copied, rerun.already_there), (1, 6));
}

#[tokio::test]
async fn entries_only_the_stores_know_move_and_are_served_unreadable_ones_stay() {
    let source: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = TokenService::open(Arc::clone(&source), clock())
        .await
        .unwrap();
    fill(&service, 1).await;
    // Written behind the service's back: one readable, one not.
    let other = TokenService::open(Arc::clone(&source), clock())
        .await
        .unwrap();
    other.set(oauth("behind", 3600)).await.unwrap();
    let garbage = EntryKey::new("garbage", None).unwrap();
    let api_key = TokenBundle::ApiKey {
        key: "sk-garbage".into(),
    };
    let record = std::sync::Arc::new(EntryRecord::describe(
        garbage.clone(),
        &api_key,
        Utc::now(),
        None,
    ));
    source
        .write(&garbage, &Zeroizing::new(b"not json".to_vec()), &record)
        .await
        .unwrap();
    // The target holds an entry of its own.
    let target: Arc<dyn Store> = Arc::new(MemoryStore::new());
    TokenService::open(Arc::clone(&target), clock())
        .await
        .unwrap()
        .set(oauth("own", 3600))
        .await
        .unwrap();

    let moved = service.migrate(Arc::clone(&target)).await.unwrap();
    assert_eq!(
        (moved.copied, moved.removed, moved.left, moved.adopted),
        (5, 5, 0, 1),
        "{moved:?}"
    );
    // The garbage document has a record, so it moves as it is (it was unreadable before).
    let names: Vec<String> = service.list().into_iter().map(|m| m.service).collect();
    for name in ["behind", "own", "garbage", "key-0", "pw-0", "oa-0"] {
        assert!(names.contains(&name.to_owned()), "{names:?}");
    }
    assert_eq!(
        service
            .get(&get("behind", None))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-0"
    );
    assert_eq!(
        service
            .get(&get("own", None))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-0"
    );
    assert_eq!(count(&*source).await, 0);

    // Without a record, an unreadable document cannot be described: it stays where it is.
    let next = Arc::new(Target::default());
    let unrecorded: Arc<dyn Store> = Arc::new(NoRecords(target.clone()));
    let fresh = reopened(unrecorded).await;
    let moved = fresh.migrate(next.clone()).await.unwrap();
    assert_eq!((moved.copied, moved.left), (5, 1), "{moved:?}");
    assert!(target.read(&garbage).await.unwrap().is_some());
    assert!(next.inner.read(&garbage).await.unwrap().is_none());
}

/// A store that lists its entries without records (an older daemon's keychain items).
struct NoRecords(Arc<dyn Store>);

impl Store for NoRecords {
    fn name(&self) -> &'static str {
        "norecords"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn locked(&self) -> Option<bool> {
        Some(false)
    }
    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        Box::pin(async move {
            let listed = self.0.list().await?;
            Ok(listed
                .into_iter()
                .map(|l| Listed {
                    key: l.key,
                    record: None,
                })
                .collect())
        })
    }
    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        self.0.read(key)
    }
    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a std::sync::Arc<EntryRecord>,
    ) -> StoreFuture<'a, ()> {
        self.0.write(key, document, record)
    }
    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        self.0.remove(key)
    }
}

#[tokio::test]
async fn leftovers_of_a_move_are_removed_from_the_old_store_and_nothing_else() {
    let old: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = TokenService::open(Arc::clone(&old), clock()).await.unwrap();
    fill(&service, 2).await;
    let new: Arc<dyn Store> = Arc::new(MemoryStore::new());
    service.migrate(Arc::clone(&new)).await.unwrap();
    // As if removing had stopped halfway: copies in the old store, and one entry written
    // there since by someone else.
    for item in new.list().await.unwrap().iter().take(3) {
        let doc = new.read(&item.key).await.unwrap().unwrap();
        let record = item.record.as_ref().unwrap();
        old.write(&item.key, &doc, record).await.unwrap();
    }
    TokenService::open(Arc::clone(&old), clock())
        .await
        .unwrap()
        .set(oauth("someone-else", 60))
        .await
        .unwrap();

    let cleaned = service.remove_leftovers(Arc::clone(&old)).await.unwrap();
    assert_eq!(
        (cleaned.already_there, cleaned.removed, cleaned.left),
        (3, 3, 0)
    );
    let left: Vec<_> = old.list().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key.service(), "someone-else");
    assert_eq!(count(&*new).await, 6);
    all_served(&service, 2).await;
    assert!(matches!(
        service.remove_leftovers(new).await,
        Err(MigrateError::SameStore { .. })
    ));
}

/// A service over `store` refreshing through a fresh provider, with `gh` stored expiring in an
/// hour, and the clock two hours on (so a `get` refreshes).
async fn expired_gh(store: Arc<dyn Store>) -> (TokenService, Arc<Provider>, Arc<ManualClock>) {
    let clock = clock();
    let provider = Arc::new(Provider::default());
    let service = TokenService::open_with_refresher(
        store,
        clock.clone(),
        Some(provider.clone() as Arc<dyn Refresher>),
    )
    .await
    .unwrap();
    service.set(oauth("gh", 3600)).await.unwrap();
    clock.advance(Duration::hours(2));
    (service, provider, clock)
}

/// Starts a `get` of `gh` that refreshes, and waits until the provider was asked (it then
/// waits for `hold`).
async fn refresh_out(
    service: &TokenService,
    provider: &Provider,
) -> (
    tokio::task::JoinHandle<Result<latchkey_proto::GetResult, Error>>,
    Arc<tokio::sync::Notify>,
) {
    let hold = Arc::new(tokio::sync::Notify::new());
    *provider.hold.lock().unwrap() = Some(hold.clone());
    let in_flight = {
        let service = service.clone();
        tokio::spawn(async move { service.get(&get("gh", None)).await })
    };
    while provider.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    (in_flight, hold)
}

#[tokio::test]
async fn a_refresh_out_during_the_whole_move_saves_its_rotated_token_in_the_new_store() {
    // The old store has real refresh-lock files: the refresh holds its entry's lock while out,
    // and the move must not wait for it.
    let dir = tempfile::tempdir().unwrap();
    let shelf = Shelf::default();
    let old: Arc<dyn Store> = Arc::new(IndexedStore::new(
        OnBlockingThreads::new(shelf.clone()),
        dir.path().join("shelf-index.json"),
    ));
    let (service, provider, clock) = expired_gh(Arc::clone(&old)).await;
    let (in_flight, hold) = refresh_out(&service, &provider).await;

    let new: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let moved = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        service.migrate(Arc::clone(&new)),
    )
    .await
    .expect("the move waited for the refresh")
    .unwrap();
    assert_eq!((moved.copied, moved.removed), (1, 1));
    assert_eq!(
        refresh_token(&*new, "gh").await.as_deref(),
        Some("refresh-0")
    );

    hold.notify_one();
    let token = in_flight.await.unwrap().unwrap();
    assert_eq!(token.secret.expose(), "access-1");
    assert_eq!(
        refresh_token(&*new, "gh").await.as_deref(),
        Some("refresh-1")
    );
    assert!(shelf.0.lock().unwrap().is_empty());
    assert!(!service.list()[0].unsaved);
    // The next refresh presents the rotated token: the provider sees no reuse.
    *provider.hold.lock().unwrap() = None;
    clock.advance(Duration::hours(2));
    assert_eq!(
        service.get(&get("gh", None)).await.unwrap().secret.expose(),
        "access-2"
    );
    assert_eq!(
        refresh_token(&*new, "gh").await.as_deref(),
        Some("refresh-2")
    );
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refresh_landing_while_the_move_copies_is_saved_in_the_new_store() {
    let old: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (service, provider, _clock) = expired_gh(Arc::clone(&old)).await;
    let (in_flight, hold) = refresh_out(&service, &provider).await;
    let target = Arc::new(Target::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *target.gate.lock().unwrap() = Some(gate.clone());

    let moving = {
        let service = service.clone();
        let target: Arc<dyn Store> = target.clone();
        tokio::spawn(async move { service.migrate(target).await })
    };
    // The move holds the write lock, stopped at its first write; the refresh lands now and
    // waits to save.
    while target.started.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    hold.notify_one();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!in_flight.is_finished(), "saved before the move let go");
    gate.add_permits(100);
    let moved = moving.await.unwrap().unwrap();
    assert_eq!((moved.copied, moved.removed), (1, 1));
    assert_eq!(
        in_flight.await.unwrap().unwrap().secret.expose(),
        "access-1"
    );
    assert_eq!(
        refresh_token(&*target, "gh").await.as_deref(),
        Some("refresh-1")
    );
    assert_eq!(count(&*old).await, 0);
}

#[tokio::test]
async fn a_refreshed_token_the_old_store_refused_moves_as_the_newest() {
    let flaky = Arc::new(Flaky::default());
    let (service, provider, _clock) = expired_gh(flaky.clone()).await;
    flaky.fail_writes.store(true, Ordering::SeqCst);
    assert_eq!(
        service.get(&get("gh", None)).await.unwrap().secret.expose(),
        "access-1"
    );
    assert!(service.list()[0].unsaved);
    assert_eq!(
        refresh_token(&*flaky, "gh").await.as_deref(),
        Some("refresh-0")
    );

    let new: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let moved = service.migrate(Arc::clone(&new)).await.unwrap();
    assert_eq!((moved.copied, moved.removed, moved.left), (1, 1, 0));
    assert_eq!(
        refresh_token(&*new, "gh").await.as_deref(),
        Some("refresh-1")
    );
    assert!(!service.list()[0].unsaved);
    assert_eq!(count(&*flaky).await, 0);
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
}
