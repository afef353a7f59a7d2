//! The D-Bus side of the client: the same calls as the socket, made as method calls on
//! `dev.latchkey.Latchkey1`, with results turned back into the protocol's JSON records.
//!
//! Before the first call the client asks the bus who owns the name (starting an activatable
//! daemon if nobody does) and which user that connection runs as; a name owned by another
//! user gets nothing. Calls then go to that owner's unique name, so the name cannot change
//! hands between the check and the call; if that owner has gone, the check runs again.

use std::collections::HashMap;

use latchkey_proto::dbus::{error_kind, from_dict, to_dict, Dict};
use latchkey_proto::{Call, ErrorData, PROTOCOL_VERSION};
use serde_json::{json, Value as Json};
use zbus::zvariant::OwnedValue;

use crate::{ClientError, DaemonError, Untrusted};

const NAME: &str = "dev.latchkey.Latchkey1";
const PATH: &str = "/dev/latchkey/Latchkey1";

/// A session-bus connection used to call latchkeyd.
#[derive(Debug)]
pub(crate) struct DbusConnection {
    connection: zbus::Connection,
    /// The unique name of the daemon's connection, once checked to be this user's.
    owner: std::sync::Mutex<Option<zbus::names::OwnedUniqueName>>,
}

const SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";

fn bus_error(err: zbus::Error) -> ClientError {
    match err {
        zbus::Error::MethodError(name, message, _) => match error_kind(name.as_str()) {
            Some(kind) => ClientError::Daemon(DaemonError {
                message: message.unwrap_or_default(),
                data: ErrorData::new(kind),
            }),
            None => ClientError::Bus(format!("{name}: {}", message.unwrap_or_default())),
        },
        zbus::Error::FDO(fdo) => ClientError::Bus(fdo.to_string()),
        other => ClientError::Bus(other.to_string()),
    }
}

/// The bus's "nobody has that name" answers mean the daemon is not running; anything else
/// (a refused or failed activation) is reported as the bus said it.
fn not_served(err: zbus::fdo::Error) -> ClientError {
    match err {
        zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
            ClientError::NotOnBus
        }
        other => ClientError::Bus(other.to_string()),
    }
}

