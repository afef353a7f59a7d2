//! The bound on cached secrets: at most [`CAPACITY`] entries keep their secret in memory.
//!
//! Every entry's metadata stays cached (so `status` and `list` never read the store), but a
//! secret is cached only while it is among the most recently used. Each time a secret is
//! cached the count of cachings goes up; every [`CHECK_EVERY`] of them the cache is counted,
//! and if it holds more than [`CAPACITY`] secrets the least recently used or written are
//! dropped until [`KEEP`] remain. A dropped secret is read from the store again when it is
//! next asked for (an unsaved refreshed document is never dropped: it lives apart from the
//! cache). This keeps a daemon with thousands of entries small, and keeps fewer secrets in
//! its memory.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::{Entries, Entry};

/// The most secrets kept in memory after a check.
const CAPACITY: usize = 1024;
/// How many remain once a check found too many: room for the next [`CHECK_EVERY`].
const KEEP: usize = CAPACITY - CHECK_EVERY as usize;
/// Cachings between two checks.
const CHECK_EVERY: u64 = 128;

/// Counts cachings and decides when to check.
#[derive(Default)]
pub(super) struct Bound {
    cachings: AtomicU64,
}

impl Bound {
    /// Called (under the entries' lock) after a secret was cached: trims the cache every
    /// [`CHECK_EVERY`] calls. Returns how many secrets were dropped.
    pub(super) fn cached(&self, entries: &mut Entries) -> usize {
        let n = self.cachings.fetch_add(1, Ordering::Relaxed) + 1;
        if n % CHECK_EVERY == 0 {
            trim(entries)
        } else {
            0
        }
    }
}

/// When an entry was last used or written.
fn recency(entry: &Entry) -> DateTime<Utc> {
    let written = entry
        .record
        .last_refreshed_at
        .map_or(entry.record.updated_at, |r| r.max(entry.record.updated_at));
    entry.last_used_at.map_or(written, |used| used.max(written))
}

/// If more than [`CAPACITY`] entries hold a cached secret, drops the secrets of the least
/// recently used or written until [`KEEP`] remain. Returns how many were dropped.
fn trim(entries: &mut Entries) -> usize {
    // Counted first: most checks find the cache within bounds and need no more.
    if entries.values().filter(|e| e.cached.is_some()).count() <= CAPACITY {
        return 0;
    }
    let mut stamps: Vec<DateTime<Utc>> = entries
        .values()
        .filter(|e| e.cached.is_some())
        .map(|e| recency(e))
        .collect();
    let excess = stamps.len() - KEEP;
    // The newest of the `excess` oldest: what is as old as it or older goes (ties stop at
    // `excess`).
    let (_, &mut cutoff, _) = stamps.select_nth_unstable(excess - 1);
    let mut dropped = 0;
    for entry in entries.values_mut() {
        if dropped == excess {
            break;
        }
        if entry.cached.is_some() && recency(entry) <= cutoff {
            entry.cached = None;
            dropped += 1;
        }
    }
    dropped
}
