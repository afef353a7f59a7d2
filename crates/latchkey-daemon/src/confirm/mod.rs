//! Confirm prompts (`[policy] confirm`): the first `get` of a listed entry by a program the
//! user has not answered for yet shows a desktop notification with Allow and Deny
//! (`org.freedesktop.Notifications` on the session bus) and waits for the answer, up to
//! `[policy] confirm_timeout_secs`.
//!
//! The program is known by its executable path, as the transport read it from the peer's
//! process (`/proc/PID/exe`); a caller whose executable is unknown is refused without a
//! prompt. Allow and Deny are kept in memory per entry and path until the entry is set or
//! cleared (by a client, a login or a logout; a refresh by the daemon keeps them) or the daemon
//! restarts. Changes reach this module through the service's change announcements, read
//! before each check, so an answer is never used after the `set` that replaced the entry has
//! been answered to its client. Concurrent askers of one entry from one path share one prompt.
//!
//! Every refusal is `not_confirmed`; the message says whether the user denied, nobody
//! answered in time, the notification was closed, or there was no notification server (no
//! session bus, or no owner of the name). Grants are checked before this (see
//! [`crate::handler::Handler::answer`]).

mod memory;
#[cfg(not(target_os = "linux"))]
mod no_notify;
#[cfg(target_os = "linux")]
mod notify;
mod prompt;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use latchkey_core::{Change, ChangeKind, EntryKey, TokenService};
use latchkey_grants::{PatternError, ServicePattern};
use latchkey_proto::{GetParams, RpcError};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::peer::{exe_for_log, Peer};
use memory::Memory;
#[cfg(not(target_os = "linux"))]
use no_notify::Notifier;
#[cfg(target_os = "linux")]
use notify::Notifier;
pub use prompt::Verdict;

/// `[policy] confirm_timeout_secs` when it is not set: below the 25 s that libdbus and GLib
/// give a D-Bus call and the Python client's 30 s, so those callers hear the refusal instead
/// of timing out themselves.
pub const DEFAULT_TIMEOUT_SECS: u64 = 20;
/// The longest `[policy] confirm_timeout_secs` accepted (a `get` waits that long).
pub const MAX_TIMEOUT_SECS: u64 = 600;

/// Why `[policy] confirm` or `confirm_timeout_secs` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A pattern is not a name, `prefix:*` or `*`.
    #[error("policy.confirm: {0}")]
    Pattern(PatternError),
    /// The timeout is 0 or too long.
    #[error("policy.confirm_timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}")]
    Timeout,
}

/// Which entries need the user's confirmation, and how long a prompt waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmPolicy {
    patterns: Vec<ServicePattern>,
    timeout: Duration,
}

impl Default for ConfirmPolicy {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }
}

impl ConfirmPolicy {
    /// The policy of `[policy] confirm` (`patterns`) and `confirm_timeout_secs`, checked.
    pub fn new(patterns: &[String], timeout_secs: Option<u64>) -> Result<Self, PolicyError> {
        let patterns = patterns
            .iter()
            .map(|p| ServicePattern::new(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PolicyError::Pattern)?;
        let timeout = match timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS) {
            secs @ 1..=MAX_TIMEOUT_SECS => Duration::from_secs(secs),
            _ => return Err(PolicyError::Timeout),
        };
        Ok(Self { patterns, timeout })
    }

    /// Whether no entry needs confirming.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, as configured.
    pub fn patterns(&self) -> &[ServicePattern] {
        &self.patterns
    }

    /// Whether `service`'s entries need confirming.
    pub fn applies(&self, service: &str) -> bool {
        latchkey_grants::pattern::any_matches(&self.patterns, service)
    }

    /// How long a prompt waits for an answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// What askers of a pending prompt wait on: `None` until the prompt ends.
type Waiter = watch::Receiver<Option<Verdict>>;

/// Confirm prompts for the daemon. Cheap to clone; a daemon without `[policy] confirm` holds
/// none and every check passes at once.
#[derive(Clone, Default)]
pub struct Confirm {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    policy: ConfirmPolicy,
    /// Answers, pending prompts and the change feed, under one lock never held across an
    /// `.await`.
    state: Mutex<State>,
    /// Shows prompts.
    notifier: Notifier,
}

struct State {
    /// The service's changes since the last check; drained before every check.
    changes: broadcast::Receiver<Change>,
    memory: Memory<Waiter>,
}

impl std::fmt::Debug for Confirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirm")
            .field("policy", &self.inner.as_ref().map(|i| &i.policy))
            .finish_non_exhaustive()
    }
}

impl Confirm {
    /// Prompts for the entries of `policy`, forgetting answers as `service`'s entries change.
    pub fn new(service: &TokenService, policy: ConfirmPolicy) -> Self {
        if policy.is_empty() {
            return Self::default();
        }
        Self {
            inner: Some(Arc::new(Inner {
                policy,
                state: Mutex::new(State {
                    changes: service.subscribe(),
                    memory: Memory::default(),
                }),
                notifier: Notifier::new(),
            })),
        }
    }

