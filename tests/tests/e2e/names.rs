//! Names are shown safely: the daemon refuses names holding bidirectional controls,
//! zero-width characters or line separators, and the CLI escapes whatever a daemon sends
//! (including a rogue one on a socket of its own) before it reaches a terminal.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use latchkey_tests::{stderr, stdout, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};

use super::support::Rpc;

/// One name per refused class, with a visible part so a test failure is readable.
const HIDDEN_NAMES: &[&str] = &[
    "evil\u{202E}buh", // right-to-left override
    "evil\u{2067}x\u{2069}",
    "mark\u{200F}",
    "arabic\u{061C}mark",
    "git\u{200B}hub", // zero-width space
    "join\u{200D}er",
    "word\u{2060}joiner",
    "\u{FEFF}bom",
    "line\u{2028}sep",
    "para\u{2029}sep",
];

fn kind(response: &Value) -> &str {
    response["error"]["data"]["kind"]
        .as_str()
        .unwrap_or("<no error>")
}

#[test]
fn hidden_characters_in_names_are_refused_everywhere_a_name_is_parsed() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let mut rpc = Rpc::connect(&daemon.socket);
    let bundle = json!({"kind": "api_key", "key": "k"});
    for name in HIDDEN_NAMES {
        for params in [
            json!({"service": name, "bundle": bundle}),
            json!({"service": "plain", "account": name, "bundle": bundle}),
        ] {
            let response = rpc.call("set", params.clone());
            assert_eq!(kind(&response), "invalid_request", "{params}: {response}");
        }
        for (method, params) in [
            ("get", json!({"service": name})),
            ("get", json!({"service": "plain", "account": name})),
            ("clear", json!({"service": name})),
            ("logout", json!({"service": name})),
            ("status", json!({"service": name})),
            ("status", json!({"account": name})),
            ("login", json!({"provider": "github", "account": name})),
        ] {
            let response = rpc.call(method, params.clone());
            assert_eq!(
                kind(&response),
                "invalid_request",
                "{method} {params}: {response}"
            );
        }
        let out = env.cli(&daemon.socket, &["set", name], "k\n");
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("name contains"), "{}", stderr(&out));
        let out = env.cli(&daemon.socket, &["set", "plain", "-a", name], "k\n");
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stderr(&out));
    }
    let list = rpc.ok("list", Value::Null);
    assert_eq!(list["entries"], json!([]), "something was stored: {list}");
    // Ordinary unicode is still welcome.
    let response = rpc.ok("set", json!({"service": "сервис-😀", "bundle": bundle}));
    assert_eq!(response["entry"]["service"], "сервис-😀");
}

/// Text a rogue daemon sends: a screen clear, a window title, colour, bidi reordering, a
/// zero-width space and a line separator.
const NASTY: &str =
    "boom\u{1b}[2J\u{1b}]0;title\u{7}\u{1b}[31mred\u{202E}cod.exe\u{2066}\u{200B}\u{2028}\u{85}end";

