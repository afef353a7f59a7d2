//! The one trait a transport implements to be served by the connection loop: accept the next
//! client and say who it is. A Unix socket (`unix`) reads the peer's credentials; a
//! Windows named pipe (`windows_pipe`) reads its client's process token. Everything after the accept
//! (slots, limits, framing, the handler) is shared.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::peer::Peer;

/// A source of client connections.
pub trait Listener: Send + 'static {
    /// One client's byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next client and identifies it. An error is a failure of the listener
    /// itself (out of descriptors, say): the loop logs it, pauses briefly and tries again. A
    /// client whose identity cannot be read is dropped by the implementation, not returned.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<(Self::Stream, Peer)>> + Send;
}
