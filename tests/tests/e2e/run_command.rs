//! `latchkey run` with the built binaries and a real daemon: the command sees its secrets (read
//! back from a file it writes, never from argv), a missing secret keeps it from starting, its
//! exit status and signals pass through `exec`, and env files and `-e` values that could never
//! work are refused before anything runs, with the file and line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use latchkey_tests::{bin, stderr, Daemon, TestEnv, START_TIMEOUT};

/// A daemon (memory store) holding `secrets` as API keys, given as (service, account, key).
fn daemon_with(env: &TestEnv, secrets: &[(&str, &str, &str)]) -> Daemon {
    let daemon = env.start_daemon(&[]);
    for (service, account, key) in secrets {
        let out = env.cli(&daemon.socket, &["set", service, "-a", account], key);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    daemon
}

/// `latchkey run ARGS` in `env`, stdin closed.
fn run(env: &TestEnv, args: &[&str]) -> Output {
    latchkey(env).args(args).output().unwrap()
}

fn latchkey(env: &TestEnv) -> Command {
    let mut cmd = env.command(&bin("latchkey"));
    cmd.arg("run").stdin(Stdio::null());
    cmd
}

/// Waits until `path` exists (the command got that far), or fails the test.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn file(env: &TestEnv, name: &str) -> PathBuf {
    env.root().join(name)
}

