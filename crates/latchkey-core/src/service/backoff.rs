//! How long to leave a provider alone after failed refreshes of an entry.
//!
//! After a failure (one that may pass, or a refusal) the provider is asked again no sooner than
//! about 1 s later; each further failure in a row doubles that, up to 60 s. Each wait is
//! stretched by a random 0 to 25 % (jitter, so entries and daemons that failed together do not
//! come back together), never beyond 60 s. A successful refresh ends the backoff. Callers in a
//! backoff are answered from what is known: the old token while it is still valid, else a
//! `refresh_failed` error.

use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Duration, Utc};

/// The wait after one failure, in milliseconds.
const FIRST_MS: i64 = 1_000;
/// The longest wait, in milliseconds.
const MAX_MS: i64 = 60_000;

/// Failed refreshes in a row of one entry, and when the provider may be asked again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Backoff {
    /// When the last refresh failed.
    failed_at: DateTime<Utc>,
    /// Whether that failure may pass.
    pub(super) retryable: bool,
    /// Failures in a row.
    failures: u32,
    /// How long after `failed_at` the provider is left alone.
    wait: Duration,
}

impl Backoff {
    /// The backoff after a failure at `now`, following `previous` failures in a row.
    pub(super) fn after(previous: Option<Backoff>, now: DateTime<Utc>, retryable: bool) -> Self {
        let failures = previous.map_or(0, |b| b.failures).saturating_add(1);
        Self {
            failed_at: now,
            retryable,
            failures,
            wait: wait(failures, jitter()),
        }
    }

    /// Whether the provider is still left alone at `now`. A clock that went back before the
    /// failure ends the wait rather than stretching it.
    pub(super) fn waiting(&self, now: DateTime<Utc>) -> bool {
        now >= self.failed_at && now - self.failed_at < self.wait
    }

    /// Whether `now` is less than `span` after the wait ended (a clock that went back counts
    /// as within).
    pub(super) fn within(&self, now: DateTime<Utc>, span: Duration) -> bool {
        now < self.failed_at + self.wait + span
    }
}

/// The wait after `failures` failures in a row, stretched by `jitter` (0 to 1) by up to 25 %.
fn wait(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = (FIRST_MS << doublings).min(MAX_MS);
    let stretched = base as f64 * (1.0 + jitter.clamp(0.0, 1.0) / 4.0);
    Duration::milliseconds((stretched as i64).min(MAX_MS))
}

/// A random number from 0 to 1 (std's randomly keyed hasher; no cryptographic use).
fn jitter() -> f64 {
    let draw = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (draw % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_at_a_second_and_double_up_to_a_minute() {
        let secs = |failures, jitter| wait(failures, jitter).num_milliseconds() as f64 / 1e3;
        assert_eq!(secs(1, 0.0), 1.0);
        assert_eq!(secs(1, 1.0), 1.25);
        assert_eq!(secs(2, 0.0), 2.0);
        assert_eq!(secs(3, 0.5), 4.5);
        assert_eq!(secs(6, 0.0), 32.0);
        assert_eq!(secs(6, 1.0), 40.0);
        assert_eq!(secs(7, 0.0), 60.0);
        assert_eq!(secs(7, 1.0), 60.0);
        assert_eq!(secs(u32::MAX, 1.0), 60.0);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let draws: Vec<f64> = (0..50).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.iter().any(|j| *j != draws[0]));
    }

    #[test]
    fn failures_in_a_row_count_and_a_backwards_clock_ends_the_wait() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let first = Backoff::after(None, t0, true);
        assert!(first.waiting(t0 + Duration::milliseconds(999)));
        assert!(!first.waiting(t0 + Duration::milliseconds(1250)));
        assert!(!first.waiting(t0 - Duration::seconds(1)));
        let second = Backoff::after(Some(first), t0, false);
        assert_eq!(second.failures, 2);
        assert!(second.waiting(t0 + Duration::milliseconds(1999)));
        assert!(!second.retryable);
    }
}
