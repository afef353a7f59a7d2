//! Refreshing an OAuth entry inside `get`: one refresh per entry however many callers wait,
//! the new bundle (with any rotated refresh token) written to the store before anyone gets
//! the new access token, and a refresh racing `clear` or `set` never undoing them.
//!
//! Single flight: callers line up on the entry's [`Flights`]. The first one refreshes; everyone
//! who was waiting while it was out gets its outcome (the token, or the error) without asking
//! the provider again, whatever the new token's lifetime. A caller that arrives after it
//! landed judges the new token by the usual window (see `record`), which never exceeds half
//! of the token's lifetime, so a just-refreshed token is served, not refreshed again.
//!
//! Logout wins: a refresh that lands after its entry was logged out (retired) or cleared saves
//! nothing, answers `not_found`, and revokes the refresh token the provider rotated to, which
//! nobody else holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use latchkey_proto::{GetResult, Secret};
use tracing::{debug, info, warn};

use super::{result_of, ChangeKind, Freshness, TokenService};

use super::backoff::Backoff;
use crate::bundle::{StoredBundle, TokenBundle};
use crate::error::Error;
use crate::key::EntryKey;
use crate::record::EntryRecord;
use crate::refresh::{RefreshError, RefreshRequest};
use crate::store::Store;

/// Whether two bundles hold the same tokens (else one of them was refreshed or replaced).
fn same_tokens(a: &TokenBundle, b: &TokenBundle) -> bool {
    match (a, b) {
        (TokenBundle::OAuth2(a), TokenBundle::OAuth2(b)) => {
            a.access_token.expose() == b.access_token.expose()
                && a.refresh_token.as_ref().map(Secret::expose)
                    == b.refresh_token.as_ref().map(Secret::expose)
        }
        _ => false,
    }
}

/// What a landed refresh does with its bundle.
enum Fate {
    /// The entry is as the refresh found it: save.
    Save,
    /// A `set` put a new entry in its place: leave it.
    Replaced,
    /// Cleared or logged out: nobody holds the received tokens; revoke them.
    Orphan,
}

/// One entry's refresh line. Shared by an entry and the entry a `set` puts in its place, so
/// callers already waiting stay in the same line.
#[derive(Default)]
pub(super) struct Flights {
    /// Held while a refresh is out; holds the outcome of the last refresh that reached the
    /// provider.
    last: tokio::sync::Mutex<LastOutcome>,
    /// How many refreshes have reached the provider and landed. A caller that sees it change
    /// while it waited takes the outcome in `last` instead of refreshing again.
    landed: AtomicU64,
}

/// What the line holds: the outcome of the last refresh that reached the provider.
type LastOutcome = Option<Result<GetResult, Error>>;

impl Flights {
    /// Holds the line if nobody is in it (no refresh of this entry is out): while the guard
    /// lives, no refresh of it starts. `None` while someone is in it.
    pub(super) fn hold_if_idle(&self) -> Option<tokio::sync::MutexGuard<'_, LastOutcome>> {
        self.last.try_lock().ok()
    }
}

impl TokenService {
    /// Serves `key` after refreshing it, or after another caller's refresh of it.
    pub(super) async fn refresh_and_get(
        &self,
        key: &EntryKey,
        min: Duration,
    ) -> Result<GetResult, Error> {
        let flights = {
            let mut entries = self.entries();
            let entry = entries.get_mut(key).ok_or(Error::NotFound)?;
            Arc::clone(entry.refreshing.get_or_insert_with(Arc::default))
        };
        let seen = flights.landed.load(Ordering::SeqCst);
        let mut last = flights.last.lock().await;
        if flights.landed.load(Ordering::SeqCst) != seen {
            if let Some(outcome) = last.as_ref() {
                // A refresh landed while we waited: its outcome is ours too.
                if outcome.is_ok() {
                    self.touch(key, self.now());
                }
                return outcome.clone();
            }
        }
        let mut flew = false;
        let outcome = self.refresh_in_line(key, min, &mut flew).await;
        if flew {
            *last = Some(outcome.clone());
            flights.landed.fetch_add(1, Ordering::SeqCst);
        }
        outcome
    }

