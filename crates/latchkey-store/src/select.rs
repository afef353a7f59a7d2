//! Choosing a store: `auto` takes the Secret Service when the session bus offers one, and
//! otherwise falls back to memory, saying so loudly.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use latchkey_core::{Store, StoreError};

use crate::memory::MemoryStore;

/// A backend the user can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The best one available.
    Auto,
    /// The Secret Service on the session bus (Linux).
    SecretService,
    /// Memory only: nothing persists.
    Memory,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "secret-service" => Ok(Backend::SecretService),
            "memory" => Ok(Backend::Memory),
            _ => Err("unknown store; use auto, secret-service or memory".to_owned()),
        }
    }
}

/// The store that was opened and why it was chosen.
pub struct Selection {
    /// The open store.
    pub store: Arc<dyn Store>,
    /// Why this one, for the start-up log.
    pub reason: String,
    /// Whether this is a fallback that will not keep entries (worth a warning).
    pub fallback: bool,
}

/// Opens the backend asked for. `data_dir` holds the index of persistent stores.
///
/// `Auto` never fails: without a usable Secret Service it returns the memory store with
/// `fallback` set. An explicit backend that cannot be opened is an error.
pub async fn open(backend: Backend, data_dir: PathBuf) -> Result<Selection, StoreError> {
    match backend {
        Backend::Memory => Ok(Selection {
            store: Arc::new(MemoryStore::new()),
            reason: "memory store requested".into(),
            fallback: false,
        }),
        Backend::SecretService => {
            let store = open_secret_service(data_dir).await?;
            Ok(Selection {
                store,
                reason: "Secret Service requested".into(),
                fallback: false,
            })
        }
        Backend::Auto => match open_secret_service(data_dir).await {
            Ok(store) => Ok(Selection {
                store,
                reason: "the session bus offers org.freedesktop.secrets".into(),
                fallback: false,
            }),
            Err(err) => Ok(Selection {
                store: Arc::new(MemoryStore::new()),
                reason: format!("no usable Secret Service ({err})"),
                fallback: true,
            }),
        },
    }
}

#[cfg(target_os = "linux")]
async fn open_secret_service(data_dir: PathBuf) -> Result<Arc<dyn Store>, StoreError> {
    use crate::index::IndexFile;
    use crate::secret_service::SecretServiceStore;

    if !secret_service_offered().await? {
        return Err(StoreError::Unavailable(
            "nothing on the session bus provides org.freedesktop.secrets".into(),
        ));
    }
    let index = IndexFile::load(data_dir.join("secret-service-index.json"));
    Ok(Arc::new(SecretServiceStore::connect(index).await?))
}

/// How long the session bus may take to answer a new connection. A live bus daemon answers in
/// milliseconds, even on a busy machine.
#[cfg(target_os = "linux")]
const BUS_ANSWER: std::time::Duration = std::time::Duration::from_millis(600);

/// Whether the session bus has, or can start, `org.freedesktop.secrets`.
#[cfg(target_os = "linux")]
async fn secret_service_offered() -> Result<bool, StoreError> {
    let unavailable = |e: zbus::Error| StoreError::Unavailable(format!("no session bus: {e}"));
    // A bus that accepts the connection but never answers must not hold up the daemon.
    let connection = tokio::time::timeout(BUS_ANSWER, zbus::Connection::session())
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "the session bus did not answer within {} ms",
                BUS_ANSWER.as_millis()
            ))
        })?
        .map_err(unavailable)?;
    let dbus = zbus::fdo::DBusProxy::new(&connection)
        .await
        .map_err(unavailable)?;
    let name = zbus::names::BusName::try_from("org.freedesktop.secrets")
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    if dbus.name_has_owner(name).await.unwrap_or(false) {
        return Ok(true);
    }
    let activatable = dbus.list_activatable_names().await.unwrap_or_default();
    Ok(activatable
        .iter()
        .any(|n| n.as_str() == "org.freedesktop.secrets"))
}

#[cfg(not(target_os = "linux"))]
async fn open_secret_service(_data_dir: PathBuf) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::Unavailable(
        "the Secret Service backend exists on Linux only".into(),
    ))
}
