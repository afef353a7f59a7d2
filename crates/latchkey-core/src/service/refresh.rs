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
//! Forced refresh: a caller whose access token was rejected (an upstream answered `401`) names
//! it by its fingerprint (`get`'s `rejected`). It lines up like any other caller; at the front
//! of the line, if the entry still holds that token, it is refreshed even though it is not
//! near its expiry; if the entry holds another token (someone refreshed or set it meanwhile),
//! that one is served. Callers waiting while the refresh was out take its outcome, so any
//! number of callers rejecting one token make one refresh. The backoff after failures applies,
//! and forced refreshes of one entry have a backoff of their own (see `Entry::forced`).
//!
//! Logout wins: a refresh that lands after its entry was logged out (retired) or cleared saves
//! nothing, answers `not_found`, and revokes the refresh token the provider rotated to, which
//! nobody else holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use latchkey_proto::{GetResult, Secret, TokenFingerprint};
use tracing::{debug, info, warn};

use super::{result_of, ChangeKind, Freshness, TokenService};

use super::backoff::Backoff;
use crate::bundle::{OAuth2Bundle, StoredBundle, TokenBundle};
use crate::error::Error;
use crate::key::EntryKey;
use crate::record::EntryRecord;
use crate::refresh::{RefreshError, RefreshRequest, Refreshed};
use crate::store::{SecretBytes, Store};

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

/// The entry as the front of its refresh line found it.
struct InLine {
    record: Arc<EntryRecord>,
    cached: Option<Arc<StoredBundle>>,
    generation: u64,
    /// The cool-down after a failed refresh, if any.
    backoff: Option<Backoff>,
    /// The cool-down after forced refreshes, if any.
    forced: Option<Backoff>,
    /// A refreshed document the store refused, if any.
    unsaved: Option<SecretBytes>,
}

/// What `bundle_to_refresh` found.
enum ToRefresh {
    /// This bundle is to be refreshed; `from_store` if it was read from the store just now.
    Bundle {
        stored: StoredBundle,
        from_store: bool,
    },
    /// Another daemon refreshed the entry meanwhile, and its token serves.
    Served(GetResult),
}

/// A refresh that reached the provider: what its answer is applied to.
struct Landing<'a> {
    key: &'a EntryKey,
    /// The entry's record and generation when the refresh was asked for.
    record: &'a EntryRecord,
    generation: u64,
    /// The bundle refreshed, and its tokens.
    stored: &'a StoredBundle,
    old: &'a OAuth2Bundle,
    /// The refresh token presented (and spent, if the provider rotates).
    presented: &'a Secret,
    /// Whether `stored` was read from the store just now (else it came from memory).
    from_store: bool,
    now: DateTime<Utc>,
    /// Whether the old access token still serves the caller's minimum validity.
    still_valid: bool,
}

