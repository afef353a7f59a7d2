//! The Secret Service backend (gnome-keyring, KeePassXC, oo7-daemon...) through the `oo7`
//! client, on the daemon's own tokio runtime (the client is async, so nothing blocks it).
//!
//! One item per entry in the default collection, found by the attributes
//! `xdg:schema=dev.latchkey.Entry`, `service` and `account`, labelled for people as
//! `latchkey: SERVICE (ACCOUNT)`. The item's secret is the entry's JSON document. Writes use
//! `CreateItem` with `replace`, which swaps the secret of an existing item in one call, so a
//! failed write leaves the old secret in place.
//!
//! Reads, writes and listing never unlock the collection (that would prompt). The store
//! watches the collection's `Locked` property so that `locked()` is a cheap read. A read is
//! two calls, `SearchItems` and `GetSecret`, as an application reading the item with `oo7`
//! makes: a locked item answers `GetSecret` with `IsLocked`, so the item's `Locked` property is
//! not read first (reading a property of a fresh item proxy costs a match rule and a `GetAll`
//! on top of the `Get`).
//!
//! Only `latchkey unlock` unlocks, because the user asked: the service's `Unlock` of the
//! default collection, whose prompt (the keyring's own password dialog) is the one place a
//! prompt may appear ([`prompt`]). `latchkey lock` locks that collection with the service's
//! `Lock`: it is the only lock there is between latchkey's items and a reader, and the one
//! the desktop's own "lock keyring" uses; other applications using the collection find it
//! locked too, which is what a person who asks to lock their secrets expects.
//!
//! The service's presence on the bus is followed ([`presence`]): the moment it leaves, the
//! collection counts as locked ([`lock_state`] says why) and its connection is dropped; when a
//! new owner arrives, the store connects to it and reads its real lock state. A call made in
//! between connects by itself, so the daemon recovers without a restart.
//!
//! This is the raw keychain only; the index, its reconciliation and the refresh locks are
//! [`IndexedStore`](crate::indexed::IndexedStore)'s.

mod lock_state;
mod presence;
mod prompt;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use latchkey_core::{EntryKey, SecretBytes, StoreError, StoreFuture, Unlocking};
use latchkey_proto::Secret;
use oo7::dbus::{Collection, Error as SsError, ServiceError};
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::keychain::Keychain;
use lock_state::LockState;
use prompt::{Action, Answer};

/// The `xdg:schema` attribute that marks latchkey's items.
pub const SCHEMA: &str = "dev.latchkey.Entry";

/// The bus name of the Secret Service.
const SERVICE_NAME: &str = "org.freedesktop.secrets";

