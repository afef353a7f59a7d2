//! Moving every entry to another store (`latchkey migrate`), so that wherever it stops (an
//! error, a crash, `kill -9`), the store the daemon uses, now or after a restart, holds every
//! entry, and running it again finishes the job without doubling anything.
//!
//! It runs under the service's write lock, so `set`, `clear`, logouts and the saving of
//! refreshed tokens wait for it, in three steps:
//!
//! 1. Copy. Every entry the store in use lists or the service knows is read (a refreshed
//!    document the store refused is taken from memory: it is the newest), written to the target
//!    unless the target holds the same document and record already (`already_there`: an earlier
//!    run got that far), and read back and compared. A failure stops here: nothing was removed,
//!    the service keeps its store, and the error says which entry and which store.
//! 2. Switch. The caller's `switch` records the choice (the daemon writes its marker file, so a
//!    restarted daemon opens the new store); if it fails, nothing changes. Then the service
//!    uses the new store for every read, write and refresh, and serves the entries it held of
//!    its own too (`adopted`).
//! 3. Remove. Each copied entry is removed from the old store, if the old store still holds what
//!    was copied. Another latchkeyd sharing the old store may have refreshed it meanwhile: the
//!    entry's refresh line and the old store's refresh lock are held while checking and
//!    removing, and a changed entry stays there (`left`). A failure here loses nothing: the entry
//!    is in the new store; [`TokenService::remove_leftovers`] removes it later.
//!
//! A refresh already out when the move starts keeps its entry's generation (the move changes
//! none): it saves the rotated token under the write lock, so after the move, into the new
//! store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use latchkey_proto::{ErrorKind, RpcError};
use tracing::{debug, info, warn};

use super::{current, describe, Entry, TokenService};
use crate::bundle::StoredBundle;
use crate::key::EntryKey;
use crate::record::EntryRecord;
use crate::store::{Listed, SecretBytes, Store, StoreError};

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The store moved from.
    pub from: &'static str,
    /// The store moved to, in use from now on.
    pub to: &'static str,
    /// Entries written to the new store and read back.
    pub copied: usize,
    /// Entries the new store already held the same.
    pub already_there: usize,
    /// Entries removed from the old store.
    pub removed: usize,
    /// Entries that stay in the old store: unreadable, changed meanwhile, or not removed.
    pub left: usize,
    /// Entries the new store held before that the old one did not, served from now on.
    pub adopted: usize,
}

/// Why a migration stopped. Every variant but [`MigrateError::SameStore`] leaves the old
/// store in use and untouched: nothing was removed from it. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target is the store in use.
    #[error("the {store} store is the one in use")]
    SameStore {
        /// Its name.
        store: &'static str,
    },
    /// A store could not list its entries.
    #[error("cannot list the entries of the {store} store: {cause}")]
    List {
        /// The store.
        store: &'static str,
        /// Why.
        cause: StoreError,
    },
    /// An entry could not be read.
    #[error("cannot read {entry} from the {store} store: {cause}")]
    Read {
        /// The store.
        store: &'static str,
        /// The entry.
        entry: EntryKey,
        /// Why.
        cause: StoreError,
    },
    /// The new store refused an entry.
    #[error("cannot write {entry} to the {store} store: {cause}")]
    Write {
        /// The new store.
        store: &'static str,
        /// The entry.
        entry: EntryKey,
        /// Why.
        cause: StoreError,
    },
    /// An entry read back from the new store is not what was written (or is missing).
    #[error("{entry} read back from the {store} store is not what was written")]
    Mismatch {
        /// The new store.
        store: &'static str,
        /// The entry.
        entry: EntryKey,
    },
    /// The caller could not record the switch.
    #[error("cannot record the move to the {store} store: {reason}")]
    Switch {
        /// The new store.
        store: &'static str,
        /// Why.
        reason: String,
    },
}

/// What a stopped migration tells people.
const STOPPED_HINT: &str = "nothing was removed from the store in use; fix the cause and run \
`latchkey migrate` again (entries copied so far count as already there)";

