//! `TokenService`: what every transport calls. It owns the metadata cache (records of every
//! entry, served without touching the keychain), the secret cache (bundles read once, dropped
//! when the keychain locks), and the rules of `get`, `set`, `clear`, `status` and `list`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use latchkey_proto::{
    GetParams, GetResult, KeyParams, Metadata, Secret, SetParams, StatusParams, TokenFingerprint,
};
use tracing::{debug, info, warn};

use crate::bundle::{OAuth2Bundle, StoredBundle, TokenBundle};
use crate::clock::Clock;
use crate::error::Error;
use crate::key::{EntryKey, KeyRef};
use crate::record::{lifetime, refresh_window, EntryRecord};
use crate::refresh::Refresher;

mod backoff;
mod cache;
mod current;
mod entry;
mod migrate;
mod refresh;
mod served;
use crate::store::{Listed, SecretBytes, Store, StoreError, Unlocking};
use current::CurrentStore;
use entry::Entry;
pub use migrate::{MigrateError, Migrated};
use served::result_of;
pub use served::Served;

/// The longest `min_valid_secs` honoured (one year); larger values are clamped.
const MAX_MIN_VALID_SECS: u64 = 365 * 24 * 3600;

/// What happened to an entry, announced to transports that publish changes (D-Bus `Changed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The entry.
    pub key: EntryKey,
    /// What happened.
    pub what: ChangeKind,
}

/// The kinds of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Stored or replaced.
    Set,
    /// Removed.
    Cleared,
    /// Refreshed by the daemon.
    Refreshed,
}

impl ChangeKind {
    /// The name used on the wire (`set`, `cleared`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Set => "set",
            ChangeKind::Cleared => "cleared",
            ChangeKind::Refreshed => "refreshed",
        }
    }
}

/// About the store, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// Backend name.
    pub name: &'static str,
    /// Whether entries survive a restart.
    pub persistent: bool,
    /// Whether the keychain is locked, where the backend can tell.
    pub locked: Option<bool>,
    /// How many entries are known.
    pub entries: usize,
    /// How it is unlocked.
    pub unlocking: Unlocking,
}

/// Every known entry, in key order (`list` answers in it). Each entry sits in a box of its
/// own: the map's nodes then hold a key and a pointer per slot, so the half-empty nodes that
/// keys stored in order leave behind cost little (with entries inline they doubled the
/// cache's memory at 10,000 entries).
type Entries = BTreeMap<EntryKey, Box<Entry>>;

struct Inner {
    /// The store in use; `migrate` swaps it (under `writes`).
    store: CurrentStore,
    clock: Arc<dyn Clock>,
    /// Every known entry. A std mutex: it is never held across an `.await`.
    entries: Mutex<Entries>,
    /// Serializes `set` and `clear` so the store and the cache change in the same order.
    writes: tokio::sync::Mutex<()>,
    /// Announces changes; slow listeners miss old events rather than slowing writes.
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Talks to token endpoints; without one, expired tokens need a new `set`. Replaced when
    /// the daemon reloads its providers; a refresh in flight keeps the one it started with.
    refresher: std::sync::RwLock<Option<Arc<dyn Refresher>>>,
    /// The source of entry generations.
    generations: std::sync::atomic::AtomicU64,
    /// Generations that a logout retired. A refresh of one of them that lands later revokes
    /// the refresh token it received, even if a new entry took the old one's place. One number
    /// per logout; dropped when that refresh lands.
    retired: Mutex<HashSet<u64>>,
    /// While the entries served come from the store's index and are not yet checked against
    /// the store's list: the keys `set` and `clear` changed meanwhile (their state is newer
    /// than any listing). `None` once reconciled, or when `open` listed the store itself.
    unreconciled: Mutex<Option<HashSet<EntryKey>>>,
    /// Keeps the number of cached secrets bounded.
    cache_bound: cache::Bound,
}

