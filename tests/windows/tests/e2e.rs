//! The Windows binaries end to end, over the named pipe, with the real Credential Manager and
//! the real registry of the Wine prefix (see `tests/windows/README.md`).
#![cfg(windows)]

use std::time::Duration;

use latchkey_windows_tests::{cli_exe, credentials, daemon_exe, run, shown, Daemon, TestEnv};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient};

include!("../../tests/e2e/hostile_cases.rs");

/// Every test ends within this, whatever happens.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", shown(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", shown(output)))
}

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", shown(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn with_no_configuration_the_daemon_serves_this_users_pipe_from_credential_manager() {
    // No --pipe, no LATCHKEY_PIPE, no data folder: everything from the platform's defaults.
    let mut command = std::process::Command::new(daemon_exe());
    command
        .env_remove("LATCHKEY_PIPE")
        .env_remove("LATCHKEY_DATA_DIR");
    let daemon = Daemon::start(command);
    let log = daemon.log_text();
    let sid = latchkey_paths::current_user_sid().unwrap();
    let pipe = latchkey_paths::pipe_name_for_sid(&sid).unwrap();
    assert!(log.contains("credential-manager"), "{log}");
    assert!(log.contains(&format!("socket={pipe} ")), "{log}");

    let cli = |args: &[&str], stdin: Option<&[u8]>| {
        let mut command = std::process::Command::new(cli_exe());
        command.args(args).env_remove("LATCHKEY_PIPE");
        run(command, stdin)
    };
    let version = stdout(&cli(&["version"], None));
    assert!(
        version.contains("latchkeyd 0.1.0 (protocol 1)"),
        "{version}"
    );
    let verbose = cli(&["--verbose", "version"], None);
    assert!(
        String::from_utf8_lossy(&verbose.stderr).contains(&pipe),
        "{}",
        shown(&verbose)
    );

    let set = cli(&["set", "defaults-svc"], Some(b"default-pipe-key\n"));
    assert!(set.status.success(), "{}", shown(&set));
    assert_eq!(
        stdout(&cli(&["get", "defaults-svc"], None)),
        "default-pipe-key\n"
    );
    let status = json(&cli(&["status", "--json"], None));
    assert_eq!(status["daemon"]["store"], "credential-manager");
    assert_eq!(status["daemon"]["persistent"], true);
    let list = json(&cli(&["list", "--json"], None));
    assert!(
        list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["service"] == "defaults-svc"),
        "{list}"
    );
    let doctor = cli(&["doctor"], None);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains(&format!("latchkeyd answers on {pipe}")),
        "{}",
        shown(&doctor)
    );
    assert!(said.contains("store: credential-manager"), "{said}");
    let clear = cli(&["clear", "defaults-svc"], None);
    assert!(clear.status.success(), "{}", shown(&clear));
    let gone = cli(&["get", "defaults-svc"], None);
    assert_eq!(gone.status.code(), Some(3), "not found: {}", shown(&gone));
}

#[test]
fn set_get_status_list_clear_over_the_pipe() {
    let env = TestEnv::new("basic");
    let _daemon = env.start_daemon(&[]);
    let set = env.cli(&["set", "github", "-a", "work"], Some(b"ghp-secret-1\n"));
    assert!(set.status.success(), "{}", shown(&set));
    assert!(String::from_utf8_lossy(&set.stderr).contains("stored api_key for github/work"));
    assert_eq!(
        stdout(&env.cli(&["get", "github", "-a", "work"], None)),
        "ghp-secret-1\n"
    );
    let status = json(&env.cli(&["status", "github", "--json"], None));
    assert_eq!(status["daemon"]["store"], "credential-manager");
    assert_eq!(status["entries"][0]["account"], "work");
    assert_eq!(status["entries"][0]["kind"], "api_key");
    let list = json(&env.cli(&["list", "--json"], None));
    assert_eq!(list["entries"].as_array().unwrap().len(), 1, "{list}");
    assert!(!list.to_string().contains("ghp-secret-1"), "{list}");
    let table = stdout(&env.cli(&["list"], None));
    assert!(
        table.contains("github") && table.contains("work"),
        "{table}"
    );

    let clear = env.cli(&["clear", "github", "-a", "work"], None);
    assert!(clear.status.success(), "{}", shown(&clear));
    assert!(String::from_utf8_lossy(&clear.stderr).contains("removed"));
    let missing = env.cli(&["get", "github", "-a", "work"], None);
    assert_eq!(missing.status.code(), Some(3), "{}", shown(&missing));
    let list = json(&env.cli(&["list", "--json"], None));
    assert_eq!(list["entries"], serde_json::json!([]));
}

