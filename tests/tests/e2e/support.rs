//! Helpers the OAuth end-to-end tests share: a socket connection that speaks the protocol,
//! a provider section for the test server, a daemon with a given config, and a whole browser
//! login played through the test server.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use latchkey_tests::oauth_server::TokenServer;
use latchkey_tests::{Daemon, TestEnv, START_TIMEOUT};
use serde_json::{json, Value};

/// One socket connection that sends a request line and reads its answer.
pub(crate) struct Rpc {
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Rpc {
    pub(crate) fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).expect("connect to latchkeyd");
        stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
        Self {
            reader: BufReader::new(stream),
            next_id: 1,
        }
    }

    /// Sends `line` as it is (a newline is added) and reads one response line.
    pub(crate) fn raw(&mut self, line: &str) -> Value {
        let stream = self.reader.get_mut();
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
        let mut answer = String::new();
        self.reader
            .read_line(&mut answer)
            .expect("read a response line");
        serde_json::from_str(&answer).unwrap_or_else(|_| panic!("not JSON: {answer:?}"))
    }

    /// Calls `method` with `params` (omitted when null) and returns the whole response.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            request["params"] = params;
        }
        let response = self.raw(&request.to_string());
        assert_eq!(response["id"], id, "{method}: {response}");
        response
    }

    /// Calls `method` and returns its result; panics with the response on an error.
    pub(crate) fn ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params);
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// Calls `method` expecting an error; returns the error object.
    pub(crate) fn err(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params);
        assert!(
            response.get("result").is_none(),
            "{method} should have failed: {response}"
        );
        response["error"].clone()
    }
}

/// `[providers.NAME]` for the test server, with the revocation endpoint or without.
pub(crate) fn provider_section(name: &str, server: &TokenServer, revocation: bool) -> String {
    let mut section = format!(
        "[providers.{name}]\nclient_id = \"latchkey-test\"\nauthorization_url = \"{}\"\ntoken_url = \"{}\"\n",
        server.authorize_url(),
        server.token_url()
    );
    if revocation {
        section.push_str(&format!(
            "revocation_url = \"{}\"\n",
            server.revocation_url()
        ));
    }
    section
}

/// Starts latchkeyd with `config` as its config.toml and `log` as RUST_LOG.
pub(crate) fn daemon_with_config(env: &TestEnv, config: &str, log: &str) -> Daemon {
    let path = env.root().join("config.toml");
    std::fs::write(&path, config).unwrap();
    env.start_daemon_with(&["--config", path.to_str().unwrap()], &[("RUST_LOG", log)])
}

#[cfg(target_os = "linux")]
/// Starts a browser login, plays the browser through the test server's consent and the
/// daemon's loopback callback, and returns `login_wait`'s entry.
pub(crate) fn browser_login(rpc: &mut Rpc, provider: &str, account: Option<&str>) -> Value {
    let mut params = json!({ "provider": provider });
    if let Some(account) = account {
        params["account"] = account.into();
    }
    let started = rpc.ok("login", params);
    let url = started["authorization_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization_url: {started}"));
    let hops = latchkey_tests::http::follow(url, 4);
    let last = hops.last().unwrap();
    assert_eq!(last.status, 200, "the login did not complete: {hops:?}");
    let done = rpc.ok("login_wait", json!({ "login_id": started["login_id"] }));
    done["entry"].clone()
}
