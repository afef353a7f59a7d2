//! The refresh policy of `TokenService::get` over the memory store: single flight, rotation
//! saved before anyone is answered, `invalid_grant`, transient failures, and races with
//! logout, `clear` and `set`. The token endpoint here is an in-process `Refresher` that
//! rotates refresh tokens and refuses a reused one, like a strict provider; the HTTP side is
//! tested on its own.

mod common;
#[path = "refresh_policy/forced.rs"]
mod forced;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use common::Flaky;
use latchkey_core::{
    EntryKey, Error, ManualClock, RefreshError, RefreshFuture, RefreshRequest, Refreshed,
    Refresher, RevokeFuture, Store, StoredBundle, TokenBundle, TokenService,
};
use latchkey_proto::{BundleInput, GetParams, KeyParams, Secret, SetParams, State};
use latchkey_store::memory::MemoryStore;

/// Rotates on every use; a refresh token presented twice is refused (reuse detection).
#[derive(Default)]
struct Provider {
    calls: AtomicUsize,
    spent: Mutex<HashSet<String>>,
    reused: AtomicUsize,
    /// The next answers to give instead of tokens.
    faults: Mutex<Vec<RefreshError>>,
    /// When set, each refresh waits for this before answering.
    hold: Mutex<Option<Arc<tokio::sync::Notify>>>,
    /// The lifetime of the access tokens it issues, if not an hour.
    lifetime: Mutex<Option<i64>>,
    /// Refresh tokens revoked as orphans, in order.
    revoked: Mutex<Vec<String>>,
}

impl Refresher for Provider {
    fn refresh<'a>(&'a self, request: RefreshRequest<'a>) -> RefreshFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            // The tests run on tokio's paused clock: this sleep ends only once every other task
            // is blocked, so every caller is waiting on the entry while this refresh is out.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let hold = self.hold.lock().unwrap().clone();
            if let Some(hold) = hold {
                hold.notified().await;
            }
            if let Some(fault) = self.faults.lock().unwrap().pop() {
                return Err(fault);
            }
            let presented = request.refresh_token.expose().to_owned();
            if !self.spent.lock().unwrap().insert(presented) {
                self.reused.fetch_add(1, Ordering::SeqCst);
                return Err(RefreshError::InvalidGrant);
            }
            Ok(Refreshed {
                access_token: format!("access-{n}").into(),
                refresh_token: Some(format!("refresh-{n}").into()),
                token_type: "Bearer".into(),
                expires_in: Some(self.lifetime.lock().unwrap().unwrap_or(3600)),
                scopes: None,
                id_token: None,
            })
        })
    }

    fn revoke_orphan<'a>(
        &'a self,
        _provider: &'a str,
        refresh_token: &'a Secret,
    ) -> RevokeFuture<'a> {
        self.revoked
            .lock()
            .unwrap()
            .push(refresh_token.expose().to_owned());
        Box::pin(async {})
    }
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

async fn setup(
    expires_in: i64,
) -> (
    TokenService,
    Arc<Provider>,
    Arc<ManualClock>,
    Arc<dyn Store>,
) {
    setup_with(Arc::new(MemoryStore::new()), expires_in).await
}

async fn setup_with(
    store: Arc<dyn Store>,
    expires_in: i64,
) -> (
    TokenService,
    Arc<Provider>,
    Arc<ManualClock>,
    Arc<dyn Store>,
) {
    let clock = Arc::new(ManualClock::new(start()));
    let provider = Arc::new(Provider::default());
    let service = TokenService::open_with_refresher(
        Arc::clone(&store),
        clock.clone(),
        Some(provider.clone() as Arc<dyn Refresher>),
    )
    .await
    .unwrap();
    service
        .set(SetParams {
            service: "gh".into(),
            account: None,
            bundle: BundleInput::Oauth2 {
                access_token: "access-0".into(),
                refresh_token: Some("refresh-0".into()),
                token_type: None,
                expires_at: None,
                expires_in: Some(expires_in),
                scopes: vec!["repo".into()],
                id_token: None,
                provider: Some("github".into()),
            },
        })
        .await
        .unwrap();
    (service, provider, clock, store)
}

fn get() -> GetParams {
    GetParams {
        service: "gh".into(),
        account: None,
        scopes: vec![],
        min_valid_secs: None,
        grant: None,
        proxy: false,
        rejected: None,
    }
}