impl MigrateError {
    /// The protocol kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MigrateError::SameStore { .. } => ErrorKind::InvalidRequest,
            MigrateError::List { cause, .. }
            | MigrateError::Read { cause, .. }
            | MigrateError::Write { cause, .. } => match cause {
                StoreError::Locked => ErrorKind::Locked,
                StoreError::Unavailable(_) => ErrorKind::BackendUnavailable,
                StoreError::WrongPassphrase | StoreError::TooSoon { .. } => {
                    ErrorKind::WrongPassphrase
                }
                StoreError::Refused(_) => ErrorKind::InvalidRequest,
                _ => ErrorKind::Internal,
            },
            MigrateError::Mismatch { .. } | MigrateError::Switch { .. } => ErrorKind::Internal,
        }
    }

    /// The error as sent to clients.
    pub fn to_rpc(&self) -> RpcError {
        let rpc = RpcError::new(self.kind(), self.to_string());
        match self {
            MigrateError::SameStore { .. } => rpc,
            _ => rpc.hint(STOPPED_HINT),
        }
    }
}

/// One entry copied to the new store, to be removed from the old one.
struct Moved {
    key: EntryKey,
    /// What the old store held when it was copied; `None` when only memory held it.
    in_source: Option<SecretBytes>,
    /// The entry's generation in the service then; `None` for an entry it did not know.
    generation: Option<u64>,
    /// Its record, for an entry the service did not know.
    record: Arc<EntryRecord>,
}

/// What removing a moved entry from the old store found.
enum Removal {
    Removed,
    /// Nothing there (any more).
    Gone,
    /// Something else there than what was copied.
    Changed,
}

impl TokenService {
    /// Moves every entry to `target` and uses it from then on; see the module comment.
    pub async fn migrate(&self, target: Arc<dyn Store>) -> Result<Migrated, MigrateError> {
        self.migrate_with(target, || Ok::<(), std::convert::Infallible>(()))
            .await
    }

    /// [`TokenService::migrate`], calling `switch` once every entry is in `target` and before
    /// anything is removed or the service switches; an error from it stops the migration.
    pub async fn migrate_with<F, E>(
        &self,
        target: Arc<dyn Store>,
        switch: F,
    ) -> Result<Migrated, MigrateError>
    where
        F: FnOnce() -> Result<(), E> + Send,
        E: std::fmt::Display,
    {
        // Entries served from the old store's index are checked against it first: a
        // reconciliation that listed it before the move and landed after would drop them.
        self.reconcile().await;
        let _writing = self.inner.writes.lock().await;
        let source = self.inner.store.get();
        if current::same(&source, &target) {
            return Err(MigrateError::SameStore {
                store: source.name(),
            });
        }
        let (from, to) = (source.name(), target.name());
        info!(from, to, "moving every entry to another store");
        let listed = source
            .list()
            .await
            .map_err(|cause| MigrateError::List { store: from, cause })?;
        let held: HashMap<EntryKey, Option<Arc<EntryRecord>>> = target
            .list()
            .await
            .map_err(|cause| MigrateError::List { store: to, cause })?
            .into_iter()
            .map(|l| (l.key, l.record))
            .collect();
        let mut work: BTreeMap<EntryKey, Option<Arc<EntryRecord>>> =
            listed.into_iter().map(|l| (l.key, l.record)).collect();
        for key in self.entries().keys() {
            work.entry(key.clone()).or_default();
        }
        let mut counts = Migrated {
            from,
            to,
            copied: 0,
            already_there: 0,
            removed: 0,
            left: 0,
            adopted: 0,
        };
        let mut moved = Vec::with_capacity(work.len());
        for (key, listed) in work {
            let copy = self.copy_one(&source, &target, key, listed, &held, &mut counts);
            if let Some(entry) = copy.await? {
                moved.push(entry);
            }
        }
        switch().map_err(|e| MigrateError::Switch {
            store: to,
            reason: e.to_string(),
        })?;
        self.inner.store.replace(Arc::clone(&target));
        info!(from, to, entries = moved.len(), "switched to the new store");
        self.take_in(&target, &moved, held, &mut counts).await;
        for entry in &moved {
            match self.remove_moved(&source, entry).await {
                Ok(Removal::Removed) => counts.removed += 1,
                Ok(Removal::Gone) => {}
                Ok(Removal::Changed) => {
                    warn!(
                        entry = ?entry.key,
                        "changed in the old store during the move (does another latchkeyd use it?); left there"
                    );
                    counts.left += 1;
                }
                Err(err) => {
                    warn!(entry = ?entry.key, error = %err, "could not remove from the old store; left there");
                    counts.left += 1;
                }
            }
        }
        info!(
            from,
            to,
            copied = counts.copied,
            already_there = counts.already_there,
            removed = counts.removed,
            left = counts.left,
            adopted = counts.adopted,
            "entries moved"
        );
        Ok(counts)
    }

