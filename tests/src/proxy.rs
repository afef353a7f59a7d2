//! The pieces of the proxy's tests and benchmark: a test CA and server certificate made with
//! `openssl`, an HTTPS server on 127.0.0.1 serving a handler of the caller's, a TLS client
//! trusting that CA, and a running `latchkey proxy`.

use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{stderr, Daemon, Log, TestEnv, START_TIMEOUT};

/// What the HTTPS server answers with.
pub type UpBody = BoxBody<Bytes, Infallible>;

/// A test CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=latchkey test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// An HTTPS server on 127.0.0.1 with the certificate [`make_certs`] made in `dir`, serving
/// `handler` on a runtime of its own (stopped when this is dropped).
pub struct TlsServer {
    /// `127.0.0.1:PORT`.
    pub address: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl TlsServer {
    /// Starts serving.
    pub fn start<H, F>(dir: &Path, handler: H) -> Self
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<UpBody>> + Send + 'static,
    {
        let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let answer = handler(request);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            address,
            _runtime: runtime,
        }
    }
}

/// A TLS client configuration that trusts only the CA [`make_certs`] made in `dir`.
pub fn client_config(dir: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A running `latchkey proxy`, killed when dropped.
pub struct ProxyProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    log: Arc<Log>,
}

impl ProxyProcess {
    /// Starts `latchkey proxy --port 0 --config CONFIG` against `daemon`, and waits until it
    /// says where it listens.
    pub fn start(env: &TestEnv, daemon: &Daemon, config: &Path) -> Self {
        let mut cmd = env.command(&crate::bin("latchkey"));
        cmd.args(["proxy", "--port", "0", "--config"])
            .arg(config)
            .env("LATCHKEY_SOCKET", &daemon.socket)
            .env("RUST_LOG", "latchkey=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start latchkey proxy");
        let log = Arc::new(Log::default());
        let err = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.push(&line);
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}; log: {}", log.snapshot()));
        Self { child, port, log }
    }

    /// `http://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.log.snapshot()
    }

    /// Waits until its stderr contains `needle` (the test reads it on another thread, so a
    /// line the proxy wrote before answering may not be there yet when the answer is).
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.log
            .wait_for(needle, START_TIMEOUT)
            .unwrap_or_else(|text| panic!("the proxy never logged {needle:?}:\n{text}"))
    }

    /// Sends `request` as raw bytes (`PORT` replaced by the port) and returns the status, or
    /// `None` if the connection ended with no answer read.
    pub fn raw(&self, request: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let request = request.replace("PORT", &self.port.to_string());
        // The proxy may answer (and close) before taking a huge head whole.
        let _ = stream.write_all(request.as_bytes());
        let mut answer = Vec::new();
        // What was read before an error (a reset) stays in `answer`.
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        answer.split(' ').nth(1).and_then(|s| s.parse().ok())
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