    /// May `peer` have what `params` asks for? `Ok` when the entry needs no confirmation or
    /// the user allows (or allowed) `peer`'s executable, else `not_confirmed`.
    pub async fn check(&self, params: &GetParams, peer: &Peer) -> Result<(), RpcError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        // The daemon's own entries are refused by the handler, never prompted for.
        if !inner.policy.applies(&params.service) || crate::login::reserved(&params.service) {
            return Ok(());
        }
        // An invalid name is refused by the `get` itself; nothing to ask about.
        let Ok(key) = EntryKey::new(&params.service, params.account.as_deref()) else {
            return Ok(());
        };
        let Some(exe) = peer.exe.as_deref() else {
            info!(target: "latchkey::audit", method = "confirm", entry = %key, pid = peer.pid, result = "unknown_program", "not asking: the caller's executable is unknown");
            return Err(prompt::unknown_program());
        };
        let mut waiter = {
            let mut state = inner.lock();
            state.catch_up();
            if let Some(allowed) = state.memory.answer(&key, exe) {
                debug!(entry = %key, allowed, "a kept confirmation answer");
                let verdict = if allowed {
                    Verdict::Allowed
                } else {
                    Verdict::Denied
                };
                return verdict.to_result(true, inner.policy.timeout.as_secs());
            }
            match state.memory.waiter(&key, exe) {
                Some(waiter) => {
                    debug!(entry = %key, "waiting for the confirmation prompt already shown");
                    waiter.clone()
                }
                None if !state.memory.may_start() => {
                    info!(target: "latchkey::audit", method = "confirm", entry = %key, exe = %exe_for_log(exe), result = "too_many_prompts");
                    return Err(prompt::too_many());
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    state.memory.start(key.clone(), exe.to_owned(), rx.clone());
                    tokio::spawn(Arc::clone(inner).ask(key, exe.to_owned(), tx));
                    rx
                }
            }
        };
        let verdict = match waiter.wait_for(Option::is_some).await {
            Ok(verdict) => verdict.clone().unwrap_or(Verdict::Dismissed),
            Err(_) => Verdict::Failed("the prompt ended without an answer".to_owned()),
        };
        verdict.to_result(false, inner.policy.timeout.as_secs())
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shows the prompt for `exe` reading `key`, keeps the answer, and tells the askers.
    /// Runs as a task of its own, so an asker that goes away does not end the prompt for the
    /// others.
    async fn ask(self: Arc<Self>, key: EntryKey, exe: String, tx: watch::Sender<Option<Verdict>>) {
        let (summary, body) = prompt::text(&exe, &key);
        info!(entry = %key, exe = %exe_for_log(&exe), "asking the user to confirm a read");
        let verdict = self
            .notifier
            .ask(&summary, &body, self.policy.timeout)
            .await;
        let kept = {
            let mut state = self.lock();
            state.catch_up();
            state.memory.finish(&key, &exe, &verdict)
        };
        info!(
            target: "latchkey::audit",
            method = "confirm",
            entry = %key,
            exe = %exe_for_log(&exe),
            kept,
            result = verdict.as_str(),
        );
        match &verdict {
            // Expected where there is no desktop: each refused get says so already.
            Verdict::NoServer(why) => info!(entry = %key, "no confirmation prompt: {why}"),
            Verdict::Failed(why) => warn!(entry = %key, "a confirmation prompt failed: {why}"),
            _ => {}
        }
        // Nobody waiting any more is fine.
        let _ = tx.send(Some(verdict));
    }
}

impl State {
    /// Forgets the answers for every entry set or cleared since the last call. Missed
    /// changes (the feed overflowed) forget everything.
    fn catch_up(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(Change {
                    key,
                    what: ChangeKind::Set | ChangeKind::Cleared,
                }) => self.memory.forget(&key),
                // The daemon's own refresh keeps the user's answers.
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.memory.forget_all(),
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembered(state: &mut State, key: &EntryKey) {
        let (_tx, rx) = watch::channel(None);
        state.memory.start(key.clone(), "/bin/x".into(), rx);
        assert!(state.memory.finish(key, "/bin/x", &Verdict::Allowed));
    }

    #[test]
    fn a_refresh_keeps_the_answers_and_a_set_or_clear_forgets_them() {
        let (changes, receiver) = broadcast::channel(4);
        let mut state = State {
            changes: receiver,
            memory: Memory::default(),
        };
        let bank = EntryKey::new("bank", None).unwrap();
        let change = |what| Change {
            key: bank.clone(),
            what,
        };
        remembered(&mut state, &bank);
        changes.send(change(ChangeKind::Refreshed)).unwrap();
        state.catch_up();
        assert_eq!(state.memory.answer(&bank, "/bin/x"), Some(true));
        for what in [ChangeKind::Set, ChangeKind::Cleared] {
            remembered(&mut state, &bank);
            changes.send(change(what)).unwrap();
            state.catch_up();
            assert_eq!(state.memory.answer(&bank, "/bin/x"), None, "{what:?}");
        }
        // Missed changes (more than the feed holds) forget everything.
        remembered(&mut state, &bank);
        for _ in 0..5 {
            changes.send(change(ChangeKind::Refreshed)).unwrap();
        }
        state.catch_up();
        assert_eq!(state.memory.answer(&bank, "/bin/x"), None);
    }

    #[test]
    fn the_policy_is_checked() {
        let policy = ConfirmPolicy::new(&["bank".into(), "github:*".into()], None).unwrap();
        assert!(policy.applies("bank"));
        assert!(policy.applies("github:work"));
        assert!(!policy.applies("github"));
        assert!(!policy.applies("gitlab"));
        assert_eq!(policy.timeout(), Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert!(ConfirmPolicy::default().is_empty());
        assert!(ConfirmPolicy::new(&["*".into()], Some(1))
            .unwrap()
            .applies("anything"));

        assert!(matches!(
            ConfirmPolicy::new(&["ba*nk".into()], None),
            Err(PolicyError::Pattern(_))
        ));
        assert!(matches!(
            ConfirmPolicy::new(&["".into()], None),
            Err(PolicyError::Pattern(_))
        ));
        for secs in [0, MAX_TIMEOUT_SECS + 1, u64::MAX] {
            assert_eq!(
                ConfirmPolicy::new(&["bank".into()], Some(secs)),
                Err(PolicyError::Timeout)
            );
        }
        assert!(ConfirmPolicy::new(&[], Some(MAX_TIMEOUT_SECS)).is_ok());
    }
}
