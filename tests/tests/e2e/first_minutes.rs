//! A newcomer's first minutes with the built `latchkey` (issue 12): output into a closed pipe
//! or a full disk, errors as JSON under `--json`, the global options shown once, `version`
//! without a daemon, a secret typed as an argument, a daemon that is not on the session bus,
//! `install --print` and `logout` of an API key.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

use latchkey_tests::{bin, stderr, stdout, RawConnection, TestEnv};
use serde_json::Value;

fn latchkey(env: &TestEnv) -> Command {
    let mut cmd = env.command(&bin("latchkey"));
    cmd.stdin(Stdio::null());
    cmd
}

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors, which are then owned once each.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are fresh descriptors from pipe(), owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn no_panic(out: &Output) {
    assert_ne!(out.status.code(), Some(101), "{}", stderr(out));
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

/// A daemon filled with `count` API keys with long names (the table is far larger than a
/// pipe's buffer), through one socket connection.
fn daemon_with_many(env: &TestEnv, count: usize) -> latchkey_tests::Daemon {
    let daemon = env.start_daemon(&[]);
    let mut rpc = RawConnection::open(&daemon.socket);
    for i in 0..count {
        let request = serde_json::json!({
            "jsonrpc": "2.0", "id": i, "method": "set",
            "params": {
                "service": format!("service-with-a-rather-long-name-{i:05}"),
                "account": "someone@example.com",
                "bundle": {"kind": "api_key", "key": "k"},
            },
        });
        let answer = rpc.call(&request.to_string());
        assert!(answer.get("error").is_none(), "{answer}");
    }
    daemon
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_is_an_error() {
    let env = TestEnv::bare();
    let daemon = daemon_with_many(&env, 1500);
    let key = env.cli(&daemon.socket, &["set", "openai"], "sk-pipe-canary\n");
    assert!(key.status.success());

    // `latchkey list | head -1`: the reader leaves after one line, mid-table.
    let mut child = latchkey(&env)
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("SERVICE"), "{first}");
    let out = child.wait_with_output().unwrap();
    no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // The same through a shell, as a user types it.
    let shell = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; \"$0\" list | head -1")
        .arg(bin("latchkey"))
        .env_clear()
        .envs(latchkey(&env).get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .unwrap();
    no_panic(&shell);
    assert_eq!(shell.status.code(), Some(0), "{}", stderr(&shell));
    assert_eq!(stdout(&shell).lines().count(), 1);

    // Every command that writes to stdout, into a pipe nobody reads.
    for args in [
        &["status"][..],
        &["list", "--json"],
        &["get", "openai"],
        &["version"],
        &["provider", "list"],
        &["kube-credential", "openai"],
        &["completions", "bash"],
        &["--help"],
    ] {
        let out = latchkey(&env)
            .args(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }

    // `latchkey status > /dev/full`: a clear error and exit 1; the secret never in it.
    for args in [&["status"][..], &["get", "openai"], &["list", "--json"]] {
        let out = latchkey(&env)
            .args(args)
            .stdout(File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot write to standard output: No space left on device"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("canary"));
    }

    // A full stderr does not change what happened: the exit code still says it.
    let out = latchkey(&env)
        .args(["get", "absent"])
        .stderr(File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    no_panic(&out);
    assert_eq!(out.status.code(), Some(3));
}

/// stderr parsed as the JSON error, with the exit code.
fn json_error(out: &Output) -> (Option<i32>, String, String) {
    let text = stderr(out);
    let value: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("stderr is not one JSON error: {text:?}"));
    let kind = value["error"]["kind"].as_str().expect("kind").to_owned();
    let message = value["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    (out.status.code(), kind, message)
}

#[test]
fn errors_under_json_are_json_on_every_command_that_has_it() {
    let env = TestEnv::bare();
    // No daemon: every command with --json says so in JSON.
    for args in [
        &["get", "openai", "--json"][..],
        &["status", "--json"],
        &["list", "--json"],
        &["logout", "openai", "--json"],
        &["login", "github", "--json"],
        &["migrate", "--to", "memory", "--json"],
        &["provider", "list", "--json"],
        &["version", "--json"],
    ] {
        let out = latchkey(&env).args(args).output().unwrap();
        let (code, kind, message) = json_error(&out);
        assert_eq!(code, Some(7), "{args:?}");
        assert_eq!(kind, "unavailable", "{args:?}");
        assert!(message.contains("latchkeyd is not running"), "{message}");
    }
    let daemon = env.start_daemon(&[]);
    let out = env.cli(&daemon.socket, &["get", "absent", "--json"], "");
    let (code, kind, message) = json_error(&out);
    assert_eq!((code, kind.as_str()), (Some(3), "not_found"));
    assert!(message.contains("no entry"), "{message}");
    assert!(out.stdout.is_empty());
    // The daemon's own kinds come through: a name it refuses, escaped in the message.
    let out = env.cli(&daemon.socket, &["get", "a\u{1b}[2Jb", "--json"], "");
    let (code, kind, message) = json_error(&out);
    assert_eq!(
        (code, kind.as_str()),
        (Some(2), "invalid_request"),
        "{message}"
    );
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
    // Usage errors that clap finds are JSON too when --json was asked for.
    let out = latchkey(&env).args(["get", "--json"]).output().unwrap();
    let (code, kind, message) = json_error(&out);
    assert_eq!((code, kind.as_str()), (Some(2), "usage"));
    assert!(message.contains("<SERVICE>"), "{message}");
    // Without --json, errors stay text for people.
    let out = latchkey(&env).args(["get", "absent"]).output().unwrap();
    assert!(stderr(&out).starts_with("latchkey: "), "{}", stderr(&out));
}

#[test]
fn global_options_are_shown_once_and_work_after_any_command() {
    let env = TestEnv::bare();
    let top = latchkey(&env).arg("--help").output().unwrap();
    assert!(top.status.success());
    let top = stdout(&top);
    assert!(top.contains("Global options:"), "{top}");
    for option in [
        "--socket <PATH>",
        "--transport <TRANSPORT>",
        "-v, --verbose",
    ] {
        assert_eq!(top.matches(option).count(), 1, "{option}: {top}");
    }
    let commands = [
        &["get"][..],
        &["set"],
        &["clear"],
        &["status"],
        &["list"],
        &["login"],
        &["logout"],
        &["migrate"],
        &["provider"],
        &["provider", "list"],
        &["provider", "set-secret"],
        &["install"],
        &["uninstall"],
        &["doctor"],
        &["unlock"],
        &["version"],
        &["run"],
        &["kube-credential"],
        &["completions"],
    ];
    for command in commands {
        for help in ["-h", "--help"] {
            let out = latchkey(&env).args(command).arg(help).output().unwrap();
            assert!(out.status.success(), "{command:?}");
            let text = stdout(&out);
            for option in ["--socket <PATH>", "--transport <", "-v, --verbose"] {
                assert!(
                    !text.contains(option),
                    "{command:?} {help} shows {option}:\n{text}"
                );
            }
            assert!(text.contains("latchkey --help"), "{command:?}: {text}");
        }
    }
    // They still work after a subcommand.
    let daemon = env.start_daemon(&[]);
    let other = env.root().join("elsewhere.sock");
    let out = latchkey(&env)
        .args(["list", "--socket", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("elsewhere.sock"), "{}", stderr(&out));
    let out = latchkey(&env)
        .args(["list", "-v", "--transport", "socket"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("using the socket"),
        "{}",
        stderr(&out)
    );
    // `version` connects on its own (it must answer without a daemon too); -v still says how.
    let out = latchkey(&env)
        .args(["version", "-v", "--transport", "socket"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("using the socket"),
        "{}",
        stderr(&out)
    );
    drop(daemon);
}

#[test]
fn version_without_a_daemon_still_shows_the_clis_version() {
    let env = TestEnv::bare();
    let out = latchkey(&env).arg("version").output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        stdout(&out),
        format!("latchkey {version} / latchkeyd not running\n")
    );
    assert!(
        stderr(&out).contains("latchkeyd is not running") && stderr(&out).contains("start it"),
        "{}",
        stderr(&out)
    );
    let out = latchkey(&env).args(["version", "--json"]).output().unwrap();
    let value: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value["cli"], version);
    assert!(value["daemon"].is_null());
    let _daemon = env.start_daemon(&[]);
    let out = latchkey(&env).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with(&format!("latchkey {version} / latchkeyd {version}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_secret_typed_as_an_argument_is_refused_and_never_echoed() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    for args in [
        &["set", "openai", "sk-argv-canary"][..],
        &["set", "openai", "-a", "work", "sk-argv-canary"],
        &["set", "openai", "sk-argv-canary", "more-canary"],
        &[
            "set",
            "--kind",
            "password",
            "--username",
            "me",
            "db",
            "sk-argv-canary",
        ],
    ] {
        let out = env.cli(&daemon.socket, args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(!err.contains("canary"), "{args:?}: {err}");
        assert!(err.contains("printf %s \"$KEY\" | latchkey set "), "{err}");
        assert!(err.contains("nothing was stored"), "{err}");
    }
    let out = env.cli(
        &daemon.socket,
        &["set", "openai", "-a", "work", "sk-argv-canary"],
        "",
    );
    assert!(
        stderr(&out).contains("printf %s \"$KEY\" | latchkey set openai -a work"),
        "{}",
        stderr(&out)
    );
    let list = env.cli(&daemon.socket, &["list"], "");
    assert_eq!(stdout(&list), "no entries\n");
    // The suggested command works.
    let out = Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$KEY\" | \"$0\" set openai")
        .arg(bin("latchkey"))
        .env_clear()
        .envs(latchkey(&env).get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("KEY", "sk-from-stdin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = env.cli(&daemon.socket, &["get", "openai"], "");
    assert_eq!(stdout(&got), "sk-from-stdin\n");
}

#[cfg(target_os = "linux")]
#[test]
fn no_daemon_on_a_live_session_bus_says_how_to_start_it() {
    let mut env = TestEnv::bare();
    env.bus = Some(latchkey_tests::SessionBus::start(None));
    for args in [&["list"][..], &["--transport", "dbus", "get", "x"]] {
        let out = latchkey(&env).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(
                "latchkeyd is not running; start it with `latchkeyd` or `latchkey install`"
            ),
            "{args:?}: {err}"
        );
        assert!(!err.contains("ServiceUnknown"), "{err}");
        assert!(!err.contains("NameHasNoOwner"), "{err}");
        assert!(!err.contains("org.freedesktop.DBus.Error"), "{err}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn install_print_shows_no_build_paths_in_comments() {
    let env = TestEnv::bare();
    let out = latchkey(&env)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .args(["install", "--print"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let daemon = bin("latchkeyd");
    let build_dir = daemon.parent().unwrap().to_str().unwrap();
    // The daemon's path is where it must be (ExecStart=, Exec=), never in a comment; the
    // lines that name each printed file are the only comments holding a path.
    assert!(
        text.contains(&format!("ExecStart={}", daemon.display())),
        "{text}"
    );
    for line in text.lines().filter(|l| l.starts_with('#')) {
        let names_a_file = line.strip_prefix("# /").is_some_and(|p| !p.contains(' '));
        if !names_a_file {
            assert!(!line.contains(build_dir), "{line}");
            assert!(!line.contains('@'), "{line}");
        }
    }
}

#[test]
fn logout_of_an_api_key_or_password_has_nothing_to_revoke() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    assert!(env
        .cli(&daemon.socket, &["set", "openai"], "sk-logout\n")
        .status
        .success());
    assert!(env
        .cli(
            &daemon.socket,
            &["set", "db", "--kind", "password", "--username", "me"],
            "pw\n"
        )
        .status
        .success());
    for service in ["openai", "db"] {
        let out = env.cli(&daemon.socket, &["logout", service], "");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "removed (nothing to revoke)\n");
    }
    let out = env.cli(&daemon.socket, &["logout", "openai"], "");
    assert_eq!(stderr(&out), "nothing to remove\n");
}
