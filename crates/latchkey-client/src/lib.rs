//! A Rust client for latchkeyd, over its Unix socket, the D-Bus session bus (Linux) or its
//! named pipe (Windows).
//!
//! [`Client`] is async (tokio); [`blocking::Client`] wraps it for programs without a runtime.
//! [`Client::connect_auto`] takes the default socket when a daemon listens there and otherwise
//! the session bus, which also starts an activatable daemon; a socket named explicitly (with
//! [`Client::connect`] or `LATCHKEY_SOCKET`) is never swapped for another transport. On
//! Windows it takes this user's named pipe ([`Target::Pipe`], `LATCHKEY_PIPE`).
//!
//! Trust runs both ways: before it sends anything, the client checks that the socket's folder
//! belongs to this user and is closed to others, and that the process listening on it runs as
//! this user (its peer credentials); on D-Bus, that the owner of the daemon's name runs as this
//! user; on Windows, that the process serving the pipe runs as this user (its token's SID).
//! Otherwise it fails with [`ClientError::Untrusted`] and nothing is sent.
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
mod transport;

use std::path::{Path, PathBuf};

use latchkey_proto::{
    AuthenticateParams, AuthenticateResult, BundleInput, Call, CancelResult, ClearResult,
    ErrorData, ErrorKind, GetParams, GetResult, GrantCreateParams, GrantCreateResult, GrantInfo,
    GrantListResult, GrantRevokeParams, GrantRevokeResult, GrantTokenText, KeyParams, ListResult,
    LockResult, LoginIdParams, LoginParams, LoginStarted, LogoutResult, Metadata, MigrateParams,
    MigrateResult, PasswdParams, ProviderInfo, ProviderSecretParams, ProviderSecretResult,
    ProvidersResult, ReloadResult, Secret, SetParams, SetResult, StatusParams, StatusResult,
    UnlockParams, VersionResult, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use transport::Connection;

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

/// How to start the daemon, with this platform's service manager.
#[cfg(target_os = "linux")]
const START_HINT: &str = "`latchkeyd` or `systemctl --user start latchkeyd`";
#[cfg(target_os = "macos")]
const START_HINT: &str = "`latchkeyd` or `launchctl kickstart gui/$(id -u)/dev.latchkey.latchkeyd`";
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
const START_HINT: &str = "`latchkeyd`";

/// What can go wrong talking to latchkeyd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error(
        "latchkeyd is not running (nothing listens on {path}); start it with {}",
        START_HINT
    )]
    NotRunning {
        /// The socket tried.
        path: PathBuf,
    },
    /// Nothing serves the named pipe (Windows).
    #[error("latchkeyd is not running (nothing serves {name}); start it with `latchkeyd`, or `latchkey install` to start it at login")]
    PipeNotServed {
        /// The pipe tried.
        name: String,
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
    /// Nobody owns latchkeyd's name on the session bus and the bus cannot start it (no
    /// activation file for it): the daemon is not running.
    #[error(
        "latchkeyd is not running; start it with `latchkeyd` or `latchkey install` (nothing \
         serves dev.latchkey.Latchkey1 on the session bus, and the bus cannot start it)"
    )]
    NotOnBus,
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
    /// The transport asked for does not exist on this platform (D-Bus off Linux, say).
    #[error("{0} is not supported on this platform")]
    Unsupported(&'static str),
}

/// Why the other end is not trusted with a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    /// The socket's folder belongs to someone else or is open to others.
    #[cfg(unix)]
    #[error("{0}")]
    Folder(latchkey_paths::TrustError),
    /// The process listening on the socket runs as another user.
    #[cfg(unix)]
    #[error("the process listening on {path} runs as {owner}, not as this user")]
    Peer {
        /// The socket.
        path: PathBuf,
        /// Its owner.
        owner: latchkey_paths::User,
    },
    /// The owner of the daemon's bus name runs as another user.
    #[cfg(unix)]
    #[error("dev.latchkey.Latchkey1 on the session bus is owned by a process of {owner}, not of this user")]
    BusOwner {
        /// Its owner.
        owner: latchkey_paths::User,
    },
    /// The process serving the named pipe runs as another user.
    #[cfg(windows)]
    #[error("the process serving {name} runs as {sid}, not as this user")]
    PipeServer {
        /// The pipe.
        name: String,
        /// The user SID of its server process.
        sid: String,
    },
    /// Who is on the other end (or who we are) could not be established.
    #[cfg(windows)]
    #[error("{0}")]
    Identity(latchkey_paths::TrustError),
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
    /// This socket and nothing else (Unix).
    Socket(PathBuf),
    /// This named pipe (`\\.\pipe\NAME`) and nothing else (Windows; elsewhere
    /// [`ClientError::Unsupported`]).
    Pipe(String),
    /// The session bus and nothing else (Linux; elsewhere [`ClientError::Unsupported`]).
    Dbus,
    /// The default socket if a daemon listens there, else the session bus (see
    /// [`Client::connect_auto`]); on Windows, this user's named pipe.
    Auto,
}

/// Which way a [`Client`] reaches the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The Unix socket.
    Socket,
    /// The D-Bus session bus.
    Dbus,
    /// The Windows named pipe.
    Pipe,
}

