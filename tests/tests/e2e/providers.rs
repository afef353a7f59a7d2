//! Providers end to end: what `providers` and `latchkey provider list` report (built-ins,
//! configured ones, broken settings), OpenID Connect discovery against the test server,
//! confidential clients whose secret lives under the reserved `latchkey:client-secret`
//! service, hostile input on the login methods, and the login methods over D-Bus.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use latchkey_tests::oauth_server::{Endpoint, Fault, TokenServer};
use latchkey_tests::{http, stderr, stdout, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};
use zbus::zvariant::{OwnedValue, Value as ZValue};

use super::support::{browser_login, daemon_with_config, provider_section, Rpc};

const BUILTINS: [&str; 5] = ["discord", "github", "gitlab", "google", "microsoft"];

/// The provider named `name` in a `providers` result.
fn find<'a>(providers: &'a Value, name: &str) -> &'a Value {
    providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {providers}"))
}

fn problem(provider: &Value) -> &str {
    provider["problem"].as_str().unwrap_or("")
}

#[test]
fn providers_lists_builtins_configured_and_broken_ones_and_the_daemon_serves() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();

    // Unknown keys are refused at start-up, with the key named.
    let bad = env.root().join("bad.toml");
    std::fs::write(
        &bad,
        "[providers.corp]\nclient_id = \"x\"\ntoken_url = \"https://idp.example.com/token\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let Err((status, logs)) = env.try_start_daemon(&["--config", bad.to_str().unwrap()], &[])
    else {
        panic!("latchkeyd started with an unknown provider key");
    };
    assert!(!status.success());
    assert!(logs.contains("colour"), "{logs}");

    let config = format!(
        "{}device_authorization_url = \"{}\"\nscopes = [\"read\", \"write\"]\n\n\
         [providers.corp]\nissuer = \"{}\"\nclient_id = \"latchkey-test\"\n\n\
         [providers.insecure]\nclient_id = \"x\"\ntoken_url = \"http://example.com/token\"\n\n\
         [providers.github]\nscopes = [\"repo\"]\n\n\
         [providers.nothing]\nclient_id = \"x\"\n",
        provider_section("test", &server, true),
        server.device_authorization_url(),
        server.issuer(),
    );
    let daemon = daemon_with_config(&env, &config, "info");
    let s = &daemon.socket;
    daemon.wait_for_log("provider not usable");
    let mut rpc = Rpc::connect(s);
    let providers = rpc.ok("providers", Value::Null);
    let names: Vec<&str> = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "corp",
            "discord",
            "github",
            "gitlab",
            "google",
            "insecure",
            "microsoft",
            "nothing",
            "test"
        ]
    );

    let test = find(&providers, "test");
    assert_eq!(test["builtin"], false);
    assert_eq!(test["configured"], true);
    assert_eq!(test["usable"], true);
    assert_eq!(test["flows"], json!(["browser", "device"]));
    assert_eq!(test["revocation"], true);
    assert_eq!(test["client_secret"], false);
    assert!(test.get("problem").is_none(), "{test}");

    let corp = find(&providers, "corp");
    assert_eq!(corp["usable"], true, "{corp}");
    assert_eq!(
        corp["issuer"].as_str().unwrap().trim_end_matches('/'),
        server.issuer()
    );

    let insecure = find(&providers, "insecure");
    assert_eq!(insecure["configured"], true);
    assert_eq!(insecure["usable"], false);
    assert!(problem(insecure).contains("https"), "{insecure}");

    let github = find(&providers, "github");
    assert_eq!(github["builtin"], true);
    assert_eq!(github["configured"], true);
    assert_eq!(github["usable"], false);
    assert!(problem(github).contains("client_id"), "{github}");

    let nothing = find(&providers, "nothing");
    assert_eq!(nothing["usable"], false);
    assert!(problem(nothing).contains("token_url"), "{nothing}");

    for name in ["discord", "gitlab", "google", "microsoft"] {
        let builtin = find(&providers, name);
        assert_eq!(builtin["builtin"], true, "{builtin}");
        assert_eq!(builtin["configured"], false, "{builtin}");
        assert_eq!(builtin["usable"], false, "{builtin}");
        assert!(problem(builtin).contains("config.toml"), "{builtin}");
    }

    // A broken provider cannot log in, and says where to fix it.
    for name in ["insecure", "github", "google"] {
        let error = rpc.err("login", json!({ "provider": name }));
        assert_eq!(error["data"]["kind"], "invalid_request", "{name}: {error}");
    }
    // The daemon serves everything else.
    rpc.ok(
        "set",
        json!({ "service": "keep", "bundle": { "kind": "api_key", "key": "KEY-keep" } }),
    );
    assert_eq!(
        rpc.ok("get", json!({ "service": "keep" }))["secret"],
        "KEY-keep"
    );
    let started = rpc.ok("login", json!({ "provider": "test" }));
    assert!(started["authorization_url"]
        .as_str()
        .unwrap()
        .starts_with(&server.authorize_url()));
    assert_eq!(
        rpc.ok("login_cancel", json!({ "login_id": started["login_id"] })),
        json!({ "cancelled": true })
    );

    // The CLI: JSON equal to the socket's, and a table.
    let out = env.cli(s, &["provider", "list", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed, providers);
    let out = env.cli(s, &["provider", "list"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let header = table.lines().next().unwrap();
    for column in [
        "PROVIDER", "USABLE", "LOGIN", "REVOKE", "SECRET", "FROM", "NOTE",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(
        row("test")[..6],
        ["test", "yes", "browser,device", "yes", "no", "config"]
    );
    assert_eq!(row("corp")[..2], ["corp", "yes"]);
    assert_eq!(row("insecure")[..2], ["insecure", "no"]);
    assert!(row("insecure").join(" ").contains("https"), "{table}");
    assert_eq!(row("google")[..2], ["google", "no"]);
    assert!(row("google").contains(&"built-in".to_owned()), "{table}");
    for name in BUILTINS {
        row(name);
    }
}

#[test]
fn an_issuer_is_discovered_for_a_login_and_a_failed_discovery_is_not_cached() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let port = server.issuer().rsplit(':').next().unwrap().to_owned();
    // `other` reaches the same server as localhost, whose document names 127.0.0.1.
    let config = format!(
        "[oauth]\ntimeout_secs = 1\n\n\
         [providers.corp]\nissuer = \"{}\"\nclient_id = \"latchkey-test\"\n\n\
         [providers.other]\nissuer = \"http://localhost:{port}\"\nclient_id = \"latchkey-test\"\n",
        server.issuer()
    );
    let daemon = daemon_with_config(&env, &config, "info");
    let mut rpc = Rpc::connect(&daemon.socket);

    // A failing discovery fails the login at once, retryably.
    for fault in [Fault::Status(500), Fault::Hang, Fault::Garbage] {
        server.fail_next_at(Endpoint::Discovery, std::slice::from_ref(&fault));
        let started = Instant::now();
        let error = rpc.err("login", json!({ "provider": "corp" }));
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{fault:?}: took {:?}",
            started.elapsed()
        );
        assert_eq!(error["data"]["kind"], "login_failed", "{fault:?}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("discovery"),
            "{fault:?}: {error}"
        );
    }
    assert_eq!(server.requests(Endpoint::Discovery), 3);

    // The next login discovers again and completes end to end.
    let entry = browser_login(&mut rpc, "corp", None);
    assert_eq!(entry["service"], "corp");
    assert_eq!(entry["provider"], "corp");
    assert_eq!(entry["has_refresh_token"], true);
    assert_eq!(server.requests(Endpoint::Discovery), 4);
    assert_eq!(server.code_exchanges(), 1);
    assert_eq!(
        rpc.ok("get", json!({ "service": "corp" }))["secret"],
        "ATOKEN-1"
    );

    // A document naming another issuer is refused.
    let error = rpc.err("login", json!({ "provider": "other" }));
    assert_eq!(error["data"]["kind"], "login_failed", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("different issuer"),
        "{error}"
    );

    // Logout revokes at the discovered revocation endpoint.
    let result = rpc.ok("logout", json!({ "service": "corp" }));
    assert_eq!(result, json!({ "removed": true, "revocation": "revoked" }));
    assert_eq!(server.revocation_requests(), 2);
    assert!(server.is_revoked("RTOKEN-1"));
}

#[test]
fn providers_report_an_issuers_endpoints_once_discovered() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let config = format!(
        "[providers.corp]\nissuer = \"{}\"\nclient_id = \"latchkey-test\"\n",
        server.issuer()
    );
    let daemon = daemon_with_config(&env, &config, "info");
    let mut rpc = Rpc::connect(&daemon.socket);
    // Starting a login discovers the endpoints.
    let started = rpc.ok("login", json!({ "provider": "corp" }));
    rpc.ok("login_cancel", json!({ "login_id": started["login_id"] }));
    assert_eq!(server.requests(Endpoint::Discovery), 1);
    let providers = rpc.ok("providers", Value::Null);
    let corp = find(&providers, "corp");
    // ProviderInfo.flows is documented as "empty until an issuer is discovered"; the
    // discovery document names every endpoint, logout revokes there.
    assert_eq!(corp["flows"], json!(["browser", "device"]), "{corp}");
    assert_eq!(corp["revocation"], true, "{corp}");
}

