//! The proxy's overhead (not a test): the same small GET sent to a local HTTPS upstream
//! directly (TLS, the key in `Authorization`) and through `latchkey proxy` (plain HTTP on
//! loopback, a grant in `Authorization`; the proxy asks latchkeyd for the key under the grant
//! and forwards over TLS). Each path is one kept-alive connection; requests go one at a time,
//! in rounds that alternate the two paths. Prints p50 and p99 of each and the p50 added.
//!
//! Run: `cargo build --release --bins && cargo bench -p latchkey-tests --bench proxy` (or, in
//! a debug build, `cargo build --bins && cargo test -p latchkey-tests --bench proxy`).
//! `LATCHKEY_BENCH_REQUESTS` sets the requests per path (default 2000).

#[cfg(target_os = "linux")]
mod linux {
    use std::time::{Duration, Instant};

    use http_body_util::{BodyExt, Empty, Full};
    use hyper::body::Bytes;
    use hyper::client::conn::http1::SendRequest;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use latchkey_tests::proxy::{client_config, make_certs, ProxyProcess, TlsServer};
    use latchkey_tests::{stderr, stdout, TestEnv};

    const KEY: &str = "sk-bench-key";

    async fn answer(
        request: Request<hyper::body::Incoming>,
    ) -> Response<latchkey_tests::proxy::UpBody> {
        let ok = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {KEY}").as_bytes());
        let mut r = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")).boxed());
        if !ok {
            *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
        }
        r
    }

    type Sender = SendRequest<Empty<Bytes>>;

    async fn handshake<S>(io: S) -> Sender
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender
    }

    async fn once(sender: &mut Sender, host: &str, path: &str, auth: &str) -> Duration {
        let request = Request::get(path)
            .header("host", host)
            .header("authorization", auth)
            .body(Empty::new())
            .unwrap();
        let started = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        started.elapsed()
    }

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    fn micros(d: Duration) -> f64 {
        d.as_secs_f64() * 1e6
    }

    pub fn main() {
        let requests: usize = std::env::var("LATCHKEY_BENCH_REQUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        let env = TestEnv::bare();
        let certs = env.root().join("certs");
        std::fs::create_dir(&certs).unwrap();
        make_certs(&certs);
        let upstream = TlsServer::start(&certs, answer);
        let config = env.root().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[proxy.routes.bench]\nupstream = \"https://{}\"\nservice = \"bench\"\nallow_private = true\nca_file = \"{}\"\n",
                upstream.address,
                certs.join("ca.pem").display()
            ),
        )
        .unwrap();
        let daemon = env.start_daemon(&["--config", config.to_str().unwrap()]);
        let out = env.cli(&daemon.socket, &["set", "bench"], KEY);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = env.cli(
            &daemon.socket,
            &[
                "grant", "create", "-s", "bench", "--ops", "proxy", "--ttl", "1h",
            ],
            "",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let grant = stdout(&out).trim().to_owned();
        let proxy = ProxyProcess::start(&env, &daemon, &config);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (direct, proxied) = runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(upstream.address)
                .await
                .unwrap();
            tcp.set_nodelay(true).unwrap();
            let tls = tokio_rustls::TlsConnector::from(client_config(&certs))
                .connect("127.0.0.1".try_into().unwrap(), tcp)
                .await
                .unwrap();
            let mut direct_conn = handshake(tls).await;
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
                .await
                .unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut proxy_conn = handshake(tcp).await;
            let direct_host = upstream.address.to_string();
            let proxy_host = format!("127.0.0.1:{}", proxy.port);
            let key_auth = format!("Bearer {KEY}");
            let grant_auth = format!("Bearer {grant}");
            // Warm-up: the proxy's daemon connection and its TLS connection to the upstream.
            for _ in 0..50 {
                once(&mut direct_conn, &direct_host, "/v1/x", &key_auth).await;
                once(&mut proxy_conn, &proxy_host, "/bench/v1/x", &grant_auth).await;
            }
            let mut direct = Vec::with_capacity(requests);
            let mut proxied = Vec::with_capacity(requests);
            let round = 100;
            while direct.len() < requests {
                for _ in 0..round {
                    direct.push(once(&mut direct_conn, &direct_host, "/v1/x", &key_auth).await);
                }
                for _ in 0..round {
                    proxied
                        .push(once(&mut proxy_conn, &proxy_host, "/bench/v1/x", &grant_auth).await);
                }
            }
            (direct, proxied)
        });
        let mut direct = direct;
        let mut proxied = proxied;
        direct.sort();
        proxied.sort();
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        let (p50, p99) = (percentile(&proxied, 0.5), percentile(&proxied, 0.99));
        println!(
            "proxy overhead, {} requests per path, one at a time:",
            direct.len()
        );
        println!(
            "  direct HTTPS   p50 {:8.1} us   p99 {:8.1} us",
            micros(d50),
            micros(d99)
        );
        println!(
            "  through proxy  p50 {:8.1} us   p99 {:8.1} us",
            micros(p50),
            micros(p99)
        );
        println!(
            "  added at p50   {:8.1} us (goal: at most 1000 us)",
            micros(p50) - micros(d50)
        );
        drop(proxy);
        drop(daemon);
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
}
