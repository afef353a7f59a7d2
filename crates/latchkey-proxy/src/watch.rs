//! Revocation while a response streams: the body of an answer is passed on chunk by chunk, and
//! before a chunk goes to the agent the grant is checked with the daemon again if the last
//! check is at least the `[proxy] recheck_ms` old (0: before every chunk). A refused grant
//! cuts the stream: the body ends in an error, so hyper aborts the response (a chunked body
//! without its last chunk, or fewer bytes than its `Content-Length`) and the agent sees the
//! failure rather than a complete answer.
//!
//! The check is the same `get` every request makes (the pooled daemon connection, the grant
//! as the request's own): a refusal is a revoked, expired or no longer fitting grant. A
//! daemon that cannot be reached cuts too: the grant cannot be confirmed. Any other answer
//! (the entry failed to refresh, say) says the grant was accepted, and the stream goes on.
//! An upstream that sends nothing is not checked until it sends: nothing reaches the agent
//! meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use latchkey_proto::GrantTokenText;

use crate::config::Route;
use crate::credentials::{CredentialError, Credentials};
use crate::forward::ProxyBody;

/// What a body ends with when its grant was refused mid-stream.
#[derive(Debug, thiserror::Error)]
#[error("the grant was refused while the answer streamed; the stream was cut")]
pub struct Cut;

/// Whose grant to check, and how.
pub(crate) struct Watch {
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) route: Route,
    pub(crate) grant: GrantTokenText,
    /// The longest time a chunk may go on the last check.
    pub(crate) every: Duration,
    /// For the log line when it cuts.
    pub(crate) route_name: String,
}

impl Watch {
    /// Whether the daemon still gives the route's credential under the grant.
    async fn still_granted(self: Arc<Self>) -> bool {
        match self
            .credentials
            .get(&self.route, self.grant.clone(), None)
            .await
        {
            Ok(_) | Err(CredentialError::Daemon(_)) => true,
            Err(CredentialError::Refused | CredentialError::Unreachable(_)) => false,
        }
    }
}

type Check = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A response body whose chunks pass only while the grant holds.
pub(crate) struct Watched {
    inner: ProxyBody,
    watch: Arc<Watch>,
    /// When the grant was last found good (the request's own `get` is the first time).
    checked_at: Instant,
    /// A check under way, and the chunk it holds back.
    check: Option<Check>,
    held: Option<Frame<Bytes>>,
    /// Cut: nothing more comes.
    cut: bool,
}

impl Watched {
    /// `inner` watched by `watch`; the grant was found good at `checked_at`.
    pub(crate) fn new(inner: ProxyBody, watch: Watch, checked_at: Instant) -> Self {
        Self {
            inner,
            watch: Arc::new(watch),
            checked_at,
            check: None,
            held: None,
            cut: false,
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.cut {
                return Poll::Ready(None);
            }
            if let Some(check) = this.check.as_mut() {
                let granted = ready!(check.as_mut().poll(cx));
                this.check = None;
                if !granted {
                    this.cut = true;
                    this.held = None;
                    tracing::warn!(
                        target: "latchkey::proxy",
                        route = %this.watch.route_name,
                        "grant refused while streaming: stream cut"
                    );
                    return Poll::Ready(Some(Err(Box::new(Cut))));
                }
                this.checked_at = Instant::now();
                if let Some(frame) = this.held.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) if this.checked_at.elapsed() >= this.watch.every => {
                    this.held = Some(frame);
                    this.check = Some(Box::pin(this.watch.clone().still_granted()));
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut || (self.check.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