async fn stored(store: &Arc<dyn Store>) -> Option<TokenBundle> {
    let key = EntryKey::new("gh", None).unwrap();
    let doc = store.read(&key).await.unwrap()?;
    Some(StoredBundle::from_document(&doc).unwrap().bundle)
}

fn refresh_token(bundle: &TokenBundle) -> String {
    match bundle {
        TokenBundle::OAuth2(b) => b.refresh_token.as_ref().unwrap().expose().to_owned(),
        _ => panic!("not oauth2"),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_thousand_callers_cause_one_refresh() {
    let (service, provider, clock, store) = setup(3600).await;
    clock.advance(Duration::hours(2));
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.get(&get()).await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.secret.expose(), "access-1");
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
    // The rotated refresh token was saved, and the entry is fresh again.
    assert_eq!(refresh_token(&stored(&store).await.unwrap()), "refresh-1");
    let meta = &service.list()[0];
    assert_eq!(meta.state, State::Valid);
    assert_eq!(meta.last_refreshed_at, Some(start() + Duration::hours(2)));
    assert_eq!(meta.expires_at, Some(start() + Duration::hours(3)));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_refresh_presents_the_latest_refresh_token() {
    let (service, provider, clock, store) = setup(3600).await;
    for round in 1..=3 {
        clock.advance(Duration::hours(2));
        let token = service.get(&get()).await.unwrap();
        assert_eq!(token.secret.expose(), format!("access-{round}"));
        assert_eq!(
            refresh_token(&stored(&store).await.unwrap()),
            format!("refresh-{round}")
        );
    }
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
    // Inside the refresh window (the last 6 minutes of an hour) it refreshes ahead of expiry.
    clock.advance(Duration::minutes(57));
    assert_eq!(service.list()[0].state, State::Expiring);
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-4"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn invalid_grant_means_login_and_is_remembered() {
    let (service, provider, clock, store) = setup(3600).await;
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::InvalidGrant);
    clock.advance(Duration::hours(2));
    assert!(matches!(
        service.get(&get()).await,
        Err(Error::AuthenticationRequired { .. })
    ));
    assert_eq!(service.list()[0].state, State::NeedsLogin);
    // No further refresh is tried, and a restarted service still knows.
    assert!(service.get(&get()).await.is_err());
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    let reopened = TokenService::open(Arc::clone(&store), clock.clone())
        .await
        .unwrap();
    assert_eq!(reopened.list()[0].state, State::NeedsLogin);
    // The refused token stays as it was; a new `set` (a new login) clears the state.
    assert_eq!(refresh_token(&stored(&store).await.unwrap()), "refresh-0");
    service
        .set(SetParams {
            service: "gh".into(),
            account: None,
            bundle: BundleInput::Oauth2 {
                access_token: "after-login".into(),
                refresh_token: Some("refresh-new".into()),
                token_type: None,
                expires_at: None,
                expires_in: Some(3600),
                scopes: vec![],
                id_token: None,
                provider: Some("github".into()),
            },
        })
        .await
        .unwrap();
    assert_eq!(service.list()[0].state, State::Valid);
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "after-login"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn transient_failures_serve_a_still_valid_token_else_fail_retryably() {
    let (service, provider, clock, store) = setup(3600).await;
    // Inside the window but not expired: the old token is served.
    clock.advance(Duration::minutes(57));
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("503".into()));
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-0"
    );
    // Expired: a retryable refresh_failed, and nothing written.
    clock.advance(Duration::minutes(10));
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("timeout".into()));
    match service.get(&get()).await {
        Err(Error::RefreshFailed { retryable, .. }) => assert!(retryable),
        other => panic!("expected refresh_failed, got {other:?}"),
    }
    // Past the cool-down that failure started, the provider is asked again.
    clock.advance(Duration::seconds(31));
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Rejected("garbage".into()));
    match service.get(&get()).await {
        Err(Error::RefreshFailed { retryable, .. }) => assert!(!retryable),
        other => panic!("expected refresh_failed, got {other:?}"),
    }
    assert_eq!(refresh_token(&stored(&store).await.unwrap()), "refresh-0");
    // A refusal starts a cool-down too: the provider is not asked on every get.
    let calls = provider.calls.load(Ordering::SeqCst);
    match service.get(&get()).await {
        Err(Error::RefreshFailed { retryable, .. }) => assert!(!retryable),
        other => panic!("expected refresh_failed, got {other:?}"),
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), calls);
    // It recovers when the provider does, after the cool-down.
    clock.advance(Duration::seconds(31));
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-4"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refresh_racing_clear_never_brings_the_entry_back() {
    let (service, provider, clock, store) = setup(3600).await;
    let hold = Arc::new(tokio::sync::Notify::new());
    *provider.hold.lock().unwrap() = Some(hold.clone());
    clock.advance(Duration::hours(2));
    let in_flight = {
        let service = service.clone();
        tokio::spawn(async move { service.get(&get()).await })
    };
    // Let the refresh start, then clear while it waits on the provider.
    while provider.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let cleared = service
        .clear(KeyParams {
            service: "gh".into(),
            account: None,
        })
        .await
        .unwrap();
    assert!(cleared);
    hold.notify_one();
    assert_eq!(in_flight.await.unwrap(), Err(Error::NotFound));
    assert!(stored(&store).await.is_none());
    assert!(service.list().is_empty());
    // Nobody holds the token the provider rotated to: it is revoked.
    assert_eq!(*provider.revoked.lock().unwrap(), ["refresh-1"]);
}

