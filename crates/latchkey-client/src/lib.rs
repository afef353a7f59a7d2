//! A Rust client for latchkeyd, over its Unix socket or the D-Bus session bus.
//!
//! [`Client`] is async (tokio); [`blocking::Client`] wraps it for programs without a runtime.
//! [`Client::connect_auto`] takes the default socket when a daemon listens there and otherwise
//! the session bus, which also starts an activatable daemon; a socket named explicitly (with
//! [`Client::connect`] or `LATCHKEY_SOCKET`) is never swapped for another transport.
//!
//! Trust runs both ways: before it sends anything, the client checks that the socket's folder
//! belongs to this user and is closed to others, and that the process listening on it runs as
//! this user (its peer credentials); on D-Bus, that the owner of the daemon's name runs as this
//! user. Otherwise it fails with [`ClientError::Untrusted`] and nothing is sent.
//! Errors the daemon reports come back as [`ClientError::Daemon`] with their stable
//! [`ErrorKind`], so callers branch on kinds, not on messages.
//!
//! ```no_run
//! # async fn demo() -> Result<(), latchkey_client::ClientError> {
//! let mut client = latchkey_client::Client::connect_default().await?;
//! let token = client.get("github", None, &[]).await?;
//! // token.secret.expose() is the access token; never log it.
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod blocking;
mod dbus;

use std::path::{Path, PathBuf};

use latchkey_proto::codec::{Frame, LineDecoder};
use latchkey_proto::{
    BundleInput, Call, CancelResult, ClearResult, ErrorData, ErrorKind, GetParams, GetResult, Id,
    KeyParams, ListResult, LoginIdParams, LoginParams, LoginStarted, LogoutResult, Metadata,
    ProviderInfo, ProviderSecretParams, ProviderSecretResult, ProvidersResult, Request, Response,
    Secret, SetParams, SetResult, StatusParams, StatusResult, VersionResult, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Longest response line accepted (a `list` of many entries is large).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// An error the daemon reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonError {
    /// The message, for people.
    pub message: String,
    /// The machine-readable part, with `kind`.
    pub data: ErrorData,
}

impl DaemonError {
    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        self.data.kind
    }
}

/// What can go wrong talking to latchkeyd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("latchkeyd is not running (nothing listens on {path}); start it with `latchkeyd` or `systemctl --user start latchkeyd`")]
    NotRunning {
        /// The socket tried.
        path: PathBuf,
    },
    /// The connection failed.
    #[error("cannot talk to latchkeyd: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon closed the connection without answering (for example, it refused this user).
    #[error("latchkeyd closed the connection without answering")]
    Closed,
    /// The daemon's answer could not be understood.
    #[error("latchkeyd sent a response this client does not understand")]
    Protocol,
    /// The session bus could not be used to reach latchkeyd.
    #[error("cannot reach latchkeyd on the session bus: {0}")]
    Bus(String),
    /// The daemon speaks another protocol version.
    #[error("latchkeyd speaks protocol {daemon}, this client speaks {client}; restart latchkeyd after upgrading")]
    VersionMismatch {
        /// The daemon's protocol.
        daemon: u32,
        /// Ours.
        client: u32,
    },
    /// The daemon answered with an error.
    #[error("{}", .0.message)]
    Daemon(DaemonError),
    /// What answers as latchkeyd is not this user's own: nothing was sent to it.
    #[error("refusing to talk to latchkeyd: {0}")]
    Untrusted(Untrusted),
}

/// Why the other end is not trusted with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    /// The socket's folder belongs to someone else or is open to others.
    #[error("{0}")]
    Folder(latchkey_paths::TrustError),
    /// The process listening on the socket runs as another user.
    #[error("the process listening on {path} runs as {owner}, not as this user")]
    Peer {
        /// The socket.
        path: PathBuf,
        /// Its owner.
        owner: latchkey_paths::User,
    },
    /// The owner of the daemon's bus name runs as another user.
    #[error("dev.latchkey.Latchkey1 on the session bus is owned by a process of {owner}, not of this user")]
    BusOwner {
        /// Its owner.
        owner: latchkey_paths::User,
    },
}

impl ClientError {
    /// The daemon's error kind, if the daemon reported this error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Daemon(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// Where to reach the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// This socket and nothing else.
    Socket(PathBuf),
    /// The session bus and nothing else.
    Dbus,
    /// The default socket if a daemon listens there, else the session bus (see
    /// [`Client::connect_auto`]).
    Auto,
}

/// Which way a [`Client`] reaches the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The Unix socket.
    Socket,
    /// The D-Bus session bus.
    Dbus,
}

