//! One entry of the service's cache: its record, its cached secret (if any), its generation,
//! and the state only refreshes need, in a box of its own.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{backoff, refresh};
use crate::bundle::StoredBundle;
use crate::record::EntryRecord;

/// One entry in the cache.
pub(super) struct Entry {
    /// Shared with the store, where it keeps records (the index, the memory store).
    pub(super) record: Arc<EntryRecord>,
    pub(super) last_used_at: Option<DateTime<Utc>>,
    /// The secret, once read; `None` until read and after the keychain locks.
    pub(super) cached: Option<Arc<StoredBundle>>,
    /// A fresh number on every write, from one counter that never goes back (not per entry:
    /// an entry cleared and stored again must not repeat a number a slow refresh still holds).
    /// A slow read or refresh never caches or writes an older bundle over a newer one.
    pub(super) generation: u64,
    /// What refreshing the entry has left: made by its first refresh (most entries never
    /// need one), so the entries that are never refreshed stay small.
    refresh: Option<Box<RefreshState>>,
    /// Logged out: its tokens are being revoked and it is about to be removed. It answers as
    /// if it were gone already.
    pub(super) retired: bool,
}

/// The part of an entry only refreshes use.
#[derive(Default)]
struct RefreshState {
    /// The entry's refresh line: one refresh at a time, whoever asks, and its outcome for
    /// everyone who waited on it.
    line: Option<Arc<refresh::Flights>>,
    /// After failed refreshes: when the provider may be asked again; callers before then do
    /// not ask it. Cleared by a successful refresh.
    backoff: Option<backoff::Backoff>,
    /// After refreshes forced by a client whose token was rejected (`get`'s `rejected`): when
    /// the next forced one may be made. A client (or the upstream behind it) that rejects
    /// every token cannot make the daemon refresh more than about once a minute.
    forced: Option<backoff::Backoff>,
    /// A refreshed document the store refused to save: kept (never dropped, it may hold the
    /// only copy of a rotated refresh token) and written again by `save_unsaved`.
    unsaved: Option<crate::store::SecretBytes>,
}

impl Entry {
    pub(super) fn new(
        record: Arc<EntryRecord>,
        last_used_at: Option<DateTime<Utc>>,
        generation: u64,
    ) -> Box<Self> {
        Box::new(Self {
            record,
            last_used_at,
            cached: None,
            generation,
            refresh: None,
            retired: false,
        })
    }

    /// The refresh state, made on first use.
    fn refresh_mut(&mut self) -> &mut RefreshState {
        self.refresh.get_or_insert_with(Box::default)
    }

    /// The entry's refresh line, made on first use.
    pub(super) fn line(&mut self) -> Arc<refresh::Flights> {
        Arc::clone(self.refresh_mut().line.get_or_insert_with(Arc::default))
    }

    /// The refresh line, if one was made.
    pub(super) fn existing_line(&self) -> Option<Arc<refresh::Flights>> {
        self.refresh.as_ref().and_then(|r| r.line.clone())
    }

    /// Takes over `line` (a refresh line of the entry this one replaces).
    pub(super) fn keep_line(&mut self, line: Option<Arc<refresh::Flights>>) {
        if line.is_some() {
            self.refresh_mut().line = line;
        }
    }

    pub(super) fn backoff(&self) -> Option<backoff::Backoff> {
        self.refresh.as_ref().and_then(|r| r.backoff)
    }

    pub(super) fn set_backoff(&mut self, backoff: Option<backoff::Backoff>) {
        if backoff.is_some() || self.refresh.is_some() {
            self.refresh_mut().backoff = backoff;
        }
    }

    pub(super) fn forced(&self) -> Option<backoff::Backoff> {
        self.refresh.as_ref().and_then(|r| r.forced)
    }

    pub(super) fn set_forced(&mut self, forced: Option<backoff::Backoff>) {
        if forced.is_some() || self.refresh.is_some() {
            self.refresh_mut().forced = forced;
        }
    }

    pub(super) fn unsaved(&self) -> Option<&crate::store::SecretBytes> {
        self.refresh.as_ref().and_then(|r| r.unsaved.as_ref())
    }

    pub(super) fn set_unsaved(&mut self, unsaved: Option<crate::store::SecretBytes>) {
        if unsaved.is_some() || self.refresh.is_some() {
            self.refresh_mut().unsaved = unsaved;
        }
    }
}
