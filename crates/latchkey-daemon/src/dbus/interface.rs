//! The `dev.latchkey.Latchkey1` interface. Each method checks the caller, builds the typed
//! request the socket would build, hands it to the shared [`Handler`], and encodes the typed
//! [`Reply`] as D-Bus values.

use std::collections::HashMap;
use std::sync::Mutex;

use latchkey_proto::{
    BundleInput, Call, ErrorKind, GetParams, KeyParams, LoginIdParams, LoginParams, Metadata,
    SetParams, StatusParams,
};
use serde_json::Value as Json;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use super::LatchkeyError;
use crate::handler::{AuditMemory, Handler, Reply, VERSION};
use crate::peer::{Peer, PeerUser};
use latchkey_proto::dbus::{ConvertError, Dict};

/// Callers remembered by unique name (unique names are never reused on a bus).
const PEER_CACHE: usize = 1024;

/// The object served at `/dev/latchkey/Latchkey1`.
pub struct Latchkey {
    handler: Handler,
    /// Callers by unique name: their credentials, and what their reads already had audited
    /// (as the socket remembers it per connection).
    callers: Mutex<HashMap<String, Caller>>,
}

struct Caller {
    peer: Peer,
    audit: AuditMemory,
}

impl Latchkey {
    /// The interface over `handler`.
    pub fn new(handler: Handler) -> Self {
        Self {
            handler,
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// The caller, from the bus's credentials for its connection; refused if another user.
    /// Takes the caller's record out of the cache; `run` puts it back.
    async fn caller(
        &self,
        sender: &str,
        connection: &zbus::Connection,
    ) -> Result<Caller, LatchkeyError> {
        let known = self
            .callers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sender);
        let caller = match known {
            Some(caller) => caller,
            None => {
                let dbus = zbus::fdo::DBusProxy::new(connection).await?;
                let name = zbus::names::BusName::try_from(sender)
                    .map_err(|e| LatchkeyError::from(zbus::Error::from(e)))?;
                let uid = dbus
                    .get_connection_unix_user(name.clone())
                    .await
                    .map_err(|e| LatchkeyError::from(zbus::Error::from(e)))?;
                let pid = dbus.get_connection_unix_process_id(name).await.ok();
                Caller {
                    peer: Peer::new(PeerUser::Uid(uid), pid),
                    audit: AuditMemory::new(latchkey_audit::Transport::Dbus),
                }
            }
        };
        if !caller.peer.is_own_user("a D-Bus call") {
            self.handler
                .audit_refused(&caller.peer, latchkey_audit::Transport::Dbus);
            return Err(LatchkeyError::new(
                ErrorKind::PermissionDenied,
                "latchkeyd serves only its own user",
            ));
        }
        Ok(caller)
    }

    fn keep(&self, sender: String, caller: Caller) {
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if callers.len() >= PEER_CACHE {
            callers.clear();
        }
        callers.insert(sender, caller);
    }

    async fn run(
        &self,
        call: Call,
        header: &Header<'_>,
        connection: &zbus::Connection,
    ) -> Result<Reply, LatchkeyError> {
        let sender = header
            .sender()
            .ok_or_else(|| {
                LatchkeyError::new(ErrorKind::PermissionDenied, "the call has no sender")
            })?
            .to_string();
        let mut caller = self.caller(&sender, connection).await?;
        let outcome = self
            .handler
            .answer(&call, &caller.peer, &mut caller.audit)
            .await;
        self.keep(sender, caller);
        Ok(outcome?)
    }
}

fn encoded(dict: Result<Dict, ConvertError>) -> Result<Dict, LatchkeyError> {
    dict.map_err(|e| LatchkeyError::new(ErrorKind::Internal, e.to_string()))
}

/// A record sent rarely (a login, a logout, a provider), through its JSON form.
fn record(value: &impl serde::Serialize) -> Result<Dict, LatchkeyError> {
    let json = serde_json::to_value(value)
        .map_err(|_| LatchkeyError::new(ErrorKind::Internal, "cannot encode a result"))?;
    encoded(latchkey_proto::dbus::to_dict(&json))
}

fn metadata(entry: &Metadata) -> Result<Dict, LatchkeyError> {
    encoded(latchkey_proto::dbus::metadata(entry))
}

fn entries(entries: &[Metadata]) -> Result<Vec<Dict>, LatchkeyError> {
    entries.iter().map(metadata).collect()
}

/// The handler answered with a reply of another method (a bug, never the caller's fault).
fn mismatch() -> LatchkeyError {
    LatchkeyError::new(
        ErrorKind::Internal,
        "the daemon answered with an unexpected result",
    )
}

fn from_dict(dict: &HashMap<String, OwnedValue>) -> Result<Json, LatchkeyError> {
    latchkey_proto::dbus::from_dict(dict)
        .map_err(|e: ConvertError| LatchkeyError::new(ErrorKind::InvalidRequest, e.to_string()))
}

fn account_or_default(account: &str) -> Option<String> {
    (!account.is_empty()).then(|| account.to_owned())
}

/// Credentials for local clients. An empty `account` means `default`. Records are `a{sv}`
/// with the field names of the socket protocol.
#[zbus::interface(name = "dev.latchkey.Latchkey1")]
impl Latchkey {
    /// The secret of an entry: `{secret, kind, token_type?, username?, expires_at?, scopes}`.
    /// `options` may hold `scopes` (as), `min_valid_secs` (t) and `grant` (s, a grant token).
    async fn get(
        &self,
        service: &str,
        account: &str,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Dict, LatchkeyError> {
        let options = latchkey_proto::dbus::get_options(&options)
            .map_err(|e| LatchkeyError::new(ErrorKind::InvalidRequest, e.to_string()))?;
        let params = GetParams {
            service: service.to_owned(),
            account: account_or_default(account),
            scopes: options.scopes,
            min_valid_secs: options.min_valid_secs,
            grant: options.grant,
            proxy: false,
            rejected: None,
        };
        match self.run(Call::Get(params), &header, connection).await? {
            Reply::Get(served) => encoded(latchkey_proto::dbus::get_result(&served.into_result())),
            _ => Err(mismatch()),
        }
    }

    /// Stores a credential; `bundle` is the protocol's bundle as `a{sv}` (with `kind`).
    /// Returns the entry's metadata.
    async fn set(
        &self,
        service: &str,
        account: &str,
        bundle: HashMap<String, OwnedValue>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Dict, LatchkeyError> {
        let bundle = BundleInput::from_json_value(from_dict(&bundle)?).map_err(|e| {
            LatchkeyError::new(
                ErrorKind::InvalidRequest,
                format!("the bundle is not valid: {e}"),
            )
        })?;
        let params = SetParams {
            service: service.to_owned(),
            account: account_or_default(account),
            bundle,
        };
        match self.run(Call::Set(params), &header, connection).await? {
            Reply::Entry(result) => metadata(&result.entry),
            _ => Err(mismatch()),
        }
    }

    /// Removes an entry; true if it existed.
    async fn clear(
        &self,
        service: &str,
        account: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, LatchkeyError> {
        let params = KeyParams {
            service: service.to_owned(),
            account: account_or_default(account),
        };
        match self.run(Call::Clear(params), &header, connection).await? {
            Reply::Clear(result) => Ok(result.removed),
            _ => Err(mismatch()),
        }
    }

    /// The daemon's state and the entries matching the filters (empty string: any).
    async fn status(
        &self,
        service: &str,
        account: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(Dict, Vec<Dict>), LatchkeyError> {
        let params = StatusParams {
            service: (!service.is_empty()).then(|| service.to_owned()),
            account: account_or_default(account),
        };
        match self.run(Call::Status(params), &header, connection).await? {
            Reply::Status(result) => Ok((
                encoded(latchkey_proto::dbus::daemon_info(&result.daemon))?,
                entries(&result.entries)?,
            )),
            _ => Err(mismatch()),
        }
    }

    /// Every entry's metadata.
    async fn list(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Vec<Dict>, LatchkeyError> {
        match self.run(Call::List, &header, connection).await? {
            Reply::List(result) => entries(&result.entries),
            _ => Err(mismatch()),
        }
    }

    /// Starts a login at `provider` (stored under that service name and `account`).
    /// `options` may hold `scopes` (as) and `device` (b). Returns `{login_id,
    /// authorization_url}` or, for a device login, `{login_id, verification_uri,
    /// verification_uri_complete?, user_code, expires_at}`.
    async fn login(
        &self,
        provider: &str,
        account: &str,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Dict, LatchkeyError> {
        let mut params = from_dict(&options)?;
        params["provider"] = Json::from(provider);
        if let Some(account) = account_or_default(account) {
            params["account"] = Json::from(account);
        }
        let params: LoginParams = serde_json::from_value(params).map_err(|_| {
            LatchkeyError::new(
                ErrorKind::InvalidRequest,
                "options may hold scopes (as) and device (b)",
            )
        })?;
        match self.run(Call::Login(params), &header, connection).await? {
            Reply::Login(started) => record(&started),
            _ => Err(mismatch()),
        }
    }

    /// Waits until the login completes and returns the stored entry's metadata (a long
    /// call: give it a timeout of up to ten minutes).
    async fn login_wait(
        &self,
        login_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Dict, LatchkeyError> {
        let params = LoginIdParams {
            login_id: login_id.to_owned(),
        };
        match self
            .run(Call::LoginWait(params), &header, connection)
            .await?
        {
            Reply::Entry(result) => metadata(&result.entry),
            _ => Err(mismatch()),
        }
    }

    /// Cancels a pending login; true if one was waiting.
    async fn login_cancel(
        &self,
        login_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<bool, LatchkeyError> {
        let params = LoginIdParams {
            login_id: login_id.to_owned(),
        };
        match self
            .run(Call::LoginCancel(params), &header, connection)
            .await?
        {
            Reply::Cancel(result) => Ok(result.cancelled),
            _ => Err(mismatch()),
        }
    }

    /// Revokes an entry's tokens at its provider, then removes it: `{removed (b), revocation
    /// (s: revoked, unconfirmed, unsupported or failed)}`.
    async fn logout(
        &self,
        service: &str,
        account: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Dict, LatchkeyError> {
        let params = KeyParams {
            service: service.to_owned(),
            account: account_or_default(account),
        };
        match self.run(Call::Logout(params), &header, connection).await? {
            Reply::Logout(result) => record(&result),
            _ => Err(mismatch()),
        }
    }

    /// Built-in and configured providers: `{name, builtin, configured, usable, flows,
    /// revocation, issuer?, client_secret, problem?}` each.
    async fn providers(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<Vec<Dict>, LatchkeyError> {
        match self.run(Call::Providers, &header, connection).await? {
            Reply::Providers(result) => result.providers.iter().map(record).collect(),
            _ => Err(mismatch()),
        }
    }

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        VERSION.to_owned()
    }

    /// The store in use (`secret-service`, `file`, `memory`); `latchkey migrate` changes it (without
    /// a signal: read it again).
    #[zbus(property(emits_changed_signal = "false"))]
    fn store(&self) -> String {
        self.handler.service().store_info().name.to_owned()
    }

    /// An entry was stored (`set`) or removed (`cleared`).
    #[zbus(signal)]
    pub async fn changed(
        emitter: &SignalEmitter<'_>,
        service: &str,
        account: &str,
        change: &str,
    ) -> zbus::Result<()>;
}
