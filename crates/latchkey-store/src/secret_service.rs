//! The Secret Service backend (gnome-keyring, KeePassXC, oo7-daemon...) through the `oo7`
//! client, on the daemon's own tokio runtime (the client is async, so nothing blocks it).
//!
//! One item per entry in the default collection, found by the attributes
//! `xdg:schema=dev.latchkey.Entry`, `service` and `account`, labelled for people as
//! `latchkey: SERVICE (ACCOUNT)`. The item's secret is the entry's JSON document. Writes use
//! `CreateItem` with `replace`, which swaps the secret of an existing item in one call, so a
//! failed write leaves the old secret in place.
//!
//! The store never unlocks the collection (that would prompt). It watches the collection's
//! `Locked` property so that `locked()` is a cheap read. A read is two calls, `SearchItems` and
//! `GetSecret`, as an application reading the item with `oo7` makes: a locked item answers
//! `GetSecret` with `IsLocked`, so the item's `Locked` property is not read first (reading a
//! property of a fresh item proxy costs a match rule and a `GetAll` on top of the `Get`).
//!
//! This is the raw keychain only; the index, its reconciliation and the refresh locks are
//! [`IndexedStore`](crate::indexed::IndexedStore)'s.
//!
//! When the Secret Service goes away (the keyring daemon stops or restarts, taking the
//! encrypted session with it), calls fail as `Unavailable` and the connection is dropped; the
//! next call connects again, so the daemon recovers by itself when the service returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use latchkey_core::{EntryKey, SecretBytes, StoreError, StoreFuture};
use oo7::dbus::{Collection, Error as SsError, ServiceError};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::keychain::Keychain;

/// The `xdg:schema` attribute that marks latchkey's items.
pub const SCHEMA: &str = "dev.latchkey.Entry";

/// How long connecting to the Secret Service may take before the daemon gives up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to the service: the encrypted session, the default collection, and the
/// task following its lock state.
struct Connection {
    // Keeps the session (and its key) alive for `collection`.
    _service: Arc<oo7::dbus::Service>,
    collection: Collection,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The Secret Service keychain.
pub struct SecretServiceKeychain {
    /// The live connection; `None` after the service went away, until the next call.
    connection: tokio::sync::RwLock<Option<Arc<Connection>>>,
    locked: Arc<AtomicBool>,
}

fn attributes(key: &EntryKey) -> HashMap<&str, &str> {
    HashMap::from([
        ("xdg:schema", SCHEMA),
        ("service", key.service()),
        ("account", key.account()),
    ])
}

/// Turns a Secret Service failure into a store error. D-Bus error texts name objects, never
/// secrets, but they are shortened anyway.
fn classify(err: SsError) -> StoreError {
    match err {
        SsError::Service(ServiceError::IsLocked(_)) | SsError::Dismissed => StoreError::Locked,
        SsError::ZBus(zbus::Error::FDO(fdo))
        | SsError::Service(ServiceError::ZBus(zbus::Error::FDO(fdo))) => {
            StoreError::Unavailable(format!(
                "the Secret Service is not answering ({})",
                zbus::DBusError::name(&*fdo)
            ))
        }
        SsError::Service(ServiceError::NoSession(_)) => {
            StoreError::Unavailable("the Secret Service lost latchkey's session".into())
        }
        SsError::ZBus(zbus::Error::InputOutput(_))
        | SsError::Service(ServiceError::ZBus(zbus::Error::InputOutput(_))) => {
            StoreError::Unavailable("the connection to the Secret Service was lost".into())
        }
        SsError::ZBus(zbus::Error::MethodError(name, _, _))
        | SsError::Service(ServiceError::ZBus(zbus::Error::MethodError(name, _, _)))
            if name.starts_with("org.freedesktop.DBus.Error.") =>
        {
            StoreError::Unavailable(format!("the Secret Service is not answering ({name})"))
        }
        other => StoreError::Backend(crate::error_text::bounded(other.to_string())),
    }
}

/// Connects to the Secret Service on the session bus with an encrypted session and opens the
/// default collection; `locked` follows its lock state from then on.
async fn open(locked: &Arc<AtomicBool>) -> Result<Connection, StoreError> {
    let connecting = async {
        let service = Arc::new(oo7::dbus::Service::encrypted().await.map_err(classify)?);
        let collection = match service.with_alias("default").await.map_err(classify)? {
            Some(collection) => collection,
            None => {
                return Err(StoreError::Unavailable(
                    "the Secret Service has no default collection".into(),
                ))
            }
        };
        Ok::<_, StoreError>((service, collection))
    };
    let (service, collection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            StoreError::Unavailable("the Secret Service did not answer in time".into())
        })??;
    let is_locked = collection.is_locked().await.map_err(classify)?;
    locked.store(is_locked, Ordering::SeqCst);
    let watcher = tokio::spawn(watch_lock(
        Arc::clone(&service),
        collection.path().to_owned().into(),
        Arc::clone(locked),
    ));
    Ok(Connection {
        _service: service,
        collection,
        watcher,
    })
}

impl SecretServiceKeychain {
    /// Connects to the Secret Service on the session bus with an encrypted session and opens
    /// the default collection.
    pub async fn connect() -> Result<Self, StoreError> {
        let locked = Arc::new(AtomicBool::new(false));
        let connection = open(&locked).await?;
        info!(
            locked = locked.load(Ordering::SeqCst),
            "connected to the Secret Service"
        );
        Ok(Self {
            connection: tokio::sync::RwLock::new(Some(Arc::new(connection))),
            locked,
        })
    }

