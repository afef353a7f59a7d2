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
//! Several daemons of one user may share the keychain and the data folder; a refresh holds the
//! entry's lock file (see `refresh_lock`) from reading the entry to writing the new tokens.
//!
//! When the Secret Service goes away (the keyring daemon stops or restarts, taking the
//! encrypted session with it), calls fail as `Unavailable` and the connection is dropped; the
//! next call connects again, so the daemon recovers by itself when the service returns.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use latchkey_core::{
    EntryKey, EntryRecord, Listed, RefreshLock, SecretBytes, Store, StoreError, StoreFuture,
};
use oo7::dbus::{Collection, Error as SsError, ServiceError};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::index::IndexFile;

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

/// The Secret Service backend.
pub struct SecretServiceStore {
    /// The live connection; `None` after the service went away, until the next call.
    connection: tokio::sync::RwLock<Option<Arc<Connection>>>,
    index: IndexFile,
    /// The folder of the per-entry refresh locks, beside the index.
    locks: std::path::PathBuf,
    /// Held open for the store's life: marks this daemon as a user of the store.
    _joined: Option<std::fs::File>,
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
        other => {
            let mut text = other.to_string();
            text.truncate(200);
            StoreError::Backend(text)
        }
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

impl SecretServiceStore {
    /// Connects to the Secret Service on the session bus with an encrypted session, opens the
    /// default collection and loads the index at `index`.
    pub async fn connect(index: IndexFile) -> Result<Self, StoreError> {
        let locked = Arc::new(AtomicBool::new(false));
        let connection = open(&locked).await?;
        info!(
            locked = locked.load(Ordering::SeqCst),
            index = %index.path().display(),
            "connected to the Secret Service"
        );
        let locks = crate::refresh_lock::folder_for(index.path());
        Ok(Self {
            connection: tokio::sync::RwLock::new(Some(Arc::new(connection))),
            _joined: crate::refresh_lock::join(&locks),
            locks,
            index,
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

impl Store for SecretServiceStore {
    fn name(&self) -> &'static str {
        "secret-service"
    }

    fn persistent(&self) -> bool {
        true
    }

    fn locked(&self) -> Option<bool> {
        Some(self.locked.load(Ordering::SeqCst))
    }

    fn indexed(&self) -> Option<Vec<Listed>> {
        self.index.trusted().then(|| {
            self.index
                .all()
                .into_iter()
                .map(|r| Listed {
                    key: r.key.clone(),
                    record: Some(r),
                })
                .collect()
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<Listed>> {
        Box::pin(async move {
            let indexed = self.index.all();
            let listing = self
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
                .await;
            let items = match listing {
                Ok(items) => items,
                Err(err) => {
                    warn!(error = %err, "cannot list keychain items; serving the index as it is");
                    return Ok(indexed
                        .into_iter()
                        .map(|r| Listed {
                            key: r.key.clone(),
                            record: Some(r),
                        })
                        .collect());
                }
            };
            let mut present = HashSet::new();
            let mut listed = Vec::new();
            for attrs in items {
                let (Some(service), Some(account)) = (attrs.get("service"), attrs.get("account"))
                else {
                    continue;
                };
                let Ok(key) = EntryKey::new(service, Some(account)) else {
                    continue;
                };
                if !present.insert(key.clone()) {
                    continue;
                }
                let record = self.index.get(&key);
                listed.push(Listed { key, record });
            }
            if let Err(err) = self.index.retain(|k| present.contains(k)).await {
                warn!(error = %err, "could not prune the index");
            }
            Ok(listed)
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

    fn write<'a>(
        &'a self,
        key: &'a EntryKey,
        document: &'a SecretBytes,
        record: &'a EntryRecord,
    ) -> StoreFuture<'a, ()> {
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
            if let Err(err) = self.index.put(record.clone()).await {
                // The secret is stored; the index heals on the next listing.
                warn!(error = %err, "entry stored but the index was not updated");
            }
            Ok(())
        })
    }

    /// Another daemon of this user may share the keychain and the data folder: a lock file per
    /// entry beside the index.
    fn refresh_lock<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<RefreshLock>> {
        Box::pin(crate::refresh_lock::take(&self.locks, key))
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let removed = self
                .run(|c| async move {
                    let items = c.collection.search_items(&attributes(key)).await?;
                    for item in &items {
                        item.delete(None).await?;
                    }
                    Ok(!items.is_empty())
                })
                .await?;
            if let Err(err) = self.index.remove(key).await {
                warn!(error = %err, "entry removed but the index was not updated");
            }
            Ok(removed)
        })
    }
}