#[derive(Debug)]
enum Connection {
    Socket {
        stream: UnixStream,
        decoder: LineDecoder,
    },
    Dbus(dbus::DbusConnection),
}

/// A connection to latchkeyd. Requests on one client are sent one at a time.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
    next_id: u64,
}

impl Client {
    /// Connects over the D-Bus session bus (which starts the daemon if it is activatable).
    pub async fn connect_dbus() -> Result<Self, ClientError> {
        Ok(Self {
            connection: Connection::Dbus(dbus::DbusConnection::session().await?),
            next_id: 1,
        })
    }

    /// The default socket if a daemon listens there, else the session bus. When
    /// `LATCHKEY_SOCKET` names a socket, only that socket is used.
    pub async fn connect_auto() -> Result<Self, ClientError> {
        let path = latchkey_paths::default_socket_path();
        if std::env::var_os(latchkey_paths::SOCKET_ENV).is_some_and(|p| !p.is_empty()) {
            return Self::connect(path).await;
        }
        match Self::connect(&path).await {
            Err(not_running @ ClientError::NotRunning { .. }) => {
                match Self::connect_dbus().await {
                    Ok(client) => Ok(client),
                    // No bus either: the socket's message says how to start the daemon.
                    Err(_) => Err(not_running),
                }
            }
            other => other,
        }
    }

    /// Connects as `target` says, never falling back from an explicit socket or bus.
    pub async fn connect_to(target: &Target) -> Result<Self, ClientError> {
        match target {
            Target::Socket(path) => Self::connect(path).await,
            Target::Dbus => Self::connect_dbus().await,
            Target::Auto => Self::connect_auto().await,
        }
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        match self.connection {
            Connection::Socket { .. } => Transport::Socket,
            Connection::Dbus(_) => Transport::Dbus,
        }
    }

