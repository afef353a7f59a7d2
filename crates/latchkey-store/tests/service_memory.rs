//! The TokenService's rules, exercised over the memory backend with a hand-set clock.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::Flaky;
use latchkey_core::{EntryKey, Error, ManualClock, Store, TokenService};
use latchkey_proto::{BundleInput, GetParams, KeyParams, Kind, SetParams, State, StatusParams};
use latchkey_store::memory::MemoryStore;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
    ))
}

fn get(service: &str, scopes: &[&str]) -> GetParams {
    GetParams {
        service: service.into(),
        account: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        min_valid_secs: None,
        grant: None,
        proxy: false,
        rejected: None,
    }
}

fn oauth(service: &str, expires_in: i64, scopes: &[&str]) -> SetParams {
    SetParams {
        service: service.into(),
        account: None,
        bundle: BundleInput::Oauth2 {
            access_token: "access-canary".into(),
            refresh_token: Some("refresh-canary".into()),
            token_type: None,
            expires_at: None,
            expires_in: Some(expires_in),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            id_token: None,
            provider: Some("github".into()),
        },
    }
}

async fn service_with(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> TokenService {
    TokenService::open(store, clock).await.unwrap()
}

#[tokio::test]
async fn set_get_clear_each_kind() {
    let svc = service_with(Arc::new(MemoryStore::new()), clock()).await;
    svc.set(oauth("gh", 3600, &["repo"])).await.unwrap();
    svc.set(SetParams {
        service: "openai".into(),
        account: Some("work".into()),
        bundle: BundleInput::ApiKey {
            key: "sk-canary".into(),
        },
    })
    .await
    .unwrap();
    svc.set(SetParams {
        service: "db".into(),
        account: None,
        bundle: BundleInput::Password {
            username: "alice".into(),
            password: "pw-canary".into(),
        },
    })
    .await
    .unwrap();

    let token = svc.get(&get("gh", &[])).await.unwrap();
    assert_eq!(token.secret.expose(), "access-canary");
    assert_eq!(token.kind, Kind::Oauth2);
    let key = svc
        .get(&GetParams {
            account: Some("work".into()),
            ..get("openai", &[])
        })
        .await
        .unwrap();
    assert_eq!(key.secret.expose(), "sk-canary");
    let pw = svc.get(&get("db", &[])).await.unwrap();
    assert_eq!(pw.username.as_deref(), Some("alice"));
    assert_eq!(pw.secret.expose(), "pw-canary");

    assert_eq!(svc.list().len(), 3);
    let cleared = svc
        .clear(KeyParams {
            service: "gh".into(),
            account: None,
        })
        .await
        .unwrap();
    assert!(cleared);
    assert_eq!(svc.get(&get("gh", &[])).await, Err(Error::NotFound));
    let again = svc
        .clear(KeyParams {
            service: "gh".into(),
            account: None,
        })
        .await
        .unwrap();
    assert!(!again);
}

#[tokio::test]
async fn scopes_must_all_be_granted() {
    let svc = service_with(Arc::new(MemoryStore::new()), clock()).await;
    svc.set(oauth("gh", 3600, &["repo", "read:org"]))
        .await
        .unwrap();
    assert!(svc.get(&get("gh", &["repo"])).await.is_ok());
    assert!(svc.get(&get("gh", &["read:org", "repo"])).await.is_ok());
    assert_eq!(
        svc.get(&get("gh", &["repo", "admin:org", "gist"])).await,
        Err(Error::InsufficientScope {
            missing: vec!["admin:org".into(), "gist".into()]
        })
    );
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let clock = clock();
    let svc = service_with(Arc::new(MemoryStore::new()), clock.clone()).await;
    svc.set(oauth("gh", 3600, &[])).await.unwrap();
    assert_eq!(svc.list()[0].state, State::Valid);
    clock.advance(Duration::minutes(55));
    assert_eq!(svc.list()[0].state, State::Expiring);
    assert!(svc.get(&get("gh", &[])).await.is_ok());
    // Not enough lifetime left for this caller: said how much is left, not that it expired.
    let min = GetParams {
        min_valid_secs: Some(600),
        ..get("gh", &[])
    };
    assert_eq!(
        svc.get(&min).await.unwrap_err(),
        Error::ShortLived {
            valid_secs: 300,
            lifetime_secs: 3600,
            asked_secs: 600
        }
    );
    clock.advance(Duration::minutes(5));
    assert_eq!(svc.list()[0].state, State::Expired);
    assert!(matches!(
        svc.get(&get("gh", &[])).await,
        Err(Error::AuthenticationRequired { .. })
    ));
    // A clock that jumps back two hours serves the token again, it is not expired then.
    clock.advance(Duration::hours(-2));
    assert!(svc.get(&get("gh", &[])).await.is_ok());
}

#[tokio::test]
async fn invalid_input_is_refused_and_changes_nothing() {
    let svc = service_with(Arc::new(MemoryStore::new()), clock()).await;
    svc.set(oauth("gh", 3600, &["repo"])).await.unwrap();
    for service in ["", "a\nb", "nul\0", "esc\u{1b}[2J"] {
        let err = svc.set(oauth(service, 3600, &[])).await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey(_)), "{err:?}");
        assert!(matches!(
            svc.get(&get(service, &[])).await,
            Err(Error::InvalidKey(_))
        ));
    }
    let err = svc.set(oauth("gh", -1, &[])).await.unwrap_err();
    assert!(matches!(err, Error::InvalidBundle(_)));
    assert_eq!(svc.list().len(), 1);
    assert_eq!(
        svc.get(&get("gh", &[])).await.unwrap().secret.expose(),
        "access-canary"
    );
}