    /// The live connection, connecting again if the last one was lost.
    async fn connection(&self) -> Result<Arc<Connection>, StoreError> {
        if let Some(connection) = self.connection.read().await.as_ref() {
            return Ok(Arc::clone(connection));
        }
        let mut slot = self.connection.write().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(Arc::clone(connection));
        }
        let connection = Arc::new(open(&self.locked).await?);
        info!("connected to the Secret Service again");
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Runs `op` on the live connection. A failure that means the service or its session is
    /// gone drops the connection; `op` then runs once more on a new one (a keyring that
    /// restarted while the daemon was idle costs nothing). Every operation here may run twice:
    /// reads, `CreateItem` with replace, and deletes are idempotent.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SsError>>,
    {
        let mut retried = false;
        loop {
            let connection = self.connection().await?;
            let err = match op(Arc::clone(&connection)).await {
                Ok(value) => return Ok(value),
                Err(err) => classify(err),
            };
            if !matches!(err, StoreError::Unavailable(_)) {
                return Err(err);
            }
            {
                let mut slot = self.connection.write().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &connection)) {
                    *slot = None;
                    warn!(error = %err, "lost the Secret Service; connecting again");
                }
            }
            if retried {
                return Err(err);
            }
            retried = true;
        }
    }
}

/// Follows the collection's lock state through `CollectionChanged` signals.
async fn watch_lock(
    service: Arc<oo7::dbus::Service>,
    path: zbus::zvariant::OwnedObjectPath,
    locked: Arc<AtomicBool>,
) {
    let changes = match service.receive_collection_changed().await {
        Ok(changes) => changes,
        Err(err) => {
            warn!(error = %err, "cannot follow the keychain's lock state");
            return;
        }
    };
    let mut changes = std::pin::pin!(changes);
    while let Some(collection) = changes.next().await {
        if collection.path().as_str() != path.as_str() {
            continue;
        }
        match collection.is_locked().await {
            Ok(now_locked) => {
                let was = locked.swap(now_locked, Ordering::SeqCst);
                if was != now_locked {
                    info!(locked = now_locked, "keychain lock state changed");
                }
            }
            Err(err) => debug!(error = %err, "could not read the keychain's lock state"),
        }
    }
}

impl Keychain for SecretServiceKeychain {
    fn name(&self) -> &'static str {
        "secret-service"
    }

    fn locked(&self) -> Option<bool> {
        Some(self.locked.load(Ordering::SeqCst))
    }

    fn list(&self) -> StoreFuture<'_, Option<Vec<EntryKey>>> {
        Box::pin(async move {
            let items = self
                .run(|c| async move {
                    let items = c
                        .collection
                        .search_items(&HashMap::from([("xdg:schema", SCHEMA)]))
                        .await?;
                    let mut found = Vec::new();
                    for item in items {
                        match item.attributes().await {
                            Ok(attrs) => found.push(attrs),
                            Err(err) => debug!(error = %classify(err), "skipping an item whose attributes are unreadable"),
                        }
                    }
                    Ok(found)
                })
                .await?;
            let keys = items
                .iter()
                .filter_map(|attrs| {
                    let service = attrs.get("service")?;
                    EntryKey::new(service, Some(attrs.get("account")?)).ok()
                })
                .collect();
            Ok(Some(keys))
        })
    }

    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        Box::pin(async move {
            let found = self
                .run(|c| async move {
                    let items = c.collection.search_items(&attributes(key)).await?;
                    let Some(item) = items.first() else {
                        return Ok(None);
                    };
                    if items.len() > 1 {
                        warn!(entry = ?key, count = items.len(), "several keychain items for one entry; using the first");
                    }
                    let secret = item.secret().await?;
                    Ok(Some(Zeroizing::new(secret.as_bytes().to_vec())))
                })
                .await;
            if matches!(found, Err(StoreError::Locked)) {
                self.locked.store(true, Ordering::SeqCst);
            }
            found
        })
    }

    fn write<'a>(&'a self, key: &'a EntryKey, document: &'a SecretBytes) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let text = std::str::from_utf8(document)
                .map_err(|_| StoreError::Backend("the document is not UTF-8".into()))?;
            let label = format!("latchkey: {} ({})", key.service(), key.account());
            let label = &label;
            let written = self
                .run(|c| async move {
                    if c.collection.is_locked().await? {
                        return Ok(false);
                    }
                    c.collection
                        .create_item(label, &attributes(key), oo7::Secret::text(text), true, None)
                        .await?;
                    Ok(true)
                })
                .await?;
            if !written {
                self.locked.store(true, Ordering::SeqCst);
                return Err(StoreError::Locked);
            }
            Ok(())
        })
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.run(|c| async move {
                let items = c.collection.search_items(&attributes(key)).await?;
                for item in &items {
                    item.delete(None).await?;
                }
                Ok(!items.is_empty())
            })
            .await
        })
    }
}

/// Opens the Secret Service store: the keychain, once the session bus offers the service, with
/// its index in `data_dir`.
pub(crate) async fn open_store(
    data_dir: std::path::PathBuf,
) -> Result<Arc<dyn latchkey_core::Store>, StoreError> {
    if !offered().await? {
        return Err(StoreError::Unavailable(
            "nothing on the session bus provides org.freedesktop.secrets".into(),
        ));
    }
    let keychain = SecretServiceKeychain::connect().await?;
    let index = crate::registry::index_path(&data_dir, crate::Backend::SecretService);
    Ok(Arc::new(crate::indexed::IndexedStore::new(keychain, index)))
}

/// How long the session bus may take to answer a new connection. A live bus daemon answers in
/// milliseconds, even on a busy machine.
const BUS_ANSWER: Duration = Duration::from_millis(600);

/// Whether the session bus has, or can start, `org.freedesktop.secrets`.
async fn offered() -> Result<bool, StoreError> {
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
