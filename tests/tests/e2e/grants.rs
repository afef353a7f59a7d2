//! Capability grants end to end: the built binaries, a real gnome-keyring on a private bus
//! (where the grant key is an item like any other entry), the socket protocol, the CLI with
//! `LATCHKEY_GRANT`, `latchkey run`, and D-Bus `Get` with its `grant` option.
//!
//! Grants with chosen times, audiences and algorithms are made with the `latchkey-grants`
//! crate and `jsonwebtoken` from the key read out of the keyring with `secret-tool`: what any
//! process of the user's session could do (the README's threat model says so).

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_grants::{Capability, GrantAuthority, GrantKey, GrantRequest, Op, Revocations};
use latchkey_tests::{stderr, stdout, Daemon, TestEnv};
use serde_json::{json, Value};

use crate::support::Rpc;

/// The one message of every refusal (latchkey_daemon::grants::DENIED).
const DENIED: &str = latchkey_daemon::grants::DENIED;

const CONFIG: &str = "[policy]\nrequire_grant = [\"openai\", \"github:*\"]\n";

fn start(env: &TestEnv) -> Daemon {
    let path = env.root().join("config.toml");
    std::fs::write(&path, CONFIG).unwrap();
    env.start_daemon_with(
        &["--config", path.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    )
}

fn secret_tool(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new("secret-tool")
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", env.bus().address())
        .output()
        .expect("secret-tool is installed (libsecret-tools)")
}

/// The grant key, read from the keyring as any process of the user could.
fn stolen_key(env: &TestEnv) -> GrantKey {
    let out = secret_tool(
        env,
        &[
            "lookup",
            "service",
            "latchkey:grant-key",
            "account",
            "default",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    GrantKey::from_text(doc["key"].as_str().unwrap()).unwrap()
}

fn now() -> u64 {
    latchkey_grants::unix_now()
}

/// A grant for `openai` minted with `key` as if the clock read `at`.
fn minted_at(key: &GrantKey, at: u64, ttl_secs: u64) -> String {
    let authority = GrantAuthority::new(key, Revocations::new());
    let request = GrantRequest {
        label: None,
        capability: Capability {
            services: vec![latchkey_grants::ServicePattern::new("openai").unwrap()],
            account: None,
            scopes: vec![],
            ops: vec![Op::Get],
        },
        ttl_secs,
    };
    authority
        .mint(request, at)
        .unwrap()
        .token
        .expose()
        .to_owned()
}

/// A token signed with `key` (HS256) over `claims`, its header's `typ` being `typ`.
fn signed(key: &GrantKey, typ: &str, claims: &Value) -> String {
    let secret = URL_SAFE_NO_PAD.decode(key.to_text().as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

fn claims(aud: &str, nbf: u64, exp: u64) -> Value {
    json!({
        "aud": aud, "sub": "crafted", "iat": nbf, "nbf": nbf, "exp": exp,
        "jti": "0123456789abcdef0123456789abcdef",
        "cap": { "services": ["openai"], "ops": ["get"] }
    })
}

fn create(env: &TestEnv, daemon: &Daemon, args: &[&str]) -> (String, String) {
    let mut all = vec!["grant", "create", "--json"];
    all.extend_from_slice(args);
    let out = env.cli(&daemon.socket, &all, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    (
        created["token"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// The CLI with `LATCHKEY_GRANT` set.
fn cli_with(
    env: &TestEnv,
    daemon: &Daemon,
    grant: &str,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut cmd = env.command(&latchkey_tests::bin("latchkey"));
    cmd.env("LATCHKEY_GRANT", grant).args(args);
    if daemon.socket != env.socket() {
        cmd.env("LATCHKEY_SOCKET", &daemon.socket);
    }
    latchkey_tests::run_with_stdin(&mut cmd, stdin)
}

fn get(service: &str, account: Option<&str>, grant: Option<&str>) -> Value {
    let mut params = json!({ "service": service });
    if let Some(account) = account {
        params["account"] = json!(account);
    }
    if let Some(grant) = grant {
        params["grant"] = json!(grant);
    }
    params
}

/// Asserts `response` is the one generic refusal.
#[track_caller]
fn assert_denied(response: &Value, case: &str) {
    let error = &response["error"];
    assert_eq!(error["code"], -32000, "{case}: {response}");
    assert_eq!(
        error["data"]["kind"], "permission_denied",
        "{case}: {response}"
    );
    assert_eq!(error["message"], DENIED, "{case}: {response}");
    assert!(error["data"].get("hint").is_none(), "{case}: {response}");
}

#[test]
fn grants_limit_protected_entries_to_what_they_allow() {
    let env = TestEnv::with_keyring();
    let daemon = start(&env);
    let s = &daemon.socket;
    for (service, account, secret) in [
        ("openai", "default", "sk-openai-canary"),
        ("openai", "work", "sk-openai-work-canary"),
        ("github:work", "default", "gh-work-canary"),
        ("gitlab", "default", "gl-open-canary"),
    ] {
        let out = env.cli(s, &["set", service, "-a", account], secret);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut tokens = Vec::new();

    // Without a grant: protected entries are refused with the generic message, others served.
    for service in ["openai", "github:work"] {
        let out = env.cli(s, &["get", service], "");
        assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
        assert!(stderr(&out).contains(DENIED), "{}", stderr(&out));
        assert!(!stdout(&out).contains("canary"));
    }
    assert_eq!(
        stdout(&env.cli(s, &["get", "gitlab"], "")),
        "gl-open-canary\n"
    );

    // A grant for openai: its get works through the CLI and `latchkey run`.
    let (openai, openai_id) = create(
        &env,
        &daemon,
        &["--service", "openai", "--ttl", "1h", "--name", "agent"],
    );
    tokens.push(openai.clone());
    let out = cli_with(&env, &daemon, &openai, &["get", "openai"], "");
    assert_eq!(stdout(&out), "sk-openai-canary\n", "{}", stderr(&out));
    let out = cli_with(
        &env,
        &daemon,
        &openai,
        &[
            "run",
            "-e",
            "K=openai",
            "--",
            "sh",
            "-c",
            "printf %s \"$K\"",
        ],
        "",
    );
    assert_eq!(stdout(&out), "sk-openai-canary", "{}", stderr(&out));
    let out = env.cli(s, &["run", "-e", "K=openai", "--", "true"], "");
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    // --grant-file works the same.
    let file = env.root().join("grant");
    std::fs::write(&file, format!("{openai}\n")).unwrap();
    let out = env.cli(
        s,
        &["--grant-file", file.to_str().unwrap(), "get", "openai"],
        "",
    );
    assert_eq!(stdout(&out), "sk-openai-canary\n", "{}", stderr(&out));

    // The grant holder can do nothing else: another service, listing, changing, minting.
    for args in [
        &["get", "github:work"][..],
        &["get", "gitlab"],
        &["list"],
        &["status"],
        &["clear", "openai"],
        &["grant", "create", "--service", "openai", "--ttl", "1h"],
        &["grant", "list"],
        &["grant", "revoke", &openai_id],
        &["logout", "openai"],
        &["reload"],
    ] {
        let out = cli_with(&env, &daemon, &openai, args, "");
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(DENIED), "{args:?}: {}", stderr(&out));
    }
    let out = cli_with(&env, &daemon, &openai, &["set", "openai"], "sk-overwrite");
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(
        stdout(&env.cli(s, &["list"], "")).matches("openai").count(),
        2
    );

    // Every refusal over the protocol is the same kind and message.
    let key = stolen_key(&env);
    let other_key = GrantKey::generate().unwrap();
    let (account_only, _) = create(
        &env,
        &daemon,
        &["--service", "openai", "-a", "work", "--ttl", "1h"],
    );
    let (scoped, _) = create(
        &env,
        &daemon,
        &["--service", "openai", "--scope", "read", "--ttl", "1h"],
    );
    let (proxy_only, _) = create(
        &env,
        &daemon,
        &["--service", "openai", "--ops", "proxy", "--ttl", "1h"],
    );
    let (github, _) = create(&env, &daemon, &["--service", "github:*", "--ttl", "1h"]);
    let (revoked, revoked_id) = create(&env, &daemon, &["--service", "openai", "--ttl", "1h"]);
    tokens.extend([
        account_only.clone(),
        scoped.clone(),
        proxy_only.clone(),
        github.clone(),
        revoked.clone(),
    ]);
    let out = env.cli(s, &["grant", "revoke", &revoked_id], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut tampered = openai.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let t = now();
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"latchkey-grant+jwt"}"#);
    let none_claims = URL_SAFE_NO_PAD.encode(claims("latchkey", t, t + 3600).to_string());
    let cases: Vec<(&str, String, Value)> = vec![
        ("forged signature", tampered, get("openai", None, None)),
        (
            "another key",
            minted_at(&other_key, t, 3600),
            get("openai", None, None),
        ),
        (
            "alg none",
            format!("{none_header}.{none_claims}."),
            get("openai", None, None),
        ),
        (
            "expired",
            minted_at(&key, t - 7200, 60),
            get("openai", None, None),
        ),
        (
            "not yet valid",
            minted_at(&key, t + 3600, 3600),
            get("openai", None, None),
        ),
        (
            "wrong audience",
            signed(
                &key,
                "latchkey-grant+jwt",
                &claims("someone-else", t, t + 3600),
            ),
            get("openai", None, None),
        ),
        (
            "wrong type",
            signed(&key, "JWT", &claims("latchkey", t, t + 3600)),
            get("openai", None, None),
        ),
        ("revoked", revoked.clone(), get("openai", None, None)),
        (
            "another service",
            openai.clone(),
            get("github:work", None, None),
        ),
        (
            "another account",
            account_only.clone(),
            get("openai", None, None),
        ),
        (
            "another scope",
            scoped.clone(),
            json!({"service": "openai", "scopes": ["write"]}),
        ),
        (
            "another operation",
            proxy_only.clone(),
            get("openai", None, None),
        ),
        ("garbage", "not.a.jwt".to_owned(), get("openai", None, None)),
        (
            "longer than a grant",
            "a".repeat(5000),
            get("openai", None, None),
        ),
        (
            "a reserved entry",
            openai.clone(),
            get("latchkey:grant-key", None, None),
        ),
    ];
    // The crafted wrong-audience token is otherwise valid: with the right audience it works.
    let right = signed(&key, "latchkey-grant+jwt", &claims("latchkey", t, t + 3600));
    let mut rpc = Rpc::connect(s);
    assert_eq!(
        rpc.ok("get", get("openai", None, Some(&right)))["secret"],
        "sk-openai-canary"
    );
    for (case, token, params) in &cases {
        // As a per-request grant...
        let mut params = params.clone();
        params["grant"] = json!(token);
        let response = rpc.call("get", params.clone());
        assert_denied(&response, case);
        // ...and bound to a connection: refused at `authenticate` or at the request.
        let mut bound = Rpc::connect(s);
        let response = bound.call("authenticate", json!({ "grant": token }));
        if response.get("error").is_some() {
            assert_denied(&response, case);
        } else {
            params.as_object_mut().unwrap().remove("grant");
            assert_denied(&bound.call("get", params), case);
        }
    }
    assert_denied(&rpc.call("get", get("openai", None, None)), "no grant");
    // What the grants do allow.
    assert_eq!(
        rpc.ok("get", get("openai", Some("work"), Some(&account_only)))["secret"],
        "sk-openai-work-canary"
    );
    // (The gate lets it through; an API key has no scopes, so the entry answers for itself.)
    let scoped_get = rpc.call(
        "get",
        json!({"service": "openai", "scopes": ["read"], "grant": scoped}),
    );
    assert_eq!(
        scoped_get["error"]["data"]["kind"], "insufficient_scope",
        "{scoped_get}"
    );
    assert_eq!(
        rpc.ok("get", get("github:work", None, Some(&github)))["secret"],
        "gh-work-canary"
    );
    // A grant-holding connection: no set, clear, list, status, grant methods.
    let mut holder = Rpc::connect(s);
    let bound = holder.ok("authenticate", json!({ "grant": openai }));
    assert_eq!(bound["id"], openai_id.as_str());
    for (method, params) in [
        (
            "set",
            json!({"service": "openai", "bundle": {"kind": "api_key", "key": "x"}}),
        ),
        (
            "set",
            json!({"service": "other", "bundle": {"kind": "api_key", "key": "x"}}),
        ),
        ("clear", json!({"service": "gitlab"})),
        ("list", Value::Null),
        ("status", json!({})),
        ("providers", Value::Null),
        ("login", json!({"provider": "github"})),
        (
            "grant_create",
            json!({"services": ["openai"], "ttl_secs": 60}),
        ),
        ("grant_list", Value::Null),
        ("grant_revoke", json!({"id": openai_id})),
        ("reload", Value::Null),
        ("lock", Value::Null),
        ("migrate", json!({"to": "memory"})),
    ] {
        assert_denied(&holder.call(method, params), method);
    }
    assert_eq!(holder.ok("version", Value::Null)["protocol"], 1);
    assert_eq!(
        holder.ok("get", get("openai", None, None))["secret"],
        "sk-openai-canary"
    );

    // Oversized and hostile tokens are refused as invalid params before any parsing.
    for params in [
        json!({ "grant": "a".repeat(8 * 1024 + 1) }),
        json!({ "grant": 42 }),
        json!({ "grant": ["x"] }),
        json!({}),
    ] {
        let response = rpc.call("authenticate", params);
        assert_eq!(response["error"]["code"], -32602, "{response}");
    }
    let response = rpc.call("get", get("openai", None, Some(&"a".repeat(8 * 1024 + 1))));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    for hostile in ["\u{1b}[2J", "a\u{0}b", "..", "\u{202e}x.y.z"] {
        let response = rpc.call("get", get("openai", None, Some(hostile)));
        assert_denied(&response, hostile);
        assert!(!response.to_string().contains(hostile));
    }

    // Revocation stops a connection that already authenticated, at once.
    let (victim, victim_id) = create(&env, &daemon, &["--service", "openai", "--ttl", "1h"]);
    tokens.push(victim.clone());
    let mut agent = Rpc::connect(s);
    agent.ok("authenticate", json!({ "grant": victim }));
    assert_eq!(
        agent.ok("get", get("openai", None, None))["secret"],
        "sk-openai-canary"
    );
    rpc.ok("grant_revoke", json!({ "id": victim_id }));
    assert_denied(
        &agent.call("get", get("openai", None, None)),
        "revoked while bound",
    );
    let missing = rpc.call("grant_revoke", json!({ "id": "0".repeat(32) }));
    assert_eq!(missing["error"]["data"]["kind"], "not_found", "{missing}");
    let bad = rpc.call("grant_revoke", json!({ "id": "../x" }));
    assert_eq!(bad["error"]["data"]["kind"], "invalid_request", "{bad}");

    // The grant list: ids, names, what each allows, revoked ones marked; never a token.
    let listed = stdout(&env.cli(s, &["grant", "list"], ""));
    let listed_json = stdout(&env.cli(s, &["grant", "list", "--json"], ""));
    let grants: Value = serde_json::from_str(&listed_json).unwrap();
    let grants = grants["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 7, "{listed_json}");
    let find = |id: &str| grants.iter().find(|g| g["id"] == id).unwrap().clone();
    assert_eq!(find(&openai_id)["name"], "agent");
    assert_eq!(find(&openai_id)["caps"]["services"], json!(["openai"]));
    assert_eq!(find(&openai_id)["revoked"], false);
    assert_eq!(find(&revoked_id)["revoked"], true);
    assert_eq!(find(&victim_id)["revoked"], true);
    assert!(
        listed.contains(&openai_id) && listed.contains("revoked"),
        "{listed}"
    );
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!listed.contains(signature) && !listed_json.contains(signature));
    }

    // The daemon's own entries are hidden from listings and refused to every client.
    let entries = stdout(&env.cli(s, &["list", "--json"], ""));
    assert!(!entries.contains("latchkey:"), "{entries}");
    let out = env.cli(s, &["get", "latchkey:grant-key"], "");
    assert_eq!(out.status.code(), Some(8));
    assert!(!stdout(&out).contains(key.to_text().as_str()));

    // D-Bus: Get takes the grant as an option; without it the entry is refused.
    let bus = env.bus();
    let with_grant = bus.busctl(&[
        "--json=short",
        "call",
        "dev.latchkey.Latchkey1",
        "/dev/latchkey/Latchkey1",
        "dev.latchkey.Latchkey1",
        "Get",
        "ssa{sv}",
        "openai",
        "",
        "1",
        "grant",
        "s",
        &openai,
    ]);
    assert!(with_grant.status.success(), "{}", stderr(&with_grant));
    assert!(stdout(&with_grant).contains("sk-openai-canary"));
    for token in ["", revoked.as_str()] {
        let refused = bus.busctl(&[
            "call",
            "dev.latchkey.Latchkey1",
            "/dev/latchkey/Latchkey1",
            "dev.latchkey.Latchkey1",
            "Get",
            "ssa{sv}",
            "openai",
            "",
            "1",
            "grant",
            "s",
            token,
        ]);
        assert!(!refused.status.success());
        assert!(stderr(&refused).contains(DENIED), "{}", stderr(&refused));
    }
    let too_long = "a".repeat(8 * 1024 + 1);
    let refused = bus.busctl(&[
        "call",
        "dev.latchkey.Latchkey1",
        "/dev/latchkey/Latchkey1",
        "dev.latchkey.Latchkey1",
        "Get",
        "ssa{sv}",
        "openai",
        "",
        "1",
        "grant",
        "s",
        &too_long,
    ]);
    assert!(
        stderr(&refused).contains("too long"),
        "{}",
        stderr(&refused)
    );
    let out = cli_with(
        &env,
        &daemon,
        &openai,
        &["--transport", "dbus", "get", "openai"],
        "",
    );
    assert_eq!(stdout(&out), "sk-openai-canary\n", "{}", stderr(&out));

    // The audit names the grant by id.
    let named = format!("grant={openai_id}");
    daemon.wait_for_line("an audit line naming the grant", |l| {
        l.contains("latchkey::audit") && l.contains(&named)
    });

    // A restart keeps the key (grants made before still work) and the revocations.
    let (_, logs) = daemon.stop();
    let daemon = start(&env);
    let s = &daemon.socket;
    let out = cli_with(&env, &daemon, &openai, &["get", "openai"], "");
    assert_eq!(stdout(&out), "sk-openai-canary\n", "{}", stderr(&out));
    for token in [&revoked, &victim] {
        let out = cli_with(&env, &daemon, token, &["get", "openai"], "");
        assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    }
    let out = env.cli(s, &["grant", "list", "--json"], "");
    assert!(stdout(&out).contains(&revoked_id));
    let (_, more_logs) = daemon.stop();

    // The audit file names the grant a get ran under by its id, and holds no token (the
    // daemon flushes its queue before it exits).
    let audit = std::fs::read_to_string(env.root().join(".local/state/latchkey/audit.jsonl"))
        .expect("the audit file");
    let granted_gets = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON record"))
        .filter(|r| r["method"] == "get" && r["grant"] == openai_id.as_str())
        .count();
    assert!(granted_gets > 0, "{audit}");

    // No token ever reached the daemon's log, even at debug level.
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(signature) && !more_logs.contains(signature),
            "a grant token was logged"
        );
        assert!(
            !audit.contains(signature),
            "a grant token in the audit file"
        );
    }
    assert!(!logs.contains(key.to_text().as_str()));
}

#[test]
fn a_bad_policy_is_refused_at_start() {
    let env = TestEnv::bare();
    for (text, needle) in [
        (
            "[policy]\nrequire_grant = [\"git*hub\"]\n",
            "policy.require_grant",
        ),
        (
            "[policy]\nrequire_grants = [\"openai\"]\n",
            "require_grants",
        ),
        ("[policy]\nrequire_grant = \"openai\"\n", "line 2"),
    ] {
        let path = env.root().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let (status, logs) = env
            .try_start_daemon(&["--no-dbus", "--config", path.to_str().unwrap()], &[])
            .err()
            .expect("the daemon refuses the configuration");
        assert!(!status.success());
        assert!(logs.contains(needle), "{text}: {logs}");
    }
}

#[test]
fn a_star_policy_protects_everything_on_the_memory_store() {
    let env = TestEnv::bare();
    let path = env.root().join("config.toml");
    std::fs::write(&path, "[policy]\nrequire_grant = [\"*\"]\n").unwrap();
    let daemon = env.start_daemon(&["--no-dbus", "--config", path.to_str().unwrap()]);
    let s = &daemon.socket;
    assert!(env
        .cli(s, &["set", "anything"], "v-canary")
        .status
        .success());
    assert_eq!(env.cli(s, &["get", "anything"], "").status.code(), Some(8));
    let (token, _) = create(&env, &daemon, &["--service", "*", "--ttl", "60s"]);
    let out = cli_with(&env, &daemon, &token, &["get", "anything"], "");
    assert_eq!(stdout(&out), "v-canary\n", "{}", stderr(&out));
    // A bad grant in the environment fails before anything else runs.
    let out = cli_with(&env, &daemon, "junk", &["get", "anything"], "");
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let out = cli_with(&env, &daemon, &"a".repeat(9000), &["get", "anything"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // `grant create` input errors are the caller's.
    for args in [
        &[
            "grant",
            "create",
            "--service",
            "latchkey:grant-key",
            "--ttl",
            "1h",
        ][..],
        &["grant", "create", "--service", "git*hub", "--ttl", "1h"],
        &["grant", "create", "--service", "openai", "--ttl", "400d"],
        &[
            "grant",
            "create",
            "--service",
            "openai",
            "--ttl",
            "1h",
            "--ops",
            "delete",
        ],
    ] {
        let out = env.cli(s, args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // A changed policy waits for a restart, and a reload says so.
    std::fs::write(&path, "[policy]\nrequire_grant = []\n").unwrap();
    let out = env.cli(s, &["reload", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let reloaded: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(reloaded["restart_needed"], json!(["policy.require_grant"]));
    assert_eq!(env.cli(s, &["get", "anything"], "").status.code(), Some(8));
    let (_, logs) = daemon.stop();
    assert!(!logs.contains(token.rsplit('.').next().unwrap()));
}