    /// Copies one entry to `target` and reads it back; `None` when there is nothing to copy
    /// (or it is unreadable, then counted as left).
    async fn copy_one(
        &self,
        source: &Arc<dyn Store>,
        target: &Arc<dyn Store>,
        key: EntryKey,
        listed: Option<Arc<EntryRecord>>,
        held: &HashMap<EntryKey, Option<Arc<EntryRecord>>>,
        counts: &mut Migrated,
    ) -> Result<Option<Moved>, MigrateError> {
        let (known, unsaved, generation) = match self.entries().get(&key) {
            Some(e) => (
                Some(e.record.clone()),
                e.unsaved().cloned(),
                Some(e.generation),
            ),
            None => (None, None, None),
        };
        let read_error = |store: &'static str, key: &EntryKey| {
            let entry = key.clone();
            move |cause| MigrateError::Read {
                store,
                entry,
                cause,
            }
        };
        let in_source = source
            .read(&key)
            .await
            .map_err(read_error(source.name(), &key))?;
        // A refreshed document the old store refused is newer than what it holds.
        let Some(document) = unsaved.or_else(|| in_source.clone()) else {
            debug!(entry = ?key, "nothing stored to move");
            return Ok(None);
        };
        let record = match known.or(listed) {
            Some(record) => record,
            None => match StoredBundle::from_document(&document) {
                Ok(stored) => Arc::new(EntryRecord::describe(
                    key.clone(),
                    &stored.bundle,
                    self.now(),
                    None,
                )),
                Err(err) => {
                    warn!(entry = ?key, error = %err, "unreadable entry left in the old store");
                    counts.left += 1;
                    return Ok(None);
                }
            },
        };
        let there = target
            .read(&key)
            .await
            .map_err(read_error(target.name(), &key))?;
        let same_record = held.get(&key).is_some_and(|r| r.as_ref() == Some(&record));
        if same_record && there.as_deref() == Some(&*document) {
            counts.already_there += 1;
        } else {
            target
                .write(&key, &document, &record)
                .await
                .map_err(|cause| MigrateError::Write {
                    store: target.name(),
                    entry: key.clone(),
                    cause,
                })?;
            let back = target
                .read(&key)
                .await
                .map_err(read_error(target.name(), &key))?;
            if back.as_deref() != Some(&*document) {
                // Not left for a later run to count as already there.
                if let Err(err) = target.remove(&key).await {
                    debug!(entry = ?key, error = %err, "could not remove the wrong copy");
                }
                return Err(MigrateError::Mismatch {
                    store: target.name(),
                    entry: key,
                });
            }
            counts.copied += 1;
        }
        debug!(entry = ?key, "entry copied to the new store");
        Ok(Some(Moved {
            key,
            in_source,
            generation,
            record,
        }))
    }

    /// After the switch: the moved entries' newest documents are in `target` (nothing unsaved
    /// any more), entries only the old store listed are served, and so are the entries
    /// `target` held of its own.
    async fn take_in(
        &self,
        target: &Arc<dyn Store>,
        moved: &[Moved],
        held: HashMap<EntryKey, Option<Arc<EntryRecord>>>,
        counts: &mut Migrated,
    ) {
        {
            let mut entries = self.entries();
            for m in moved {
                match entries.get_mut(&m.key) {
                    Some(entry) => {
                        if Some(entry.generation) == m.generation {
                            entry.set_unsaved(None);
                        }
                    }
                    None => {
                        let entry = Entry::new(m.record.clone(), None, self.next_generation());
                        entries.insert(m.key.clone(), entry);
                    }
                }
            }
        }
        let moved: HashSet<&EntryKey> = moved.iter().map(|m| &m.key).collect();
        let now = self.now();
        for (key, record) in held {
            if moved.contains(&key) || self.entries().contains_key(&key) {
                continue;
            }
            let item = Listed {
                key: key.clone(),
                record,
            };
            if let Some(record) = describe(&**target, item, now).await {
                let entry = Entry::new(record, None, self.next_generation());
                self.entries().insert(key, entry);
                counts.adopted += 1;
            }
        }
    }

    /// Removes a moved entry from the old store if it still holds what was copied.
    async fn remove_moved(
        &self,
        source: &Arc<dyn Store>,
        m: &Moved,
    ) -> Result<Removal, StoreError> {
        let Some(copied) = &m.in_source else {
            return Ok(Removal::Gone);
        };
        // With the entry's line held no refresh of ours starts, and the old store's lock keeps
        // other daemons' refreshes out. A refresh of ours already out holds that lock itself
        // (taking it here would wait for it, and it waits for the write lock we hold); it
        // saves into the new store.
        let flights = self.entries().get_mut(&m.key).map(|e| e.line());
        let line = flights.as_ref().and_then(|f| f.hold_if_idle());
        let _lock = if flights.is_none() || line.is_some() {
            source.refresh_lock(&m.key).await?
        } else {
            None
        };
        match source.read(&m.key).await? {
            None => Ok(Removal::Gone),
            Some(doc) if *doc != **copied => Ok(Removal::Changed),
            Some(_) => Ok(if source.remove(&m.key).await? {
                Removal::Removed
            } else {
                Removal::Gone
            }),
        }
    }

    /// Removes from `old`, a store a migration moved away from without removing everything
    /// (it was stopped, or `old` refused), every entry the store in use holds: `removed`, and
    /// `left` for those `old` would not remove. Entries only `old` holds are no copies (they
    /// were written there since, or cleared here since): they stay, and are only logged.
    pub async fn remove_leftovers(&self, old: Arc<dyn Store>) -> Result<Migrated, MigrateError> {
        let _writing = self.inner.writes.lock().await;
        let now_used = self.inner.store.get();
        if current::same(&now_used, &old) {
            return Err(MigrateError::SameStore { store: old.name() });
        }
        let (from, to) = (old.name(), now_used.name());
        let listed = old
            .list()
            .await
            .map_err(|cause| MigrateError::List { store: from, cause })?;
        let mut counts = Migrated {
            from,
            to,
            copied: 0,
            already_there: 0,
            removed: 0,
            left: 0,
            adopted: 0,
        };
        let mut others = 0;
        for item in listed {
            let key = item.key;
            let held = match now_used.read(&key).await {
                Ok(doc) => doc.is_some(),
                Err(err) => {
                    warn!(entry = ?key, error = %err, "cannot check the store in use; left in the old one");
                    counts.left += 1;
                    continue;
                }
            };
            if !held {
                others += 1;
                continue;
            }
            counts.already_there += 1;
            match old.remove(&key).await {
                Ok(_) => counts.removed += 1,
                Err(err) => {
                    warn!(entry = ?key, error = %err, "could not remove from the old store");
                    counts.left += 1;
                }
            }
        }
        info!(
            from,
            to,
            removed = counts.removed,
            left = counts.left,
            others,
            "leftovers of a move removed (others: entries only the old store holds, kept)"
        );
        Ok(counts)
    }
}