    /// Serves `key` at the front of its refresh line: from what is known when that will do,
    /// else by asking the provider (and then `flew` is set).
    async fn refresh_in_line(
        &self,
        key: &EntryKey,
        min: Duration,
        flew: &mut bool,
    ) -> Result<GetResult, Error> {
        // While we waited, the entry may have been set, cleared or refreshed by a caller that
        // did not share its outcome with us (it landed before we lined up).
        let now = self.now();
        let (mut record, cached, mut generation, failed_at, unsaved) = {
            let entries = self.entries();
            let entry = entries
                .get(key)
                .filter(|e| !e.retired)
                .ok_or(Error::NotFound)?;
            (
                entry.record.clone(),
                entry.cached.clone(),
                entry.generation,
                entry.backoff,
                entry.unsaved.clone(),
            )
        };
        if record.needs_login {
            return Err(Error::AuthenticationRequired {
                reason: "the provider refused the stored token; log in again",
            });
        }
        match self.freshness(&record, now, min) {
            Freshness::Fresh => {
                let bundle = self.load(key, cached, generation).await?;
                self.touch(key, now);
                return Ok(result_of(&bundle.bundle));
            }
            Freshness::Expired => return Err(super::cannot_serve(&record, now, min)),
            Freshness::Refresh => {}
        }
        let cooling = failed_at
            .filter(|backoff| backoff.waiting(now))
            .map(|backoff| backoff.retryable);
        if let Some(retryable) = cooling {
            let still_valid = record.expires_at.is_some_and(|at| at > now + min);
            if still_valid {
                let bundle = self.load(key, cached, generation).await?;
                self.touch(key, now);
                return Ok(result_of(&bundle.bundle));
            }
            return Err(Error::RefreshFailed {
                reason: if retryable {
                    "the token endpoint failed moments ago; try again shortly".into()
                } else {
                    "the token endpoint refused the refresh moments ago".into()
                },
                retryable,
            });
        }
        // Another daemon sharing the store refreshes this entry only while it holds the lock,
        // held from here until this refresh is written: the provider never sees one refresh
        // token twice.
        let shared_lock = match self.inner.store.refresh_lock(key).await {
            Ok(lock) => lock,
            Err(err) => {
                return Err(Error::RefreshFailed {
                    reason: err.to_string(),
                    retryable: true,
                })
            }
        };
        // Without other writers (no lock), the cached bundle is the newest (every write goes
        // through this service, generations guard the races); without one the store is read.
        // With them, the store is read, and what another daemon wrote is taken as ours. A
        // refreshed bundle the store refused lives only in memory. A refusal of the refresh
        // token is checked against the store below before the entry is marked.
        let (stored, from_store) = match (unsaved, cached) {
            (Some(doc), _) => (
                StoredBundle::from_document(&doc).map_err(Error::Corrupt)?,
                false,
            ),
            (None, Some(cached)) if shared_lock.is_none() => ((*cached).clone(), false),
            (None, cached) => {
                let stored = self.read_for_refresh(key, generation).await?;
                let moved = match &cached {
                    Some(cached) => !same_tokens(&cached.bundle, &stored.bundle),
                    None => stored.bundle.expires_at() != record.expires_at,
                };
                if moved {
                    // Written by another daemon: ours now, and perhaps fresh enough to serve.
                    (record, generation) = self.adopt(key, &record, generation, &stored, now)?;
                    if self.freshness(&record, now, min) != Freshness::Refresh {
                        debug!(entry = ?key, "another daemon refreshed it; serving its token");
                        self.touch(key, now);
                        return Ok(result_of(&stored.bundle));
                    }
                }
                (stored, true)
            }
        };
        let TokenBundle::OAuth2(old) = &stored.bundle else {
            return Err(Error::AuthenticationRequired {
                reason: "the entry holds no OAuth token to refresh",
            });
        };
        let (Some(refresh_token), Some(provider), Some(refresher)) = (
            old.refresh_token.as_ref(),
            old.provider.as_deref(),
            self.refresher(),
        ) else {
            return Err(Error::AuthenticationRequired {
                reason: "the access token has expired and latchkey cannot refresh it",
            });
        };
        debug!(entry = ?key, provider, "refreshing");
        *flew = true;
        let asking = std::time::Instant::now();
        let outcome = refresher
            .refresh(RefreshRequest {
                provider,
                refresh_token,
            })
            .await;
        debug!(
            entry = ?key,
            ok = outcome.is_ok(),
            ms = format!("{:.1}", asking.elapsed().as_secs_f64() * 1e3),
            "token endpoint answered"
        );
        let still_valid = old.expires_at.is_some_and(|at| at > now + min);
        // Failures that may pass, and refusals that will not (an unusable answer, a
        // misconfigured client), both back off: no request per `get` to a provider that keeps
        // failing, and no long wait after a blip.
        let failed = match &outcome {
            Err(RefreshError::Transient(_)) => Some(true),
            // A refused refresh token too: if marking the entry fails below, callers must not
            // present the dead token to the provider on every get.
            Err(
                RefreshError::Rejected(_)
                | RefreshError::RejectedRotated { .. }
                | RefreshError::InvalidGrant,
            ) => Some(false),
            _ => None,
        };
        if let Some(retryable) = failed {
            if let Some(entry) = self.entries().get_mut(key) {
                entry.backoff = Some(Backoff::after(entry.backoff, now, retryable));
            }
        }
        match outcome {
            Ok(fresh) => {
                let mut bundle = old.clone();
                bundle.access_token = fresh.access_token;
                if let Some(rotated) = fresh.refresh_token {
                    bundle.refresh_token = Some(rotated);
                }
                bundle.token_type = fresh.token_type;
                bundle.expires_at = fresh.expires_in.map(|secs| now + Duration::seconds(secs));
                if let Some(scopes) = fresh.scopes {
                    bundle.scopes = scopes;
                }
                if fresh.id_token.is_some() {
                    bundle.id_token = fresh.id_token;
                }
                let refreshed = stored.replaced(TokenBundle::OAuth2(bundle));
                self.save_refreshed(key, &record, generation, refreshed, refresh_token, now)
                    .await
            }
            Err(RefreshError::RejectedRotated {
                reason,
                refresh_token: rotated,
            }) => {
                // The answer is refused, but the provider spent the old refresh token: the
                // rotated one is kept (saved like a refresh) so the next refresh can work.
                warn!(entry = ?key, %reason, "refused token response; keeping its rotated refresh token");
                let mut bundle = old.clone();
                bundle.refresh_token = Some(rotated);
                let kept = stored.replaced(TokenBundle::OAuth2(bundle));
                let backoff = self.entries().get(key).and_then(|e| e.backoff);
                let served = self
                    .save_refreshed(key, &record, generation, kept, refresh_token, now)
                    .await;
                // Saving ended the backoff as a success would; the refusal still counts.
                if let Some(entry) = self.entries().get_mut(key) {
                    entry.backoff = backoff;
                }
                match served {
                    Ok(result) if still_valid => Ok(result),
                    Ok(_) => Err(Error::RefreshFailed {
                        reason: format!("the token endpoint's answer was unusable: {reason}"),
                        retryable: false,
                    }),
                    Err(err) => Err(err),
                }
            }
            Err(RefreshError::InvalidGrant) => {
                // Re-read the store first: a writer outside this daemon may have refreshed.
                if !from_store && self.unsaved_copy(key).is_none() {
                    let presented = refresh_token.expose();
                    let doc = self.read_current(key).await?.ok_or(Error::NotFound)?;
                    let in_store = StoredBundle::from_document(&doc).map_err(Error::Corrupt)?;
                    let changed = match &in_store.bundle {
                        TokenBundle::OAuth2(b) => {
                            b.refresh_token.as_ref().map(|t| t.expose()) != Some(presented)
                        }
                        _ => true,
                    };
                    if changed {
                        // Not a dead token: another writer's newer one. Read it next time,
                        // without a cool-down.
                        self.forget_cached(key, generation);
                        if let Some(entry) = self.entries().get_mut(key) {
                            entry.backoff = None;
                        }
                        return Err(Error::RefreshFailed {
                            reason: "the stored token changed meanwhile; try again".into(),
                            retryable: true,
                        });
                    }
                }
                self.mark_needs_login(key, &record, generation, &stored.to_document())
                    .await?;
                Err(Error::AuthenticationRequired {
                    reason: "the provider refused the refresh token; log in again",
                })
            }
            Err(err) if still_valid => {
                warn!(entry = ?key, error = %err, "refresh failed; serving the still valid token");
                let bundle = Arc::new(stored.bundle.clone());
                self.touch(key, now);
                Ok(result_of(&bundle))
            }
            Err(RefreshError::UnknownProvider) => Err(Error::AuthenticationRequired {
                reason: "the entry's provider is not configured; log in again",
            }),
            Err(err) => Err(Error::RefreshFailed {
                retryable: matches!(err, RefreshError::Transient(_)),
                reason: err.to_string(),
            }),
        }
    }