/// A connection to latchkeyd. Requests on one client are sent one at a time.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
    /// The grant given to [`Client::authenticate`], kept only over D-Bus, where each `get`
    /// carries it (a bus call has no connection to bind it to).
    grant: Option<GrantTokenText>,
}

impl Client {
    /// Connects over the D-Bus session bus (which starts the daemon if it is activatable).
    pub async fn connect_dbus() -> Result<Self, ClientError> {
        Self::connect_to(&Target::Dbus).await
    }

    /// The default socket if a daemon listens there, else the session bus. When
    /// `LATCHKEY_SOCKET` names a socket, only that socket is used.
    pub async fn connect_auto() -> Result<Self, ClientError> {
        Self::connect_to(&Target::Auto).await
    }

    /// Connects as `target` says, never falling back from an explicit socket or bus.
    pub async fn connect_to(target: &Target) -> Result<Self, ClientError> {
        Ok(Self {
            connection: Connection::open(target).await?,
            grant: None,
        })
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.connection.transport()
    }

    /// Connects to the socket at `path`, after checking that its folder and the process
    /// listening on it are this user's own.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::connect_to(&Target::Socket(path.as_ref().to_owned())).await
    }

    /// Connects to the default socket (`LATCHKEY_SOCKET` or the per-user runtime folder).
    pub async fn connect_default() -> Result<Self, ClientError> {
        Self::connect(latchkey_paths::default_socket_path()).await
    }

    async fn call<T: DeserializeOwned>(&mut self, mut call: Call) -> Result<T, ClientError> {
        if let Some(grant) = &self.grant {
            match &mut call {
                Call::Get(params) if params.grant.is_none() => params.grant = Some(grant.clone()),
                Call::Get(_) | Call::Version => {}
                _ => {
                    return Err(ClientError::Bus(
                        "over D-Bus a grant only serves get; use the socket".into(),
                    ))
                }
            }
        }
        self.connection.call(call).await
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
            grant: None,
            proxy: false,
            rejected: None,
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

    /// Moves every entry to another store, which the daemon uses from then on (socket only).
    /// A store that takes a passphrase answers [`ErrorKind::Locked`] without one, with
    /// `data.unlock_with` saying whether it has one already or this call chooses it
    /// (`create`).
    pub async fn migrate(&mut self, params: MigrateParams) -> Result<MigrateResult, ClientError> {
        self.call(Call::Migrate(params)).await
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

    /// Unlocks the daemon's store: with the passphrase for a passphrase store (`create`
    /// chooses it when none exists yet), with `None` for a keychain (which may then show its
    /// own prompt). Send a passphrase only over the socket or pipe, whose owner the client
    /// checked.
    pub async fn unlock(
        &mut self,
        passphrase: Option<Secret>,
        create: bool,
    ) -> Result<LockResult, ClientError> {
        self.call(Call::Unlock(UnlockParams { passphrase, create }))
            .await
    }

    /// Locks the daemon's store: no secret is served until the next unlock.
    pub async fn lock(&mut self) -> Result<LockResult, ClientError> {
        self.call(Call::Lock).await
    }

    /// Asks the daemon to read its configuration file again; what changed, and what waits
    /// for a restart. A file that is not valid leaves the running configuration in force and
    /// fails with `invalid_request`, naming the file and the line.
    pub async fn reload(&mut self) -> Result<ReloadResult, ClientError> {
        self.call(Call::Reload).await
    }

    /// Presents a grant: every later request of this client runs under it and may do only
    /// what it allows. On the socket (and pipe) the daemon checks it now and binds it to the
    /// connection (a grant that is not valid fails with `permission_denied`); over D-Bus it is
    /// sent with each `get` instead, and `None` comes back.
    pub async fn authenticate(
        &mut self,
        grant: GrantTokenText,
    ) -> Result<Option<AuthenticateResult>, ClientError> {
        if self.transport() == Transport::Dbus {
            self.grant = Some(grant);
            return Ok(None);
        }
        self.call(Call::Authenticate(AuthenticateParams { grant }))
            .await
            .map(Some)
    }

    /// Makes a grant (socket only): its token, shown once, and its record.
    pub async fn grant_create(
        &mut self,
        params: GrantCreateParams,
    ) -> Result<GrantCreateResult, ClientError> {
        self.call(Call::GrantCreate(params)).await
    }

    /// The grants not yet expired (never their tokens; socket only).
    pub async fn grant_list(&mut self) -> Result<Vec<GrantInfo>, ClientError> {
        let result: GrantListResult = self.call(Call::GrantList).await?;
        Ok(result.grants)
    }

    /// Revokes a grant by id, at once for every client holding it (socket only).
    pub async fn grant_revoke(&mut self, id: &str) -> Result<(), ClientError> {
        let _: GrantRevokeResult = self
            .call(Call::GrantRevoke(GrantRevokeParams { id: id.to_owned() }))
            .await?;
        Ok(())
    }

    /// Changes the passphrase of a passphrase store.
    pub async fn change_passphrase(
        &mut self,
        old: Secret,
        new: Secret,
    ) -> Result<LockResult, ClientError> {
        self.call(Call::Passwd(PasswdParams { old, new })).await
    }
}
