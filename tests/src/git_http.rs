//! A git smart-HTTP server on 127.0.0.1 for the tests: every request must carry HTTP Basic
//! credentials the test accepted, and is then served by the real `git http-backend` as a CGI
//! program over the bare repositories under one folder.
//!
//! Without credentials it answers 401 with `WWW-Authenticate: Basic realm="latchkey-test"`
//! (what makes git ask its credential helpers); with wrong ones, 401 again (what makes git
//! call `erase`). Each attempt's username and password are recorded, so a test can check
//! which secret git was given. Pushes are allowed: `REMOTE_USER` is set, which enables
//! `receive-pack` in `http-backend`.
//!
//! Once authorised, `GET /v2/` answers as a container registry's version check does, so
//! `docker login` (which logs in from the client when no docker daemon runs) can log in here
//! too, with the same Basic challenge.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use crate::loopback::{LoopbackServer, Reply, TooLarge};

/// The realm in the server's challenge.
pub const REALM: &str = "latchkey-test";

/// The largest request body read (a push of a few small commits is far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request's HTTP Basic credentials, as the server saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
    /// Whether the server accepted them.
    pub accepted: bool,
}

#[derive(Default)]
struct State {
    /// Username and password pairs that may in.
    accepted: Vec<(String, String)>,
    /// Every request with credentials, in order.
    attempts: Vec<Attempt>,
    /// Requests without credentials.
    anonymous: usize,
}

struct Shared {
    /// The folder of the bare repositories (`GIT_PROJECT_ROOT`).
    root: PathBuf,
    state: Mutex<State>,
}

/// The running server. Dropping it stops it.
pub struct GitServer {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl GitServer {
    /// Serves the bare repositories under `root` on a random loopback port.
    pub fn start(root: &Path) -> Self {
        crate::require("git", "git");
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            state: Mutex::new(State::default()),
        });
        let served = Arc::clone(&shared);
        let server = LoopbackServer::start(MAX_BODY, move |_, _| {
            move |parts, body| serve(Arc::clone(&served), parts, body)
        });
        Self { shared, server }
    }

    /// `127.0.0.1:PORT`, what git sends as `host`.
    pub fn host(&self) -> String {
        self.server.address().to_string()
    }

    /// The URL of the repository `name` (a folder under the root, e.g. `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.server.address())
    }

    /// Lets `username` in with `password` from now on.
    pub fn accept(&self, username: &str, password: &str) {
        self.shared
            .state
            .lock()
            .unwrap()
            .accepted
            .push((username.to_owned(), password.to_owned()));
    }

    /// Every request with credentials so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.state.lock().unwrap().attempts.clone()
    }

    /// How many requests came without credentials.
    pub fn anonymous_requests(&self) -> usize {
        self.shared.state.lock().unwrap().anonymous
    }
}

fn plain(status: StatusCode, text: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    reply
}

fn challenge() -> Reply {
    let mut reply = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")).unwrap(),
    );
    reply
}

/// The username and password of a `Basic` Authorization header.
fn basic_credentials(headers: &hyper::HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Answers one request; never closes the connection without an answer.
async fn serve(
    shared: Arc<Shared>,
    parts: Parts,
    body: Result<Bytes, TooLarge>,
) -> Result<Reply, std::io::Error> {
    let Ok(body) = body else {
        return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "too large\n"));
    };
    let Some((username, password)) = basic_credentials(&parts.headers) else {
        shared.state.lock().unwrap().anonymous += 1;
        return Ok(challenge());
    };
    let accepted = {
        let mut state = shared.state.lock().unwrap();
        let accepted = state
            .accepted
            .iter()
            .any(|(u, p)| *u == username && *p == password);
        state.attempts.push(Attempt {
            username: username.clone(),
            password,
            accepted,
        });
        accepted
    };
    if !accepted {
        return Ok(challenge());
    }
    if parts.uri.path() == "/v2/" {
        let mut reply = plain(StatusCode::OK, "{}");
        let headers = reply.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "docker-distribution-api-version",
            HeaderValue::from_static("registry/2.0"),
        );
        return Ok(reply);
    }
    let root = shared.root.clone();
    let reply = tokio::task::spawn_blocking(move || http_backend(&root, &parts, &username, &body))
        .await
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "backend panicked\n"));
    Ok(reply)
}

/// Runs `git http-backend` for one request (CGI/1.1: the request in environment variables
/// and the body on stdin; headers, a blank line and the body on stdout).
fn http_backend(root: &Path, parts: &Parts, user: &str, body: &[u8]) -> Reply {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", user)
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string());
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let protocol = header("git-protocol");
    if !protocol.is_empty() {
        command.env("GIT_PROTOCOL", protocol);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run git http-backend");
    // Written from another thread: the backend may answer before it has read everything.
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output().expect("wait for git http-backend");
    let _ = writer.join();
    cgi_reply(&output.stdout).unwrap_or_else(|| {
        eprintln!(
            "git http-backend gave no CGI answer: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        plain(StatusCode::INTERNAL_SERVER_ERROR, "no CGI answer\n")
    })
}

/// A CGI program's output as an HTTP reply: `Status:` sets the status, other headers pass.
fn cgi_reply(output: &[u8]) -> Option<Reply> {
    let (head, body) = [&b"\r\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|separator| {
            output
                .windows(separator.len())
                .position(|w| w == *separator)
                .map(|at| (at, separator.len()))
        })
        .min_by_key(|(at, _)| *at)
        .map(|(at, len)| (&output[..at], &output[at + len..]))?;
    let head = std::str::from_utf8(head).ok()?;
    let mut reply = Response::new(Full::new(Bytes::copy_from_slice(body)));
    for line in head.lines() {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next()?.parse().ok()?;
            *reply.status_mut() = StatusCode::from_u16(code).ok()?;
        } else {
            reply.headers_mut().append(
                HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            );
        }
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_a_reply() {
        let reply = cgi_reply(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot here")
            .unwrap();
        assert_eq!(reply.status(), StatusCode::NOT_FOUND);
        assert_eq!(reply.headers()["content-type"], "text/plain");
        let reply = cgi_reply(b"Content-Type: application/x-git\n\nPACK").unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        assert!(cgi_reply(b"no headers at all").is_none());
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(basic_credentials(&headers), None);
        // alice:pa:ss
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cGE6c3M="),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".to_owned(), "pa:ss".to_owned()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&headers), None);
    }
}
