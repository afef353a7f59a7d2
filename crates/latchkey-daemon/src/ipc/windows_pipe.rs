//! The Windows named-pipe listener: one pipe name (`\\.\pipe\latchkey-<SID>` by default, see
//! `latchkey_paths::default_pipe_name`), every instance created with a DACL for this user only
//! (`PipeSecurity`), local clients only (`reject_remote_clients`), and the first instance with
//! `first_pipe_instance`, so a pipe of that name made earlier by anyone makes the daemon refuse
//! to start instead of sharing the name. Each client is identified by its process token's user
//! SID, which the connection loop compares with the daemon's own.
//!
//! A named pipe has no listening socket: each instance serves one client. The listener always
//! keeps one instance waiting, and creates the next one before it hands out a connected
//! instance, so a client arriving in between finds an instance instead of "no such pipe".

use std::os::windows::io::AsHandle;

use latchkey_paths::{PipeSecurity, TrustError};
use tokio::net::windows::named_pipe::{NamedPipeServer, PipeMode, ServerOptions};
use tracing::{debug, warn};

use super::listener::Listener;
use crate::peer::{Peer, PeerUser};

/// Why the pipe could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// A pipe of that name exists: another latchkeyd, or another program squatting the name.
    #[error("{name} already exists: another latchkeyd is already serving it (or another program took the name); stop that one first, or pick another name with --pipe")]
    AlreadyServing {
        /// The pipe name.
        name: String,
    },
    /// The pipe's security descriptor could not be built, or its existence not checked.
    #[error("cannot set up the pipe {name}")]
    Identity {
        /// The pipe name.
        name: String,
        /// Why.
        #[source]
        source: TrustError,
    },
    /// Windows refused to create the pipe.
    #[error("cannot create the pipe {name}")]
    Create {
        /// The pipe name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `ERROR_ACCESS_DENIED`: what `first_pipe_instance` gives when the pipe exists already.
const ERROR_ACCESS_DENIED: i32 = 5;

/// A named pipe served to this user's local processes.
#[derive(Debug)]
pub struct PipeListener {
    name: String,
    /// Applied to every instance; kept alive as long as instances are created.
    security: PipeSecurity,
    /// The instance the next client connects to (`None` when the last one could not be made:
    /// the next accept tries again).
    waiting: Option<NamedPipeServer>,
}

impl PipeListener {
    /// Creates the pipe's first instance, refusing a name that exists already. Must run
    /// inside a tokio runtime.
    pub fn create(name: &str) -> Result<Self, PipeError> {
        let identity = |source| PipeError::Identity {
            name: name.to_owned(),
            source,
        };
        // Wine ignores `first_pipe_instance`: ask first, so a second daemon is refused there too.
        if latchkey_paths::pipe_exists(name).map_err(identity)? {
            return Err(PipeError::AlreadyServing {
                name: name.to_owned(),
            });
        }
        let security = PipeSecurity::for_current_user().map_err(identity)?;
        let waiting = instance(name, &security, true).map_err(|source| {
            if source.raw_os_error() == Some(ERROR_ACCESS_DENIED) {
                PipeError::AlreadyServing {
                    name: name.to_owned(),
                }
            } else {
                PipeError::Create {
                    name: name.to_owned(),
                    source,
                }
            }
        })?;
        Ok(Self {
            name: name.to_owned(),
            security,
            waiting: Some(waiting),
        })
    }

    /// The pipe's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One more instance of the pipe, this user's only, local clients only, bytes not messages.
fn instance(name: &str, security: &PipeSecurity, first: bool) -> std::io::Result<NamedPipeServer> {
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true)
        .pipe_mode(PipeMode::Byte);
    // SAFETY: the attributes point at a descriptor owned by `security`, which outlives the
    // call; CreateNamedPipeW only reads them.
    unsafe { options.create_with_security_attributes_raw(name, security.as_raw_attributes()) }
}

impl Listener for PipeListener {
    type Stream = NamedPipeServer;

    async fn accept(&mut self) -> std::io::Result<(NamedPipeServer, Peer)> {
        loop {
            let waiting = match &mut self.waiting {
                Some(waiting) => waiting,
                None => self
                    .waiting
                    .insert(instance(&self.name, &self.security, false)?),
            };
            if let Err(err) = waiting.connect().await {
                // The client left before it was served (ERROR_NO_DATA): this instance is
                // spent; a fresh one takes its place.
                debug!(error = %err, "a client left before it was accepted");
                self.waiting = None;
                continue;
            }
            let connected = self.waiting.take().expect("the instance just connected");
            // The next instance before this one is handed out, so a client arriving meanwhile
            // finds one. When none can be made now (every instance the system allows is in
            // use), this client is still served and the next accept tries again.
            match instance(&self.name, &self.security, false) {
                Ok(next) => self.waiting = Some(next),
                Err(err) => warn!(error = %err, "cannot create the next pipe instance yet"),
            }
            match peer_of(&connected) {
                Ok(peer) => return Ok((connected, peer)),
                Err(err) => warn!(error = %err, "cannot identify a pipe client; closing"),
            }
        }
    }
}

/// The user and process of `pipe`'s client.
fn peer_of(pipe: &NamedPipeServer) -> Result<Peer, TrustError> {
    let sid = latchkey_paths::pipe_client_sid(pipe.as_handle())?;
    let pid = latchkey_paths::pipe_client_pid(pipe.as_handle()).ok();
    Ok(Peer::new(PeerUser::Sid(sid), pid))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::windows::named_pipe::ClientOptions;

    use super::*;

    fn unique(tag: &str) -> String {
        format!(r"\\.\pipe\latchkeyd-unit-{tag}-{}", std::process::id())
    }

    #[tokio::test]
    async fn a_client_is_accepted_as_this_user_and_the_next_instance_waits() {
        let name = unique("accept");
        let mut listener = PipeListener::create(&name).unwrap();
        assert_eq!(listener.name(), name);
        let mut client = ClientOptions::new().open(&name).unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.pid, Some(std::process::id()));
        assert!(peer.user.sid().is_some_and(|s| s.starts_with("S-1-")));
        assert!(peer.is_own_user("a test connection"));
        // The next instance exists before the first is handed out: a second client can open.
        let second = ClientOptions::new().open(&name).unwrap();
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
        drop(second);
    }

    #[tokio::test]
    async fn a_pipe_that_exists_is_refused() {
        let name = unique("taken");
        let _first = PipeListener::create(&name).unwrap();
        let err = PipeListener::create(&name).unwrap_err();
        assert!(matches!(&err, PipeError::AlreadyServing { name: n } if *n == name));
        assert!(err.to_string().contains("already serving"), "{err}");
    }

    #[test]
    fn a_sid_that_is_not_ours_is_not_the_current_user() {
        let me = latchkey_paths::current_user_sid().unwrap();
        assert!(PeerUser::Sid(me).is_current());
        assert!(!PeerUser::Sid("S-1-5-21-1-2-3-4242".into()).is_current());
        assert!(!PeerUser::Uid(1000).is_current());
    }
}
