//! The Unix-socket listener: a socket bound safely (see [`bind`]) or passed by the service
//! manager, whose clients are identified by the kernel's peer credentials.

pub mod bind;

use tokio::net::UnixStream;
use tracing::warn;

use super::listener::Listener;
use crate::peer::{Peer, PeerUser};

/// A listening Unix socket.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
}

impl UnixListener {
    /// Serves an already listening socket (bound by [`bind::bind`] or passed by the service
    /// manager). Must run inside a tokio runtime.
    pub fn new(inner: tokio::net::UnixListener) -> Self {
        Self { inner }
    }

    /// Serves a socket the service manager passed (see `platform::inherited_listener`).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self::new(tokio::net::UnixListener::from_std(listener)?))
    }
}

impl From<tokio::net::UnixListener> for UnixListener {
    fn from(inner: tokio::net::UnixListener) -> Self {
        Self::new(inner)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;

    async fn accept(&mut self) -> std::io::Result<(UnixStream, Peer)> {
        loop {
            let (stream, _) = self.inner.accept().await?;
            match peer_of(&stream) {
                Ok(peer) => return Ok((stream, peer)),
                Err(err) => warn!(error = %err, "cannot read peer credentials; closing"),
            }
        }
    }
}

/// The credentials of `stream`'s peer.
pub fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = stream.peer_cred()?;
    let pid = cred.pid().and_then(|pid| u32::try_from(pid).ok());
    Ok(Peer::new(PeerUser::Uid(cred.uid()), pid))
}