/// A listener that answers every request line with `answer(request)`, on a socket of its own.
struct Rogue {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Rogue {
    fn start(answer: fn(&Value) -> Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("rogue.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || serve(stream, answer));
            }
        });
        Self {
            socket,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

fn serve(stream: UnixStream, answer: fn(&Value) -> Value) {
    stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let request: Value = serde_json::from_str(&line).unwrap();
        let mut response = answer(&request);
        response["jsonrpc"] = json!("2.0");
        response["id"] = request["id"].clone();
        let text = format!("{response}\n");
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn nasty_error() -> Value {
    json!({"error": {"code": -32000, "message": NASTY, "data": {
        "kind": "authentication_required",
        "hint": NASTY,
        "login_url": format!("http://127.0.0.1:1/{NASTY}"),
        "missing_scopes": [NASTY],
    }}})
}

fn version() -> Value {
    json!({"result": {"version": format!("9.9{NASTY}"), "protocol": 1}})
}

fn entry() -> Value {
    json!({"service": NASTY, "account": NASTY, "kind": "oauth2", "scopes": [NASTY],
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
        "state": "valid"})
}

fn rogue_answer(request: &Value) -> Value {
    match request["method"].as_str().unwrap_or("") {
        "version" => version(),
        "list" => json!({"result": {"entries": [entry()]}}),
        "providers" => json!({"result": {"providers": [{
            "name": NASTY, "builtin": false, "configured": true, "usable": false,
            "flows": [NASTY], "problem": NASTY,
        }]}}),
        "login" => json!({"result": {
            "login_id": "l1",
            "verification_uri": format!("https://example.test/{NASTY}"),
            "verification_uri_complete": format!("https://example.test/?code={NASTY}"),
            "user_code": NASTY,
            "expires_at": "2030-01-01T00:00:00Z",
        }}),
        _ => nasty_error(),
    }
}

/// Whether a terminal would act on `c` or hide it (listed here again, independently of the
/// code under test).
fn acts_or_hides(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        || matches!(
            c,
            '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{2028}' | '\u{2029}'
        )
}

/// Fails if `text` holds a raw escape, control (other than newline) or hidden character, or
/// lacks the escaped forms of the rogue's text.
fn assert_escaped(what: &str, text: &str) {
    let unsafe_chars: Vec<char> = text.chars().filter(|&c| acts_or_hides(c)).collect();
    assert!(
        unsafe_chars.is_empty(),
        "{what}: raw characters {unsafe_chars:?} reached the terminal: {text:?}"
    );
    assert!(
        !text.as_bytes().contains(&0x1b),
        "{what}: raw ESC: {text:?}"
    );
    for escaped in [
        "\\u{1b}[2J",
        "\\u{1b}]0;title\\u{7}",
        "\\u{202e}",
        "\\u{200b}",
    ] {
        assert!(
            text.contains(escaped),
            "{what}: {escaped} missing in {text:?}"
        );
    }
}

fn run(env: &TestEnv, socket: &Path, args: &[&str]) -> std::process::Output {
    let out = env.cli(socket, args, "");
    assert!(
        out.status.code().is_some(),
        "{args:?} died by a signal: {}",
        stderr(&out)
    );
    out
}

#[test]
fn a_rogue_daemons_text_is_escaped_before_it_reaches_the_terminal() {
    let env = TestEnv::bare();
    let rogue = Rogue::start(rogue_answer);
    // Errors: message, hint, login URL and missing scopes.
    for args in [
        &["get", "svc"][..],
        &["clear", "svc"],
        &["status"],
        &["logout", "svc"],
    ] {
        let out = run(&env, &rogue.socket, args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert_escaped(&format!("{args:?} stderr"), &stderr(&out));
    }
    // Results: the version, tables, JSON.
    for (args, stream) in [
        (&["version"][..], "stdout"),
        (&["list"], "stdout"),
        (&["list", "--json"], "stdout"),
        (&["provider", "list"], "stdout"),
        (&["provider", "list", "--json"], "stdout"),
    ] {
        let out = run(&env, &rogue.socket, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = if stream == "stdout" {
            stdout(&out)
        } else {
            stderr(&out)
        };
        if args.contains(&"--json") {
            // JSON keeps the text exactly, as \u escapes.
            let value: Value = serde_json::from_str(&text).unwrap();
            let found = value.to_string();
            assert!(found.contains("cod.exe"), "{found}");
            let raw: Vec<char> = text.chars().filter(|&c| acts_or_hides(c)).collect();
            assert!(raw.is_empty(), "raw {raw:?} in {text:?}");
            assert!(text.contains("\\u202e"), "{text}");
        } else {
            assert_escaped(&format!("{args:?}"), &text);
        }
    }
}

#[test]
fn a_rogue_device_login_is_escaped() {
    let env = TestEnv::bare();
    let rogue = Rogue::start(rogue_answer);
    let out = run(
        &env,
        &rogue.socket,
        &["login", "prov", "--device", "--no-browser"],
    );
    // login_wait answers with the nasty error.
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("enter the code"), "{err}");
    assert_escaped("login stderr", &err);
    let printed = stdout(&out);
    assert_escaped("login stdout", &printed);
}