    /// Writes a refreshed bundle, then caches and serves it. Under the write lock, so a `clear`,
    /// logout or `set` that came first wins: a cleared or logged-out entry is not brought back
    /// (and the refresh token the provider rotated to, which nobody else holds, is revoked), a
    /// replaced one is not overwritten. `presented` is the refresh token the refresh spent.
    async fn save_refreshed(
        &self,
        key: &EntryKey,
        record: &EntryRecord,
        generation: u64,
        refreshed: StoredBundle,
        presented: &Secret,
        now: DateTime<Utc>,
    ) -> Result<GetResult, Error> {
        let writing = self.inner.writes.lock().await;
        let fate = {
            let entries = self.entries();
            let mut retired = self.retired_generations();
            match entries.get(key) {
                Some(e) if e.generation == generation && !e.retired => Fate::Save,
                // A new entry in its place, not a logout: the token may belong to its grant.
                Some(e) if !e.retired && !retired.remove(&generation) => Fate::Replaced,
                _ => {
                    retired.remove(&generation);
                    Fate::Orphan
                }
            }
        };
        match fate {
            Fate::Save => {}
            Fate::Replaced => {
                return Err(Error::RefreshFailed {
                    reason: "the entry was replaced while it refreshed; ask again".into(),
                    retryable: true,
                })
            }
            Fate::Orphan => {
                drop(writing);
                self.revoke_orphan(key, &refreshed, presented).await;
                return Err(Error::NotFound);
            }
        }
        let mut new_record =
            EntryRecord::describe(key.clone(), &refreshed.bundle, now, Some(record));
        new_record.last_refreshed_at = Some(now);
        let document = refreshed.to_document();
        let bundle = Arc::new(refreshed);
        let saving = std::time::Instant::now();
        let written = self.inner.store.write(key, &document, &new_record).await;
        let save_ms = saving.elapsed().as_secs_f64() * 1e3;
        // The provider may have rotated the refresh token: the new bundle is kept in memory
        // even if the store failed (or the next refresh would present a spent token), marked
        // unsaved, shown in status, and written again by `save_unsaved`.
        if let Some(entry) = self.entries().get_mut(key) {
            entry.record = new_record;
            entry.cached = Some(Arc::clone(&bundle));
            entry.generation = self.next_generation();
            entry.last_used_at = Some(now);
            // A success ends any cool-down: a clock that later comes back near an old
            // failure must not revive it.
            entry.backoff = None;
            entry.unsaved = written.is_err().then(|| document.clone());
        }
        match written {
            Ok(()) => info!(entry = ?key, save_ms = format!("{save_ms:.1}"), "refreshed"),
            Err(err) => warn!(
                entry = ?key,
                error = %err,
                "refreshed token not saved to the keychain; kept in memory and retried"
            ),
        }
        self.announce(key.clone(), ChangeKind::Refreshed);
        Ok(result_of(&bundle.bundle))
    }