/// The credential service. Cheap to clone; clones share one cache.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("store", &self.inner.store.name())
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Opens the service over `store`, learning its entries without unlocking anything.
    ///
    /// When the store has an index read whole ([`Store::indexed`]), its records are served at
    /// once and [`TokenService::reconcile`] checks them against the store's list later.
    /// Otherwise the store is listed now. An entry the store lists without a record (written
    /// by an older daemon, or whose index was lost) is described by reading its document, but
    /// only while the keychain is already unlocked; otherwise it is skipped until the next
    /// start.
    pub async fn open(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Self::open_with_refresher(store, clock, None).await
    }

    /// Like [`TokenService::open`], refreshing OAuth entries through `refresher`.
    pub async fn open_with_refresher(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        refresher: Option<Arc<dyn Refresher>>,
    ) -> Result<Self, Error> {
        let (listed, unreconciled) = match store.indexed() {
            Some(indexed) => (indexed, Some(HashSet::new())),
            None => (store.list().await?, None),
        };
        let now = clock.now();
        let mut entries = BTreeMap::new();
        for item in listed {
            let key = item.key.clone();
            let Some(record) = describe(&*store, item, now).await else {
                continue;
            };
            let generation = entries.len() as u64 + 1;
            entries.insert(key, Entry::new(record, None, generation));
        }
        debug!(
            store = store.name(),
            entries = entries.len(),
            from_index = unreconciled.is_some(),
            "service opened"
        );
        let generation_start = entries.len() as u64 + 1;
        Ok(Self {
            inner: Arc::new(Inner {
                store: CurrentStore::new(store),
                clock,
                entries: Mutex::new(entries),
                writes: tokio::sync::Mutex::new(()),
                changes: tokio::sync::broadcast::channel(256).0,
                refresher: std::sync::RwLock::new(refresher),
                generations: std::sync::atomic::AtomicU64::new(generation_start),
                retired: Mutex::default(),
                unreconciled: Mutex::new(unreconciled),
                cache_bound: cache::Bound::default(),
            }),
        })
    }

    /// Refreshes OAuth entries through `refresher` from now on (`None`: no refreshing). A
    /// refresh already asking the old one finishes with it.
    pub fn set_refresher(&self, refresher: Option<Arc<dyn Refresher>>) {
        *self
            .inner
            .refresher
            .write()
            .unwrap_or_else(|p| p.into_inner()) = refresher;
    }

    /// The refresher in use now.
    fn refresher(&self) -> Option<Arc<dyn Refresher>> {
        self.inner
            .refresher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether OAuth entries can be refreshed at all (a refresher is configured).
    fn can_refresh(&self) -> bool {
        self.inner
            .refresher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Checks the entries served from the store's index against the store's own list:
    /// entries it no longer holds go, entries it holds without a record are described (as in
    /// [`TokenService::open`]). Entries set or cleared meanwhile keep what those calls made of
    /// them. Does nothing when `open` listed the store itself or this already ran; a failed
    /// listing leaves the entries as they are. The daemon runs it once it serves.
    pub async fn reconcile(&self) {
        if self.lock_unreconciled().is_none() {
            return;
        }
        let listed = match self.inner.store.list().await {
            Ok(listed) => listed,
            Err(err) => {
                warn!(error = %err, "cannot list the store; serving its index as it is");
                *self.lock_unreconciled() = None;
                return;
            }
        };
        let now = self.now();
        let present: HashSet<EntryKey> = listed.iter().map(|l| l.key.clone()).collect();
        let mut found = Vec::new();
        for item in listed {
            if self.entries().contains_key(&item.key) {
                continue;
            }
            if let Some(record) = describe(&self.inner.store, item, now).await {
                found.push(record);
            }
        }
        let _writing = self.inner.writes.lock().await;
        // Another reconciliation (or the one `migrate` runs first) may have finished while
        // this one listed: its listing is newer than ours.
        let Some(touched) = self.lock_unreconciled().take() else {
            return;
        };
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|key, _| present.contains(key) || touched.contains(key));
        let removed = before - entries.len();
        let mut added = 0;
        for record in found {
            if touched.contains(&record.key) || entries.contains_key(&record.key) {
                continue;
            }
            let entry = Entry::new(record, None, self.next_generation());
            entries.insert(entry.record.key.clone(), entry);
            added += 1;
        }
        info!(
            entries = entries.len(),
            removed, added, "entries checked against the store"
        );
    }

    fn lock_unreconciled(&self) -> MutexGuard<'_, Option<HashSet<EntryKey>>> {
        self.inner
            .unreconciled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `set` or `clear` changed `key` (under the writes lock), so a reconciliation
    /// under way leaves it alone.
    fn touched(&self, key: &EntryKey) {
        if let Some(touched) = self.lock_unreconciled().as_mut() {
            touched.insert(key.clone());
        }
    }

    /// Receives every later change to an entry.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn announce(&self, key: EntryKey, what: ChangeKind) {
        // Internal bookkeeping is nobody else's business.
        if crate::is_internal(key.service()) {
            return;
        }
        // No receivers is fine: nobody is listening.
        let _ = self.inner.changes.send(Change { key, what });
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// A generation never handed out before.
    fn next_generation(&self) -> u64 {
        self.inner
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every cached secret if the keychain reports itself locked; returns whether it is.
    fn forget_secrets_if_locked(&self) -> bool {
        if self.inner.store.locked() != Some(true) {
            return false;
        }
        let mut entries = self.entries();
        let mut dropped = 0;
        for entry in entries.values_mut() {
            if entry.cached.take().is_some() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            debug!(dropped, "keychain locked: dropped cached secrets");
        }
        true
    }

    /// Serves a secret: the access token, key or password of an entry.
    pub async fn get(&self, params: &GetParams) -> Result<GetResult, Error> {
        self.serve(params).await.map(Served::into_result)
    }

    /// [`TokenService::get`], with a cached secret served as the cached bundle itself (shared,
    /// not copied): for callers that only write the answer out.
    pub async fn serve(&self, params: &GetParams) -> Result<Served, Error> {
        // Looked up by the names as given: no invalid name is a key, so the names are
        // validated (and a key built) only where the cache does not answer.
        let names = KeyRef::new(&params.service, params.account.as_deref());
        let now = self.now();
        let min =
            Duration::seconds(params.min_valid_secs.unwrap_or(0).min(MAX_MIN_VALID_SECS) as i64);
        let locked = self.forget_secrets_if_locked();
        // Every check that needs only the record runs under the lock, without copying it.
        let serve = {
            let mut entries = self.entries();
            let Some(entry) = entries.get_mut(names.view()).filter(|e| !e.retired) else {
                EntryKey::new(names.service, Some(names.account))?;
                return Err(Error::NotFound);
            };
            let record = &entry.record;
            if record.needs_login {
                return Err(Error::AuthenticationRequired {
                    reason: "the provider refused the stored token; log in again",
                });
            }
            if params.scopes.iter().any(|s| !record.scopes.contains(s)) {
                // Each missing scope once, in the caller's order.
                let mut seen = std::collections::HashSet::new();
                let missing = params
                    .scopes
                    .iter()
                    .filter(|s| !record.scopes.contains(s) && seen.insert(s.as_str()))
                    .cloned()
                    .collect();
                return Err(Error::InsufficientScope { missing });
            }
            // A rejected token matters only where a refresh can replace it; elsewhere (API
            // keys, passwords, tokens without a refresh token) the current secret is served.
            let rejected = params
                .rejected
                .as_ref()
                .filter(|_| self.refreshable(record));
            match self.freshness(record, now, min) {
                Freshness::Expired => return Err(cannot_serve(record, now, min)),
                Freshness::Refresh if !locked => None,
                _ if locked => None,
                _ => match &entry.cached {
                    // The token the caller says was rejected: a refresh may be due.
                    Some(bundle) if rejected.is_some_and(|r| holds(&bundle.bundle, r)) => None,
                    // The common case, served under this one lock.
                    Some(bundle) => {
                        let served = Served::Bundle(Arc::clone(bundle));
                        entry.last_used_at = Some(now);
                        return Ok(served);
                    }
                    None if rejected.is_some() => None,
                    None => Some(entry.generation),
                },
            }
        };
        if locked {
            return Err(Error::Locked);
        }
        // The slow paths' futures are boxed: in line they would make every cached `get`'s
        // future as large as a refresh's, and moving it costs more than the lookup.
        let key = EntryKey::new(names.service, Some(names.account))?;
        let Some(generation) = serve else {
            let rejected = params.rejected.as_ref();
            return Box::pin(self.refresh_and_get(&key, min, rejected))
                .await
                .map(Served::Result);
        };
        let bundle = Box::pin(self.load(&key, None, generation)).await?;
        self.touch(&key, now);
        Ok(Served::Bundle(bundle))
    }

    /// Whether the daemon can refresh an entry with this record.
    fn refreshable(&self, record: &EntryRecord) -> bool {
        self.can_refresh() && record.has_refresh_token && record.provider.is_some()
    }

    /// Whether a record can serve as is, should be refreshed first, or cannot serve (see
    /// [`cannot_serve`] for why not).
    fn freshness(&self, record: &EntryRecord, now: DateTime<Utc>, min: Duration) -> Freshness {
        let Some(expires_at) = record.expires_at else {
            return Freshness::Fresh;
        };
        let issued = record.last_refreshed_at.unwrap_or(record.updated_at);
        // A `min_valid_secs` beyond half the token's lifetime cannot make it refresh: no
        // refresh can give more than the provider issues, so asking again would only loop.
        let window =
            refresh_window(issued, expires_at).max(min.min(lifetime(issued, expires_at) / 2));
        let refreshable = self.refreshable(record);
        if expires_at - now > window {
            Freshness::Fresh
        } else if refreshable {
            Freshness::Refresh
        } else if expires_at > now + min {
            Freshness::Fresh
        } else {
            Freshness::Expired
        }
    }

    /// The bundle of an entry: the cached one, or read from the store and cached if nothing
    /// newer was written meanwhile.
    async fn load(
        &self,
        key: &EntryKey,
        cached: Option<Arc<StoredBundle>>,
        generation: u64,
    ) -> Result<Arc<StoredBundle>, Error> {
        if let Some(bundle) = cached {
            return Ok(bundle);
        }
        // A refreshed bundle the store refused is newer than what the store holds.
        let unsaved = self.unsaved_copy(key);
        let doc = match unsaved {
            Some(doc) => doc,
            None => self.read_current(key).await?.ok_or(Error::NotFound)?,
        };
        let bundle = Arc::new(StoredBundle::from_document(&doc).map_err(Error::Corrupt)?);
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(key) {
            if entry.generation == generation && self.inner.store.locked() != Some(true) {
                entry.cached = Some(Arc::clone(&bundle));
                self.cached_one(&mut entries);
            }
        }
        Ok(bundle)
    }

    /// An entry's document from the store in use. A `migrate` may switch stores and remove
    /// the entry from the old one while the read is out: then it is read from the new one.
    async fn read_current(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError> {
        let store = self.inner.store.get();
        let doc = store.read(key).await?;
        if doc.is_none() {
            let now = self.inner.store.get();
            if !current::same(&store, &now) {
                return now.read(key).await;
            }
        }
        Ok(doc)
    }

    /// The refreshed document waiting to be saved, if any.
    fn unsaved_copy(&self, key: &EntryKey) -> Option<SecretBytes> {
        self.entries().get(key).and_then(|e| e.unsaved().cloned())
    }

    /// Drops the cached secret of an entry unless it was written since `generation`.
    fn forget_cached(&self, key: &EntryKey, generation: u64) {
        if let Some(entry) = self.entries().get_mut(key) {
            if entry.generation == generation {
                entry.cached = None;
            }
        }
    }

    /// Notes that a secret was just cached (the entries' lock held): the cache stays bounded.
    fn cached_one(&self, entries: &mut Entries) {
        let dropped = self.inner.cache_bound.cached(entries);
        if dropped > 0 {
            debug!(dropped, "dropped the least recently used cached secrets");
        }
    }

    fn touch(&self, key: &EntryKey, now: DateTime<Utc>) {
        if let Some(entry) = self.entries().get_mut(key) {
            entry.last_used_at = Some(now);
        }
    }
}

/// Why a record that cannot be refreshed cannot serve a `get` asking for `min` more validity:
/// expired, or still valid but for less than `min` (then the message says how long it has
/// left and how long it was issued for, not that it expired).
fn cannot_serve(record: &EntryRecord, now: DateTime<Utc>, min: Duration) -> Error {
    match record.expires_at {
        Some(expires_at) if expires_at > now => {
            let issued = record.last_refreshed_at.unwrap_or(record.updated_at);
            Error::ShortLived {
                valid_secs: (expires_at - now).num_seconds(),
                lifetime_secs: lifetime(issued, expires_at).num_seconds(),
                asked_secs: min.num_seconds(),
            }
        }
        _ => Error::AuthenticationRequired {
            reason: "the access token has expired and latchkey cannot refresh it",
        },
    }
}

/// What `get` does with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freshness {
    Fresh,
    Refresh,
    Expired,
}

/// The record of a listed entry: the store's own, or one described from its document while
/// the keychain is unlocked; `None` for an entry that cannot be described now.
async fn describe(store: &dyn Store, item: Listed, now: DateTime<Utc>) -> Option<Arc<EntryRecord>> {
    if let Some(record) = item.record {
        return Some(record);
    }
    if store.locked() == Some(true) {
        return None;
    }
    match store.read(&item.key).await {
        Ok(Some(doc)) => match StoredBundle::from_document(&doc) {
            Ok(stored) => Some(Arc::new(EntryRecord::describe(
                item.key,
                &stored.bundle,
                now,
                None,
            ))),
            Err(err) => {
                warn!(entry = ?item.key, error = %err, "skipping an unreadable entry");
                None
            }
        },
        Ok(None) => None,
        Err(err) => {
            warn!(entry = ?item.key, error = %err, "could not describe an entry");
            None
        }
    }
}

/// Whether `bundle` holds the access token whose fingerprint is `print`.
fn holds(bundle: &TokenBundle, print: &TokenFingerprint) -> bool {
    match bundle {
        TokenBundle::OAuth2(b) => print.matches(&b.access_token),
        _ => false,
    }
}

impl TokenService {
    /// Stores a credential, replacing any previous one for the same entry.
    ///
    /// The store write happens first; the cache changes only after it succeeded, so a failed
    /// write leaves both the keychain and the cache as they were.
    pub async fn set(&self, params: SetParams) -> Result<Metadata, Error> {
        let key = EntryKey::new(&params.service, params.account.as_deref())?;
        let now = self.now();
        let bundle = TokenBundle::from_input(params.bundle, now).map_err(Error::InvalidBundle)?;
        let _writing = self.inner.writes.lock().await;
        let (previous, last_used_at) = {
            let entries = self.entries();
            match entries.get(&key) {
                Some(e) => (Some(e.record.clone()), e.last_used_at),
                None => (None, None),
            }
        };
        let record = Arc::new(EntryRecord::describe(
            key.clone(),
            &bundle,
            now,
            previous.as_deref(),
        ));
        let stored = StoredBundle::new(bundle);
        let document = stored.to_document();
        self.inner.store.write(&key, &document, &record).await?;
        self.touched(&key);
        let metadata = record.metadata(now, last_used_at);
        let cached = (self.inner.store.locked() != Some(true)).then(|| Arc::new(stored));
        let caching = cached.is_some();
        let mut entry = Entry::new(record, last_used_at, self.next_generation());
        entry.cached = cached;
        // The same gate, taken under the lock that swaps the entry: callers already waiting
        // to refresh this entry and new ones stay in one line, so the new bundle is never
        // refreshed twice at once.
        let mut entries = self.entries();
        entry.keep_line(entries.get(&key).and_then(|e| e.existing_line()));
        entries.insert(key.clone(), entry);
        if caching {
            self.cached_one(&mut entries);
        }
        drop(entries);
        self.announce(key, ChangeKind::Set);
        Ok(metadata)
    }

    /// Removes an entry from the store and the caches; `true` if there was one.
    pub async fn clear(&self, params: KeyParams) -> Result<bool, Error> {
        let key = EntryKey::new(&params.service, params.account.as_deref())?;
        let _writing = self.inner.writes.lock().await;
        let in_store = self.inner.store.remove(&key).await?;
        self.touched(&key);
        let in_cache = self.entries().remove(&key).is_some();
        let removed = in_store || in_cache;
        if removed {
            self.announce(key, ChangeKind::Cleared);
        }
        Ok(removed)
    }

    /// Entries matching the optional filters, from memory only.
    pub fn status(&self, params: &StatusParams) -> Vec<Metadata> {
        let now = self.now();
        let entries = self.entries();
        let filtered = params.service.is_some() || params.account.is_some();
        let mut found = Vec::with_capacity(if filtered { 0 } else { entries.len() });
        let matching = entries
            .values()
            .filter(|e| !e.retired && !crate::is_internal(e.record.key.service()))
            .filter(|e| {
                params
                    .service
                    .as_deref()
                    .is_none_or(|s| e.record.key.service() == s)
                    && params
                        .account
                        .as_deref()
                        .is_none_or(|a| e.record.key.account() == a)
            })
            .map(|e| {
                let mut metadata = e.record.metadata(now, e.last_used_at);
                metadata.unsaved = e.unsaved().is_some();
                metadata
            });
        found.extend(matching);
        found
    }

    /// Writes again every refreshed document the store refused; the number still unsaved.
    pub async fn save_unsaved(&self) -> usize {
        if self.entries().values().all(|e| e.unsaved().is_none()) {
            return 0;
        }
        let _writing = self.inner.writes.lock().await;
        let pending: Vec<_> = self
            .entries()
            .iter()
            .filter_map(|(key, e)| {
                e.unsaved()
                    .cloned()
                    .map(|doc| (key.clone(), doc, e.record.clone(), e.generation))
            })
            .collect();
        let mut left = 0;
        for (key, document, record, generation) in pending {
            match self.inner.store.write(&key, &document, &record).await {
                Ok(()) => {
                    if let Some(entry) = self.entries().get_mut(&key) {
                        if entry.generation == generation {
                            entry.set_unsaved(None);
                        }
                    }
                    info!(entry = ?key, "refreshed token saved to the keychain on retry");
                }
                Err(err) => {
                    left += 1;
                    debug!(entry = ?key, error = %err, "refreshed token still not saved");
                }
            }
        }
        left
    }

    /// The accounts of `service`'s entries, from memory only, internal ones included (the
    /// daemon's own bookkeeping, which `status` and `list` hide).
    pub fn accounts(&self, service: &str) -> Vec<String> {
        self.entries()
            .keys()
            .filter(|k| k.service() == service)
            .map(|k| k.account().to_owned())
            .collect()
    }

    /// Every entry, from memory only.
    pub fn list(&self) -> Vec<Metadata> {
        self.status(&StatusParams::default())
    }

    /// About the store.
    pub fn store_info(&self) -> StoreInfo {
        StoreInfo {
            name: self.inner.store.name(),
            persistent: self.inner.store.persistent(),
            locked: self.inner.store.locked(),
            entries: self
                .entries()
                .keys()
                .filter(|k| !crate::is_internal(k.service()))
                .count(),
            unlocking: self.inner.store.unlocking(),
        }
    }

    /// Unlocks the store ([`Store::unlock`]); the passphrase never reaches a log.
    pub async fn unlock(&self, passphrase: Option<&Secret>, create: bool) -> Result<(), Error> {
        self.inner.store.unlock(passphrase, create).await?;
        info!(store = self.inner.store.name(), "store unlocked");
        Ok(())
    }

    /// Locks the store and drops every cached secret at once.
    pub async fn lock(&self) -> Result<(), Error> {
        self.inner.store.lock().await?;
        self.forget_secrets_if_locked();
        info!(store = self.inner.store.name(), "store locked");
        Ok(())
    }

    /// Changes the store's passphrase ([`Store::change_passphrase`]).
    pub async fn change_passphrase(&self, old: &Secret, new: &Secret) -> Result<(), Error> {
        self.inner.store.change_passphrase(old, new).await?;
        info!(store = self.inner.store.name(), "store passphrase changed");
        Ok(())
    }
}

impl TokenService {
    /// Starts a logout of `key`: returns its OAuth tokens (`None` for other kinds) for
    /// revoking, and from then on the entry answers as if it were gone, until `clear`
    /// removes it. Under the write lock, so the tokens returned are the newest: a refresh
    /// that lands later finds the entry retired, and revokes the refresh token it received
    /// instead of saving it. Does not wait for a refresh in flight.
    /// Daemon-internal: the refresh token never goes to a client.
    pub async fn retire(&self, key: &EntryKey) -> Result<Option<OAuth2Bundle>, Error> {
        if self.forget_secrets_if_locked() {
            return Err(Error::Locked);
        }
        let _writing = self.inner.writes.lock().await;
        let (cached, generation) = {
            let entries = self.entries();
            let entry = entries
                .get(key)
                .filter(|e| !e.retired)
                .ok_or(Error::NotFound)?;
            (entry.cached.clone(), entry.generation)
        };
        let bundle = self.load(key, cached, generation).await?;
        if let Some(entry) = self.entries().get_mut(key) {
            entry.retired = true;
            entry.cached = None;
            entry.set_unsaved(None);
            entry.generation = self.next_generation();
        }
        self.retired_generations().insert(generation);
        debug!(entry = ?key, "retired for logout");
        Ok(match &bundle.bundle {
            TokenBundle::OAuth2(b) => Some(b.clone()),
            _ => None,
        })
    }

    fn retired_generations(&self) -> MutexGuard<'_, std::collections::HashSet<u64>> {
        self.inner
            .retired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
