//! Clock jumps of ±2 h never serve an expired token and never cause a refresh storm.
//!
//! The daemon binary reads the system clock, so these tests build the service at library level
//! with its real parts except time: `TokenService` over the memory store (not a keychain test),
//! the real `OAuth` refresher against the test token endpoint on 127.0.0.1, and a `ManualClock`.
//! Every step runs 200 concurrent gets and counts the provider's refresh requests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use latchkey_core::{Clock, Error, ManualClock, TokenService};
use latchkey_oauth::{OAuth, Provider};
use latchkey_proto::{BundleInput, GetParams, GetResult, SetParams, State, StatusParams};
use latchkey_store::memory::MemoryStore;
use latchkey_tests::oauth_server::{Fault, TokenServer};
use tokio::task::JoinSet;

const CALLERS: usize = 200;

/// A limit for each test's whole body.
const TEST_TIMEOUT: StdDuration = StdDuration::from_secs(30);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
}

/// Runs `body` on a multi-threaded runtime with a timeout. The token server lives outside it
/// (it owns a runtime of its own, which may not be dropped inside another).
fn run(body: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(TEST_TIMEOUT, body)
                .await
                .expect("the test timed out");
        });
}

/// The service, refreshing at `server`, with `RTOKEN-0` stored for `api`: an access token of
/// one hour issued at the clock's now.
async fn service(server: &TokenServer, clock: &Arc<ManualClock>) -> TokenService {
    let provider = Provider::new("test", &server.token_url(), "latchkey-test").unwrap();
    let refresher = OAuth::new(BTreeMap::from([("test".to_owned(), provider)])).unwrap();
    let clock: Arc<dyn Clock> = clock.clone();
    let service = TokenService::open_with_refresher(
        Arc::new(MemoryStore::new()),
        clock,
        Some(Arc::new(refresher)),
    )
    .await
    .unwrap();
    server.seed("RTOKEN-0");
    service
        .set(SetParams {
            service: "api".into(),
            account: None,
            bundle: BundleInput::Oauth2 {
                access_token: "ATOKEN-0".into(),
                refresh_token: Some("RTOKEN-0".into()),
                token_type: None,
                expires_at: None,
                expires_in: Some(3600),
                scopes: Vec::new(),
                id_token: None,
                provider: Some("test".into()),
            },
        })
        .await
        .unwrap();
    service
}

fn params() -> GetParams {
    GetParams {
        service: "api".into(),
        account: None,
        scopes: Vec::new(),
        min_valid_secs: None,
        grant: None,
        proxy: false,
        rejected: None,
    }
}

/// `CALLERS` gets at once.
async fn storm(service: &TokenService) -> Vec<Result<GetResult, Error>> {
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let service = service.clone();
        set.spawn(async move { service.get(&params()).await });
    }
    set.join_all().await
}

/// Every caller got `token`, unexpired by the service's clock.
fn assert_all_served(results: &[Result<GetResult, Error>], token: &str, clock: &ManualClock) {
    let now = clock.now();
    for result in results {
        let result = result
            .as_ref()
            .unwrap_or_else(|err| panic!("a get failed: {err}"));
        assert_eq!(result.secret.expose(), token);
        let expires_at = result.expires_at.expect("an OAuth token has an expiry");
        assert!(
            expires_at > now,
            "served a token that expired at {expires_at}, now {now}"
        );
    }
    assert_eq!(results.len(), CALLERS);
}

/// Every caller got a retryable `refresh_failed`: never the expired token.
fn assert_all_refresh_failed(results: &[Result<GetResult, Error>]) {
    for result in results {
        match result {
            Err(Error::RefreshFailed {
                retryable: true, ..
            }) => {}
            Ok(served) => panic!(
                "served a token (expiring at {:?}) instead of refresh_failed",
                served.expires_at
            ),
            Err(err) => panic!("expected a retryable refresh_failed, got {err:?}"),
        }
    }
}

fn state(service: &TokenService) -> State {
    service.status(&StatusParams::default())[0].state
}