    /// Reads the entry from the store for a refresh. Under the write lock, so a `set` cannot
    /// land between this read and the generation it belongs to (its refresh token would be
    /// spent and then lost).
    async fn read_for_refresh(
        &self,
        key: &EntryKey,
        generation: u64,
    ) -> Result<StoredBundle, Error> {
        let _writing = self.inner.writes.lock().await;
        if self.entries().get(key).map(|e| e.generation) != Some(generation) {
            return Err(Error::RefreshFailed {
                reason: "the entry changed while refreshing; try again".into(),
                retryable: true,
            });
        }
        let doc = self.inner.store.read(key).await?.ok_or(Error::NotFound)?;
        StoredBundle::from_document(&doc).map_err(Error::Corrupt)
    }

    /// Takes `stored`, which another daemon wrote, as the entry's bundle (as if this daemon had
    /// refreshed it at `now`); the entry's new record and generation.
    fn adopt(
        &self,
        key: &EntryKey,
        record: &EntryRecord,
        generation: u64,
        stored: &StoredBundle,
        now: DateTime<Utc>,
    ) -> Result<(EntryRecord, u64), Error> {
        let mut new_record = EntryRecord::describe(key.clone(), &stored.bundle, now, Some(record));
        new_record.last_refreshed_at = Some(now);
        let mut entries = self.entries();
        let entry = entries
            .get_mut(key)
            .filter(|e| e.generation == generation && !e.retired)
            .ok_or(Error::RefreshFailed {
                reason: "the entry changed while refreshing; try again".into(),
                retryable: true,
            })?;
        entry.record = new_record.clone();
        entry.cached = Some(Arc::new(stored.clone()));
        entry.generation = self.next_generation();
        entry.backoff = None;
        Ok((new_record, entry.generation))
    }

