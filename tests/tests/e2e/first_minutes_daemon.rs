//! What a newcomer meets in the first minutes, tried as they would (issue 12, point 5): a
//! login without a client id says where the config file is, what to add and how to register
//! an OAuth app; `provider set-secret` for a provider latchkey does not know stores nothing; a
//! bad `--bundle` names the field; a login where no browser can open says so at once and
//! suggests `--device`; `--min-valid` beyond what a token has left says how long it lives,
//! not that it expired; audit lines read `pid=1234 exe=/usr/bin/curl`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc};

use latchkey_tests::oauth_server::TokenServer;
use latchkey_tests::{bin, signal, stderr, stdout, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};

use super::support::{daemon_with_config, provider_section, Rpc};

#[test]
fn a_login_without_a_client_id_says_where_to_add_it_and_how_to_get_one() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let file = env.config_dir.join("latchkey").join("config.toml");
    let file = file.to_str().unwrap();

    let out = env.cli(&daemon.socket, &["login", "github"], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "github needs a client id",
        "`[providers.github]`",
        "`client_id = \"<your client id>\"`",
        file,
        "latchkey reload",
        "https://github.com/settings/applications/new",
        "http://127.0.0.1/callback",
        "Enable Device Flow",
        "`latchkey login github --device`",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }

    // A name latchkey does not know is not repeated; the known ones and the file are named.
    let out = env.cli(&daemon.socket, &["login", "nosuchprov"], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("nosuchprov"), "{err}");
    assert!(
        err.contains(file) && err.contains("discord, github, gitlab"),
        "{err}"
    );
    assert!(err.contains("http://127.0.0.1/callback"), "{err}");

    // `provider list` says where to configure a built-in.
    let out = env.cli(&daemon.socket, &["provider", "list", "--json"], "");
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for provider in list["providers"].as_array().unwrap() {
        let problem = provider["problem"].as_str().unwrap();
        assert!(problem.contains(file), "{provider}");
    }
}

#[test]
fn a_built_in_configured_without_client_id_says_why_and_how_to_get_one() {
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, "[providers.google]\nscopes = [\"email\"]\n", "info");
    let file = env.root().join("config.toml");
    let out = env.cli(&daemon.socket, &["login", "google"], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("provider google cannot log in"), "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("client_id is not set"), "{err}");
    assert!(err.contains("Desktop app"), "{err}");
}