/// How long connecting to the Secret Service may take before the daemon gives up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a method call on the keychain's own bus connection may take (the prompt's answer
/// is waited for separately, for longer).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to the service: the encrypted session, the default collection, and the
/// task following its lock state.
struct Connection {
    // Keeps the session (and its key) alive for `collection`.
    _service: Arc<oo7::dbus::Service>,
    collection: Collection,
    /// The epoch it was made in; once the service left, it is stale.
    epoch: u64,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// What the keychain shares with its presence task.
struct Shared {
    /// The live connection; `None`, or one of an older epoch, after the service went away,
    /// until the service is back or the next call connects.
    connection: tokio::sync::RwLock<Option<Arc<Connection>>>,
    /// The collection's lock state and the service's epoch.
    lock: Arc<LockState>,
}

/// The Secret Service keychain.
pub struct SecretServiceKeychain {
    shared: Arc<Shared>,
    /// The keychain's own connection to the session bus, which outlives the service's
    /// restarts: it follows the service's owner and carries `Unlock`, `Lock` and prompts.
    bus: zbus::Connection,
    /// One prompt at a time: a second `unlock` waits, then finds the collection unlocked.
    prompting: tokio::sync::Mutex<()>,
    /// The presence task, aborted on drop.
    presence: tokio::task::JoinHandle<()>,
}

impl Drop for SecretServiceKeychain {
    fn drop(&mut self) {
        self.presence.abort();
    }
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
/// default collection; `lock` follows its lock state from then on, within the epoch the
/// connection is made in.
async fn open(lock: &Arc<LockState>) -> Result<Connection, StoreError> {
    let epoch = lock.epoch();
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
    lock.observe(epoch, is_locked);
    let watcher = tokio::spawn(watch_lock(
        Arc::clone(&service),
        collection.path().to_owned().into(),
        Arc::clone(lock),
        epoch,
    ));
    Ok(Connection {
        _service: service,
        collection,
        epoch,
        watcher,
    })
}

impl Shared {
    /// The live connection, connecting again if the last one was lost or belongs to a
    /// service that left.
    async fn connection(&self) -> Result<Arc<Connection>, StoreError> {
        let current = |slot: &Option<Arc<Connection>>| {
            slot.as_ref()
                .filter(|c| c.epoch == self.lock.epoch())
                .map(Arc::clone)
        };
        if let Some(connection) = current(&*self.connection.read().await) {
            return Ok(connection);
        }
        let mut slot = self.connection.write().await;
        if let Some(connection) = current(&slot) {
            return Ok(connection);
        }
        let connection = Arc::new(open(&self.lock).await?);
        info!(
            locked = self.lock.locked(),
            "connected to the Secret Service again"
        );
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Drops the connection now if no call is connecting; otherwise it is stale by its epoch
    /// and replaced by the next call.
    fn drop_connection(&self) {
        if let Ok(mut slot) = self.connection.try_write() {
            slot.take();
        }
    }
}

/// Connects to the session bus for the keychain's own use, within `BUS_ANSWER`.
async fn session_bus() -> Result<zbus::Connection, StoreError> {
    let unavailable = |e: zbus::Error| StoreError::Unavailable(format!("no session bus: {e}"));
    let building = zbus::connection::Builder::session()
        .map_err(unavailable)?
        .method_timeout(CALL_TIMEOUT)
        .build();
    // A bus that accepts the connection but never answers must not hold up the daemon.
    tokio::time::timeout(BUS_ANSWER, building)
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "the session bus did not answer within {} ms",
                BUS_ANSWER.as_millis()
            ))
        })?
        .map_err(unavailable)
}

impl SecretServiceKeychain {
    /// Connects to the Secret Service on the session bus with an encrypted session and opens
    /// the default collection.
    pub async fn connect() -> Result<Self, StoreError> {
        Self::connect_on(session_bus().await?).await
    }

    /// [`connect`](Self::connect), following the service's presence on `bus`.
    async fn connect_on(bus: zbus::Connection) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            connection: tokio::sync::RwLock::new(None),
            lock: Arc::new(LockState::new()),
        });
        let changes = presence::subscribe(&bus).await?;
        let first = open(&shared.lock).await?;
        *shared.connection.write().await = Some(Arc::new(first));
        info!(
            locked = shared.lock.locked(),
            "connected to the Secret Service"
        );
        let presence = tokio::spawn(presence::follow(Arc::clone(&shared), changes));
        Ok(Self {
            shared,
            bus,
            prompting: tokio::sync::Mutex::new(()),
            presence,
        })
    }

    /// Runs `op` on the live connection. A failure that means the service or its session is
    /// gone drops the connection; `op` then runs once more on a new one (a keyring that
    /// restarted while the daemon was idle costs nothing). Every operation here may run twice:
    /// reads, `CreateItem` with replace, deletes and reading the lock state are idempotent.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SsError>>,
    {
        let mut retried = false;
        loop {
            let connection = self.shared.connection().await?;
            let err = match op(Arc::clone(&connection)).await {
                Ok(value) => return Ok(value),
                Err(err) => classify(err),
            };
            if !matches!(err, StoreError::Unavailable(_)) {
                return Err(err);
            }
            {
                let mut slot = self.shared.connection.write().await;
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

    /// The live connection and the collection's lock state read from the service now
    /// (recorded as observed).
    async fn read_lock_state(&self) -> Result<(Arc<Connection>, bool), StoreError> {
        let (connection, locked) = self
            .run(|c| async move {
                let locked = c.collection.is_locked().await?;
                Ok((c, locked))
            })
            .await?;
        record(&self.shared.lock, connection.epoch, locked);
        Ok((connection, locked))
    }

    /// Asks the service to `action` the collection, one prompt at a time; the lock state
    /// afterwards, as read from the service.
    async fn ask(&self, action: Action) -> Result<(Answer, bool), StoreError> {
        let _one_prompt = self.prompting.lock().await;
        let (connection, locked) = self.read_lock_state().await?;
        if locked == (action == Action::Lock) {
            return Ok((Answer::Done, locked));
        }
        let answer = prompt::ask(
            &self.bus,
            action,
            connection.collection.path(),
            self.shared.lock.subscribe(),
        )
        .await?;
        let (_, locked) = self.read_lock_state().await?;
        Ok((answer, locked))
    }
}

/// Records the lock state read on a connection of `epoch`, saying so when it changed.
fn record(lock: &LockState, epoch: u64, locked: bool) {
    if lock.observe(epoch, locked) == Some(!locked) {
        info!(locked, "keychain lock state changed");
    }
}

/// Follows the collection's lock state through `CollectionChanged` signals, as observations
/// of `epoch`.
async fn watch_lock(
    service: Arc<oo7::dbus::Service>,
    path: zbus::zvariant::OwnedObjectPath,
    lock: Arc<LockState>,
    epoch: u64,
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
                record(&lock, epoch, now_locked);
            }
            Err(err) => debug!(error = %err, "could not read the keychain's lock state"),
        }
    }
}

