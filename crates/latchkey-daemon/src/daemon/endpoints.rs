//! Where the daemon serves: the stream endpoint (a Unix socket, or a Windows named pipe) and
//! whether to serve on the session bus. Opening an endpoint starts serving it
//! through the generic connection loop in [`crate::ipc`].

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DaemonError;
use crate::config::Limits;
use crate::handler::Handler;
use crate::ipc;

/// Where [`Daemon::start`](super::Daemon::start) serves.
#[derive(Debug, Default)]
pub struct Endpoints {
    /// The stream transport, if any.
    pub stream: Option<StreamEndpoint>,
    /// Whether to serve on the D-Bus session bus (Linux only; elsewhere it is refused with
    /// [`DaemonError::Unsupported`]).
    pub dbus: bool,
}

/// A stream transport to serve.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamEndpoint {
    /// Bind this socket path: a private folder, a 0600 socket put in place by rename, removed
    /// at exit and watched while serving (see [`ipc::unix::bind`]).
    #[cfg(unix)]
    Socket(std::path::PathBuf),
    /// A listening socket the service manager passed (see
    /// [`platform::activation`](crate::platform::activation)); it is neither removed nor
    /// watched.
    #[cfg(unix)]
    Inherited(std::os::unix::net::UnixListener),
    /// Create this named pipe (`\\.\pipe\NAME`) for this user only and serve it (see
    /// `ipc::windows_pipe`); a pipe of that name that exists already is refused.
    #[cfg(windows)]
    Pipe(String),
}

/// A stream endpoint being served.
pub(super) struct Serving {
    task: JoinHandle<()>,
    /// Removes the socket file at exit; watched while serving.
    #[cfg(unix)]
    guard: Option<ipc::unix::bind::SocketGuard>,
    /// How to name it in the log.
    pub(super) name: String,
}

/// Serves `listener` in the background until `shutdown`.
#[cfg_attr(not(any(unix, windows)), allow(dead_code))]
fn spawn<L: ipc::Listener>(
    listener: L,
    handler: &Handler,
    limits: watch::Receiver<Limits>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(ipc::serve(
        listener,
        handler.clone(),
        limits,
        shutdown.clone(),
    ))
}

impl StreamEndpoint {
    /// Binds the endpoint and serves it until `shutdown`.
    #[cfg_attr(not(any(unix, windows)), allow(unused_variables, unreachable_code))]
    pub(super) fn open(
        self,
        handler: &Handler,
        limits: watch::Receiver<Limits>,
        shutdown: &CancellationToken,
    ) -> Result<Serving, DaemonError> {
        match self {
            #[cfg(unix)]
            StreamEndpoint::Socket(path) => {
                let (listener, guard) = ipc::unix::bind::bind(&path)?;
                Ok(Serving {
                    task: spawn(
                        ipc::unix::UnixListener::new(listener),
                        handler,
                        limits,
                        shutdown,
                    ),
                    guard: Some(guard),
                    name: path.display().to_string(),
                })
            }
            #[cfg(unix)]
            StreamEndpoint::Inherited(listener) => {
                let listener =
                    ipc::unix::UnixListener::from_std(listener).map_err(DaemonError::Inherited)?;
                Ok(Serving {
                    task: spawn(listener, handler, limits, shutdown),
                    guard: None,
                    name: "passed by the service manager".to_owned(),
                })
            }
            #[cfg(windows)]
            StreamEndpoint::Pipe(name) => {
                let listener = ipc::windows_pipe::PipeListener::create(&name)?;
                Ok(Serving {
                    task: spawn(listener, handler, limits, shutdown),
                    name,
                })
            }
        }
    }
}

impl Serving {
    /// Waits for `shutdown`; if the endpoint is lost first (its socket file removed or
    /// replaced), cancels `shutdown` and says why.
    pub(super) async fn watch(&self, shutdown: &CancellationToken) -> Option<String> {
        #[cfg(unix)]
        if let Some(guard) = &self.guard {
            return guard.watch(shutdown.clone()).await;
        }
        shutdown.cancelled().await;
        None
    }

    /// Waits until the open connections have drained (after `shutdown`).
    pub(super) async fn drain(&mut self) {
        let _ = (&mut self.task).await;
    }
}
