//! Forced refreshes: a caller says the access token it was given was rejected (`get`'s
//! `rejected`, the token's fingerprint), as `latchkey proxy` does after an upstream's `401`.

use latchkey_proto::TokenFingerprint;

use super::*;

fn rejecting(token: &str) -> GetParams {
    GetParams {
        rejected: Some(TokenFingerprint::of(&Secret::from(token))),
        ..get()
    }
}

fn calls(provider: &Provider) -> usize {
    provider.calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn callers_rejecting_the_held_token_cause_one_refresh() {
    let (service, provider, _clock, store) = setup(3600).await;
    // The token is fresh (an hour left): only the rejection makes it refresh.
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.get(&rejecting("access-0")).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().secret.expose(), "access-1");
    }
    assert_eq!(calls(&provider), 1);
    assert_eq!(refresh_token(&stored(&store).await.unwrap()), "refresh-1");
    // A late caller still naming the old token gets the new one, without another refresh.
    let late = service.get(&rejecting("access-0")).await.unwrap();
    assert_eq!(late.secret.expose(), "access-1");
    assert_eq!(calls(&provider), 1);
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_token_not_held_is_not_refreshed() {
    let (service, provider, _clock, _store) = setup(3600).await;
    // Uncached (a fresh service reads the store) and cached.
    for _ in 0..2 {
        let token = service.get(&rejecting("access-other")).await.unwrap();
        assert_eq!(token.secret.expose(), "access-0");
    }
    assert_eq!(calls(&provider), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn forced_refreshes_back_off_so_an_upstream_rejecting_everything_cannot_storm() {
    let (service, provider, clock, _store) = setup(3600).await;
    assert_eq!(
        service
            .get(&rejecting("access-0"))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-1"
    );
    // At once again: the new token is rejected too, but the next forced refresh waits.
    assert_eq!(
        service
            .get(&rejecting("access-1"))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-1"
    );
    assert_eq!(calls(&provider), 1);
    // After the first wait (1 s, up to 1.25 s with jitter) it may refresh again.
    clock.advance(Duration::milliseconds(1_300));
    assert_eq!(
        service
            .get(&rejecting("access-1"))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-2"
    );
    // The second wait is twice as long: not yet after 1.3 s.
    clock.advance(Duration::milliseconds(1_300));
    service.get(&rejecting("access-2")).await.unwrap();
    assert_eq!(calls(&provider), 2);

    // Ten minutes of an upstream rejecting every token, a request every 100 ms: the waits
    // double up to a minute, so about fifteen refreshes, not six thousand.
    let mut current = "access-2".to_owned();
    for _ in 0..6_000 {
        clock.advance(Duration::milliseconds(100));
        current = service
            .get(&rejecting(&current))
            .await
            .unwrap()
            .secret
            .expose()
            .to_owned();
    }
    let storm = calls(&provider);
    assert!((8..=16).contains(&storm), "{storm} refreshes");
    assert_eq!(provider.reused.load(Ordering::SeqCst), 0);

    // Long after the last one, a rejection is refreshed at once again.
    clock.advance(Duration::minutes(5));
    let fresh = service.get(&rejecting(&current)).await.unwrap();
    assert_ne!(fresh.secret.expose(), current);
    assert_eq!(calls(&provider), storm + 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_refresh_backoff_holds_for_forced_refreshes_too() {
    let (service, provider, clock, _store) = setup(3600).await;
    provider
        .faults
        .lock()
        .unwrap()
        .push(RefreshError::Transient("503".into()));
    // The refresh fails; the old token is still valid by its expiry, so it is served.
    assert_eq!(
        service
            .get(&rejecting("access-0"))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-0"
    );
    assert_eq!(calls(&provider), 1);
    // Within the failure's cool-down (and the forced one's) the provider is left alone.
    clock.advance(Duration::milliseconds(500));
    assert_eq!(
        service
            .get(&rejecting("access-0"))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-0"
    );
    assert_eq!(calls(&provider), 1);
    clock.advance(Duration::seconds(3));
    // (The provider numbers its tokens by call: the failed call was its first.)
    assert_eq!(
        service
            .get(&rejecting("access-0"))
            .await
            .unwrap()
            .secret
            .expose(),
        "access-2"
    );
    assert_eq!(calls(&provider), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_rejected_key_without_a_refresh_token_is_served_again() {
    let (service, provider, _clock, _store) = setup(3600).await;
    service
        .set(SetParams {
            service: "openai".into(),
            account: None,
            bundle: BundleInput::ApiKey { key: "sk-1".into() },
        })
        .await
        .unwrap();
    let key = service
        .get(&GetParams {
            service: "openai".into(),
            ..rejecting("sk-1")
        })
        .await
        .unwrap();
    assert_eq!(key.secret.expose(), "sk-1");
    assert_eq!(calls(&provider), 0);
}
