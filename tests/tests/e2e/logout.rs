//! `logout` against a real revocation endpoint: a browser login revoked end to end, each
//! answer of the provider reported as what it means (revoked, unconfirmed, unsupported,
//! failed) over the socket and by the CLI, and hostile parameters refused without touching
//! the entries that exist.

use std::time::{Duration, Instant};

use latchkey_tests::oauth_server::{Fault, TokenServer};

use super::support::{browser_login, daemon_with_config, provider_section, Rpc};
use latchkey_tests::{stderr, stdout, TestEnv};
use serde_json::{json, Value};

/// An oauth2 bundle that expires in 2999, issued by `provider`.
fn bundle(access: &str, refresh: Option<&str>, provider: &str) -> Value {
    let mut bundle = json!({
        "kind": "oauth2",
        "access_token": access,
        "expires_at": "2999-01-01T00:00:00Z",
        "provider": provider,
    });
    if let Some(refresh) = refresh {
        bundle["refresh_token"] = refresh.into();
    }
    bundle
}

/// The entries `status` reports for (service, account).
fn entries(rpc: &mut Rpc, service: &str, account: &str) -> Vec<Value> {
    rpc.ok("status", json!({ "service": service, "account": account }))["entries"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn logout_after_a_browser_login_revokes_both_tokens_and_removes_the_entry() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, true), "debug");
    let s = &daemon.socket;
    let mut rpc = Rpc::connect(s);

    let entry = browser_login(&mut rpc, "test", None);
    assert_eq!(entry["service"], "test");
    assert_eq!(entry["account"], "default");
    assert_eq!(entry["provider"], "test");
    assert_eq!(entry["has_refresh_token"], true);
    assert_eq!(server.code_exchanges(), 1);
    let got = env.cli(s, &["get", "test"], "");
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), "ATOKEN-1\n");
    assert!(server.access_token_valid("ATOKEN-1"));

    let out = env.cli(s, &["logout", "test"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("removed; the provider revoked the tokens"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.revocation_requests(), 2);
    assert!(server.is_revoked("RTOKEN-1"));
    assert!(server.is_revoked("ATOKEN-1"));
    assert!(!server.access_token_valid("ATOKEN-1"));
    assert!(entries(&mut rpc, "test", "default").is_empty());
    let got = env.cli(s, &["get", "test"], "");
    assert!(
        matches!(got.status.code(), Some(3) | Some(4)),
        "get after logout: {:?} {}",
        got.status.code(),
        stderr(&got)
    );
    assert!(stdout(&got).is_empty());
    // A second logout finds nothing and asks the provider nothing.
    let again = rpc.ok("logout", json!({ "service": "test" }));
    assert_eq!(
        again,
        json!({ "removed": false, "revocation": "unsupported" })
    );
    assert_eq!(server.revocation_requests(), 2);

    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(logs.contains("method=\"logout\""), "no audit line:\n{logs}");
    assert!(!logs.contains("ATOKEN"), "an access token reached the log");
    assert!(!logs.contains("RTOKEN"), "a refresh token reached the log");
}

/// How a case's logout is asked for.
#[derive(Clone, Copy, Debug)]
enum Via {
    Socket,
    Cli,
    CliJson,
}

struct Case {
    name: &'static str,
    faults: Vec<Fault>,
    provider: &'static str,
    /// The entry's bundle; `None` for an API key.
    oauth: bool,
    refresh: bool,
    outcome: &'static str,
    revocation_requests: usize,
    via: Via,
}

#[test]
fn each_provider_answer_gives_its_outcome_and_the_entry_is_removed_anyway() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let config = format!(
        "[oauth]\ntimeout_secs = 1\n\n{}\n{}",
        provider_section("test", &server, true),
        provider_section("norevoke", &server, false)
    );
    let daemon = daemon_with_config(&env, &config, "info");
    let s = &daemon.socket;
    let mut rpc = Rpc::connect(s);
    let case = |name, faults: &[Fault], outcome, requests, via| Case {
        name,
        faults: faults.to_vec(),
        provider: "test",
        oauth: true,
        refresh: true,
        outcome,
        revocation_requests: requests,
        via,
    };
    let cases = [
        case("ok", &[], "revoked", 2, Via::Cli),
        case(
            "busy",
            &[Fault::Status(503), Fault::Status(503)],
            "unconfirmed",
            2,
            Via::Cli,
        ),
        case(
            "limited",
            &[Fault::TooManyRequests(1), Fault::Reset],
            "unconfirmed",
            2,
            Via::CliJson,
        ),
        case("hung", &[Fault::Hang], "unconfirmed", 2, Via::Socket),
        case("refused", &[Fault::InvalidGrant], "failed", 2, Via::Cli),
        case("bad", &[Fault::Status(400)], "failed", 2, Via::Socket),
        case(
            "unauthorized",
            &[Fault::Status(401)],
            "failed",
            2,
            Via::CliJson,
        ),
        // RFC 7009 §2.2: a 200 is the answer; its body is ignored.
        case("garbage", &[Fault::Garbage], "revoked", 2, Via::Socket),
        Case {
            refresh: false,
            ..case("access-only", &[], "revoked", 1, Via::Socket)
        },
        Case {
            provider: "norevoke",
            ..case("no-endpoint", &[], "unsupported", 0, Via::Cli)
        },
        Case {
            provider: "gone",
            ..case("unknown-provider", &[], "unsupported", 0, Via::Socket)
        },
        Case {
            oauth: false,
            ..case("api-key", &[], "unsupported", 0, Via::CliJson)
        },
    ];
    for case in cases {
        let name = case.name;
        let stored = if case.oauth {
            bundle(
                &format!("ATOKEN-{name}"),
                case.refresh.then(|| format!("RTOKEN-{name}")).as_deref(),
                case.provider,
            )
        } else {
            json!({ "kind": "api_key", "key": format!("KEY-{name}") })
        };
        rpc.ok(
            "set",
            json!({ "service": "svc", "account": name, "bundle": stored }),
        );
        server.fail_next_at(
            latchkey_tests::oauth_server::Endpoint::Revocation,
            &case.faults,
        );
        let before = server.revocation_requests();
        let started = Instant::now();
        let result = match case.via {
            Via::Socket => rpc.ok("logout", json!({ "service": "svc", "account": name })),
            Via::Cli | Via::CliJson => {
                let mut args = vec!["logout", "svc", "-a", name];
                if matches!(case.via, Via::CliJson) {
                    args.push("--json");
                }
                let out = env.cli(s, &args, "");
                assert!(out.status.success(), "{name}: {}", stderr(&out));
                if matches!(case.via, Via::CliJson) {
                    serde_json::from_str(&stdout(&out))
                        .unwrap_or_else(|_| panic!("{name}: not JSON: {}", stdout(&out)))
                } else {
                    let said = stderr(&out);
                    let wording = match case.outcome {
                        "revoked" => "removed; the provider revoked the tokens",
                        "unconfirmed" => "removed; the provider did not confirm the revocation",
                        "unsupported" => "removed; the provider offers no revocation",
                        _ => "removed; the provider refused the revocation",
                    };
                    assert!(said.contains(wording), "{name}: {said}");
                    assert!(stdout(&out).is_empty(), "{name}: {}", stdout(&out));
                    json!({ "removed": true, "revocation": case.outcome })
                }
            }
        };
        let elapsed = started.elapsed();
        assert_eq!(
            result,
            json!({ "removed": true, "revocation": case.outcome }),
            "{name}"
        );
        assert_eq!(
            server.revocation_requests() - before,
            case.revocation_requests,
            "{name}: revocation requests"
        );
        // A hung endpoint costs one request timeout (1 s here), not the default 15 s.
        assert!(
            elapsed < Duration::from_secs(6),
            "{name}: logout took {elapsed:?}"
        );
        assert!(
            entries(&mut rpc, "svc", name).is_empty(),
            "{name}: the entry is still there"
        );
    }
    // A missing entry: nothing removed, and the CLI says so.
    let out = env.cli(s, &["logout", "svc", "-a", "never"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing to remove"),
        "{}",
        stderr(&out)
    );
    let out = env.cli(s, &["logout", "svc", "-a", "never", "--json"], "");
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        result,
        json!({ "removed": false, "revocation": "unsupported" })
    );

    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    for secret in ["ATOKEN-", "RTOKEN-", "KEY-"] {
        assert!(!logs.contains(secret), "{secret} reached the log");
    }
}