#[tokio::test]
async fn status_filters_and_reopens_from_the_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let svc = service_with(store.clone(), clock()).await;
    svc.set(oauth("gh", 3600, &[])).await.unwrap();
    svc.set(SetParams {
        account: Some("second".into()),
        ..oauth("gh", 3600, &[])
    })
    .await
    .unwrap();
    svc.set(oauth("other", 3600, &[])).await.unwrap();
    let only_gh = svc.status(&StatusParams {
        service: Some("gh".into()),
        account: None,
    });
    assert_eq!(only_gh.len(), 2);
    let one = svc.status(&StatusParams {
        service: Some("gh".into()),
        account: Some("second".into()),
    });
    assert_eq!(one.len(), 1);
    // A second service over the same store learns the same entries.
    let reopened = service_with(store, clock()).await;
    assert_eq!(
        reopened.list(),
        svc.list()
            .into_iter()
            .map(|mut m| {
                m.last_used_at = None;
                m
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(reopened.store_info().entries, 3);
}

#[tokio::test]
async fn failed_write_keeps_the_old_entry() {
    let store = Arc::new(Flaky::default());
    let svc = service_with(store.clone(), clock()).await;
    svc.set(oauth("gh", 3600, &["repo"])).await.unwrap();
    let before = svc.list();
    store.fail_writes.store(true, Ordering::SeqCst);
    let mut replacement = oauth("gh", 60, &[]);
    if let BundleInput::Oauth2 { access_token, .. } = &mut replacement.bundle {
        *access_token = "new-token".into();
    }
    assert!(matches!(svc.set(replacement).await, Err(Error::Store(_))));
    assert_eq!(svc.list(), before);
    assert_eq!(
        svc.get(&get("gh", &[])).await.unwrap().secret.expose(),
        "access-canary"
    );
    let doc = store
        .read(&EntryKey::new("gh", None).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&doc).contains("access-canary"));
}

#[tokio::test]
async fn locking_drops_cached_secrets_but_not_metadata() {
    let store = Arc::new(Flaky::default());
    let svc = service_with(store.clone(), clock()).await;
    svc.set(oauth("gh", 3600, &[])).await.unwrap();
    assert!(svc.get(&get("gh", &[])).await.is_ok());
    store.locked.store(true, Ordering::SeqCst);
    assert_eq!(svc.get(&get("gh", &[])).await, Err(Error::Locked));
    assert_eq!(svc.list().len(), 1);
    assert_eq!(svc.store_info().locked, Some(true));
    store.locked.store(false, Ordering::SeqCst);
    assert!(svc.get(&get("gh", &[])).await.is_ok());
}

/// Gets `bulk-NNNN` for each number in `range` (checking the secret); how many reads of the
/// store that took.
async fn reads(svc: &TokenService, store: &Flaky, range: std::ops::Range<usize>) -> usize {
    let before = store.reads.load(Ordering::SeqCst);
    for n in range {
        let got = svc.get(&get(&format!("bulk-{n:04}"), &[])).await.unwrap();
        assert_eq!(got.secret.expose(), format!("sk-bulk-{n:04}"));
    }
    store.reads.load(Ordering::SeqCst) - before
}

#[tokio::test]
async fn at_most_about_a_thousand_secrets_stay_cached_and_the_least_recent_go_first() {
    let store = Arc::new(Flaky::default());
    let clock = clock();
    let svc = service_with(store.clone(), clock.clone()).await;
    let key = |n: usize| SetParams {
        service: format!("bulk-{n:04}"),
        account: None,
        bundle: BundleInput::ApiKey {
            key: format!("sk-bulk-{n:04}").into(),
        },
    };
    // 2,000 entries written a second apart: the cache is checked every 128 secrets cached,
    // and above 1,024 it is cut to 896, so the newest 976 remain cached.
    for n in 0..2000 {
        svc.set(key(n)).await.unwrap();
        clock.advance(Duration::seconds(1));
    }
    assert_eq!(
        reads(&svc, &store, 1024..2000).await,
        0,
        "the newest are served from memory"
    );
    // The oldest were dropped: each is read from the store once, then cached again, and is
    // now the most recently used.
    clock.advance(Duration::seconds(1));
    assert_eq!(reads(&svc, &store, 0..100).await, 100);
    assert_eq!(reads(&svc, &store, 0..100).await, 0);
    // Reading them counts as use: the next trims drop the least recently used instead, here
    // the entries written first among the ones still cached (1,024 onwards), not 0..100.
    for n in 2000..2200 {
        svc.set(key(n)).await.unwrap();
        clock.advance(Duration::seconds(1));
    }
    assert_eq!(reads(&svc, &store, 0..100).await, 0);
    assert!(reads(&svc, &store, 1024..1100).await > 0);
    // Every entry still serves, and nothing but secrets was dropped.
    assert_eq!(svc.list().len(), 2200);
    assert_eq!(reads(&svc, &store, 100..1024).await, 924);
}

#[tokio::test]
async fn internal_entries_are_kept_but_never_listed_counted_or_announced() {
    let svc = service_with(Arc::new(MemoryStore::new()), clock()).await;
    let mut changes = svc.subscribe();
    for (service, account) in [
        ("latchkey:grant-key", None),
        ("latchkey:grants", Some("0123456789abcdef0123456789abcdef")),
        ("latchkey:client-secret", Some("github")),
    ] {
        svc.set(SetParams {
            service: service.into(),
            account: account.map(str::to_owned),
            bundle: BundleInput::ApiKey {
                key: "internal-canary".into(),
            },
        })
        .await
        .unwrap();
    }
    // The client secret is reserved but not internal: listed, as before.
    let listed: Vec<_> = svc.list().into_iter().map(|m| m.service).collect();
    assert_eq!(listed, ["latchkey:client-secret"]);
    assert_eq!(svc.store_info().entries, 1);
    let filtered = svc.status(&StatusParams {
        service: Some("latchkey:grant-key".into()),
        account: None,
    });
    assert!(filtered.is_empty());
    assert_eq!(
        svc.accounts("latchkey:grants"),
        ["0123456789abcdef0123456789abcdef"]
    );
    assert_eq!(
        svc.get(&get("latchkey:grant-key", &[]))
            .await
            .unwrap()
            .secret
            .expose(),
        "internal-canary"
    );
    let change = changes.try_recv().unwrap();
    assert_eq!(change.key.service(), "latchkey:client-secret");
    assert!(changes.try_recv().is_err());
    assert!(latchkey_core::is_internal("latchkey:grant-revocations"));
    assert!(!latchkey_core::is_internal("latchkey:client-secret"));
    assert!(!latchkey_core::is_internal("grant-key"));
}