fn params(call: &Call) -> (String, String, Json) {
    let value = match call {
        Call::Get(p) => serde_json::to_value(p),
        Call::Set(p) => serde_json::to_value(p),
        Call::Clear(p) => serde_json::to_value(p),
        Call::Status(p) => serde_json::to_value(p),
        Call::Login(p) => serde_json::to_value(p).map(|mut v| {
            // Login names its entry by provider.
            if let Some(o) = v.as_object_mut() {
                if let Some(provider) = o.remove("provider") {
                    o.insert("service".into(), provider);
                }
            }
            v
        }),
        Call::LoginWait(p) | Call::LoginCancel(p) => serde_json::to_value(p),
        Call::Logout(p) => serde_json::to_value(p),
        Call::ProviderSecret(p) => serde_json::to_value(p),
        Call::Version
        | Call::List
        | Call::Providers
        | Call::Unlock(_)
        | Call::Lock
        | Call::Passwd(_)
        | Call::Migrate(_)
        | Call::Reload
        | Call::Authenticate(_)
        | Call::GrantCreate(_)
        | Call::GrantList
        | Call::GrantRevoke(_) => Ok(json!({})),
    };
    let mut value = value.unwrap_or_else(|_| json!({}));
    let mut take = |field: &str| {
        value
            .as_object_mut()
            .and_then(|o| o.remove(field))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let service = take("service");
    let account = take("account");
    (service, account, value)
}

fn dict(json: &Json) -> Result<Dict, ClientError> {
    to_dict(json).map_err(|_| ClientError::Protocol)
}

fn record(dict: &HashMap<String, OwnedValue>) -> Result<Json, ClientError> {
    from_dict(dict).map_err(|_| ClientError::Protocol)
}

fn records(dicts: &[HashMap<String, OwnedValue>]) -> Result<Json, ClientError> {
    Ok(Json::Array(
        dicts.iter().map(record).collect::<Result<_, _>>()?,
    ))
}

impl DbusConnection {
    pub(crate) async fn session() -> Result<Self, ClientError> {
        let connection = zbus::Connection::session().await.map_err(bus_error)?;
        Ok(Self {
            connection,
            owner: std::sync::Mutex::new(None),
        })
    }

    /// The daemon's unique name, checked to run as this user.
    async fn verified_owner(&self) -> Result<zbus::names::OwnedUniqueName, ClientError> {
        if let Some(owner) = self.owner.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(owner);
        }
        let fdo = |e: zbus::fdo::Error| ClientError::Bus(e.to_string());
        let dbus = zbus::fdo::DBusProxy::new(&self.connection)
            .await
            .map_err(bus_error)?;
        let name = zbus::names::BusName::try_from(NAME).map_err(|e| bus_error(e.into()))?;
        let owner = match dbus.get_name_owner(name.clone()).await {
            Ok(owner) => owner,
            Err(zbus::fdo::Error::NameHasNoOwner(_)) => {
                let well_known =
                    zbus::names::WellKnownName::try_from(NAME).map_err(|e| bus_error(e.into()))?;
                // No activation file names the daemon: it is simply not running. A daemon that
                // was activated but left at once is the same to the user.
                dbus.start_service_by_name(well_known, 0)
                    .await
                    .map_err(not_served)?;
                dbus.get_name_owner(name).await.map_err(not_served)?
            }
            Err(e) => return Err(fdo(e)),
        };
        let uid = dbus
            .get_connection_unix_user(owner.clone().into())
            .await
            .map_err(fdo)?;
        if !latchkey_paths::is_own_uid(uid) {
            return Err(ClientError::Untrusted(Untrusted::BusOwner {
                owner: latchkey_paths::User(uid),
            }));
        }
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = Some(owner.clone());
        Ok(owner)
    }

    /// Calls `interface.method` on the checked owner; once more after a fresh check if that
    /// owner has left the bus (a restarted daemon).
    async fn raw_call<B>(
        &self,
        interface: &str,
        method: &str,
        body: &B,
    ) -> Result<zbus::Message, ClientError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        for attempt in 0..2 {
            let owner = self.verified_owner().await?;
            match self
                .connection
                .call_method(Some(owner), PATH, Some(interface), method, body)
                .await
            {
                Err(zbus::Error::MethodError(name, _, _))
                    if attempt == 0 && name.as_str() == SERVICE_UNKNOWN =>
                {
                    *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                other => return other.map_err(bus_error),
            }
        }
        Err(ClientError::Bus("latchkeyd left the session bus".into()))
    }

    async fn method<B, R>(&self, method: &str, body: &B) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        let reply = self.raw_call(NAME, method, body).await?;
        reply
            .body()
            .deserialize()
            .map_err(|_| ClientError::Protocol)
    }

    /// Runs `call` and returns the result as the socket protocol would.
    pub(crate) async fn call(&self, call: Call) -> Result<Json, ClientError> {
        // D-Bus `Get` has no proxy option: sent there, the daemon would check the grant for
        // `get` instead of `proxy`.
        if matches!(&call, Call::Get(p) if p.proxy) {
            return Err(ClientError::Unsupported("a proxied get over D-Bus"));
        }
        let (service, account, rest) = params(&call);
        Ok(match call {
            Call::Version => {
                let reply = self
                    .raw_call("org.freedesktop.DBus.Properties", "Get", &(NAME, "Version"))
                    .await?;
                let version: OwnedValue = reply
                    .body()
                    .deserialize()
                    .map_err(|_| ClientError::Protocol)?;
                let version: String =
                    String::try_from(version).map_err(|_| ClientError::Protocol)?;
                json!({ "version": version, "protocol": PROTOCOL_VERSION })
            }
            Call::Get(_) => {
                let reply: Dict = self
                    .method("Get", &(service, account, dict(&rest)?))
                    .await?;
                record(&reply)?
            }
            Call::Set(_) => {
                let bundle = rest.get("bundle").cloned().unwrap_or_default();
                let reply: Dict = self
                    .method("Set", &(service, account, dict(&bundle)?))
                    .await?;
                json!({ "entry": record(&reply)? })
            }
            Call::Clear(_) => {
                let removed: bool = self.method("Clear", &(service, account)).await?;
                json!({ "removed": removed })
            }
            Call::Status(_) => {
                let (daemon, entries): (Dict, Vec<Dict>) =
                    self.method("Status", &(service, account)).await?;
                json!({ "daemon": record(&daemon)?, "entries": records(&entries)? })
            }
            Call::List => {
                let entries: Vec<Dict> = self.method("List", &()).await?;
                json!({ "entries": records(&entries)? })
            }
            Call::Login(_) => {
                let reply: Dict = self
                    .method("Login", &(service, account, dict(&rest)?))
                    .await?;
                record(&reply)?
            }
            Call::LoginWait(p) => {
                let reply: Dict = self.method("LoginWait", &(p.login_id.as_str(),)).await?;
                json!({ "entry": record(&reply)? })
            }
            Call::LoginCancel(p) => {
                let cancelled: bool = self.method("LoginCancel", &(p.login_id.as_str(),)).await?;
                json!({ "cancelled": cancelled })
            }
            Call::Logout(_) => {
                let reply: Dict = self.method("Logout", &(service, account)).await?;
                record(&reply)?
            }
            Call::Providers => {
                let providers: Vec<Dict> = self.method("Providers", &()).await?;
                json!({ "providers": records(&providers)? })
            }
            Call::ProviderSecret(_) => {
                return Err(ClientError::Bus(
                    "client secrets are set over the socket only (latchkey --transport socket)"
                        .into(),
                ))
            }
            Call::Unlock(_)
            | Call::Lock
            | Call::Passwd(_)
            | Call::Migrate(_)
            | Call::Reload
            | Call::Authenticate(_)
            | Call::GrantCreate(_)
            | Call::GrantList
            | Call::GrantRevoke(_) => {
                return Err(ClientError::Bus(format!(
                    "{} is served over the socket only (latchkey --transport socket)",
                    call.method()
                )))
            }
        })
    }
}