    /// Connects to the socket at `path`, after checking that its folder and the process
    /// listening on it are this user's own.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        latchkey_paths::check_private_dir(folder).map_err(|e| {
            if e.is_missing() {
                ClientError::NotRunning {
                    path: path.to_owned(),
                }
            } else {
                ClientError::Untrusted(Untrusted::Folder(e))
            }
        })?;
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning {
                        path: path.to_owned(),
                    }
                }
                _ => ClientError::Io(e),
            })?;
        let owner = stream.peer_cred()?.uid();
        if !latchkey_paths::is_own_uid(owner) {
            return Err(ClientError::Untrusted(Untrusted::Peer {
                path: path.to_owned(),
                owner: latchkey_paths::User(owner),
            }));
        }
        Ok(Self {
            connection: Connection::Socket {
                stream,
                decoder: LineDecoder::new(MAX_RESPONSE),
            },
            next_id: 1,
        })
    }

    /// Connects to the default socket (`LATCHKEY_SOCKET` or the per-user runtime folder).
    pub async fn connect_default() -> Result<Self, ClientError> {
        Self::connect(latchkey_paths::default_socket_path()).await
    }

    async fn call<T: DeserializeOwned>(&mut self, call: Call) -> Result<T, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let (stream, decoder) = match &mut self.connection {
            Connection::Socket { stream, decoder } => (stream, decoder),
            Connection::Dbus(bus) => {
                let value = bus.call(call).await?;
                return serde_json::from_value(value).map_err(|_| ClientError::Protocol);
            }
        };
        let request = Request {
            id: Id::from(id),
            call,
        };
        stream
            .write_all(&request.to_line())
            .await
            .map_err(|e| match e.kind() {
                // The daemon hung up first (for example: it refused this user).
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    ClientError::Closed
                }
                _ => ClientError::Io(e),
            })?;
        let line = read_line(stream, decoder).await?;
        let response = Response::parse(&line).map_err(|_| ClientError::Protocol)?;
        // An error about a request the daemon could not read (too large, say) carries a null
        // id; requests go one at a time, so it is ours.
        let unidentified_error = response.id == Id::Null && response.outcome.is_err();
        if response.id != Id::from(id) && !unidentified_error {
            return Err(ClientError::Protocol);
        }
        match response.outcome {
            Ok(raw) => serde_json::from_str(raw.get()).map_err(|_| ClientError::Protocol),
            Err(err) => Err(ClientError::Daemon(DaemonError {
                message: err.message,
                data: err.data,
            })),
        }
    }

    /// The daemon's version; fails with [`ClientError::VersionMismatch`] if its protocol differs.
    pub async fn version(&mut self) -> Result<VersionResult, ClientError> {
        let version: VersionResult = self.call(Call::Version).await?;
        if version.protocol != PROTOCOL_VERSION {
            return Err(ClientError::VersionMismatch {
                daemon: version.protocol,
                client: PROTOCOL_VERSION,
            });
        }
        Ok(version)
    }

    /// The secret of an entry, if it was granted every scope in `scopes`.
    pub async fn get(
        &mut self,
        service: &str,
        account: Option<&str>,
        scopes: &[String],
    ) -> Result<GetResult, ClientError> {
        self.get_with(GetParams {
            service: service.to_owned(),
            account: account.map(str::to_owned),
            scopes: scopes.to_vec(),
            min_valid_secs: None,
        })
        .await
    }

    /// `get` with every parameter.
    pub async fn get_with(&mut self, params: GetParams) -> Result<GetResult, ClientError> {
        self.call(Call::Get(params)).await
    }

    /// Stores a credential.
    pub async fn set(
        &mut self,
        service: &str,
        account: Option<&str>,
        bundle: BundleInput,
    ) -> Result<Metadata, ClientError> {
        let result: SetResult = self
            .call(Call::Set(SetParams {
                service: service.to_owned(),
                account: account.map(str::to_owned),
                bundle,
            }))
            .await?;
        Ok(result.entry)
    }

    /// Removes an entry; `true` if it existed.
    pub async fn clear(
        &mut self,
        service: &str,
        account: Option<&str>,
    ) -> Result<bool, ClientError> {
        let result: ClearResult = self
            .call(Call::Clear(KeyParams {
                service: service.to_owned(),
                account: account.map(str::to_owned),
            }))
            .await?;
        Ok(result.removed)
    }

    /// The daemon's state and the entries matching the filters.
    pub async fn status(&mut self, params: StatusParams) -> Result<StatusResult, ClientError> {
        self.call(Call::Status(params)).await
    }

    /// Every entry's metadata.
    pub async fn list(&mut self) -> Result<Vec<Metadata>, ClientError> {
        let result: ListResult = self.call(Call::List).await?;
        Ok(result.entries)
    }

    /// Starts a login run by the daemon: open the returned URL (or show the device code),
    /// then [`Client::login_wait`].
    pub async fn login(&mut self, params: LoginParams) -> Result<LoginStarted, ClientError> {
        self.call(Call::Login(params)).await
    }

    /// Waits until a login completes; returns the stored entry.
    pub async fn login_wait(&mut self, login_id: &str) -> Result<Metadata, ClientError> {
        let result: SetResult = self
            .call(Call::LoginWait(LoginIdParams {
                login_id: login_id.to_owned(),
            }))
            .await?;
        Ok(result.entry)
    }

    /// Cancels a pending login; `true` if one was waiting.
    pub async fn login_cancel(&mut self, login_id: &str) -> Result<bool, ClientError> {
        let result: CancelResult = self
            .call(Call::LoginCancel(LoginIdParams {
                login_id: login_id.to_owned(),
            }))
            .await?;
        Ok(result.cancelled)
    }

    /// Revokes an entry's tokens at its provider and removes it.
    pub async fn logout(
        &mut self,
        service: &str,
        account: Option<&str>,
    ) -> Result<LogoutResult, ClientError> {
        self.call(Call::Logout(KeyParams {
            service: service.to_owned(),
            account: account.map(str::to_owned),
        }))
        .await
    }

    /// Built-in and configured providers.
    pub async fn providers(&mut self) -> Result<Vec<ProviderInfo>, ClientError> {
        let result: ProvidersResult = self.call(Call::Providers).await?;
        Ok(result.providers)
    }

    /// Stores a confidential client's secret for `provider` (`None` removes it); returns
    /// whether one is stored now.
    pub async fn set_provider_secret(
        &mut self,
        provider: &str,
        secret: Option<Secret>,
    ) -> Result<bool, ClientError> {
        let result: ProviderSecretResult = self
            .call(Call::ProviderSecret(ProviderSecretParams {
                provider: provider.to_owned(),
                secret,
            }))
            .await?;
        Ok(result.stored)
    }
}

async fn read_line(
    stream: &mut UnixStream,
    decoder: &mut LineDecoder,
) -> Result<Vec<u8>, ClientError> {
    let mut buf = [0u8; 8192];
    loop {
        match decoder.next_frame() {
            Some(Frame::Line(line)) => return Ok(line),
            Some(Frame::TooLong) => return Err(ClientError::Protocol),
            None => {}
        }
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(ClientError::Closed);
        }
        decoder.feed(&buf[..n]);
    }
}
