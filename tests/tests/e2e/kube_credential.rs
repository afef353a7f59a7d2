//! `latchkey kube-credential` with the built binary: the `ExecCredential` it prints (shape,
//! token, RFC 3339 expiry or none), its failures, and the real kubectl using it as an exec
//! plugin against an API server on 127.0.0.1 (TLS) that records the bearer token it is sent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use latchkey_tests::{bin, require_program, stderr, stdout, TestEnv, START_TIMEOUT};
use serde_json::Value;

fn credential(env: &TestEnv, socket: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["kube-credential"];
    all.extend_from_slice(args);
    let out = env.cli(socket, &all, "");
    let code = out.status.code().unwrap();
    if code != 0 {
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
        return (code, Value::Null);
    }
    let value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|_| panic!("not JSON: {}", stdout(&out)));
    (code, value)
}

#[test]
fn the_exec_credential_has_the_token_and_its_expiry() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let bundle =
        r#"{"kind":"oauth2","access_token":"kube-tok-1","expires_at":"2999-01-02T03:04:05.250Z"}"#;
    let out = env.cli(
        &daemon.socket,
        &["set", "cluster", "-a", "ops", "--bundle"],
        bundle,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, value) = credential(&env, &daemon.socket, &["cluster", "-a", "ops"]);
    assert_eq!(code, 0);
    assert_eq!(
        value,
        serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {
                "token": "kube-tok-1",
                "expirationTimestamp": "2999-01-02T03:04:05Z",
            },
        })
    );

    // An entry that does not expire has no expirationTimestamp at all.
    env.cli(&daemon.socket, &["set", "static"], "kube-static-key\n");
    let (_, value) = credential(&env, &daemon.socket, &["static"]);
    assert_eq!(value["status"]["token"], "kube-static-key");
    assert!(
        value["status"].get("expirationTimestamp").is_none(),
        "{value}"
    );

    // Missing entry or account: nothing on stdout, the usual codes.
    assert_eq!(credential(&env, &daemon.socket, &["absent"]).0, 3);
    assert_eq!(credential(&env, &daemon.socket, &["cluster"]).0, 3);
    let out = env.cli(&daemon.socket, &["kube-credential"], "");
    assert_eq!(out.status.code(), Some(2));
    drop(daemon);
    assert_eq!(credential(&env, &env.socket(), &["cluster"]).0, 7);
}

/// A Kubernetes API stand-in on 127.0.0.1 over TLS (kubectl sends no credentials over plain
/// HTTP): Debian's python3 answers every request with an APIVersions object and prints the
/// Authorization header each carried. The certificate is made for the test by openssl.
struct ApiServer {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    ca: PathBuf,
}

const SERVER: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print("PORT", s.getsockname()[1], flush=True)
body = b'{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}'
while True:
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        f = t.makefile("rb")
        auth = "-"
        while True:
            line = f.readline(65536)
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "authorization":
                auth = value.strip()
        t.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        t.close()
        print("AUTH", auth, flush=True)
    except Exception as e:
        print("ERROR", e, flush=True)
"#;

impl ApiServer {
    fn start(dir: &Path) -> Self {
        require_program("openssl", "openssl");
        let (ca, key) = (dir.join("api.pem"), dir.join("api.key"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", stderr(&made));
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", SERVER])
            .arg(&ca)
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(START_TIMEOUT)
            .expect("the API server's port");
        let port = first.strip_prefix("PORT ").unwrap().parse().unwrap();
        ApiServer {
            child,
            lines,
            port,
            ca,
        }
    }

    /// Every Authorization header seen so far (`-` for a request without one).
    fn seen(&self, at_least: usize) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.len() < at_least {
            let line = self
                .lines
                .recv_timeout(START_TIMEOUT)
                .expect("a request at the API server");
            seen.push(line);
        }
        seen.extend(self.lines.try_iter());
        seen
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kubectl_uses_it_as_an_exec_plugin() {
    require_program("kubectl", "kubectl");
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let bundle = r#"{"kind":"oauth2","access_token":"kube-tok-from-latchkey","expires_in":3600}"#;
    let out = env.cli(&daemon.socket, &["set", "cluster", "--bundle"], bundle);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = ApiServer::start(env.root());
    let kubeconfig = env.root().join("kubeconfig");
    let write_config = |service: &str| {
        std::fs::write(
            &kubeconfig,
            format!(
                r#"apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: latchkey
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {latchkey}
      args: [kube-credential, {service}]
      interactiveMode: Never
contexts:
- name: test
  context:
    cluster: test
    user: latchkey
current-context: test
"#,
                port = server.port,
                ca = server.ca.display(),
                latchkey = bin("latchkey").display()
            ),
        )
        .unwrap()
    };
    write_config("cluster");
    let kubectl = |args: &[&str]| {
        env.command(Path::new("kubectl"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = kubectl(&["get", "--raw", "/api"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("APIVersions"), "{}", stdout(&out));
    // Every request kubectl made carried the token (some kubectl builds ask /version first).
    let seen = server.seen(1);
    assert!(
        seen.iter()
            .all(|l| l == "AUTH Bearer kube-tok-from-latchkey"),
        "{seen:?}"
    );

    // A missing entry: kubectl fails, shows latchkey's reason, and sends no token.
    write_config("absent");
    let out = kubectl(&["get", "--raw", "/api"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no entry"), "{}", stderr(&out));
    let seen = server.seen(0);
    assert!(
        seen.iter()
            .all(|l| l != "AUTH Bearer kube-tok-from-latchkey"),
        "{seen:?}"
    );
    drop(daemon);
}
