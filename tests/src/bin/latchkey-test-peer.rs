//! A stand-in for a hostile local user in the end-to-end tests, run as a throwaway second
//! user. It reports what it sees on stdout, one line per event, so a test can wait on it.
//!
//! - `serve PATH`: listens on PATH (mode 0777) posing as latchkeyd. For each connection, in
//!   order, it prints `received N` with the number of bytes the client sent before closing
//!   (or `ping` for a connection that sent only `ping`), and answers each JSON request with a
//!   plausible result, so a trusting client would go on to send its secrets.
//! - `connect PATH LINE`: sends LINE to the socket and prints the answer, or `closed`.
//! - `bus ADDRESS` (Linux): owns `dev.latchkey.Latchkey1` on that bus and prints `call MEMBER`
//!   for every method call it receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", path] => serve(path),
        ["connect", path, line] => connect(path, line),
        #[cfg(target_os = "linux")]
        ["bus", address] => bus(address),
        _ => {
            eprintln!("usage: latchkey-test-peer serve PATH | connect PATH LINE | bus ADDRESS");
            std::process::exit(2);
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn serve(path: &str) {
    let listener = UnixListener::bind(path).expect("bind");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    say("ready");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let received = answer(stream);
        say(&received);
    }
}

/// Answers request lines until the client hangs up; returns what to report.
fn answer(stream: UnixStream) -> String {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut total = 0;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return format!("received {total}"),
            Ok(n) => total += n,
        }
        if line.trim() == "ping" {
            return "ping".to_owned();
        }
        let id = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("id").cloned())
            .unwrap_or(serde_json::Value::Null);
        let result = serde_json::json!({
            "version": "0.1.0", "protocol": 1,
            "secret": "planted-by-another-user", "kind": "api_key", "scopes": [],
            "entry": {"service": "x", "account": "default", "kind": "api_key", "scopes": [],
                      "has_refresh_token": false, "state": "valid",
                      "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
        });
        let reply = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
        if writeln!(writer, "{reply}").is_err() {
            return format!("received {total}");
        }
    }
}

fn connect(path: &str, line: &str) {
    let mut stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(err) => {
            say(&format!("cannot connect: {err}"));
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = writeln!(stream, "{line}");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if answer.is_empty() {
        say("closed");
    } else {
        say(answer.trim_end());
    }
}

#[cfg(target_os = "linux")]
fn bus(address: &str) {
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let connection = zbus::connection::Builder::address(address)
            .expect("address")
            .name("dev.latchkey.Latchkey1")
            .expect("name")
            .build()
            .await
            .expect("connect to the bus");
        let mut messages = zbus::MessageStream::from(&connection);
        say("ready");
        while let Some(Ok(message)) = messages.next().await {
            let header = message.header();
            if header.message_type() != zbus::message::Type::MethodCall {
                continue;
            }
            let member = header.member().map(|m| m.to_string()).unwrap_or_default();
            say(&format!("call {member}"));
            let _ = connection
                .reply_error(
                    &header,
                    "org.freedesktop.DBus.Error.Failed",
                    &"planted by another user",
                )
                .await;
        }
    });
}