const SECRET: &str = "s3cret-client";

#[test]
fn a_confidential_client_logs_in_and_refreshes_with_its_stored_secret() {
    let server = TokenServer::start();
    server.require_client_secret(SECRET);
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, true), "trace");
    let s = &daemon.socket;
    let mut rpc = Rpc::connect(s);
    let mut outputs = Vec::new();
    let mut cli = |args: &[&str], stdin: &str| {
        let out = env.cli(s, args, stdin);
        outputs.push(format!("{args:?}: {}{}", stdout(&out), stderr(&out)));
        out
    };

    // Without the secret the token endpoint refuses the code: login_failed, not retryable.
    let started = rpc.ok("login", json!({ "provider": "test" }));
    let hops = http::follow(started["authorization_url"].as_str().unwrap(), 4);
    assert_ne!(hops.last().unwrap().status, 200, "{hops:?}");
    let error = rpc.err("login_wait", json!({ "login_id": started["login_id"] }));
    assert_eq!(error["data"]["kind"], "login_failed", "{error}");
    assert_eq!(error["data"]["retryable"], false, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{error}"
    );
    assert!(rpc.ok("status", json!({ "service": "test" }))["entries"]
        .as_array()
        .unwrap()
        .is_empty());

    // Store it from stdin.
    let out = cli(&["provider", "set-secret", "test"], &format!("{SECRET}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stored the client secret for test"));
    let out = cli(&["provider", "list", "--json"], "");
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(find(&listed, "test")["client_secret"], true);

    // Now the login completes, and a refresh carries the secret as well.
    let entry = browser_login(&mut rpc, "test", None);
    assert_eq!(entry["has_refresh_token"], true);
    server.seed("RTOKEN-seed");
    let expired = r#"{"kind":"oauth2","access_token":"ATOKEN-old","refresh_token":"RTOKEN-seed","expires_at":"2001-01-01T00:00:00Z","provider":"test"}"#;
    assert!(cli(&["set", "api", "--bundle"], expired).status.success());
    let out = cli(&["get", "api"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ATOKEN-"), "{}", stdout(&out));
    assert_ne!(stdout(&out), "ATOKEN-old\n");
    assert_eq!(server.refresh_requests(), 1);

    // The secret's entry is the daemon's own: every client method refuses it.
    for args in [
        &["get", "latchkey:client-secret", "-a", "test"][..],
        &["get", "latchkey:client-secret", "-a", "test", "--json"],
        &["clear", "latchkey:client-secret", "-a", "test"],
        &["logout", "latchkey:client-secret", "-a", "test"],
    ] {
        let out = cli(args, "");
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    let out = cli(
        &["set", "latchkey:client-secret", "-a", "test"],
        "overwritten\n",
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    for method in ["get", "clear"] {
        let error = rpc.err(
            method,
            json!({ "service": "latchkey:client-secret", "account": "test" }),
        );
        assert_eq!(
            error["data"]["kind"], "permission_denied",
            "{method}: {error}"
        );
    }
    // The secret still works (nothing overwrote or removed it).
    assert_eq!(
        find(&rpc.ok("providers", Value::Null), "test")["client_secret"],
        true
    );
    for args in [
        &["status", "--json"][..],
        &["list", "--json"],
        &["status", "latchkey:client-secret"],
        &["provider", "list"],
    ] {
        cli(args, "");
    }

    // Clearing it: listed as absent, and a refresh is refused again.
    let out = cli(&["provider", "clear-secret", "test"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed the client secret for test"));
    let listed: Value =
        serde_json::from_str(&stdout(&cli(&["provider", "list", "--json"], ""))).unwrap();
    assert_eq!(find(&listed, "test")["client_secret"], false);
    server.seed("RTOKEN-seed2");
    let expired2 = expired.replace("RTOKEN-seed", "RTOKEN-seed2");
    assert!(cli(&["set", "api", "--bundle"], &expired2).status.success());
    let out = cli(&["get", "api"], "");
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));

    for output in &outputs {
        assert!(!output.contains(SECRET), "the secret was printed: {output}");
    }

    // Logout revokes with the secret (stored again over the socket).
    assert_eq!(
        rpc.ok(
            "provider_secret",
            json!({ "provider": "test", "secret": SECRET })
        ),
        json!({ "stored": true })
    );
    let result = rpc.ok("logout", json!({ "service": "test" }));
    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(!logs.contains(SECRET), "the client secret reached the log");
    assert!(
        logs.contains("hyper") || logs.contains("reqwest"),
        "HTTP tracing was not on"
    );
    assert_eq!(result, json!({ "removed": true, "revocation": "revoked" }));
    assert_eq!(server.revocation_requests(), 2);
}

#[test]
fn hostile_input_on_the_login_methods_is_refused_and_the_connection_stays_usable() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    // No device endpoint: a device login is refused.
    let daemon = daemon_with_config(&env, &provider_section("test", &server, true), "info");
    let mut rpc = Rpc::connect(&daemon.socket);
    let long = "p".repeat(10_000);

    let wrong_shapes = [
        ("login", json!({})),
        ("login", json!({ "account": "a" })),
        ("login", json!({ "provider": 5 })),
        ("login", json!({ "provider": null })),
        ("login", json!({ "provider": ["test"] })),
        ("login", json!({ "provider": "test", "scopes": "repo" })),
        ("login", json!({ "provider": "test", "scopes": [1, 2] })),
        ("login", json!({ "provider": "test", "device": "yes" })),
        ("login", json!({ "provider": "test", "account": 7 })),
        ("login", json!(["test"])),
        ("login_wait", json!({})),
        ("login_wait", json!({ "login_id": 7 })),
        ("login_wait", json!({ "login_id": null })),
        ("login_cancel", json!({})),
        ("login_cancel", json!({ "login_id": ["x"] })),
        ("provider_secret", json!({})),
        ("provider_secret", json!({ "secret": "HOSTILE-SECRET" })),
        (
            "provider_secret",
            json!({ "provider": 1, "secret": "HOSTILE-SECRET" }),
        ),
        (
            "provider_secret",
            json!({ "provider": "test", "secret": 5 }),
        ),
        (
            "provider_secret",
            json!({ "provider": "test", "secret": ["HOSTILE-SECRET"] }),
        ),
    ];
    for (method, params) in wrong_shapes {
        let error = rpc.err(method, params.clone());
        assert_eq!(error["code"], -32602, "{method} {params}: {error}");
        assert_eq!(
            error["data"]["kind"], "invalid_request",
            "{method} {params}: {error}"
        );
        assert!(!error.to_string().contains("HOSTILE"), "{error}");
    }
    for method in ["login", "login_wait", "login_cancel", "provider_secret"] {
        let error = rpc.err(method, Value::Null);
        assert_eq!(
            error["data"]["kind"], "invalid_request",
            "{method}: {error}"
        );
    }

    // Unknown providers: a hint about config.toml.
    for provider in ["nosuch", "github"] {
        let error = rpc.err("login", json!({ "provider": provider }));
        assert_eq!(error["data"]["kind"], "invalid_request", "{error}");
        assert!(error.to_string().contains("config.toml"), "{error}");
    }
    let invalid = [
        ("login", json!({ "provider": "latchkey:client-secret" })),
        ("login", json!({ "provider": long })),
        ("login", json!({ "provider": "" })),
        ("login", json!({ "provider": "te\u{7}st" })),
        ("login", json!({ "provider": "test", "account": long })),
        ("login", json!({ "provider": "test", "account": "a\nb" })),
        ("login", json!({ "provider": "test", "device": true })),
        (
            "provider_secret",
            json!({ "provider": "test", "secret": "" }),
        ),
        (
            "provider_secret",
            json!({ "provider": long, "secret": "HOSTILE-SECRET" }),
        ),
        (
            "provider_secret",
            json!({ "provider": "", "secret": "HOSTILE-SECRET" }),
        ),
        (
            "provider_secret",
            json!({ "provider": "a\nb", "secret": "HOSTILE-SECRET" }),
        ),
    ];
    for (method, params) in invalid {
        let error = rpc.err(method, params.clone());
        let kind = error["data"]["kind"].as_str().unwrap();
        assert!(
            kind == "invalid_request" || kind == "permission_denied",
            "{method} {params}: {error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.len() < 300,
            "{method}: the error echoes input: {message}"
        );
        assert!(!error.to_string().contains("HOSTILE"), "{error}");
    }

    // Unknown login ids.
    for id in ["nope", "", long.as_str()] {
        let error = rpc.err("login_wait", json!({ "login_id": id }));
        assert_eq!(error["data"]["kind"], "not_found", "{error}");
        assert!(error["message"].as_str().unwrap().len() < 300);
        assert_eq!(
            rpc.ok("login_cancel", json!({ "login_id": id })),
            json!({ "cancelled": false })
        );
    }

    // The connection still works, and nothing was stored or started.
    assert_eq!(rpc.ok("version", Value::Null)["protocol"], 1);
    assert_eq!(
        find(&rpc.ok("providers", Value::Null), "test")["client_secret"],
        false
    );
    assert_eq!(
        rpc.ok("list", Value::Null)["entries"],
        json!([]),
        "a hostile request stored something"
    );
    assert_eq!(server.requests(Endpoint::Token), 0);

    // A real login can be cancelled once; its id is then unknown.
    let started = rpc.ok("login", json!({ "provider": "test" }));
    let id = started["login_id"].clone();
    assert_eq!(
        rpc.ok("login_cancel", json!({ "login_id": id })),
        json!({ "cancelled": true })
    );
    assert_eq!(
        rpc.ok("login_cancel", json!({ "login_id": id })),
        json!({ "cancelled": false })
    );
    let error = rpc.err("login_wait", json!({ "login_id": id }));
    let kind = error["data"]["kind"].as_str().unwrap();
    assert!(kind == "not_found" || kind == "login_failed", "{error}");

    // Pending logins are capped; cancelling frees the places.
    let mut ids = Vec::new();
    let refused = loop {
        let account = format!("flood-{}", ids.len());
        let response = rpc.call("login", json!({ "provider": "test", "account": account }));
        if let Some(error) = response.get("error") {
            break error.clone();
        }
        ids.push(response["result"]["login_id"].clone());
        assert!(ids.len() <= 64, "no cap on pending logins");
    };
    assert_eq!(refused["data"]["kind"], "invalid_request", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("pending"));
    for id in &ids {
        assert_eq!(
            rpc.ok("login_cancel", json!({ "login_id": id })),
            json!({ "cancelled": true })
        );
    }
    let started = rpc.ok("login", json!({ "provider": "test" }));
    rpc.ok("login_cancel", json!({ "login_id": started["login_id"] }));

    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(!logs.contains("HOSTILE"), "hostile input reached the log");
    assert!(
        !logs.contains("pppppppppp"),
        "hostile input reached the log"
    );
}

const NAME: &str = "dev.latchkey.Latchkey1";
const PATH: &str = "/dev/latchkey/Latchkey1";

type Dict = HashMap<String, OwnedValue>;

fn text(dict: &Dict, key: &str) -> String {
    let value = dict
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {dict:?}"));
    <&str>::try_from(&**value)
        .unwrap_or_else(|_| panic!("{key} is not a string: {value:?}"))
        .to_owned()
}

fn flag(dict: &Dict, key: &str) -> bool {
    let value = dict
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {dict:?}"));
    bool::try_from(&**value).unwrap_or_else(|_| panic!("{key} is not a boolean: {value:?}"))
}

/// The D-Bus error name of a failed call.
fn error_name(result: zbus::Result<zbus::Message>) -> String {
    match result {
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        Err(other) => panic!("not a method error: {other}"),
        Ok(_) => panic!("the call succeeded"),
    }
}

async fn call<B>(
    connection: &zbus::Connection,
    method: &str,
    body: &B,
) -> zbus::Result<zbus::Message>
where
    B: zbus::export::serde::Serialize + zbus::zvariant::DynamicType,
{
    connection
        .call_method(Some(NAME), PATH, Some(NAME), method, body)
        .await
}

#[test]
fn the_login_methods_over_dbus() {
    let server = TokenServer::start();
    let env = TestEnv::with_keyring();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, true), "info");
    let bus = env.bus();

    // gdbus: an unknown provider is a named error.
    let out = bus.call_latchkey("Login", &["nosuch", "", "@a{sv} {}"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("dev.latchkey.Latchkey1.Error.InvalidRequest"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("config.toml"), "{}", stderr(&out));

    bus.with_connection(async |connection| {
        let no_options: HashMap<&str, ZValue> = HashMap::new();
        let reply = call(connection, "Login", &("test", "", &no_options))
            .await
            .expect("Login");
        let started: Dict = reply.body().deserialize().unwrap();
        let url = text(&started, "authorization_url");
        let login_id = text(&started, "login_id");
        assert!(url.starts_with(&server.authorize_url()), "{url}");

        // LoginWait is sent first and stays pending; a Status call behind it on the same
        // connection still answers.
        let wait = zbus::Message::method_call(PATH, "LoginWait")
            .unwrap()
            .destination(NAME)
            .unwrap()
            .interface(NAME)
            .unwrap()
            .build(&(login_id.as_str(),))
            .unwrap();
        let serial = wait.primary_header().serial_num();
        let mut replies = zbus::MessageStream::from(connection);
        connection.send(&wait).await.unwrap();
        let status = tokio::time::timeout(
            Duration::from_secs(10),
            call(connection, "Status", &("", "")),
        )
        .await
        .expect("Status did not answer while a LoginWait was pending")
        .expect("Status");
        let (daemon_info, _entries): (Dict, Vec<Dict>) = status.body().deserialize().unwrap();
        assert_eq!(text(&daemon_info, "store"), "secret-service");

        // Play the browser, then LoginWait answers with the stored entry.
        let hops = tokio::task::spawn_blocking(move || http::follow(&url, 4))
            .await
            .unwrap();
        assert_eq!(hops.last().unwrap().status, 200, "{hops:?}");
        let reply = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(message) = replies.next().await {
                let message = message.unwrap();
                if message.header().reply_serial() == Some(serial) {
                    return message;
                }
            }
            panic!("the connection closed before LoginWait answered");
        })
        .await
        .expect("LoginWait did not answer");
        assert_eq!(
            reply.message_type(),
            zbus::message::Type::MethodReturn,
            "{reply:?}"
        );
        let entry: Dict = reply.body().deserialize().unwrap();
        assert_eq!(text(&entry, "service"), "test");
        assert_eq!(text(&entry, "account"), "default");
        assert_eq!(text(&entry, "provider"), "test");
        assert!(flag(&entry, "has_refresh_token"));

        // Providers.
        let reply = call(connection, "Providers", &()).await.expect("Providers");
        let providers: Vec<Dict> = reply.body().deserialize().unwrap();
        let names: Vec<String> = providers.iter().map(|p| text(p, "name")).collect();
        for name in ["discord", "github", "gitlab", "google", "microsoft", "test"] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        let test = providers
            .iter()
            .find(|p| text(p, "name") == "test")
            .unwrap();
        assert!(flag(test, "usable"));
        assert!(flag(test, "revocation"));
        assert!(!flag(test, "builtin"));

        // Named errors for what the socket refuses.
        let bad_options: HashMap<&str, ZValue> = HashMap::from([("device", ZValue::from("yes"))]);
        assert_eq!(
            error_name(call(connection, "Login", &("test", "", &bad_options)).await),
            "dev.latchkey.Latchkey1.Error.InvalidRequest"
        );
        assert_eq!(
            error_name(call(connection, "Login", &("nosuch", "", &no_options)).await),
            "dev.latchkey.Latchkey1.Error.InvalidRequest"
        );
        assert_eq!(
            error_name(call(connection, "LoginWait", &("nope",)).await),
            "dev.latchkey.Latchkey1.Error.NotFound"
        );
        let reply = call(connection, "LoginCancel", &("nope",))
            .await
            .expect("LoginCancel");
        assert!(!reply.body().deserialize::<bool>().unwrap());
        assert_eq!(
            error_name(call(connection, "Logout", &("latchkey:client-secret", "test")).await),
            "dev.latchkey.Latchkey1.Error.PermissionDenied"
        );
        assert_eq!(
            error_name(
                call(
                    connection,
                    "Get",
                    &("latchkey:client-secret", "test", &no_options)
                )
                .await
            ),
            "dev.latchkey.Latchkey1.Error.PermissionDenied"
        );

        // A cancelled login over D-Bus.
        let reply = call(connection, "Login", &("test", "second", &no_options))
            .await
            .expect("Login");
        let started: Dict = reply.body().deserialize().unwrap();
        let reply = call(
            connection,
            "LoginCancel",
            &(text(&started, "login_id").as_str(),),
        )
        .await
        .expect("LoginCancel");
        assert!(reply.body().deserialize::<bool>().unwrap());

        // Logout revokes at the provider.
        let reply = call(connection, "Logout", &("test", ""))
            .await
            .expect("Logout");
        let result: Dict = reply.body().deserialize().unwrap();
        assert!(flag(&result, "removed"), "{result:?}");
        assert_eq!(text(&result, "revocation"), "revoked", "{result:?}");
        assert_eq!(server.revocation_requests(), 2);
        assert!(server.is_revoked("RTOKEN-1"));
    });
    drop(daemon);
}
