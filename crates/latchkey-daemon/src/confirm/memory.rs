//! What the daemon remembers about confirmations: the user's answers, per entry and
//! executable path, and the prompts still waiting for one. Pure bookkeeping, no I/O, so the
//! rules are unit-tested here:
//!
//! - an Allow or a Deny is kept until the entry changes (a `set` or a `clear`, by a client or
//!   a login or logout) or the daemon restarts; a refresh by the daemon keeps it;
//! - one prompt per entry and executable at a time: later askers wait on it;
//! - an answer to a prompt shown before the entry changed is used for the askers waiting on
//!   it, but not kept.

use std::collections::HashMap;

use latchkey_core::EntryKey;

use super::prompt::Verdict;

/// Most answers kept; past it all are forgotten (each program is then asked again), so a
/// client cannot grow the daemon's memory by asking for many entries from many paths.
pub const MAX_ANSWERS: usize = 4096;

/// Most prompts shown at once (for different entries or programs); past it a new one is
/// refused, so a program copied to many paths cannot bury the desktop in notifications.
pub const MAX_PENDING: usize = 8;

/// A prompt being shown, with what its askers wait on (`W`).
struct Pending<W> {
    waiter: W,
    /// The entry changed while it was shown: its answer is not kept.
    stale: bool,
}

/// Answers and pending prompts. `W` is what askers of a pending prompt wait on.
pub struct Memory<W> {
    /// Allow (`true`) or Deny (`false`) by entry, then executable path.
    answers: HashMap<EntryKey, HashMap<String, bool>>,
    /// How many answers `answers` holds.
    count: usize,
    /// Prompts shown and not answered yet, by entry and executable path.
    pending: HashMap<(EntryKey, String), Pending<W>>,
}

impl<W> Default for Memory<W> {
    fn default() -> Self {
        Self {
            answers: HashMap::new(),
            count: 0,
            pending: HashMap::new(),
        }
    }
}

impl<W> Memory<W> {
    /// The answer kept for `exe` reading `key`: Allow (`true`), Deny (`false`), or none.
    pub fn answer(&self, key: &EntryKey, exe: &str) -> Option<bool> {
        self.answers.get(key)?.get(exe).copied()
    }

    /// What to wait on if a prompt for `exe` reading `key` is being shown.
    pub fn waiter(&self, key: &EntryKey, exe: &str) -> Option<&W> {
        // The map is keyed by owned pairs; a pending prompt is rare, so one allocation here
        // is cheaper than a second index.
        self.pending
            .get(&(key.clone(), exe.to_owned()))
            .map(|p| &p.waiter)
    }

    /// Whether another prompt may be shown now (fewer than [`MAX_PENDING`] are).
    pub fn may_start(&self) -> bool {
        self.pending.len() < MAX_PENDING
    }

    /// Notes that a prompt for `exe` reading `key` is now shown; askers wait on `waiter`.
    pub fn start(&mut self, key: EntryKey, exe: String, waiter: W) {
        self.pending.insert(
            (key, exe),
            Pending {
                waiter,
                stale: false,
            },
        );
    }

    /// The prompt for `exe` reading `key` ended with `verdict`: it is no longer pending, and
    /// an Allow or a Deny is kept unless the entry changed meanwhile. Whether it was kept.
    pub fn finish(&mut self, key: &EntryKey, exe: &str, verdict: &Verdict) -> bool {
        let pending = self.pending.remove(&(key.clone(), exe.to_owned()));
        let stale = pending.is_none_or(|p| p.stale);
        if stale || !verdict.is_answer() {
            return false;
        }
        let known = self.answer(key, exe).is_some();
        if !known && self.count >= MAX_ANSWERS {
            self.answers.clear();
            self.count = 0;
        }
        let by_exe = self.answers.entry(key.clone()).or_default();
        if by_exe
            .insert(exe.to_owned(), *verdict == Verdict::Allowed)
            .is_none()
        {
            self.count += 1;
        }
        true
    }

    /// `key` changed: its answers are forgotten, and prompts shown for it will not be kept.
    pub fn forget(&mut self, key: &EntryKey) {
        if let Some(by_exe) = self.answers.remove(key) {
            self.count -= by_exe.len();
        }
        for ((pending_key, _), pending) in self.pending.iter_mut() {
            if pending_key == key {
                pending.stale = true;
            }
        }
    }