/// `old` with what the provider answered: the new access token, a rotated refresh token (else
/// the old one stays), the new expiry, and granted scopes or an ID token if it sent them.
fn renewed(old: &OAuth2Bundle, fresh: Refreshed, now: DateTime<Utc>) -> OAuth2Bundle {
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
    bundle
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
    ///
    /// `rejected`: the caller's token was rejected; refresh even a fresh entry if it still
    /// holds that token (see the module's comment).
    pub(super) async fn refresh_and_get(
        &self,
        key: &EntryKey,
        min: Duration,
        rejected: Option<&TokenFingerprint>,
    ) -> Result<GetResult, Error> {
        let flights = {
            let mut entries = self.entries();
            let entry = entries.get_mut(key).ok_or(Error::NotFound)?;
            entry.line()
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
        let outcome = self.refresh_in_line(key, min, rejected, &mut flew).await;
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
        rejected: Option<&TokenFingerprint>,
        flew: &mut bool,
    ) -> Result<GetResult, Error> {
        // While we waited, the entry may have been set, cleared or refreshed by a caller that
        // did not share its outcome with us (it landed before we lined up).
        let now = self.now();
        let mut line = self.in_line(key)?;
        let answer = match rejected {
            Some(print) => self.answer_rejected(key, &line, print, now, min).await,
            None => self.answer_without_refresh(key, &line, now, min).await,
        };
        if let Some(answer) = answer {
            return answer;
        }
        // Another daemon sharing the store refreshes this entry only while it holds the lock,
        // held from here until this refresh is written (the end of this function): the
        // provider never sees one refresh token twice.
        let shared_lock = match self.inner.store.refresh_lock(key).await {
            Ok(lock) => lock,
            Err(err) => {
                return Err(Error::RefreshFailed {
                    reason: err.to_string(),
                    retryable: true,
                })
            }
        };
        let (stored, from_store) = match self
            .bundle_to_refresh(key, &mut line, shared_lock.is_some(), now, min)
            .await?
        {
            ToRefresh::Bundle { stored, from_store } => (stored, from_store),
            ToRefresh::Served(result) => return Ok(result),
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
        debug!(entry = ?key, provider, forced = rejected.is_some(), "refreshing");
        *flew = true;
        if rejected.is_some() {
            self.note_forced(key, now);
        }
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
        self.back_off_after(key, &outcome, now);
        let landing = Landing {
            key,
            record: &line.record,
            generation: line.generation,
            stored: &stored,
            old,
            presented: refresh_token,
            from_store,
            now,
            still_valid: old.expires_at.is_some_and(|at| at > now + min),
        };
        self.land(&landing, outcome).await
    }

    /// The entry as the front of its line finds it; `NotFound` if it is gone or logged out.
    fn in_line(&self, key: &EntryKey) -> Result<InLine, Error> {
        let entries = self.entries();
        let entry = entries
            .get(key)
            .filter(|e| !e.retired)
            .ok_or(Error::NotFound)?;
        Ok(InLine {
            record: entry.record.clone(),
            cached: entry.cached.clone(),
            generation: entry.generation,
            backoff: entry.backoff(),
            forced: entry.forced(),
            unsaved: entry.unsaved().cloned(),
        })
    }

    /// The answer when no refresh is to be made: the entry needs a login, its token is fresh
    /// (or expired beyond serving), or a failed refresh is cooling down. `None`: refresh.
    async fn answer_without_refresh(
        &self,
        key: &EntryKey,
        line: &InLine,
        now: DateTime<Utc>,
        min: Duration,
    ) -> Option<Result<GetResult, Error>> {
        let record = &line.record;
        if record.needs_login {
            return Some(Err(Error::AuthenticationRequired {
                reason: "the provider refused the stored token; log in again",
            }));
        }
        match self.freshness(record, now, min) {
            Freshness::Fresh => return Some(self.serve_cached(key, line, now).await),
            Freshness::Expired => return Some(Err(super::cannot_serve(record, now, min))),
            Freshness::Refresh => {}
        }
        let retryable = line
            .backoff
            .filter(|backoff| backoff.waiting(now))
            .map(|backoff| backoff.retryable)?;
        let still_valid = record.expires_at.is_some_and(|at| at > now + min);
        if still_valid {
            return Some(self.serve_cached(key, line, now).await);
        }
        Some(Err(Error::RefreshFailed {
            reason: if retryable {
                "the token endpoint failed moments ago; try again shortly".into()
            } else {
                "the token endpoint refused the refresh moments ago".into()
            },
            retryable,
        }))
    }

    /// The answer to a caller whose token was rejected, when no refresh is to be made: as for
    /// any caller when the entry is due for a refresh anyway (or cannot serve); else its
    /// current token if that is not the rejected one, or if refreshes are cooling down.
    /// `None`: refresh now, though the token is not near its expiry.
    async fn answer_rejected(
        &self,
        key: &EntryKey,
        line: &InLine,
        print: &TokenFingerprint,
        now: DateTime<Utc>,
        min: Duration,
    ) -> Option<Result<GetResult, Error>> {
        if line.record.needs_login || self.freshness(&line.record, now, min) != Freshness::Fresh {
            return self.answer_without_refresh(key, line, now, min).await;
        }
        let bundle = match self.load(key, line.cached.clone(), line.generation).await {
            Ok(bundle) => bundle,
            Err(err) => return Some(Err(err)),
        };
        let cooling = |backoff: Option<Backoff>| backoff.is_some_and(|b| b.waiting(now));
        let refreshable = self.refreshable(&line.record);
        if !refreshable
            || !super::holds(&bundle.bundle, print)
            || cooling(line.backoff)
            || cooling(line.forced)
        {
            self.touch(key, now);
            return Some(Ok(result_of(&bundle.bundle)));
        }
        None
    }

    /// Starts or lengthens the cool-down of forced refreshes of `key`: the next one is made
    /// no sooner than 1 s after this one, doubling with each in a row up to 60 s. One more
    /// than two minutes after the last one's wait ended starts a new row.
    fn note_forced(&self, key: &EntryKey, now: DateTime<Utc>) {
        if let Some(entry) = self.entries().get_mut(key) {
            let recent = entry
                .forced()
                .filter(|b| b.within(now, Duration::minutes(2)));
            entry.set_forced(Some(Backoff::after(recent, now, true)));
        }
    }

    /// Serves the entry's current bundle as it is.
    async fn serve_cached(
        &self,
        key: &EntryKey,
        line: &InLine,
        now: DateTime<Utc>,
    ) -> Result<GetResult, Error> {
        let bundle = self.load(key, line.cached.clone(), line.generation).await?;
        self.touch(key, now);
        Ok(result_of(&bundle.bundle))
    }

    /// The bundle to refresh, and whether it was read from the store just now; or the token
    /// another daemon sharing the store refreshed meanwhile, when it serves (`line` then holds
    /// the entry as adopted).
    ///
    /// Without other writers (`shared_lock` false), the cached bundle is the newest (every
    /// write goes through this service, generations guard the races); without one the store
    /// is read. With them, the store is read, and what another daemon wrote is taken as ours.
    /// A refreshed bundle the store refused lives only in memory. A refusal of the refresh
    /// token is checked against the store (see `refused_refresh_token`) before the entry is
    /// marked.
    async fn bundle_to_refresh(
        &self,
        key: &EntryKey,
        line: &mut InLine,
        shared_lock: bool,
        now: DateTime<Utc>,
        min: Duration,
    ) -> Result<ToRefresh, Error> {
        let (stored, from_store) = match (line.unsaved.take(), line.cached.take()) {
            (Some(doc), _) => (
                StoredBundle::from_document(&doc).map_err(Error::Corrupt)?,
                false,
            ),
            (None, Some(cached)) if !shared_lock => ((*cached).clone(), false),
            (None, cached) => {
                let stored = self.read_for_refresh(key, line.generation).await?;
                let moved = match &cached {
                    Some(cached) => !same_tokens(&cached.bundle, &stored.bundle),
                    None => stored.bundle.expires_at() != line.record.expires_at,
                };
                if moved {
                    // Written by another daemon: ours now, and perhaps fresh enough to serve.
                    (line.record, line.generation) =
                        self.adopt(key, &line.record, line.generation, &stored, now)?;
                    if self.freshness(&line.record, now, min) != Freshness::Refresh {
                        debug!(entry = ?key, "another daemon refreshed it; serving its token");
                        self.touch(key, now);
                        return Ok(ToRefresh::Served(result_of(&stored.bundle)));
                    }
                }
                (stored, true)
            }
        };
        Ok(ToRefresh::Bundle { stored, from_store })
    }

    /// Starts or lengthens the entry's cool-down after a failed refresh. Failures that may
    /// pass, and refusals that will not (an unusable answer, a misconfigured client), both back
    /// off: no request per `get` to a provider that keeps failing, and no long wait after a
    /// blip.
    fn back_off_after(
        &self,
        key: &EntryKey,
        outcome: &Result<Refreshed, RefreshError>,
        now: DateTime<Utc>,
    ) {
        let retryable = match outcome {
            Err(RefreshError::Transient(_)) => true,
            // A refused refresh token too: if marking the entry fails, callers must not present
            // the dead token to the provider on every get.
            Err(
                RefreshError::Rejected(_)
                | RefreshError::RejectedRotated { .. }
                | RefreshError::InvalidGrant,
            ) => false,
            _ => return,
        };
        if let Some(entry) = self.entries().get_mut(key) {
            entry.set_backoff(Some(Backoff::after(entry.backoff(), now, retryable)));
        }
    }

    /// What the provider's answer makes of the entry, and what the caller gets.
    async fn land(
        &self,
        landing: &Landing<'_>,
        outcome: Result<Refreshed, RefreshError>,
    ) -> Result<GetResult, Error> {
        match outcome {
            Ok(fresh) => {
                let bundle = renewed(landing.old, fresh, landing.now);
                let refreshed = landing.stored.replaced(TokenBundle::OAuth2(bundle));
                self.save_landed(landing, refreshed).await
            }
            Err(RefreshError::RejectedRotated {
                reason,
                refresh_token: rotated,
            }) => self.keep_rotated(landing, reason, rotated).await,
            Err(RefreshError::InvalidGrant) => self.refused_refresh_token(landing).await,
            Err(err) if landing.still_valid => {
                warn!(entry = ?landing.key, error = %err, "refresh failed; serving the still valid token");
                let bundle = Arc::new(landing.stored.bundle.clone());
                self.touch(landing.key, landing.now);
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

    /// [`Self::save_refreshed`] for the entry as the refresh found it.
    async fn save_landed(
        &self,
        landing: &Landing<'_>,
        refreshed: StoredBundle,
    ) -> Result<GetResult, Error> {
        self.save_refreshed(
            landing.key,
            landing.record,
            landing.generation,
            refreshed,
            landing.presented,
            landing.now,
        )
        .await
    }

    /// The answer was refused, but the provider spent the old refresh token: the rotated one
    /// is kept (saved like a refresh) so the next refresh can work. The old access token is
    /// served while it lasts.
    async fn keep_rotated(
        &self,
        landing: &Landing<'_>,
        reason: String,
        rotated: Secret,
    ) -> Result<GetResult, Error> {
        let key = landing.key;
        warn!(entry = ?key, %reason, "refused token response; keeping its rotated refresh token");
        let mut bundle = landing.old.clone();
        bundle.refresh_token = Some(rotated);
        let kept = landing.stored.replaced(TokenBundle::OAuth2(bundle));
        let backoff = self.entries().get(key).and_then(|e| e.backoff());
        let served = self.save_landed(landing, kept).await;
        // Saving ended the backoff as a success would; the refusal still counts.
        if let Some(entry) = self.entries().get_mut(key) {
            entry.set_backoff(backoff);
        }
        match served {
            Ok(result) if landing.still_valid => Ok(result),
            Ok(_) => Err(Error::RefreshFailed {
                reason: format!("the token endpoint's answer was unusable: {reason}"),
                retryable: false,
            }),
            Err(err) => Err(err),
        }
    }

    /// `invalid_grant`: the entry needs a login, unless a writer outside this daemon put a
    /// newer refresh token in the store meanwhile (then the next get reads it).
    async fn refused_refresh_token(&self, landing: &Landing<'_>) -> Result<GetResult, Error> {
        let key = landing.key;
        // Re-read the store first: a writer outside this daemon may have refreshed.
        if !landing.from_store && self.unsaved_copy(key).is_none() {
            let presented = landing.presented.expose();
            let doc = self.read_current(key).await?.ok_or(Error::NotFound)?;
            let in_store = StoredBundle::from_document(&doc).map_err(Error::Corrupt)?;
            let changed = match &in_store.bundle {
                TokenBundle::OAuth2(b) => {
                    b.refresh_token.as_ref().map(|t| t.expose()) != Some(presented)
                }
                _ => true,
            };
            if changed {
                // Not a dead token: another writer's newer one. Read it next time, without a
                // cool-down.
                self.forget_cached(key, landing.generation);
                if let Some(entry) = self.entries().get_mut(key) {
                    entry.set_backoff(None);
                }
                return Err(Error::RefreshFailed {
                    reason: "the stored token changed meanwhile; try again".into(),
                    retryable: true,
                });
            }
        }
        self.mark_needs_login(
            key,
            landing.record,
            landing.generation,
            &landing.stored.to_document(),
        )
        .await?;
        Err(Error::AuthenticationRequired {
            reason: "the provider refused the refresh token; log in again",
        })
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
        let new_record = Arc::new(new_record);
        let document = refreshed.to_document();
        let bundle = Arc::new(refreshed);
        let saving = std::time::Instant::now();
        let written = self.inner.store.write(key, &document, &new_record).await;
        let save_ms = saving.elapsed().as_secs_f64() * 1e3;
        // The provider may have rotated the refresh token: the new bundle is kept in memory
        // even if the store failed (or the next refresh would present a spent token), marked
        // unsaved, shown in status, and written again by `save_unsaved`.
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(key) {
            entry.record = new_record;
            entry.cached = Some(Arc::clone(&bundle));
            entry.generation = self.next_generation();
            entry.last_used_at = Some(now);
            // A success ends any cool-down: a clock that later comes back near an old
            // failure must not revive it.
            entry.set_backoff(None);
            entry.set_unsaved(written.is_err().then(|| document.clone()));
            self.cached_one(&mut entries);
        }
        drop(entries);
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
    ) -> Result<(Arc<EntryRecord>, u64), Error> {
        let mut new_record = EntryRecord::describe(key.clone(), &stored.bundle, now, Some(record));
        new_record.last_refreshed_at = Some(now);
        let new_record = Arc::new(new_record);
        let mut entries = self.entries();
        let entry = entries
            .get_mut(key)
            .filter(|e| e.generation == generation && !e.retired)
            .ok_or(Error::RefreshFailed {
                reason: "the entry changed while refreshing; try again".into(),
                retryable: true,
            })?;
        entry.record = Arc::clone(&new_record);
        entry.cached = Some(Arc::new(stored.clone()));
        entry.generation = self.next_generation();
        entry.set_backoff(None);
        let generation = entry.generation;
        self.cached_one(&mut entries);
        Ok((new_record, generation))
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
        let new_record = Arc::new(new_record);
        self.inner.store.write(key, document, &new_record).await?;
        if let Some(entry) = self.entries().get_mut(key) {
            entry.record = new_record;
            entry.cached = None;
            entry.generation = self.next_generation();
            entry.set_unsaved(None);
        }
        info!(entry = ?key, "the provider refused the refresh token: needs login");
        Ok(())
    }
}
