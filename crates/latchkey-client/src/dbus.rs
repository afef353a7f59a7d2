//! The D-Bus side of the client: the same calls as the socket, made as method calls on
//! `dev.latchkey.Latchkey1`, with results turned back into the protocol's JSON records.

use std::collections::HashMap;

use latchkey_proto::dbus::{error_kind, from_dict, to_dict, Dict};
use latchkey_proto::{Call, ErrorData, PROTOCOL_VERSION};
use serde_json::{json, Value as Json};
use zbus::zvariant::OwnedValue;

use crate::{ClientError, DaemonError};

const NAME: &str = "dev.latchkey.Latchkey1";
const PATH: &str = "/dev/latchkey/Latchkey1";

/// A session-bus connection used to call latchkeyd.
#[derive(Debug)]
pub(crate) struct DbusConnection {
    connection: zbus::Connection,
}

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
        Call::Version | Call::List | Call::Providers => Ok(json!({})),
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
        Ok(Self { connection })
    }

    async fn method<B, R>(&self, method: &str, body: &B) -> Result<R, ClientError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        let reply = self
            .connection
            .call_method(Some(NAME), PATH, Some(NAME), method, body)
            .await
            .map_err(bus_error)?;
        reply
            .body()
            .deserialize()
            .map_err(|_| ClientError::Protocol)
    }

    /// Runs `call` and returns the result as the socket protocol would.
    pub(crate) async fn call(&self, call: Call) -> Result<Json, ClientError> {
        let (service, account, rest) = params(&call);
        Ok(match call {
            Call::Version => {
                let reply = self
                    .connection
                    .call_method(
                        Some(NAME),
                        PATH,
                        Some("org.freedesktop.DBus.Properties"),
                        "Get",
                        &(NAME, "Version"),
                    )
                    .await
                    .map_err(bus_error)?;
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
        })
    }
}