#[test]
fn the_command_sees_its_secrets_and_its_exit_status_is_latchkeys() {
    let env = TestEnv::bare();
    let _daemon = daemon_with(
        &env,
        &[
            ("openai", "default", "sk-run-canary-1\n"),
            ("github", "work", "ghp-run-canary-2\n"),
        ],
    );
    let out_file = file(&env, "seen");
    // The command writes what it sees; the secrets never pass through argv.
    let out = run(
        &env,
        &[
            "-e",
            "OPENAI_API_KEY=openai",
            "--env",
            "GH_TOKEN=github:work",
            "--",
            "sh",
            "-c",
            "printf '%s|%s' \"$OPENAI_API_KEY\" \"$GH_TOKEN\" > \"$1\"; exit 42",
            "sh",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        "sk-run-canary-1|ghp-run-canary-2"
    );
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // Exit 0 passes through too, and a command is found on PATH.
    let out = run(&env, &["-e", "K=openai", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_missing_secret_keeps_the_command_from_starting() {
    let env = TestEnv::bare();
    let _daemon = daemon_with(&env, &[("openai", "default", "sk-present-canary\n")]);
    let marker = file(&env, "started");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let args: Vec<&str> = ["-e", "A=openai", "-e", "B=absent"]
        .into_iter()
        .chain(touch)
        .collect();
    let out = run(&env, &args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!marker.exists(), "the command ran without its secret");
    let err = stderr(&out);
    assert!(
        err.contains("the command was not started: B (absent)"),
        "{err}"
    );
    assert!(!err.contains("canary"), "{err}");

    // A missing account and a scope the entry lacks are refused the same way.
    let args: Vec<&str> = ["-e", "A=openai:other"].into_iter().chain(touch).collect();
    assert_eq!(run(&env, &args).status.code(), Some(3));
    let args: Vec<&str> = ["-e", "A=openai#admin"].into_iter().chain(touch).collect();
    let out = run(&env, &args);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(!marker.exists());

    // No daemon at all: 7, and still nothing runs.
    drop(_daemon);
    let args: Vec<&str> = ["-e", "A=openai"].into_iter().chain(touch).collect();
    let out = run(&env, &args);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(!marker.exists());
}

#[test]
fn a_command_that_cannot_start_exits_as_a_shell_would() {
    let env = TestEnv::bare();
    let _daemon = daemon_with(&env, &[("openai", "default", "sk-x\n")]);
    let out = run(
        &env,
        &[
            "-e",
            "K=openai",
            "--",
            "/nonexistent/latchkey-no-such-program",
        ],
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let not_executable = file(&env, "plain.txt");
    std::fs::write(&not_executable, "just text").unwrap();
    let out = run(
        &env,
        &["-e", "K=openai", "--", not_executable.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
}

#[test]
fn a_signal_reaches_the_command_which_is_latchkey_itself_after_exec() {
    let env = TestEnv::bare();
    let _daemon = daemon_with(&env, &[("openai", "default", "sk-signal\n")]);
    let ready = file(&env, "ready");
    let got = file(&env, "got-term");
    let ignored = file(&env, "sigign");
    // The command records which signals it ignores, says it is ready, and waits for TERM.
    let script = r#"
        grep '^SigIgn:' /proc/$$/status > "$3"
        trap 'echo term > "$2"; kill $pid 2>/dev/null; exit 7' TERM
        sleep 120 & pid=$!
        echo up > "$1"
        wait $pid
    "#;
    let mut child = latchkey(&env)
        .args(["-e", "K=openai", "--", "sh", "-c", script, "sh"])
        .args([&ready, &got, &ignored])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&ready);
    // exec kept the pid: the process we started is the shell now, and no latchkey is left.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
    assert_eq!(comm.trim(), "sh");
    latchkey_tests::signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "term");
    // Rust's runtime ignores SIGPIPE; the command must not inherit that.
    let line = std::fs::read_to_string(&ignored).unwrap();
    let mask = u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{line}");
}

#[test]
fn an_env_file_maps_variables_and_dash_e_wins() {
    let env = TestEnv::bare();
    let _daemon = daemon_with(
        &env,
        &[
            ("openai", "default", "sk-file-1\n"),
            ("github", "work", "ghp-file-2\n"),
            ("github", "home", "ghp-file-3\n"),
        ],
    );
    let env_file = file(&env, "latchkey.env");
    std::fs::write(
        &env_file,
        "# tokens for this project (no secrets here)\n\nOPENAI_API_KEY=openai\r\n  GH_TOKEN=github:work  \n",
    )
    .unwrap();
    let seen = file(&env, "seen");
    let out = run(
        &env,
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "GH_TOKEN=github:home",
            "--",
            "sh",
            "-c",
            "printf '%s|%s' \"$OPENAI_API_KEY\" \"$GH_TOKEN\" > \"$1\"",
            "sh",
            seen.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "sk-file-1|ghp-file-3"
    );
}

/// Runs with an env file holding `bytes` and no daemon: parsing comes first, so a bad file is a
/// usage error whatever the daemon would say. Returns stderr.
fn refused_file(env: &TestEnv, bytes: &[u8]) -> String {
    let path = file(env, "bad.env");
    std::fs::write(&path, bytes).unwrap();
    let marker = file(env, "ran");
    let out = run(
        env,
        &[
            "--env-file",
            path.to_str().unwrap(),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!marker.exists());
    stderr(&out)
}

#[test]
fn env_file_errors_name_the_file_and_line() {
    let env = TestEnv::bare();
    let name = file(&env, "bad.env").display().to_string();
    for (text, line, says) in [
        (
            &b"A=openai\n# fine\nB = openai\n"[..],
            3,
            "is not a variable name",
        ),
        (b"\n\nnot a mapping\n", 3, "expected VAR=SERVICE"),
        (b"A=\n", 1, "the service after '=' is empty"),
        (b"=openai\n", 1, "the variable name before '=' is empty"),
        (b"A=x\nA=y\n", 2, "A is already mapped on line 1"),
        (b"A=openai\nB\0C=openai\n", 2, "NUL"),
        (b"A=openai\nB=open\xffai\n", 2, "not UTF-8"),
        (b"A=github:\n", 1, "the account after ':' is empty"),
        (b"A=github#read,,write\n", 1, "a scope after '#' is empty"),
    ] {
        let err = refused_file(&env, text);
        assert!(
            err.contains(&format!("{name}:{line}: ")) && err.contains(says),
            "{text:?}: {err}"
        );
        // Escaped before it is shown: no raw control characters from the file.
        assert!(!err.contains('\0'), "{err:?}");
    }
    let big = "A=openai\n".repeat(8 * 1024);
    let err = refused_file(&env, big.as_bytes());
    assert!(err.contains("larger than 64 KiB"), "{err}");
    let missing = run(
        &env,
        &["--env-file", "/nonexistent/latchkey.env", "--", "true"],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("cannot open /nonexistent/latchkey.env"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn hostile_mappings_on_the_command_line_are_refused_before_anything_runs() {
    let env = TestEnv::bare();
    let marker = file(&env, "ran");
    let touch = marker.to_str().unwrap();
    for (mapping, says) in [
        ("=openai", "the variable name before '=' is empty"),
        ("A=B=C", ""),
        ("1A=openai", "is not a variable name"),
        ("A;rm=openai", "is not a variable name"),
        ("A\u{1b}[2J=openai", "is not a variable name"),
        ("A=", "the service after '=' is empty"),
        ("A=:acct", "the service after '=' is empty"),
        ("openai", "expected VAR=SERVICE"),
    ] {
        let out = run(&env, &["-e", mapping, "--", "touch", touch]);
        if mapping == "A=B=C" {
            // A valid mapping (service "B=C"): no daemon here, so 7, and nothing ran.
            assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
        } else {
            assert_eq!(out.status.code(), Some(2), "{mapping:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(says), "{mapping:?}: {}", stderr(&out));
            assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
        }
        assert!(!marker.exists());
    }
    // A line break in a name cannot forge a line of the message (the daemon refuses the name).
    let _daemon = env.start_daemon(&[]);
    let out = run(&env, &["-e", "A=svc\nforged: line", "--", "touch", touch]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !stderr(&out).lines().any(|l| l.starts_with("forged")),
        "{}",
        stderr(&out)
    );
    let long = format!("{}=openai", "V".repeat(300));
    let out = run(&env, &["-e", &long, "--", "touch", touch]);
    assert_eq!(out.status.code(), Some(2));
    // Twice the same variable, nothing to map, and no command.
    let out = run(&env, &["-e", "A=x", "-e", "A=y", "--", "touch", touch]);
    assert!(
        stderr(&out).contains("-e A is given twice"),
        "{}",
        stderr(&out)
    );
    let out = run(&env, &["--", "touch", touch]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nothing to put in the environment"));
    let out = run(&env, &["-e", "A=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!marker.exists());
}
