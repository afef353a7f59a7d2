//! The wait after wrong passphrases: after the Nth wrong one in a row, attempts before
//! `min(2^(N-1), 60)` seconds have passed are answered `TooSoon` without being checked. A
//! right passphrase starts the count again.
//!
//! This slows a program that guesses through the daemon's socket; it is kept in memory, so a
//! restarted daemon starts from zero. What bounds guessing offline is scrypt's cost per guess
//! (see `keys`), as `identity.age` is readable by anyone who can read the folder.

use std::time::Duration;

use latchkey_core::StoreError;
use tokio::time::Instant;

/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Wrong passphrases in a row and what they cost.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// Wrong passphrases since the last right one.
    failures: u32,
    /// No attempt is checked before this.
    not_before: Option<Instant>,
}

impl Throttle {
    /// `TooSoon` if an attempt now must wait.
    pub(crate) fn check(&self, now: Instant) -> Result<(), StoreError> {
        match self.not_before {
            Some(until) if now < until => {
                let left = until - now;
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                Err(StoreError::TooSoon { secs })
            }
            _ => Ok(()),
        }
    }

    /// Notes a wrong passphrase found at `now`.
    pub(crate) fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let doubling = self.failures.saturating_sub(1).min(6);
        let wait = Duration::from_secs(1 << doubling).min(MAX_WAIT);
        self.not_before = Some(now + wait);
    }

    /// Notes a right passphrase.
    pub(crate) fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_a_minute_and_a_success_resets_it() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        throttle.check(start).unwrap();
        let mut now = start;
        for (n, wait) in [1u64, 2, 4, 8, 16, 32, 60, 60, 60].into_iter().enumerate() {
            throttle.failed(now);
            assert_eq!(
                throttle.check(now),
                Err(StoreError::TooSoon { secs: wait }),
                "after {} failures",
                n + 1
            );
            let almost = now + Duration::from_secs(wait) - Duration::from_millis(1);
            assert_eq!(throttle.check(almost), Err(StoreError::TooSoon { secs: 1 }));
            now += Duration::from_secs(wait);
            throttle.check(now).unwrap();
        }
        throttle.succeeded();
        throttle.failed(now);
        assert_eq!(throttle.check(now), Err(StoreError::TooSoon { secs: 1 }));
    }
}