#[test]
fn hostile_logout_params_are_refused_and_the_entries_stay() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, true), "info");
    let mut rpc = Rpc::connect(&daemon.socket);
    rpc.ok(
        "set",
        json!({ "service": "keep", "bundle": { "kind": "api_key", "key": "KEY-keep" } }),
    );
    rpc.ok(
        "set",
        json!({ "service": "test", "bundle": bundle("ATOKEN-keep", Some("RTOKEN-keep"), "test") }),
    );
    assert_eq!(
        rpc.ok(
            "provider_secret",
            json!({ "provider": "github", "secret": "CLIENT-SECRET-keep" })
        ),
        json!({ "stored": true })
    );

    let long = "x".repeat(10_000);
    let invalid_params = [
        json!({}),
        json!({ "account": "default" }),
        json!({ "service": 42 }),
        json!({ "service": null }),
        json!({ "service": ["test"] }),
        json!({ "service": "test", "account": 5 }),
        json!({ "service": { "nested": "test" } }),
        json!("test"),
        json!(["test"]),
    ];
    for params in invalid_params {
        let error = rpc.err("logout", params.clone());
        assert_eq!(error["code"], -32602, "{params}: {error}");
        assert_eq!(
            error["data"]["kind"], "invalid_request",
            "{params}: {error}"
        );
    }
    let error = rpc.err("logout", Value::Null);
    assert_eq!(
        error["data"]["kind"], "invalid_request",
        "no params: {error}"
    );

    let invalid_names = [
        json!({ "service": long }),
        json!({ "service": "test", "account": long }),
        json!({ "service": "" }),
        json!({ "service": "te\u{0}st" }),
        json!({ "service": "te\nst" }),
        json!({ "service": "test", "account": "de\u{1b}[31mfault" }),
    ];
    for params in invalid_names {
        let error = rpc.err("logout", params.clone());
        assert_eq!(
            error["data"]["kind"], "invalid_request",
            "{params}: {error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.len() < 300, "the error echoes the input: {message}");
        assert!(!message.contains("xxxxxxxx"), "the error echoes the input");
    }

    for (service, account) in [
        ("latchkey:client-secret", Some("github")),
        ("latchkey:client-secret", None),
        ("latchkey:anything", Some("default")),
    ] {
        let mut params = json!({ "service": service });
        if let Some(account) = account {
            params["account"] = account.into();
        }
        let error = rpc.err("logout", params);
        assert_eq!(
            error["data"]["kind"], "permission_denied",
            "{service}: {error}"
        );
    }
    // The CLI maps the refusal to exit code 8.
    let out = env.cli(
        &daemon.socket,
        &["logout", "latchkey:client-secret", "-a", "github"],
        "",
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    // Nothing was revoked or removed, and the connection still answers.
    assert_eq!(server.revocation_requests(), 0);
    assert_eq!(rpc.ok("version", Value::Null)["protocol"], 1);
    assert_eq!(
        rpc.ok("get", json!({ "service": "keep" }))["secret"],
        "KEY-keep"
    );
    assert_eq!(
        rpc.ok("get", json!({ "service": "test" }))["secret"],
        "ATOKEN-keep"
    );
    let providers = rpc.ok("providers", Value::Null);
    let github = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "github")
        .unwrap()
        .clone();
    assert_eq!(github["client_secret"], true, "{github}");

    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(
        !logs.contains("xxxxxxxxxx"),
        "hostile input reached the log"
    );
    assert!(
        !logs.contains("CLIENT-SECRET"),
        "a client secret reached the log"
    );
}
