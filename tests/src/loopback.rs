//! The HTTP/1.1 plumbing shared by the tests' fake servers (the OAuth server, the git server):
//! a runtime of their own with one worker, a random port on 127.0.0.1, an accept loop that
//! serves each connection with hyper until the server is dropped, and each request's body read
//! up to a limit before the server's handler sees it.
//!
//! The handler decides everything else: what to answer, and whether to close the connection
//! without an answer (an `Err`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use tokio::sync::watch;

/// A reply with its whole body.
pub type Reply = Response<Full<Bytes>>;

/// A request body larger than the server's limit: what the handler gets instead of it.
#[derive(Clone, Copy, Debug)]
pub struct TooLarge;

/// The signal that the server is being dropped, for a handler that waits (a hung request, an
/// answer held back) to stop waiting.
#[derive(Clone)]
pub struct Stopped(watch::Receiver<bool>);

impl Stopped {
    /// Returns once the server is dropped.
    pub async fn wait(&self) {
        let mut stopped = self.0.clone();
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

/// A running server. Dropping it stops the accept loop and the runtime, with any request
/// still in progress.
pub struct LoopbackServer {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl LoopbackServer {
    /// Binds a random loopback port and serves it: `setup` is given the address and the stop
    /// signal and returns the handler, which is called with each request's head and its body
    /// (at most `max_body` bytes, else [`TooLarge`]).
    pub fn start<H, F>(max_body: usize, setup: impl FnOnce(SocketAddr, Stopped) -> H) -> Self
    where
        H: Fn(Parts, Result<Bytes, TooLarge>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Reply, io::Error>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = watch::channel(false).0;
        let handler = Arc::new(setup(address, Stopped(shutdown.subscribe())));
        runtime.spawn(accept_loop(
            listener,
            shutdown.subscribe(),
            max_body,
            handler,
        ));
        Self {
            address,
            shutdown,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which is not allowed inside another runtime.
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                drop(runtime);
            }
        }
    }
}

async fn accept_loop<H, F>(
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
    max_body: usize,
    handler: Arc<H>,
) where
    H: Fn(Parts, Result<Bytes, TooLarge>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Reply, io::Error>> + Send + 'static,
{
    loop {
        let stream = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                async move {
                    let (parts, body) = request.into_parts();
                    let body = match Limited::new(body, max_body).collect().await {
                        Ok(body) => Ok(body.to_bytes()),
                        Err(_) => Err(TooLarge),
                    };
                    handler(parts, body).await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
