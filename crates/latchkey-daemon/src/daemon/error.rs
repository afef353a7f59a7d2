//! Why the daemon could not start or stopped with a failure.

/// Why [`Daemon`](super::Daemon) could not be built or could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The data folder is missing and cannot be made, or others could change it.
    #[error("refusing the data folder {path} (LATCHKEY_DATA_DIR, or the platform's data folder)")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No store could be opened.
    #[error("cannot open the store")]
    Store(#[source] latchkey_core::StoreError),
    /// The store's entries could not be read.
    #[error("cannot read the store's entries")]
    Entries(#[source] latchkey_core::Error),
    /// The OAuth client could not be set up.
    #[error("cannot set up the OAuth client")]
    OAuth(#[source] latchkey_oauth::ProviderError),
    /// The socket could not be bound.
    #[cfg(unix)]
    #[error(transparent)]
    Bind(#[from] crate::ipc::unix::bind::BindError),
    /// The named pipe could not be created (another daemon serves it, say).
    #[cfg(windows)]
    #[error(transparent)]
    Pipe(#[from] crate::ipc::windows_pipe::PipeError),
    /// The socket passed by the service manager cannot be served.
    #[error("cannot use the socket passed by the service manager")]
    Inherited(#[source] std::io::Error),
    /// The session bus could not be served (the name is taken, or a D-Bus-only daemon found
    /// no bus that answers).
    #[error("cannot serve on the session bus: {0}")]
    Bus(String),
    /// An endpoint went away while serving (the socket file was removed or replaced).
    #[error("{0}")]
    EndpointLost(String),
    /// No endpoint was asked for (`--no-socket` where there is no D-Bus, say).
    #[error("nothing to serve: no socket and no session bus")]
    NothingToServe,
    /// A transport this platform does not have was asked for.
    #[error("{0} is not available on this platform")]
    Unsupported(&'static str),
}
