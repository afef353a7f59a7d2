//! Reloading the configuration while latchkeyd runs: SIGHUP and `latchkey reload` read the
//! file again and apply providers and limits at once; a file with an error (a typo, a bad
//! value, a file grown too big, one that became a FIFO, a link to another user's file, one
//! removed) changes nothing, and the error names the file and the line. Reloads that pile up
//! (signals and calls from many clients while the file changes) end with the last file in
//! force. The start-up line names the file read, or the one that would be.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use latchkey_tests::{stderr, stdout, Daemon, TestEnv, START_TIMEOUT};
use serde_json::Value;

/// Writes `text` to `path` the way an editor saves: a new file renamed over the old one, so a
/// reload never reads it half written. Mode 0600.
fn save(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// `[providers.NAME]` with explicit endpoints (nothing is asked of them in these tests).
fn provider(name: &str, client_id: &str) -> String {
    format!(
        "[providers.{name}]\nclient_id = \"{client_id}\"\n\
         authorization_url = \"https://idp.example.com/authorize\"\n\
         token_url = \"https://idp.example.com/token\"\n"
    )
}

fn hangup(daemon: &Daemon) {
    // SAFETY: kill takes a pid and a signal; the pid is our own child, still running.
    assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) }, 0);
}

/// The names of the configured providers, from `latchkey provider list --json`.
fn configured(env: &TestEnv, daemon: &Daemon) -> Vec<String> {
    let out = env.cli(&daemon.socket, &["provider", "list", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["configured"] == true)
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn start(env: &TestEnv, text: &str) -> (Daemon, std::path::PathBuf) {
    let path = env.root().join("config.toml");
    save(&path, text);
    let daemon = env.start_daemon(&["--no-dbus", "--config", path.to_str().unwrap()]);
    (daemon, path)
}

#[test]
fn sighup_applies_a_changed_provider_and_the_start_up_line_names_the_file() {
    let env = TestEnv::bare();
    let (daemon, path) = start(&env, &provider("corp", "one"));
    let shown = path.to_str().unwrap();
    let logs = daemon.wait_for_log("latchkeyd is serving");
    assert!(logs.contains(&format!("config={shown}")), "{logs}");
    assert_eq!(configured(&env, &daemon), ["corp"]);

    save(
        &path,
        &format!("{}\n{}", provider("corp", "two"), provider("extra", "x")),
    );
    hangup(&daemon);
    let logs = daemon.wait_for_log("configuration reloaded");
    assert!(logs.contains("trigger=\"SIGHUP\""), "{logs}");
    assert!(
        logs.contains("changed=providers.corp,providers.extra"),
        "{logs}"
    );
    assert!(logs.contains(&format!("config={shown}")), "{logs}");
    assert_eq!(configured(&env, &daemon), ["corp", "extra"]);

    // A provider removed from the file is gone; a login for it says where to add it.
    save(&path, &provider("extra", "x"));
    let out = env.cli(&daemon.socket, &["reload"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("reloaded {shown}: in force now: providers.corp\n")
    );
    assert_eq!(configured(&env, &daemon), ["extra"]);
    let out = env.cli(&daemon.socket, &["login", "corp", "--no-browser"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(shown), "{}", stderr(&out));

    // Nothing changed: said so.
    let out = env.cli(&daemon.socket, &["reload"], "");
    assert_eq!(stdout(&out), format!("reloaded {shown}: nothing changed\n"));
}

#[test]
fn a_broken_file_keeps_the_running_config_and_names_file_and_line() {
    let env = TestEnv::bare();
    let (daemon, path) = start(&env, &provider("corp", "one"));
    let shown = path.to_str().unwrap();
    for (text, line, what) in [
        // A typo inside a provider table.
        (
            format!("{}scope = [\"repo\"]\n", provider("corp", "two")),
            5,
            "unknown field `scope`",
        ),
        // The singular section name.
        (
            format!(
                "# mine\n\n[provider.github]\nclient_id = \"x\"\n{}",
                provider("b", "c")
            ),
            3,
            "unknown field `provider`",
        ),
        ("[store]\nbacknd = \"memory\"\n".to_owned(), 2, "backnd"),
        (
            "[limits]\nidle_timeout_secs = \"5\"\n".to_owned(),
            2,
            "invalid type",
        ),
        ("[oauth\ntimeout_secs = 3\n".to_owned(), 1, ""),
    ] {
        save(&path, &text);
        let out = env.cli(&daemon.socket, &["reload"], "");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains(&format!(
                "invalid configuration in {shown}, line {line}, column"
            )),
            "{text}: {err}"
        );
        assert!(err.contains(what), "{text}: {err}");
        assert!(err.contains("the running one stays"), "{err}");
        assert_eq!(configured(&env, &daemon), ["corp"], "{text}");
    }

    // SIGHUP with the same file: logged, and the daemon keeps serving the old config.
    hangup(&daemon);
    let logs = daemon.wait_for_log("configuration not reloaded");
    assert!(logs.contains(&format!("{shown}, line 1")), "{logs}");
    assert_eq!(configured(&env, &daemon), ["corp"]);

    // A value out of range names the file and the setting.
    save(&path, "[limits]\nmax_line = 3\n");
    let out = env.cli(&daemon.socket, &["reload", "--json"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{shown}: limits.max_line must be between")),
        "{}",
        stderr(&out)
    );

    // Fixed, it applies.
    save(&path, &provider("fixed", "f"));
    let out = env.cli(&daemon.socket, &["reload", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["config"], shown);
    assert_eq!(
        result["changed"],
        serde_json::json!(["providers.corp", "providers.fixed"])
    );
    assert_eq!(result["restart_needed"], serde_json::json!([]));
    assert_eq!(configured(&env, &daemon), ["fixed"]);
}

#[test]
fn limits_apply_to_new_connections_and_what_needs_a_restart_is_named() {
    let env = TestEnv::bare();
    let (daemon, path) = start(&env, "");
    let old_socket = daemon.socket.clone();
    save(
        &path,
        "[limits]\nidle_timeout_secs = 1\nmax_connections = 3\n\
         [daemon]\nsocket = \"/nonexistent/other.sock\"\n\
         [store]\nlock_after_secs = 60\n",
    );
    let out = env.cli(&daemon.socket, &["reload", "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        result["changed"],
        serde_json::json!(["limits.idle_timeout_secs"])
    );
    assert_eq!(
        result["restart_needed"],
        serde_json::json!([
            "store.lock_after_secs",
            "daemon.socket",
            "limits.max_connections"
        ])
    );
    let logs = daemon.wait_for_log("take effect only when latchkeyd restarts");
    assert!(
        logs.contains("settings=store.lock_after_secs,daemon.socket,limits.max_connections"),
        "{logs}"
    );
    let out = env.cli(&old_socket, &["reload"], "");
    assert!(
        stdout(&out).contains(
            "in force after latchkeyd restarts: store.lock_after_secs, daemon.socket, limits.max_connections"
        ),
        "{}",
        stdout(&out)
    );

    // The socket stays where it was, and a new connection gets the 1 s idle timeout.
    let mut stream = std::os::unix::net::UnixStream::connect(&old_socket).unwrap();
    stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    let opened = Instant::now();
    let mut buf = [0u8; 16];
    // A signal to the test process interrupts a read with a timeout: read again.
    let read = loop {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.unwrap_or(0),
        }
    };
    assert_eq!(read, 0, "the idle connection was not closed");
    assert!(opened.elapsed() < Duration::from_secs(30));
}

#[test]
fn hostile_files_on_reload_change_nothing() {
    let env = TestEnv::bare();
    let (daemon, path) = start(&env, &provider("corp", "one"));
    let shown = path.to_str().unwrap().to_owned();
    let refused = |needle: &str| {
        let out = env.cli(&daemon.socket, &["reload"], "");
        let err = stderr(&out);
        assert!(!out.status.success(), "{needle}: {err}");
        assert!(err.contains(&shown), "{needle}: {err}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(configured(&env, &daemon), ["corp"]);
    };

    // Grown past 1 MiB.
    let mut big = provider("corp", "two");
    big.push_str(&"#".repeat(2 * 1024 * 1024));
    save(&path, &big);
    refused("larger than");

    // Writable by others.
    save(&path, &provider("corp", "two"));
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    refused("chmod go-w");

    // Not UTF-8, with the line of the first bad byte.
    std::fs::write(&path, b"[providers.corp]\nclient_id = \"\xff\"\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    refused("line 2, column 14: the file is not UTF-8 text");

    // A string where a list belongs is not repeated (it could be anything).
    save(
        &path,
        &format!("{}scopes = \"s3cr3t-value\"\n", provider("corp", "two")),
    );
    refused("line 5");
    let out = env.cli(&daemon.socket, &["reload"], "");
    assert!(!stderr(&out).contains("s3cr3t"), "{}", stderr(&out));

    // Removed: --config names a file that must exist.
    std::fs::remove_file(&path).unwrap();
    refused("cannot read");

    // A FIFO: refused at once, never waited on.
    let c_path = std::ffi::CString::new(shown.as_str()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    refused("FIFO");
    std::fs::remove_file(&path).unwrap();

    // A link to a file another user owns (that user could change what latchkeyd does).
    #[cfg(target_os = "linux")]
    if let Some(other) = latchkey_tests::users::OtherUser::create() {
        let theirs = env.root().join("theirs.toml");
        save(&theirs, &provider("evil", "e"));
        std::os::unix::fs::chown(&theirs, Some(other.uid), Some(other.gid)).unwrap();
        std::os::unix::fs::symlink(&theirs, &path).unwrap();
        refused(&format!("owned by uid {}", other.uid));
        std::fs::remove_file(&path).unwrap();
    }

    let (status, logs) = daemon.stop();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains("s3cr3t"), "{logs}");
}

#[test]
fn reloads_that_pile_up_end_with_the_last_file_in_force() {
    let env = TestEnv::bare();
    let (daemon, path) = start(&env, &provider("corp", "one"));
    let versions = [
        format!("{}\n{}", provider("corp", "one"), provider("alpha", "a")),
        format!("{}\n{}", provider("corp", "two"), provider("beta", "b")),
    ];
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..4 {
                        let out = env.cli(&daemon.socket, &["reload"], "");
                        assert!(out.status.success(), "{}", stderr(&out));
                    }
                })
            })
            .collect();
        for round in 0..20 {
            save(&path, &versions[round % 2]);
            hangup(&daemon);
        }
        for client in clients {
            client.join().unwrap();
        }
    });
    save(&path, &versions[1]);
    let out = env.cli(&daemon.socket, &["reload"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(configured(&env, &daemon), ["beta", "corp"]);
    // Still serving, and every reload either applied or found nothing to change.
    let logs = daemon.logs();
    assert!(!logs.contains("configuration not reloaded"), "{logs}");
    let (status, logs) = daemon.stop();
    assert!(status.success(), "{logs}");
}

#[test]
fn without_a_config_file_the_start_up_line_names_the_one_it_would_read() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--no-dbus"]);
    let expected = env.config_dir.join("latchkey").join("config.toml");
    let logs = daemon.wait_for_log("latchkeyd is serving");
    assert!(
        logs.contains(&format!(
            "config={} (absent: defaults apply)",
            expected.display()
        )),
        "{logs}"
    );
    // Created later, it is read by a reload.
    std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
    save(&expected, &provider("corp", "one"));
    let out = env.cli(&daemon.socket, &["reload"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "reloaded {}: in force now: providers.corp\n",
            expected.display()
        )
    );
    assert_eq!(configured(&env, &daemon), ["corp"]);
    // Removed again: the defaults (it was never required).
    std::fs::remove_file(&expected).unwrap();
    let out = env.cli(&daemon.socket, &["reload"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(absent: defaults apply)"),
        "{}",
        stdout(&out)
    );
    assert!(configured(&env, &daemon).is_empty());
}

#[test]
fn reload_over_the_protocol_takes_no_params_and_refuses_bad_shapes() {
    let env = TestEnv::bare();
    let (daemon, path) = start(&env, &provider("corp", "one"));
    let mut conn = latchkey_tests::RawConnection::open(&daemon.socket);
    let answer = conn.call(r#"{"jsonrpc":"2.0","id":1,"method":"reload"}"#);
    assert_eq!(
        answer["result"]["config"],
        path.to_str().unwrap(),
        "{answer}"
    );
    assert_eq!(
        answer["result"]["changed"],
        serde_json::json!([]),
        "{answer}"
    );
    // Params it does not take are ignored, as for `list`; params that are not an object are not.
    let answer =
        conn.call(r#"{"jsonrpc":"2.0","id":2,"method":"reload","params":{"path":"/etc/shadow"}}"#);
    assert_eq!(
        answer["result"]["config"],
        path.to_str().unwrap(),
        "{answer}"
    );
    for (id, params) in [(3, "[1]"), (4, "\"x\""), (5, "7")] {
        let answer = conn.call(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"reload","params":{params}}}"#
        ));
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert_eq!(answer["id"], id, "{answer}");
    }
    // The connection still serves, and the audit names the method.
    let answer = conn.call(r#"{"jsonrpc":"2.0","id":6,"method":"version"}"#);
    assert!(answer["result"]["protocol"].is_number(), "{answer}");
    daemon.wait_for_log("method=\"reload\"");

    // The CLI refuses the bus for it, without a daemon call.
    let out = env.cli(&daemon.socket, &["--transport", "dbus", "reload"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("socket only"), "{}", stderr(&out));
}