    /// Revokes the refresh token a refresh received for an entry removed meanwhile, if the
    /// provider rotated it (an unrotated one is the token the logout revoked).
    async fn revoke_orphan(&self, key: &EntryKey, refreshed: &StoredBundle, presented: &Secret) {
        let TokenBundle::OAuth2(bundle) = &refreshed.bundle else {
            return;
        };
        let (Some(rotated), Some(provider), Some(refresher)) = (
            bundle.refresh_token.as_ref(),
            bundle.provider.as_deref(),
            self.refresher(),
        ) else {
            return;
        };
        if rotated.expose() == presented.expose() {
            return;
        }
        info!(entry = ?key, "removed while refreshing: revoking the refresh token it received");
        refresher.revoke_orphan(provider, rotated).await;
    }

    /// Records that the provider refused the refresh token.
    async fn mark_needs_login(
        &self,
        key: &EntryKey,
        record: &EntryRecord,
        generation: u64,
        document: &crate::store::SecretBytes,
    ) -> Result<(), Error> {
        let _writing = self.inner.writes.lock().await;
        if self.entries().get(key).map(|e| e.generation) != Some(generation) {
            // Cleared or replaced meanwhile: nothing to mark.
            return Ok(());
        }
        let mut new_record = record.clone();
        new_record.needs_login = true;
        self.inner.store.write(key, document, &new_record).await?;
        if let Some(entry) = self.entries().get_mut(key) {
            entry.record = new_record;
            entry.cached = None;
            entry.generation = self.next_generation();
            entry.unsaved = None;
        }
        info!(entry = ?key, "the provider refused the refresh token: needs login");
        Ok(())
    }
}