/// A new login's bundle for `gh`.
fn new_login() -> SetParams {
    SetParams {
        service: "gh".into(),
        account: None,
        bundle: BundleInput::Oauth2 {
            access_token: "new-login-access".into(),
            refresh_token: Some("new-login-refresh".into()),
            token_type: None,
            expires_at: None,
            expires_in: Some(3600),
            scopes: vec!["repo".into()],
            id_token: None,
            provider: Some("github".into()),
        },
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_logout_wins_over_a_refresh_in_flight_even_when_a_new_login_follows() {
    let (service, provider, clock, store) = setup(3600).await;
    let hold = Arc::new(tokio::sync::Notify::new());
    *provider.hold.lock().unwrap() = Some(hold.clone());
    clock.advance(Duration::hours(2));
    let in_flight = {
        let service = service.clone();
        tokio::spawn(async move { service.get(&get()).await })
    };
    while provider.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Logout retires the entry without waiting for the refresh: at once it is gone for gets.
    let key = EntryKey::new("gh", None).unwrap();
    let tokens = service.retire(&key).await.unwrap().unwrap();
    assert_eq!(tokens.refresh_token.unwrap().expose(), "refresh-0");
    assert_eq!(service.get(&get()).await, Err(Error::NotFound));
    assert!(service.list().is_empty());
    assert_eq!(service.retire(&key).await, Err(Error::NotFound));
    let keys = KeyParams {
        service: "gh".into(),
        account: None,
    };
    assert!(service.clear(keys).await.unwrap());
    service.set(new_login()).await.unwrap();
    hold.notify_one();
    assert_eq!(in_flight.await.unwrap(), Err(Error::NotFound));
    // The token the old grant's refresh received is revoked; the new login is untouched.
    assert_eq!(*provider.revoked.lock().unwrap(), ["refresh-1"]);
    assert_eq!(
        refresh_token(&stored(&store).await.unwrap()),
        "new-login-refresh"
    );
    let token = service.get(&get()).await.unwrap();
    assert_eq!(token.secret.expose(), "new-login-access");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refresh_racing_logout_and_a_new_login_never_overwrites_the_new_login() {
    let (service, provider, clock, store) = setup(3600).await;
    let hold = Arc::new(tokio::sync::Notify::new());
    *provider.hold.lock().unwrap() = Some(hold.clone());
    clock.advance(Duration::hours(2));
    let in_flight = {
        let service = service.clone();
        tokio::spawn(async move { service.get(&get()).await })
    };
    while provider.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Logout, then a new login of the same entry, while the old grant's refresh is out.
    let key = KeyParams {
        service: "gh".into(),
        account: None,
    };
    assert!(service.clear(key).await.unwrap());
    service.set(new_login()).await.unwrap();
    hold.notify_one();
    let _ = in_flight.await.unwrap();
    // A replaced entry's rotated token is not revoked: it may belong to the new bundle's grant.
    assert!(provider.revoked.lock().unwrap().is_empty());
    assert_eq!(
        refresh_token(&stored(&store).await.unwrap()),
        "new-login-refresh"
    );
    let token = service.get(&get()).await.unwrap();
    assert_eq!(token.secret.expose(), "new-login-access");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refusal_after_another_writer_refreshed_is_not_a_needs_login() {
    let (service, provider, clock, store) = setup(3600).await;
    // Another writer (outside this daemon) refreshed: the keychain holds a newer token than
    // the one cached, and the provider has spent the cached one.
    let key = EntryKey::new("gh", None).unwrap();
    let mut bundle = stored(&store).await.unwrap();
    if let TokenBundle::OAuth2(b) = &mut bundle {
        b.refresh_token = Some("refresh-elsewhere".into());
    }
    let record = Arc::new(latchkey_core::EntryRecord::describe(
        key.clone(),
        &bundle,
        start(),
        None,
    ));
    store
        .write(&key, &StoredBundle::new(bundle).to_document(), &record)
        .await
        .unwrap();
    provider.spent.lock().unwrap().insert("refresh-0".into());
    clock.advance(Duration::hours(2));
    match service.get(&get()).await {
        Err(Error::RefreshFailed { retryable, .. }) => assert!(retryable),
        other => panic!("expected a retryable refresh_failed, got {other:?}"),
    }
    assert_ne!(service.list()[0].state, State::NeedsLogin);
    // The next get reads the keychain and refreshes with the newer token.
    let token = service.get(&get()).await.unwrap();
    assert!(token.secret.expose().starts_with("access-"));
    assert_eq!(provider.reused.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_provider_that_is_down_is_asked_again_after_a_doubling_backoff() {
    let (service, provider, clock, _store) = setup(3600).await;
    // Inside the window, still valid: everyone gets the old token, the provider is asked once.
    clock.advance(Duration::minutes(59) + Duration::milliseconds(59_500));
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("503".into()));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.get(&get()).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().secret.expose(), "access-0");
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    // Expired, but within the first backoff (about a second): a retryable failure without
    // asking again.
    clock.advance(Duration::milliseconds(900));
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("503".into()));
    let early = service.get(&get()).await;
    assert!(matches!(
        early,
        Err(Error::RefreshFailed {
            retryable: true,
            ..
        })
    ));
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    // Past 1.25 s the provider is asked again; it fails again, and the wait doubles.
    clock.advance(Duration::milliseconds(1250));
    assert!(service.get(&get()).await.is_err());
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::milliseconds(1900));
    assert!(service.get(&get()).await.is_err());
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    // After it, the provider is asked again (and answers), which ends the backoff.
    clock.advance(Duration::milliseconds(700));
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-3"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_backoff_never_exceeds_a_minute_and_a_success_resets_it() {
    let (service, provider, clock, _store) = setup(3600).await;
    clock.advance(Duration::hours(2));
    // Ten failures in a row: the waits grow to a minute and stay there.
    for _ in 0..10 {
        provider
            .faults
            .lock()
            .unwrap()
            .push(RefreshError::Transient("503".into()));
        let calls = provider.calls.load(Ordering::SeqCst);
        assert!(service.get(&get()).await.is_err());
        assert_eq!(provider.calls.load(Ordering::SeqCst), calls + 1);
        clock.advance(Duration::seconds(60));
    }
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-11"
    );
    // Reset: the next failure waits about a second again, not a minute.
    clock.advance(Duration::hours(2));
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("503".into()));
    assert!(service.get(&get()).await.is_err());
    clock.advance(Duration::milliseconds(1250));
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-13"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refresh_the_store_refuses_is_kept_shown_used_and_saved_later() {
    let failing = Arc::new(Flaky::default());
    let (service, provider, clock, store) = setup_with(failing.clone(), 3600).await;
    failing.fail_writes.store(true, Ordering::SeqCst);
    clock.advance(Duration::hours(2));
    // The new token is served; the rotated refresh token lives in memory only, and says so.
    let token = service.get(&get()).await.unwrap();
    assert_eq!(token.secret.expose(), "access-1");
    assert_eq!(refresh_token(&stored(&store).await.unwrap()), "refresh-0");
    assert!(service.list()[0].unsaved);
    // The next refresh presents the rotated token from memory, not the spent one stored.
    clock.advance(Duration::hours(2));
    let token = service.get(&get()).await.unwrap();
    assert_eq!(token.secret.expose(), "access-2");
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
    // Retrying while the keychain still refuses keeps it; once it accepts, it is saved.
    assert_eq!(service.save_unsaved().await, 1);
    assert!(service.list()[0].unsaved);
    failing.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(service.save_unsaved().await, 0);
    assert!(!service.list()[0].unsaved);
    assert_eq!(refresh_token(&stored(&store).await.unwrap()), "refresh-2");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unsaved_refresh_survives_the_keychain_locking_and_unlocking() {
    let flaky = Arc::new(Flaky::default());
    let (service, _provider, clock, _store) = setup_with(flaky.clone(), 3600).await;
    flaky.fail_writes.store(true, Ordering::SeqCst);
    clock.advance(Duration::hours(2));
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-1"
    );
    // The keychain locks (cached secrets are dropped) and unlocks again: the refreshed token,
    // which only memory holds, is still the one served, not the older one in the store.
    flaky.locked.store(true, Ordering::SeqCst);
    assert_eq!(service.get(&get()).await, Err(Error::Locked));
    flaky.locked.store(false, Ordering::SeqCst);
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-1"
    );
    assert!(service.list()[0].unsaved);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waiters_share_the_refresh_they_waited_on_however_short_it_lives() {
    let (service, provider, clock, _store) = setup(3600).await;
    // A provider issuing two-second tokens, and a refresh that takes 1.5 s to answer: the new
    // token lands already inside its refresh window (half its life).
    *provider.lifetime.lock().unwrap() = Some(2);
    let hold = Arc::new(tokio::sync::Notify::new());
    *provider.hold.lock().unwrap() = Some(hold.clone());
    clock.advance(Duration::hours(2));
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.get(&get()).await })
        })
        .collect();
    while provider.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    clock.advance(Duration::milliseconds(1500));
    hold.notify_one();
    for caller in callers {
        // A waiter that refreshed again would wait on the held provider for ever.
        let token = tokio::time::timeout(std::time::Duration::from_secs(60), caller)
            .await
            .expect("a waiter refreshed again")
            .unwrap()
            .unwrap();
        assert_eq!(token.secret.expose(), "access-1");
        assert_eq!(
            token.expires_at,
            Some(start() + Duration::hours(2) + Duration::seconds(2))
        );
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waiters_share_a_failed_refresh_too() {
    let (service, provider, clock, _store) = setup(3600).await;
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("503".into()));
    clock.advance(Duration::hours(2));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.get(&get()).await })
        })
        .collect();
    for caller in callers {
        assert!(matches!(
            caller.await.unwrap(),
            Err(Error::RefreshFailed {
                retryable: true,
                ..
            })
        ));
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_min_valid_secs_beyond_the_lifetime_serves_the_fresh_token_without_looping() {
    let (service, provider, clock, _store) = setup(3600).await;
    clock.advance(Duration::hours(2));
    let asking = GetParams {
        min_valid_secs: Some(7200),
        ..get()
    };
    // The provider issues one-hour tokens: the fresh one is served with its real expiry.
    let token = service.get(&asking).await.unwrap();
    assert_eq!(token.secret.expose(), "access-1");
    assert_eq!(token.expires_at, Some(start() + Duration::hours(3)));
    // Asking again does not refresh again (it could not get anything longer).
    clock.advance(Duration::minutes(10));
    let token = service.get(&asking).await.unwrap();
    assert_eq!(token.secret.expose(), "access-1");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    // Past half of its life the request is honoured again by a refresh.
    clock.advance(Duration::minutes(25));
    let token = service.get(&asking).await.unwrap();
    assert_eq!(token.secret.expose(), "access-2");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refused_answer_that_rotated_the_refresh_token_keeps_the_new_one() {
    let (service, provider, clock, store) = setup(3600).await;
    clock.advance(Duration::hours(2));
    // The provider spends refresh-0 but its answer is unusable (say, an unknown token type).
    provider.spent.lock().unwrap().insert("refresh-0".into());
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::RejectedRotated {
            reason: "the token type is not Bearer".into(),
            refresh_token: "refresh-rotated".into(),
        });
    match service.get(&get()).await {
        Err(Error::RefreshFailed { retryable, .. }) => assert!(!retryable),
        other => panic!("expected refresh_failed, got {other:?}"),
    }
    assert_eq!(
        refresh_token(&stored(&store).await.unwrap()),
        "refresh-rotated"
    );
    // After the backoff, the next refresh presents the rotated token, and works.
    clock.advance(Duration::seconds(2));
    assert_eq!(
        service.get(&get()).await.unwrap().secret.expose(),
        "access-2"
    );
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
}