impl Keychain for SecretServiceKeychain {
    fn name(&self) -> &'static str {
        "secret-service"
    }

    /// Locked as last observed, and locked from the moment the service leaves the bus until
    /// its successor says otherwise.
    fn locked(&self) -> Option<bool> {
        Some(self.shared.lock.locked())
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
                self.shared.lock.saw_locked();
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
                self.shared.lock.saw_locked();
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

    fn unlocking(&self) -> Unlocking {
        Unlocking::Keychain
    }

    /// Asks the service to unlock the default collection; its own prompt asks for the
    /// keyring's password, so latchkey takes none. A dismissed or unanswered prompt is
    /// `Locked`; a service that is gone is `Unavailable`.
    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret>, create: bool) -> StoreFuture<'a, ()> {
        // `create` chooses a passphrase of latchkey's: the keyring has its own.
        let _ = create;
        Box::pin(async move {
            if passphrase.is_some() {
                return Err(StoreError::Refused(
                    "the Secret Service keyring asks for its own password in its own prompt; \
                     unlock it without a passphrase"
                        .into(),
                ));
            }
            match self.ask(Action::Unlock).await? {
                (_, false) => Ok(()),
                (answer, true) => {
                    info!(
                        ?answer,
                        "the keyring is still locked after the unlock request"
                    );
                    Err(StoreError::Locked)
                }
            }
        })
    }

    /// Locks the default collection through the service (every application using it finds
    /// it locked until it is unlocked again).
    fn lock(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.ask(Action::Lock).await? {
                (_, true) => Ok(()),
                (answer, false) => Err(StoreError::Backend(format!(
                    "the Secret Service did not lock the collection ({})",
                    match answer {
                        Answer::Dismissed => "its prompt was dismissed",
                        Answer::Unanswered => "nobody answered its prompt",
                        Answer::Done => "it said it did, but it is still unlocked",
                    }
                ))),
            }
        })
    }
}

/// Opens the Secret Service store: the keychain, once the session bus offers the service, with
/// its index in `data_dir`.
pub(crate) async fn open_store(
    data_dir: std::path::PathBuf,
) -> Result<Arc<dyn latchkey_core::Store>, StoreError> {
    let bus = session_bus().await?;
    if !offered(&bus).await? {
        return Err(StoreError::Unavailable(
            "nothing on the session bus provides org.freedesktop.secrets".into(),
        ));
    }
    let keychain = SecretServiceKeychain::connect_on(bus).await?;
    let index = crate::registry::index_path(&data_dir, crate::Backend::SecretService);
    Ok(Arc::new(crate::indexed::IndexedStore::new(keychain, index)))
}

/// How long the session bus may take to answer a new connection. A live bus daemon answers in
/// milliseconds, even on a busy machine.
const BUS_ANSWER: Duration = Duration::from_millis(600);

/// Whether the session bus has, or can start, `org.freedesktop.secrets`.
async fn offered(bus: &zbus::Connection) -> Result<bool, StoreError> {
    let unavailable = |e: zbus::Error| StoreError::Unavailable(format!("no session bus: {e}"));
    let dbus = zbus::fdo::DBusProxy::new(bus).await.map_err(unavailable)?;
    let name = zbus::names::BusName::try_from(SERVICE_NAME)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    if dbus.name_has_owner(name).await.unwrap_or(false) {
        return Ok(true);
    }
    let activatable = dbus.list_activatable_names().await.unwrap_or_default();
    Ok(activatable.iter().any(|n| n.as_str() == SERVICE_NAME))
}
