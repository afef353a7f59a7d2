//! The ways to reach the daemon, one module each, each checking the other end before it sends
//! anything: the Unix socket (`socket`), the Windows named pipe (`pipe`) and the D-Bus session
//! bus (`dbus`, Linux only). A stream transport only connects and checks; [`line`](mod@line) speaks the
//! protocol over it.

#[cfg(target_os = "linux")]
mod dbus;
mod line;
#[cfg(windows)]
mod pipe;
#[cfg(unix)]
mod socket;

use serde::de::DeserializeOwned;

use crate::{ClientError, Target, Transport};
use latchkey_proto::Call;

/// An open connection to the daemon.
#[derive(Debug)]
pub(crate) enum Connection {
    /// A byte stream speaking JSON lines, and which transport it came through.
    Line(line::LineConnection, Transport),
    /// The session bus.
    #[cfg(target_os = "linux")]
    Dbus(dbus::DbusConnection),
}

impl Connection {
    /// Connects as `target` says, never falling back from an explicit socket or bus.
    pub(crate) async fn open(target: &Target) -> Result<Self, ClientError> {
        match target {
            Target::Socket(path) => Self::socket(path).await,
            Target::Pipe(name) => Self::pipe(name).await,
            Target::Dbus => Self::dbus().await,
            Target::Auto => Self::auto().await,
        }
    }

    #[cfg(windows)]
    async fn pipe(name: &str) -> Result<Self, ClientError> {
        Ok(Self::Line(pipe::connect(name).await?, Transport::Pipe))
    }

    #[cfg(not(windows))]
    async fn pipe(_name: &str) -> Result<Self, ClientError> {
        Err(ClientError::Unsupported("a named pipe"))
    }

    #[cfg(unix)]
    async fn socket(path: &std::path::Path) -> Result<Self, ClientError> {
        Ok(Self::Line(socket::connect(path).await?, Transport::Socket))
    }

    #[cfg(not(unix))]
    async fn socket(_path: &std::path::Path) -> Result<Self, ClientError> {
        Err(ClientError::Unsupported("a Unix socket"))
    }

    #[cfg(target_os = "linux")]
    async fn dbus() -> Result<Self, ClientError> {
        Ok(Self::Dbus(dbus::DbusConnection::session().await?))
    }

    #[cfg(not(target_os = "linux"))]
    async fn dbus() -> Result<Self, ClientError> {
        Err(ClientError::Unsupported("D-Bus"))
    }

    /// Windows: this user's pipe (`LATCHKEY_PIPE` or `\\.\pipe\latchkey-<SID>`).
    #[cfg(windows)]
    async fn auto() -> Result<Self, ClientError> {
        let name = latchkey_paths::default_pipe_name()
            .map_err(|e| ClientError::Untrusted(crate::Untrusted::Identity(e)))?;
        Self::pipe(&name).await
    }

    /// The default socket if a daemon listens there, else the session bus. When
    /// `LATCHKEY_SOCKET` names a socket, only that socket is used.
    #[cfg(not(windows))]
    async fn auto() -> Result<Self, ClientError> {
        let path = latchkey_paths::default_socket_path();
        if std::env::var_os(latchkey_paths::SOCKET_ENV).is_some_and(|p| !p.is_empty()) {
            return Self::socket(&path).await;
        }
        match Self::socket(&path).await {
            Err(not_running @ ClientError::NotRunning { .. }) if cfg!(target_os = "linux") => {
                match Self::dbus().await {
                    Ok(connection) => Ok(connection),
                    // No bus either: the socket's message says how to start the daemon.
                    Err(_) => Err(not_running),
                }
            }
            other => other,
        }
    }

    /// The transport in use.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Connection::Line(_, transport) => *transport,
            #[cfg(target_os = "linux")]
            Connection::Dbus(_) => Transport::Dbus,
        }
    }

    /// Runs one call; its result as the protocol's record.
    pub(crate) async fn call<T: DeserializeOwned>(&mut self, call: Call) -> Result<T, ClientError> {
        match self {
            Connection::Line(line, _) => line.call(call).await,
            #[cfg(target_os = "linux")]
            Connection::Dbus(bus) => {
                let value = bus.call(call).await?;
                serde_json::from_value(value).map_err(|_| ClientError::Protocol)
            }
        }
    }
}