#[test]
fn jumps_of_two_hours_refresh_once_each_way_and_never_serve_an_expired_token() {
    let server = TokenServer::start();
    run(async {
        let clock = Arc::new(ManualClock::new(t0()));
        let service = service(&server, &clock).await;
        assert_all_served(&storm(&service).await, "ATOKEN-0", &clock);
        assert_eq!(server.refresh_requests(), 0);

        // +2 h: ATOKEN-0 expired an hour ago. One refresh for all callers.
        clock.advance(Duration::hours(2));
        assert_all_served(&storm(&service).await, "ATOKEN-1", &clock);
        assert_eq!(server.refresh_requests(), 1);

        // −2 h, back to before ATOKEN-1 was issued: it looks long-valid. No refresh, and the
        // newest token is served, not the one that was current at this time before.
        clock.advance(-Duration::hours(2));
        assert_all_served(&storm(&service).await, "ATOKEN-1", &clock);
        assert_eq!(server.refresh_requests(), 1);
        assert_eq!(state(&service), State::Valid);

        // +2 h: back where ATOKEN-1 was issued, an hour of it left.
        clock.advance(Duration::hours(2));
        assert_all_served(&storm(&service).await, "ATOKEN-1", &clock);
        assert_eq!(server.refresh_requests(), 1);

        // +2 h again: ATOKEN-1 expired; exactly one more refresh.
        clock.advance(Duration::hours(2));
        assert_all_served(&storm(&service).await, "ATOKEN-2", &clock);
        assert_eq!(server.refresh_requests(), 2);

        // Far back, before ATOKEN-2 (and even ATOKEN-0) was issued: not expired, no refresh,
        // however often it is asked.
        clock.set(t0() - Duration::days(1));
        assert_eq!(state(&service), State::Valid);
        for _ in 0..5 {
            assert_all_served(&storm(&service).await, "ATOKEN-2", &clock);
        }
        assert_eq!(server.refresh_requests(), 2);

        // And forward again to just before ATOKEN-2's refresh window: still no refresh.
        clock.set(t0() + Duration::hours(4) + Duration::minutes(50));
        assert_all_served(&storm(&service).await, "ATOKEN-2", &clock);
        assert_eq!(server.refresh_requests(), 2);
        // Inside it (six minutes of an hour): one refresh, before the token expires.
        clock.advance(Duration::minutes(5));
        assert_all_served(&storm(&service).await, "ATOKEN-3", &clock);
        assert_eq!(server.refresh_requests(), 3);
        assert_eq!(server.reuse_detected(), 0);
    });
}

/// Fails a refresh of the expired `api` at `T0 + 4 h`: three 503s (the refresher's three
/// attempts), one refresh for all callers, then the first backoff (about a second).
async fn fail_once(server: &TokenServer, clock: &Arc<ManualClock>) -> TokenService {
    let service = service(server, clock).await;
    clock.advance(Duration::hours(4));
    server.fail_next(&[Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
    assert_all_refresh_failed(&storm(&service).await);
    assert_eq!(server.refresh_requests(), 3);
    // In the backoff the provider is not asked, at the same time or 0.9 s later.
    assert_all_refresh_failed(&storm(&service).await);
    clock.advance(Duration::milliseconds(900));
    assert_all_refresh_failed(&storm(&service).await);
    assert_eq!(server.refresh_requests(), 3);
    service
}

#[test]
fn a_clock_going_back_in_the_cool_down_does_not_storm_a_failing_provider() {
    let server = TokenServer::start();
    run(async {
        let clock = Arc::new(ManualClock::new(t0()));
        let service = fail_once(&server, &clock).await;

        // −2 h: ATOKEN-0 (expired at T0 + 1 h) is still expired, the provider still down.
        // At most one more refresh (its three attempts) for all callers, and none served the
        // expired token.
        clock.advance(-Duration::hours(2));
        server.fail_next(&[Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
        assert_all_refresh_failed(&storm(&service).await);
        let after_jump = server.refresh_requests() - 3;
        println!("refresh requests after the clock went back 2 h: {after_jump}");
        assert!(after_jump <= 3, "{after_jump} requests after one jump");

        // Then the backoff holds again: nothing more, now or 0.9 s later.
        for _ in 0..3 {
            assert_all_refresh_failed(&storm(&service).await);
        }
        clock.advance(Duration::milliseconds(900));
        assert_all_refresh_failed(&storm(&service).await);
        assert_eq!(server.refresh_requests(), 3 + after_jump);
    });
}

#[test]
fn a_clock_going_back_in_the_cool_down_neither_extends_nor_revives_it() {
    let server = TokenServer::start();
    run(async {
        let clock = Arc::new(ManualClock::new(t0()));
        let service = fail_once(&server, &clock).await;

        // −2 h with the provider back: once the cool-down's 30 s have passed on the clock as
        // it now reads, the entry refreshes (once), instead of waiting two hours for the clock
        // to catch up with the failure's time stamp.
        clock.advance(-Duration::hours(2));
        clock.advance(Duration::seconds(31));
        assert_all_served(&storm(&service).await, "ATOKEN-1", &clock);
        assert_eq!(server.refresh_requests(), 4);

        // Forward again, past ATOKEN-1's expiry (T0 + 3 h 41 s) to 5 s after the failure's time
        // stamp (T0 + 4 h). That failure came before a successful refresh: it must not put
        // the entry back in cool-down (a refresh_failed with a healthy provider).
        clock.set(t0() + Duration::hours(4) + Duration::seconds(5));
        let results = storm(&service).await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(Error::RefreshFailed { .. })))
            .count();
        assert_eq!(
            refused,
            0,
            "{refused} of {CALLERS} gets refused as in cool-down ({} requests to the healthy \
             provider): the failure stamped T0 + 4 h still counts although a refresh succeeded \
             after it",
            server.refresh_requests() - 4
        );
        assert_all_served(&results, "ATOKEN-2", &clock);
        assert_eq!(server.refresh_requests(), 5);
        assert_eq!(server.reuse_detected(), 0);
    });
}
