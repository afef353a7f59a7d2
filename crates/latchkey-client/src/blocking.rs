//! A blocking client for programs without an async runtime: the async [`Client`] driven by a
//! private single-threaded runtime.
//!
//! [`Client`]: crate::Client

use std::path::Path;

use latchkey_proto::{
    BundleInput, GetParams, GetResult, LockResult, LoginParams, LoginStarted, LogoutResult,
    Metadata, MigrateParams, MigrateResult, ProviderInfo, Secret, StatusParams, StatusResult,
    VersionResult,
};

use crate::ClientError;

/// A blocking connection to latchkeyd.
#[derive(Debug)]
pub struct Client {
    runtime: tokio::runtime::Runtime,
    inner: crate::Client,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let inner = runtime.block_on(crate::Client::connect(path))?;
        Ok(Self { runtime, inner })
    }

    /// Connects over the D-Bus session bus.
    pub fn connect_dbus() -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let inner = runtime.block_on(crate::Client::connect_dbus())?;
        Ok(Self { runtime, inner })
    }

    /// The default socket if a daemon listens there, else the session bus (see
    /// [`crate::Client::connect_auto`]).
    pub fn connect_auto() -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let inner = runtime.block_on(crate::Client::connect_auto())?;
        Ok(Self { runtime, inner })
    }

    /// Connects as `target` says (see [`crate::Client::connect_to`]).
    pub fn connect_to(target: &crate::Target) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let inner = runtime.block_on(crate::Client::connect_to(target))?;
        Ok(Self { runtime, inner })
    }

    /// The transport in use.
    pub fn transport(&self) -> crate::Transport {
        self.inner.transport()
    }

    /// Connects to the default socket.
    pub fn connect_default() -> Result<Self, ClientError> {
        Self::connect(latchkey_paths::default_socket_path())
    }

    /// See [`crate::Client::version`].
    pub fn version(&mut self) -> Result<VersionResult, ClientError> {
        self.runtime.block_on(self.inner.version())
    }

    /// See [`crate::Client::get`].
    pub fn get(
        &mut self,
        service: &str,
        account: Option<&str>,
        scopes: &[String],
    ) -> Result<GetResult, ClientError> {
        self.runtime
            .block_on(self.inner.get(service, account, scopes))
    }

    /// See [`crate::Client::get_with`].
    pub fn get_with(&mut self, params: GetParams) -> Result<GetResult, ClientError> {
        self.runtime.block_on(self.inner.get_with(params))
    }

    /// See [`crate::Client::set`].
    pub fn set(
        &mut self,
        service: &str,
        account: Option<&str>,
        bundle: BundleInput,
    ) -> Result<Metadata, ClientError> {
        self.runtime
            .block_on(self.inner.set(service, account, bundle))
    }

    /// See [`crate::Client::clear`].
    pub fn clear(&mut self, service: &str, account: Option<&str>) -> Result<bool, ClientError> {
        self.runtime.block_on(self.inner.clear(service, account))
    }

    /// See [`crate::Client::status`].
    pub fn status(&mut self, params: StatusParams) -> Result<StatusResult, ClientError> {
        self.runtime.block_on(self.inner.status(params))
    }

    /// See [`crate::Client::list`].
    pub fn list(&mut self) -> Result<Vec<Metadata>, ClientError> {
        self.runtime.block_on(self.inner.list())
    }

    /// See [`crate::Client::migrate`].
    pub fn migrate(&mut self, params: MigrateParams) -> Result<MigrateResult, ClientError> {
        self.runtime.block_on(self.inner.migrate(params))
    }

    /// See [`crate::Client::login`].
    pub fn login(&mut self, params: LoginParams) -> Result<LoginStarted, ClientError> {
        self.runtime.block_on(self.inner.login(params))
    }

    /// See [`crate::Client::login_wait`].
    pub fn login_wait(&mut self, login_id: &str) -> Result<Metadata, ClientError> {
        self.runtime.block_on(self.inner.login_wait(login_id))
    }

    /// See [`crate::Client::login_cancel`].
    pub fn login_cancel(&mut self, login_id: &str) -> Result<bool, ClientError> {
        self.runtime.block_on(self.inner.login_cancel(login_id))
    }

    /// See [`crate::Client::logout`].
    pub fn logout(
        &mut self,
        service: &str,
        account: Option<&str>,
    ) -> Result<LogoutResult, ClientError> {
        self.runtime.block_on(self.inner.logout(service, account))
    }

    /// See [`crate::Client::providers`].
    pub fn providers(&mut self) -> Result<Vec<ProviderInfo>, ClientError> {
        self.runtime.block_on(self.inner.providers())
    }

    /// See [`crate::Client::set_provider_secret`].
    pub fn set_provider_secret(
        &mut self,
        provider: &str,
        secret: Option<Secret>,
    ) -> Result<bool, ClientError> {
        self.runtime
            .block_on(self.inner.set_provider_secret(provider, secret))
    }

    /// See [`crate::Client::unlock`].
    pub fn unlock(
        &mut self,
        passphrase: Option<Secret>,
        create: bool,
    ) -> Result<LockResult, ClientError> {
        self.runtime.block_on(self.inner.unlock(passphrase, create))
    }

    /// See [`crate::Client::lock`].
    pub fn lock(&mut self) -> Result<LockResult, ClientError> {
        self.runtime.block_on(self.inner.lock())
    }

    /// See [`crate::Client::reload`].
    pub fn reload(&mut self) -> Result<latchkey_proto::ReloadResult, ClientError> {
        self.runtime.block_on(self.inner.reload())
    }

    /// See [`crate::Client::change_passphrase`].
    pub fn change_passphrase(
        &mut self,
        old: Secret,
        new: Secret,
    ) -> Result<LockResult, ClientError> {
        self.runtime
            .block_on(self.inner.change_passphrase(old, new))
    }

    /// See [`crate::Client::authenticate`].
    pub fn authenticate(
        &mut self,
        grant: latchkey_proto::GrantTokenText,
    ) -> Result<Option<latchkey_proto::AuthenticateResult>, ClientError> {
        self.runtime.block_on(self.inner.authenticate(grant))
    }

    /// See [`crate::Client::grant_create`].
    pub fn grant_create(
        &mut self,
        params: latchkey_proto::GrantCreateParams,
    ) -> Result<latchkey_proto::GrantCreateResult, ClientError> {
        self.runtime.block_on(self.inner.grant_create(params))
    }

    /// See [`crate::Client::grant_list`].
    pub fn grant_list(&mut self) -> Result<Vec<latchkey_proto::GrantInfo>, ClientError> {
        self.runtime.block_on(self.inner.grant_list())
    }

    /// See [`crate::Client::grant_revoke`].
    pub fn grant_revoke(&mut self, id: &str) -> Result<(), ClientError> {
        self.runtime.block_on(self.inner.grant_revoke(id))
    }
}