#[test]
fn set_secret_for_a_provider_latchkey_does_not_know_stores_nothing() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let secret = "CLIENT-SECRET-canary";
    let out = env.cli(
        &daemon.socket,
        &["provider", "set-secret", "typo-hub"],
        &format!("{secret}\n"),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("stored"), "{err}");
    assert!(!err.contains("typo-hub") && !err.contains(secret), "{err}");
    assert!(
        err.contains("the known providers are discord, github, gitlab, google, microsoft"),
        "{err}"
    );
    let mut rpc = Rpc::connect(&daemon.socket);
    assert_eq!(rpc.ok("list", Value::Null)["entries"], json!([]));

    // Over the socket: the same, and hostile names are refused before that.
    let error = rpc.err(
        "provider_secret",
        json!({ "provider": "typo-hub", "secret": secret }),
    );
    assert_eq!(error["data"]["kind"], "not_found", "{error}");
    for provider in ["", "a\u{7}b", &"p".repeat(10_000)] {
        let error = rpc.err(
            "provider_secret",
            json!({ "provider": provider, "secret": secret }),
        );
        assert_eq!(error["data"]["kind"], "invalid_request", "{error}");
    }
    assert_eq!(rpc.ok("list", Value::Null)["entries"], json!([]));

    // A built-in template takes one before it is configured; removing works for any name.
    let out = env.cli(
        &daemon.socket,
        &["provider", "set-secret", "github"],
        &format!("{secret}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = rpc.ok("list", Value::Null)["entries"].clone();
    assert_eq!(entries[0]["service"], "latchkey:client-secret", "{entries}");
    assert_eq!(entries[0]["account"], "github", "{entries}");
    let out = env.cli(
        &daemon.socket,
        &["provider", "clear-secret", "typo-hub"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let (status, logs) = daemon.stop();
    assert!(status.success());
    assert!(!logs.contains(secret), "{logs}");
}

#[test]
fn a_bad_bundle_names_the_field_and_never_its_value() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--no-dbus"]);
    for (bundle, expected) in [
        (
            r#"{"kind": "oauth2", "access_token": "SECRET-1", "expires_in": "3600"}"#,
            "`expires_in` must be a whole number of seconds",
        ),
        (
            r#"{"kind": "oauth2", "access_token": "SECRET-1", "scopes": "repo"}"#,
            "`scopes` must be a list of strings",
        ),
        (
            r#"{"kind": "oauth2", "refresh_token": "SECRET-1"}"#,
            "`access_token` is missing",
        ),
        (r#"{"kind": "apikey", "key": "SECRET-1"}"#, "`kind` must be"),
        (
            "{\"kind\": \"api_key\",\n \"key\": \"SECRET-1\",\n}",
            "not valid JSON (line 3, column 1)",
        ),
    ] {
        let out = env.cli(&daemon.socket, &["set", "x", "--bundle"], bundle);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bundle}: {err}");
        assert!(err.contains(expected), "{bundle}: {err}");
        assert!(!err.contains("SECRET") && !err.contains("line 0"), "{err}");
    }
    // The protocol says the same for `set`.
    let mut rpc = Rpc::connect(&daemon.socket);
    let error = rpc.err(
        "set",
        json!({ "service": "x", "bundle": { "kind": "oauth2", "access_token": "SECRET-1", "expires_at": "SECRET-2" } }),
    );
    assert_eq!(error["code"], -32602, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("bundle: `expires_at` must be an RFC 3339 time"),
        "{error}"
    );
    assert!(!error.to_string().contains("SECRET"), "{error}");
    assert_eq!(rpc.ok("list", Value::Null)["entries"], json!([]));
}

/// Starts `latchkey login test` (a browser login) in `env` with `vars`, and returns the
/// child and a channel of its stderr lines.
fn login(env: &TestEnv, vars: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = env.command(&bin("latchkey"));
    cmd.args(["login", "test"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The first stderr line containing `needle`, within the start-up timeout.
fn line_with(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?}; seen: {seen:#?}");
}

#[test]
fn a_login_where_no_browser_can_open_says_so_at_once_and_suggests_device() {
    let server = TokenServer::start();
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, false), "info");
    let path = |dir: &std::path::Path| format!("{}:/usr/bin:/bin", dir.display());

    // No display: known without trying.
    let (mut child, lines) = login(
        &env,
        &[("LATCHKEY_SOCKET", daemon.socket.to_str().unwrap())],
    );
    let line = line_with(&lines, "No browser can be opened here");
    assert!(
        line.contains("neither DISPLAY nor WAYLAND_DISPLAY"),
        "{line}"
    );
    assert!(line.contains("`latchkey login test --device`"), "{line}");
    signal(&child, libc::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));

    // A display, but no opener installed.
    let empty = env.root().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let (mut child, lines) = login(
        &env,
        &[
            ("LATCHKEY_SOCKET", daemon.socket.to_str().unwrap()),
            ("DISPLAY", ":99"),
            ("PATH", empty.to_str().unwrap()),
        ],
    );
    let line = line_with(&lines, "No browser can be opened here");
    assert!(line.contains("xdg-open is not installed"), "{line}");
    assert!(line.contains("--device"), "{line}");
    signal(&child, libc::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));

    // An opener that fails: said when it exits.
    let failing = env.root().join("failing-bin");
    std::fs::create_dir_all(&failing).unwrap();
    let opener = failing.join("xdg-open");
    std::fs::write(&opener, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut child, lines) = login(
        &env,
        &[
            ("LATCHKEY_SOCKET", daemon.socket.to_str().unwrap()),
            ("DISPLAY", ":99"),
            ("PATH", &path(&failing)),
        ],
    );
    let line = line_with(&lines, "The browser could not be opened");
    assert!(line.contains("xdg-open failed, exit status: 3"), "{line}");
    assert!(line.contains("`latchkey login test --device`"), "{line}");
    signal(&child, libc::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn min_valid_beyond_what_a_token_has_left_says_how_long_it_lives() {
    let server = TokenServer::start();
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, false), "info");
    let s = &daemon.socket;

    // No refresh token, so no refresh: served (it has more than half its life left), with a
    // note saying how long it has.
    let bundle = r#"{"kind": "oauth2", "access_token": "ATOKEN-plain", "expires_in": 3600}"#;
    assert!(env
        .cli(s, &["set", "plain", "--bundle"], bundle)
        .status
        .success());
    let out = env.cli(s, &["get", "plain", "--min-valid", "7200"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ATOKEN-plain\n");
    assert!(
        stderr(&out).contains("note: this token is valid for 3"),
        "{}",
        stderr(&out)
    );
    let out = env.cli(s, &["get", "plain", "--min-valid", "60"], "");
    assert_eq!(stdout(&out), "ATOKEN-plain\n");
    assert_eq!(stderr(&out), "");

    // Refreshable: the freshest token is served with a note on stderr, stdout stays the token.
    server.seed("RTOKEN-0");
    let bundle = r#"{"kind": "oauth2", "access_token": "ATOKEN-0", "refresh_token": "RTOKEN-0",
                     "expires_in": 3600, "provider": "test"}"#;
    assert!(env
        .cli(s, &["set", "test", "--bundle"], bundle)
        .status
        .success());
    let out = env.cli(s, &["get", "test", "--min-valid", "7200"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ATOKEN-0\n");
    let err = stderr(&out);
    assert!(err.contains("note: this token is valid for 3"), "{err}");
    assert!(
        err.contains("less than the --min-valid 7200 asked for"),
        "{err}"
    );
    assert!(!err.contains("expired"), "{err}");
}

#[test]
fn audit_lines_show_the_pid_and_executable_as_plain_values() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let out = env.cli(&daemon.socket, &["list"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = daemon.wait_for_log("method=\"list\"");
    let line = logs
        .lines()
        .find(|l| l.contains("method=\"list\""))
        .unwrap();
    let exe = bin("latchkey");
    let exe = std::fs::canonicalize(exe).unwrap();
    assert!(line.contains(&format!(" exe={} ", exe.display())), "{line}");
    let pid = line
        .split(" pid=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(pid.parse::<u32>().is_ok(), "{line}");
    assert!(!logs.contains("Some("), "{logs}");
}

/// Past half its life, a token that cannot be refreshed and has less left than asked for is
/// refused with how long it has and how long it lives; once expired, it says so. Library
/// level, on a manual clock (the binaries read the system clock).
#[test]
fn a_token_that_cannot_be_refreshed_says_how_long_it_has_left() {
    use chrono::{TimeZone, Utc};
    use latchkey_core::{Clock, Error, ManualClock, TokenService};
    use latchkey_proto::{BundleInput, GetParams, SetParams};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap(),
        ));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let service = TokenService::open(
            Arc::new(latchkey_store::memory::MemoryStore::new()),
            dyn_clock,
        )
        .await
        .unwrap();
        service
            .set(SetParams {
                service: "plain".into(),
                account: None,
                bundle: BundleInput::from_json(
                    r#"{"kind": "oauth2", "access_token": "ATOKEN", "expires_in": 3600}"#,
                )
                .unwrap(),
            })
            .await
            .unwrap();
        let get = |min: u64| {
            let service = service.clone();
            async move {
                service
                    .get(&GetParams {
                        service: "plain".into(),
                        account: None,
                        scopes: Vec::new(),
                        min_valid_secs: Some(min),
                        grant: None,
                        proxy: false,
                        rejected: None,
                    })
                    .await
            }
        };
        clock.advance(chrono::Duration::seconds(2000));
        let err = get(1700).await.unwrap_err();
        assert_eq!(
            err,
            Error::ShortLived {
                valid_secs: 1600,
                lifetime_secs: 3600,
                asked_secs: 1700
            }
        );
        let rpc = err.to_rpc();
        assert_eq!(
            rpc.data.kind,
            latchkey_proto::ErrorKind::AuthenticationRequired
        );
        assert_eq!(
            rpc.message,
            "the access token is valid for only 1600 more seconds (it was issued for 3600 \
             seconds), less than the 1700 asked for, and latchkey cannot refresh it"
        );
        assert!(rpc.data.hint.unwrap().contains("ask for less"));
        assert_eq!(get(60).await.unwrap().secret.expose(), "ATOKEN");
        clock.advance(chrono::Duration::seconds(1601));
        let err = get(0).await.unwrap_err();
        assert!(err.to_string().contains("has expired"), "{err}");
    });
}