#[test]
fn an_entry_survives_a_restart_of_the_daemon() {
    let env = TestEnv::new("restart");
    let daemon = env.start_daemon(&["--store", "credential-manager"]);
    let set = env.cli(&["set", "survivor"], Some(b"still-here\n"));
    assert!(set.status.success(), "{}", shown(&set));
    daemon.kill();
    // A new process with nothing in memory: the secret comes from Credential Manager.
    let daemon = env.start_daemon(&[]);
    assert!(
        daemon.log_text().contains("entries=1"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(stdout(&env.cli(&["get", "survivor"], None)), "still-here\n");
    // And it is really there, under its own target name.
    let stored = credentials("latchkey:survivor/");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let clear = env.cli(&["clear", "survivor"], None);
    assert!(clear.status.success(), "{}", shown(&clear));
    assert!(credentials("latchkey:survivor/").is_empty());
}

/// An OAuth bundle: its JSON, its access token and its scopes.
struct Bundle {
    input: Vec<u8>,
    token: String,
    scopes: Vec<String>,
}

/// A bundle whose JSON is exactly `size` bytes: a padded access token, a refresh and an ID
/// token of 512 and 1,024 bytes, two scopes.
fn padded_bundle(size: usize) -> Bundle {
    let scopes = vec!["read".to_owned(), "write".to_owned()];
    let with = |token: &str| {
        serde_json::to_vec(&serde_json::json!({
            "kind": "oauth2",
            "access_token": token,
            "refresh_token": "r".repeat(512),
            "id_token": "i".repeat(1024),
            "scopes": scopes,
        }))
        .unwrap()
    };
    let token = letters(size - with("").len());
    let input = with(&token);
    assert_eq!(input.len(), size);
    Bundle {
        input,
        token,
        scopes,
    }
}

/// The largest bundle a client can hand over: every secret at its 16 KiB limit and 60 scopes
/// of 250 bytes, about 64 KB of JSON.
fn largest_bundle() -> Bundle {
    let token = letters(16 * 1024);
    let scopes: Vec<String> = (0..60)
        .map(|i| format!("s{i:02}:{}", "x".repeat(246)))
        .collect();
    let input = serde_json::to_vec(&serde_json::json!({
        "kind": "oauth2",
        "access_token": token,
        "refresh_token": "r".repeat(16 * 1024),
        "id_token": "i".repeat(16 * 1024),
        "scopes": scopes,
    }))
    .unwrap();
    assert!(input.len() > 64_000, "{}", input.len());
    Bundle {
        input,
        token,
        scopes,
    }
}

fn letters(len: usize) -> String {
    (0..len)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect()
}

#[test]
fn six_and_sixty_four_kb_bundles_round_trip() {
    let env = TestEnv::new("bundles");
    let _daemon = env.start_daemon(&["--max-line", "262144"]);
    for (service, bundle) in [
        ("six-kib", padded_bundle(6 * 1024)),
        ("sixty-four-kb", largest_bundle()),
    ] {
        let set = env.cli(&["set", service, "--bundle"], Some(&bundle.input));
        assert!(set.status.success(), "{service}: {}", shown(&set));
        let got = stdout(&env.cli(&["get", service], None));
        assert_eq!(got.trim_end().len(), bundle.token.len(), "{service}");
        assert!(
            got.trim_end() == bundle.token,
            "{service}: the token came back changed"
        );
        let result = json(&env.cli(&["get", service, "--json"], None));
        assert_eq!(result["scopes"], serde_json::json!(bundle.scopes));
        // Wine does not enforce the blob limit, so look at what was stored: several
        // credentials, none over 2,560 bytes.
        let stored = credentials(&format!("latchkey:{service}/"));
        assert!(stored.len() > 2, "{service}: {stored:?}");
        assert!(stored.iter().all(|(_, size)| *size <= 2560), "{stored:?}");
    }
    for service in ["six-kib", "sixty-four-kb"] {
        let clear = env.cli(&["clear", service], None);
        assert!(clear.status.success(), "{}", shown(&clear));
        assert!(credentials(&format!("latchkey:{service}/")).is_empty());
    }
}

#[test]
fn a_second_daemon_on_the_same_pipe_refuses_to_start() {
    let env = TestEnv::new("second");
    let first = env.start_daemon(&[]);
    let (status, log) = Daemon::run_to_exit(env.daemon_command(&[]));
    assert!(!status.success(), "{log}");
    assert!(log.contains("already serving"), "{log}");
    assert!(log.contains(&env.pipe), "{log}");
    // The first one still serves.
    let version = env.cli(&["version"], None);
    assert!(version.status.success(), "{}", shown(&version));
    drop(first);
}

#[test]
fn a_pipe_nobody_serves_is_reported_as_not_running() {
    let env = TestEnv::new("nobody");
    let output = env.cli(&["get", "x"], None);
    assert_eq!(output.status.code(), Some(7), "{}", shown(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("not running") && said.contains(&env.pipe),
        "{said}"
    );
}

/// Opens the pipe like a client must: while every instance is busy, wait for one
/// (`WaitNamedPipeW`) and try again.
fn open(name: &str) -> NamedPipeClient {
    const ERROR_PIPE_BUSY: i32 = 231;
    let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
    loop {
        match ClientOptions::new().open(name) {
            Ok(pipe) => return pipe,
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => {
                // SAFETY: wide is NUL-terminated.
                let free = unsafe {
                    windows_sys::Win32::System::Pipes::WaitNamedPipeW(wide.as_ptr(), 10_000)
                };
                assert_ne!(free, 0, "no instance of {name} became free");
            }
            Err(e) => panic!("cannot open {name}: {e}"),
        }
    }
}

/// One line's answer, as JSON.
async fn answer<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Value {
    let mut line = String::new();
    let read = reader.read_line(&mut line).await.unwrap();
    assert!(read > 0, "the daemon closed the connection");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

const VERSION: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"ping\",\"method\":\"version\"}\n";
const LIST: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}\n";

#[tokio::test]
async fn hostile_input_on_the_pipe_gets_the_socket_s_errors_and_harms_no_one() {
    let env = TestEnv::new("hostile");
    let daemon = env.start_daemon(&["--max-line", "4096"]);
    tokio::time::timeout(TEST_TIMEOUT, async {
        let neighbour = open(&env.pipe);
        let mut neighbour = BufReader::new(neighbour);
        let pipe = open(&env.pipe);
        let mut pipe = BufReader::new(pipe);
        for (line, code, kind) in HOSTILE {
            pipe.get_mut().write_all(line).await.unwrap();
            pipe.get_mut().write_all(b"\n").await.unwrap();
            let response = answer(&mut pipe).await;
            assert_refused(line, *code, kind, &response);
            let shown = String::from_utf8_lossy(line);
            pipe.get_mut().write_all(VERSION).await.unwrap();
            assert_eq!(answer(&mut pipe).await["id"], "ping", "after {shown}");
        }
        // A line over the limit: refused with a null id, and the connection goes on.
        let mut huge =
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"".to_vec();
        huge.resize(64 * 1024, b'A');
        huge.extend_from_slice(b"\"}}\n");
        pipe.get_mut().write_all(&huge).await.unwrap();
        let response = answer(&mut pipe).await;
        assert_eq!(response["error"]["code"], -32600);
        assert_eq!(response["error"]["data"]["kind"], "too_large");
        assert_eq!(response["id"], Value::Null);
        pipe.get_mut().write_all(VERSION).await.unwrap();
        assert_eq!(answer(&mut pipe).await["id"], "ping");

        neighbour.get_mut().write_all(VERSION).await.unwrap();
        assert_eq!(answer(&mut neighbour).await["result"]["protocol"], 1);
        // A connection opened after the abuse: nothing was stored.
        let mut fresh = BufReader::new(open(&env.pipe));
        fresh.get_mut().write_all(LIST).await.unwrap();
        assert_eq!(
            answer(&mut fresh).await["result"]["entries"],
            serde_json::json!([])
        );
    })
    .await
    .expect("the hostile exchange finished in time");
    let log = daemon.log_text();
    assert!(!log.contains("HOSTILE-MARKER"), "{log}");
}

#[tokio::test]
async fn many_clients_at_once_each_get_an_instance() {
    let env = TestEnv::new("many");
    let _daemon = env.start_daemon(&[]);
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(BufReader::new(open(&env.pipe)));
        }
        for pipe in &mut clients {
            pipe.get_mut().write_all(VERSION).await.unwrap();
        }
        for pipe in &mut clients {
            assert_eq!(answer(pipe).await["id"], "ping");
        }
    })
    .await
    .expect("every client was answered in time");
}

