//! A `401` from the upstream makes the proxy name the rejected token to the daemon, which
//! refreshes it at the real loopback token endpoint (once, however many requests were
//! refused) and the proxy sends the request again with the new token.
//!
//! The entry's access token (`ATOKEN-0`) is fresh by its expiry but unknown to the token server;
//! the upstream accepts only access tokens that server issued and has not revoked, so the
//! first try of every request is refused.

use std::sync::Arc;

use latchkey_proto::{Secret, TokenFingerprint};
use latchkey_tests::oauth_server::TokenServer;
use latchkey_tests::proxy::{make_certs, ProxyProcess, TlsServer};
use latchkey_tests::{stderr, stdout, Daemon, TestEnv};
use serde_json::Value;
use tokio::sync::Barrier;

use super::{client, full, runtime};
use crate::support::provider_section;

const FRESH_BUT_UNKNOWN: &str = r#"{"kind":"oauth2","access_token":"ATOKEN-0","refresh_token":"RTOKEN-0","expires_in":3600,"scopes":["repo"],"provider":"test"}"#;

struct World {
    env: TestEnv,
    daemon: Daemon,
    tokens: Arc<TokenServer>,
    /// Every `Authorization` the upstream saw, in order.
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    proxy: ProxyProcess,
    _upstream: TlsServer,
}

/// The world; the upstream holds its answers to the old token until `together` requests
/// carrying it have arrived, so that they are all refused before any is sent again.
fn world(together: usize) -> World {
    let env = TestEnv::bare();
    let certs = env.root().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certs(&certs);
    let tokens = Arc::new(TokenServer::start());
    tokens.seed("RTOKEN-0");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(together));
    let upstream = {
        let (tokens, seen) = (tokens.clone(), seen.clone());
        TlsServer::start(&certs, move |request| {
            let (tokens, seen, barrier) = (tokens.clone(), seen.clone(), barrier.clone());
            async move {
                let auth = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(auth.clone());
                let token = auth.strip_prefix("Bearer ").unwrap_or("");
                if token == "ATOKEN-0" {
                    barrier.wait().await;
                }
                if tokens.access_token_valid(token) {
                    full(200, "fine\n")
                } else {
                    full(401, "invalid_token\n")
                }
            }
        })
    };
    let config = env.root().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[proxy.routes.api]\nupstream = \"https://{}/\"\nservice = \"api\"\n\
             allow_private = true\nca_file = \"{}\"\n",
            provider_section("test", &tokens, true),
            upstream.address,
            certs.join("ca.pem").display(),
        ),
    )
    .unwrap();
    let daemon = env.start_daemon_with(
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    );
    let set = env.cli(
        &daemon.socket,
        &["set", "api", "--bundle"],
        FRESH_BUT_UNKNOWN,
    );
    assert!(set.status.success(), "{}", stderr(&set));
    let proxy = ProxyProcess::start(&env, &daemon, &config);
    World {
        env,
        daemon,
        tokens,
        seen,
        proxy,
        _upstream: upstream,
    }
}

impl World {
    fn grant(&self) -> String {
        let out = self.env.cli(
            &self.daemon.socket,
            &[
                "grant",
                "create",
                "--json",
                "--ttl",
                "1h",
                "--service",
                "api",
                "--ops",
                "proxy",
            ],
            "",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
        created["token"].as_str().unwrap().to_owned()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Neither log holds a token, the grant or a token's fingerprint.
    fn assert_logs_clean(&self, grant: &str) {
        let prints: Vec<String> = (0..3)
            .map(|n| {
                let print = TokenFingerprint::of(&Secret::from(format!("ATOKEN-{n}")));
                serde_json::to_value(print)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        for (name, log) in [("proxy", self.proxy.log()), ("daemon", self.daemon.logs())] {
            for secret in ["ATOKEN-", "RTOKEN-", grant]
                .into_iter()
                .chain(prints.iter().map(String::as_str))
            {
                assert!(
                    !log.contains(secret),
                    "{secret} is in the {name} log:\n{log}"
                );
            }
        }
    }
}

#[test]
fn a_401_makes_one_refresh_and_the_retry_carries_the_new_token() {
    let w = world(1);
    let grant = w.grant();
    let http = client();
    runtime().block_on(async {
        let response = http
            .get(w.proxy.url("/api/v1/models"))
            .bearer_auth(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "fine\n");
    });
    assert_eq!(w.seen(), ["Bearer ATOKEN-0", "Bearer ATOKEN-1"]);
    assert_eq!(w.tokens.refresh_requests(), 1);
    // The rotated refresh token was kept: the daemon's next refresh presents it.
    assert_eq!(w.tokens.reuse_detected(), 0);
    let get = w.env.cli(&w.daemon.socket, &["get", "api"], "");
    assert_eq!(stdout(&get).trim(), "ATOKEN-1", "{}", stderr(&get));

    // A token the upstream takes is not refreshed again: no 401, no rejection.
    runtime().block_on(async {
        let response = http
            .get(w.proxy.url("/api/v1/models"))
            .bearer_auth(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    });
    assert_eq!(w.tokens.refresh_requests(), 1);
    w.proxy.wait_for_log("retried=true");
    w.assert_logs_clean(&grant);
}

#[test]
fn concurrent_requests_refused_together_make_one_refresh() {
    const N: usize = 16;
    let w = world(N);
    let grant = w.grant();
    let http = client();
    let statuses = runtime().block_on(async {
        let requests: Vec<_> = (0..N)
            .map(|n| {
                let request = http
                    .get(w.proxy.url(&format!("/api/v1/item/{n}")))
                    .bearer_auth(&grant)
                    .send();
                tokio::spawn(async move { request.await.unwrap().status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for request in requests {
            statuses.push(request.await.unwrap());
        }
        statuses
    });
    assert_eq!(statuses, [200; N]);
    assert_eq!(w.tokens.refresh_requests(), 1);
    assert_eq!(w.tokens.reuse_detected(), 0);
    let seen = w.seen();
    let count = |token: &str| seen.iter().filter(|a| *a == token).count();
    assert_eq!(count("Bearer ATOKEN-0"), N, "{seen:?}");
    assert_eq!(count("Bearer ATOKEN-1"), N, "{seen:?}");
    assert_eq!(seen.len(), 2 * N);
    w.assert_logs_clean(&grant);
}