    /// Every entry may have changed (changes were missed): everything is forgotten.
    pub fn forget_all(&mut self) {
        self.answers.clear();
        self.count = 0;
        for pending in self.pending.values_mut() {
            pending.stale = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: &str) -> EntryKey {
        EntryKey::new(service, None).unwrap()
    }

    #[test]
    fn answers_are_kept_per_entry_and_program_until_the_entry_changes() {
        let mut memory = Memory::<()>::default();
        let bank = key("bank");
        memory.start(bank.clone(), "/usr/bin/curl".into(), ());
        assert!(memory.waiter(&bank, "/usr/bin/curl").is_some());
        assert!(memory.waiter(&bank, "/usr/bin/wget").is_none());
        assert!(memory.finish(&bank, "/usr/bin/curl", &Verdict::Allowed));
        assert!(memory.waiter(&bank, "/usr/bin/curl").is_none());
        assert_eq!(memory.answer(&bank, "/usr/bin/curl"), Some(true));
        assert_eq!(memory.answer(&bank, "/usr/bin/wget"), None);
        assert_eq!(memory.answer(&key("other"), "/usr/bin/curl"), None);

        memory.start(bank.clone(), "/usr/bin/wget".into(), ());
        assert!(memory.finish(&bank, "/usr/bin/wget", &Verdict::Denied));
        assert_eq!(memory.answer(&bank, "/usr/bin/wget"), Some(false));

        memory.forget(&key("other"));
        assert_eq!(memory.answer(&bank, "/usr/bin/curl"), Some(true));
        memory.forget(&bank);
        assert_eq!(memory.answer(&bank, "/usr/bin/curl"), None);
        assert_eq!(memory.answer(&bank, "/usr/bin/wget"), None);
        assert_eq!(memory.count, 0);
    }

    #[test]
    fn only_answers_are_kept() {
        let mut memory = Memory::<()>::default();
        let bank = key("bank");
        for verdict in [
            Verdict::Dismissed,
            Verdict::TimedOut,
            Verdict::NoServer("none".into()),
            Verdict::Failed("broken".into()),
        ] {
            memory.start(bank.clone(), "/bin/x".into(), ());
            assert!(!memory.finish(&bank, "/bin/x", &verdict));
            assert_eq!(memory.answer(&bank, "/bin/x"), None, "{verdict:?}");
            assert!(memory.waiter(&bank, "/bin/x").is_none());
        }
    }

    #[test]
    fn an_answer_given_after_the_entry_changed_is_not_kept() {
        let mut memory = Memory::<()>::default();
        let bank = key("bank");
        memory.start(bank.clone(), "/bin/x".into(), ());
        memory.forget(&bank);
        assert!(!memory.finish(&bank, "/bin/x", &Verdict::Allowed));
        assert_eq!(memory.answer(&bank, "/bin/x"), None);

        memory.start(bank.clone(), "/bin/x".into(), ());
        memory.forget_all();
        assert!(!memory.finish(&bank, "/bin/x", &Verdict::Denied));
        assert_eq!(memory.answer(&bank, "/bin/x"), None);
    }

    #[test]
    fn prompts_shown_at_once_are_bounded() {
        let mut memory = Memory::<()>::default();
        let bank = key("bank");
        for n in 0..MAX_PENDING {
            assert!(memory.may_start());
            memory.start(bank.clone(), format!("/bin/{n}"), ());
        }
        assert!(!memory.may_start());
        memory.finish(&bank, "/bin/0", &Verdict::TimedOut);
        assert!(memory.may_start());
    }

    #[test]
    fn memory_is_bounded() {
        let mut memory = Memory::<()>::default();
        let bank = key("bank");
        for n in 0..MAX_ANSWERS {
            let exe = format!("/bin/{n}");
            memory.start(bank.clone(), exe.clone(), ());
            memory.finish(&bank, &exe, &Verdict::Allowed);
        }
        assert_eq!(memory.count, MAX_ANSWERS);
        // The same answer again does not count twice.
        memory.start(bank.clone(), "/bin/0".into(), ());
        memory.finish(&bank, "/bin/0", &Verdict::Allowed);
        assert_eq!(memory.count, MAX_ANSWERS);
        memory.start(bank.clone(), "/bin/new".into(), ());
        memory.finish(&bank, "/bin/new", &Verdict::Allowed);
        assert_eq!(memory.count, 1);
        assert_eq!(memory.answer(&bank, "/bin/0"), None);
        assert_eq!(memory.answer(&bank, "/bin/new"), Some(true));
    }
}