/// `reg query` of the Run value, as Wine's reg.exe shows it: `None` when it is absent.
fn run_value() -> Option<String> {
    let mut command = std::process::Command::new("reg.exe");
    command.args([
        "query",
        r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
        "/v",
        "latchkey",
    ]);
    let output = run(command, None);
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn install_and_uninstall_write_and_remove_the_run_value() {
    let env = TestEnv::new("install");
    let daemon = daemon_exe();
    let daemon_arg = daemon.display().to_string();
    let dry = env.cli(&["install", "--dry-run", "--daemon", &daemon_arg], None);
    assert!(dry.status.success(), "{}", shown(&dry));
    assert_eq!(run_value(), None, "a dry run changes nothing");

    let install = env.cli(&["install", "--daemon", &daemon_arg], None);
    assert!(install.status.success(), "{}", shown(&install));
    let value = run_value().expect("the Run value exists after install");
    assert!(value.contains("REG_SZ"), "{value}");
    assert!(value.contains(&format!("\"{daemon_arg}\"")), "{value}");
    let doctor = env.cli(&["doctor"], None);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains("latchkeyd starts at logon"),
        "{}",
        shown(&doctor)
    );

    let uninstall = env.cli(&["uninstall"], None);
    assert!(uninstall.status.success(), "{}", shown(&uninstall));
    assert_eq!(run_value(), None, "the Run value is gone after uninstall");
    let again = env.cli(&["uninstall"], None);
    assert!(
        again.status.success(),
        "uninstalling twice is fine: {}",
        shown(&again)
    );
    let doctor = env.cli(&["doctor"], None);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains("does not start at logon"),
        "{}",
        shown(&doctor)
    );
}
