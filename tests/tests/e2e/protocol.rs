//! The socket protocol byte for byte: the pinned wire format, every kind of hostile input with
//! its documented error, and proof that the daemon keeps serving after each.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use latchkey_tests::{raw_exchange, TestEnv, START_TIMEOUT};
use serde_json::Value;

fn connect(socket: &std::path::Path) -> (UnixStream, BufReader<UnixStream>) {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn read_json(reader: &mut BufReader<UnixStream>) -> Value {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line:?}"))
}

const VERSION: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"ping\",\"method\":\"version\"}\n";

#[test]
fn wire_format_is_pinned() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    stream
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n")
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"version\":\"{}\",\"protocol\":1}}}}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    stream
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"get\",\"params\":{\"service\":\"none\"}}\n")
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32000,\"message\":\"no entry for that service and account\",\"data\":{\"kind\":\"not_found\"}}}\n"
    );
    stream
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"set\",\"params\":{\"service\":\"s\",\"bundle\":{\"kind\":\"api_key\",\"key\":\"k\"}}}\n")
        .unwrap();
    let set = read_json(&mut reader);
    let entry = &set["result"]["entry"];
    assert_eq!(entry["service"], "s");
    assert_eq!(entry["account"], "default");
    assert_eq!(entry["kind"], "api_key");
    assert_eq!(entry["state"], "valid");
    stream
        .write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"get\",\"params\":{\"service\":\"s\"}}\n",
        )
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"secret\":\"k\",\"kind\":\"api_key\",\"scopes\":[]}}\n"
    );
}

include!("hostile_cases.rs");

#[test]
fn hostile_requests_get_documented_errors_and_harm_no_one() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    // A neighbour connection opened before the abuse, used after it.
    let (mut neighbour, mut neighbour_reader) = connect(&daemon.socket);
    let (mut stream, mut reader) = connect(&daemon.socket);
    for (line, code, kind) in HOSTILE {
        stream.write_all(line).unwrap();
        stream.write_all(b"\n").unwrap();
        let response = read_json(&mut reader);
        assert_refused(line, *code, kind, &response);
        let shown = String::from_utf8_lossy(line);
        // The same connection still works.
        stream.write_all(VERSION).unwrap();
        assert_eq!(read_json(&mut reader)["id"], "ping", "after {shown}");
    }
    neighbour.write_all(VERSION).unwrap();
    assert_eq!(read_json(&mut neighbour_reader)["result"]["protocol"], 1);
    // Nothing was stored by any of them.
    let list = raw_exchange(
        &daemon.socket,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}\n",
        1,
    );
    assert_eq!(list[0]["result"]["entries"], serde_json::json!([]));
    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(!logs.contains("HOSTILE-MARKER"), "{logs}");
}

#[test]
fn oversized_line_is_refused_and_the_connection_recovers() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let (mut stream, mut reader) = connect(&daemon.socket);
    let mut huge = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"big\",\"bundle\":{\"kind\":\"api_key\",\"key\":\"".to_vec();
    huge.resize(2 * 1024 * 1024, b'A');
    huge.extend_from_slice(b"\"}}}\n");
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&huge))
    };
    let response = read_json(&mut reader);
    assert_eq!(response["error"]["code"], -32600);
    assert_eq!(response["error"]["data"]["kind"], "too_large");
    assert_eq!(response["id"], Value::Null);
    writer.join().unwrap().unwrap();
    stream.write_all(VERSION).unwrap();
    assert_eq!(read_json(&mut reader)["id"], "ping");
    let list = raw_exchange(
        &daemon.socket,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}\n",
        1,
    );
    assert_eq!(list[0]["result"]["entries"], serde_json::json!([]));
}

#[test]
fn line_limit_is_configurable() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--max-line", "256"]);
    let mut request =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"".to_vec();
    request.resize(300, b'x');
    request.extend_from_slice(b"\"}}\n");
    let responses = raw_exchange(&daemon.socket, &request, 1);
    assert_eq!(responses[0]["error"]["data"]["kind"], "too_large");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let mut batch = Vec::new();
    batch.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"p\",\"bundle\":{\"kind\":\"api_key\",\"key\":\"v1\"}}}\n");
    batch.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"get\",\"params\":{\"service\":\"p\"}}\n",
    );
    batch.extend_from_slice(b"{nonsense}\n");
    batch.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"four\",\"method\":\"clear\",\"params\":{\"service\":\"p\"}}\n");
    batch.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"get\",\"params\":{\"service\":\"p\"}}\r\n",
    );
    let responses = raw_exchange(&daemon.socket, &batch, 5);
    let ids: Vec<_> = responses.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(
        ids,
        [
            serde_json::json!(1),
            2.into(),
            Value::Null,
            "four".into(),
            5.into()
        ]
    );
    assert_eq!(responses[1]["result"]["secret"], "v1");
    assert_eq!(responses[3]["result"]["removed"], true);
    assert_eq!(responses[4]["error"]["data"]["kind"], "not_found");
}

#[test]
fn idle_and_truncated_connections_are_closed_without_harm() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--idle-timeout", "1"]);
    // Half a request, then silence: the daemon closes the connection when it idles out.
    let mut idle = UnixStream::connect(&daemon.socket).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    idle.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,").unwrap();
    let mut rest = Vec::new();
    let read = idle.read_to_end(&mut rest).unwrap();
    assert_eq!(read, 0, "the idle connection got data: {rest:?}");
    // Half a request, then hang up.
    let mut truncated = UnixStream::connect(&daemon.socket).unwrap();
    truncated
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"meth")
        .unwrap();
    drop(truncated);
    let responses = raw_exchange(&daemon.socket, VERSION, 1);
    assert_eq!(responses[0]["id"], "ping");
}
