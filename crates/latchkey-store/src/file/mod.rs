//! The encrypted file store (Unix): latchkey's own keychain for machines without a platform
//! one (headless servers, SSH sessions). `auto` picks it after the platform keychain.
//!
//! | file in `<data folder>/file-store/` (0700) | content |
//! |---|---|
//! | `naming.key` | 32 random bytes naming the entry files (module `naming`) |
//! | `identity.age` | the X25519 identity, an age file encrypted with the passphrase (module `keys`) |
//! | `recipient.txt` | its public recipient `age1...`, in plain text |
//! | `<64 hex digits>.age` | one entry's secret document, encrypted to the recipient (module `entry`) |
//! | `.tmp-<16 hex digits>` | a write in progress, or a crash's leftover (module `atomic`) |
//!
//! Every file is written whole through a temporary file and a rename (module `atomic`), so a crash
//! leaves the old document or the new one. The folder and its files are checked when the store
//! opens (module `folder`).
//!
//! The store encrypts to the recipient, so it writes while locked; it reads only with the
//! identity, which `latchkey unlock` decrypts with the passphrase and which then stays in
//! memory (zeroized when dropped) until `latchkey lock`, the idle timer (module `idle`) or the end of
//! the daemon. The first unlock chooses the passphrase and makes the key pair. Until then there
//! is no recipient and the store counts as locked: a write answers `Locked`, whose hint sends
//! the user to `latchkey unlock`, which (seeing no passphrase yet) asks for a new one twice.
//! `Locked` rather than `Refused`: it is the state the user is in (nothing can be stored until
//! an unlock), clients already handle it, and `status` says `locked` with `new_passphrase`.
//! Wrong passphrases cost a growing wait (module `throttle`). Removing an entry needs no key.
//!
//! The store cannot list its entries: a file's name is a keyed hash of the entry key, which
//! does not go back. So `list` answers `None` and the index beside the store
//! ([`IndexedStore`](crate::indexed::IndexedStore)) is the only listing.
//!
//! Recovery with the stock tool: `age -d identity.age > identity.txt` (asks for the
//! passphrase), then `age -d -i identity.txt FILE.age` prints an entry's document.

mod atomic;
mod entry;
mod folder;
mod idle;
mod keys;
mod naming;
#[cfg(test)]
mod tests;
mod throttle;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use age::x25519::{Identity, Recipient};
use latchkey_core::{EntryKey, SecretBytes, Store, StoreError, StoreFuture, Unlocking};
use latchkey_proto::Secret;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::keychain::Keychain;
use idle::IdleLock;
use keys::{Cost, UnsealError, IDENTITY_FILE, RECIPIENT_FILE};
use naming::Naming;
use throttle::Throttle;

pub use folder::folder_in;

/// What to say while no passphrase was chosen.
const NO_PASSPHRASE_YET: &str =
    "the file store has no passphrase yet: run `latchkey unlock` to choose one";

/// The encrypted file store's keychain.
pub struct FileKeychain {
    inner: Arc<Inner>,
}

/// The store's state, shared with its blocking calls and its idle timer.
struct Inner {
    /// The folder.
    dir: PathBuf,
    /// Names entry files.
    naming: Naming,
    /// The recipient new documents are encrypted to, once known (from `recipient.txt`, or
    /// from the identity).
    recipient: RwLock<Option<Recipient>>,
    /// The identity while unlocked. Readers clone the `Arc`, so a lock never waits for them.
    identity: RwLock<Option<Arc<Identity>>>,
    /// Held across a passphrase check: one at a time, and the wait after wrong ones.
    attempts: tokio::sync::Mutex<Throttle>,
    /// Locks after a while without reads, when asked to.
    idle: Option<IdleLock>,
    /// scrypt's work on the passphrase.
    cost: Cost,
}

fn failed(what: &str, path: &Path, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("cannot {what} {}: {err}", path.display()))
}

impl Inner {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether a passphrase was chosen (`identity.age` exists). A `stat`.
    fn passphrase_set(&self) -> bool {
        std::fs::symlink_metadata(self.path(IDENTITY_FILE)).is_ok()
    }

    fn identity(&self) -> Option<Arc<Identity>> {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops the identity; whether there was one.
    fn forget_identity(&self) -> bool {
        self.identity
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
    }

    /// The recipient to encrypt to. Blocking.
    fn recipient(&self) -> Result<Recipient, StoreError> {
        // No identity.age, no passphrase: whatever recipient.txt says, nobody could read it.
        if !self.passphrase_set() {
            info!("a write before the file store's passphrase was chosen: answering locked until `latchkey unlock` chooses one");
            return Err(StoreError::Locked);
        }
        if let Some(recipient) = self
            .recipient
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(recipient);
        }
        let recipient = match self.identity() {
            Some(identity) => identity.to_public(),
            None => match self.read_recipient()? {
                Some(recipient) => recipient,
                // A crash between identity.age and recipient.txt: the next unlock writes it.
                None => return Err(StoreError::Locked),
            },
        };
        *self
            .recipient
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(recipient.clone());
        Ok(recipient)
    }

    /// `recipient.txt`'s recipient, `None` if there is no such file. Blocking.
    fn read_recipient(&self) -> Result<Option<Recipient>, StoreError> {
        let path = self.path(RECIPIENT_FILE);
        let Some(text) = atomic::read_capped(&path, keys::MAX_RECIPIENT_FILE)
            .map_err(|e| failed("read", &path, e))?
        else {
            return Ok(None);
        };
        keys::parse_recipient(&text).map(Some).ok_or_else(|| {
            StoreError::Backend(format!(
                "{} does not hold an age recipient; `latchkey unlock` writes it again",
                path.display()
            ))
        })
    }

    /// `identity.age`'s content, `None` if there is none. Blocking.
    fn read_sealed_identity(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let path = self.path(IDENTITY_FILE);
        atomic::read_capped(&path, keys::MAX_IDENTITY_FILE).map_err(|e| failed("read", &path, e))
    }

    /// The identity in `identity.age`, with `passphrase`; `None` if the passphrase is wrong.
    /// Blocking: about a second.
    fn unseal(&self, passphrase: &Secret) -> Result<Option<Identity>, StoreError> {
        let Some(sealed) = self.read_sealed_identity()? else {
            return Err(StoreError::Refused(NO_PASSPHRASE_YET.into()));
        };
        match keys::unseal(&sealed, passphrase) {
            Ok(identity) => Ok(Some(identity)),
            Err(UnsealError::Wrong) => Ok(None),
            Err(UnsealError::Damaged(why)) => Err(StoreError::Backend(format!(
                "{} cannot be decrypted: {why}; restore it from a backup",
                self.path(IDENTITY_FILE).display()
            ))),
        }
    }

    /// Makes the key pair and seals it with `passphrase`, unless another process made one
    /// first. Blocking: about a second.
    fn create_identity(&self, passphrase: &Secret) -> Result<Identity, StoreError> {
        let identity = Identity::generate();
        let sealed = keys::seal(&identity, passphrase, self.cost)
            .map_err(|e| StoreError::Backend(format!("cannot encrypt the new identity: {e}")))?;
        let path = self.path(IDENTITY_FILE);
        if !atomic::create(&self.dir, IDENTITY_FILE, &sealed)
            .map_err(|e| failed("create", &path, e))?
        {
            return Err(StoreError::Refused(
                "another latchkey chose the file store's passphrase a moment ago: run `latchkey unlock` with that passphrase".into(),
            ));
        }
        info!(folder = %self.dir.display(), "file store passphrase chosen and key pair made");
        Ok(identity)
    }

    /// Takes `identity` as the store's: checks `recipient.txt` against it (writing it if it is
    /// missing or differs) and keeps the identity. Blocking.
    fn adopt(&self, identity: Identity) {
        let recipient = identity.to_public();
        let rewrite = match self.read_recipient() {
            Ok(Some(found)) => {
                if found != recipient {
                    warn!("recipient.txt did not match the identity (entries written while locked since it changed cannot be read); writing it again");
                }
                found != recipient
            }
            Ok(None) => true,
            Err(err) => {
                warn!(error = %err, "writing recipient.txt again");
                true
            }
        };
        if rewrite {
            let text = keys::recipient_file(&recipient);
            if let Err(err) = atomic::replace(&self.dir, RECIPIENT_FILE, text.as_bytes()) {
                // Writes use the recipient from memory meanwhile.
                warn!(error = %err, "cannot write recipient.txt");
            }
        }
        *self
            .recipient
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(recipient);
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(identity));
    }
}

/// Runs `op` on a blocking thread.
async fn blocking<T: Send + 'static>(
    inner: &Arc<Inner>,
    op: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || op(&inner))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Backend(format!(
                "a file store call failed: {e}"
            )))
        })
}

impl FileKeychain {
    /// Opens (creating if needed) the store in `dir`, locked. `lock_after`: lock again after
    /// that long without a read.
    pub async fn open(dir: PathBuf, lock_after: Option<Duration>) -> Result<Self, StoreError> {
        Self::open_with_cost(dir, lock_after, Cost::Calibrated).await
    }

    async fn open_with_cost(
        dir: PathBuf,
        lock_after: Option<Duration>,
        cost: Cost,
    ) -> Result<Self, StoreError> {
        let (dir, naming) = tokio::task::spawn_blocking(move || {
            folder::prepare(&dir)?;
            let naming = Naming::load_or_create(&dir)?;
            Ok::<_, StoreError>((dir, naming))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("opening the file store failed: {e}")))??;
        let inner = Arc::new(Inner {
            dir,
            naming,
            recipient: RwLock::new(None),
            identity: RwLock::new(None),
            attempts: tokio::sync::Mutex::new(Throttle::default()),
            idle: lock_after.map(IdleLock::new),
            cost,
        });
        info!(
            folder = %inner.dir.display(),
            passphrase_set = inner.passphrase_set(),
            "file store opened (locked)"
        );
        Ok(Self { inner })
    }

    /// The store's folder.
    pub fn folder(&self) -> &Path {
        &self.inner.dir
    }

    /// Starts the idle timer, if there is one.
    fn start_idle(&self) {
        if let Some(idle) = &self.inner.idle {
            let inner = Arc::downgrade(&self.inner);
            idle.start(move || {
                if let Some(inner) = inner.upgrade() {
                    inner.forget_identity();
                }
            });
        }
    }
}

impl Drop for FileKeychain {
    fn drop(&mut self) {
        if let Some(idle) = &self.inner.idle {
            idle.stop();
        }
    }
}

impl Keychain for FileKeychain {
    fn name(&self) -> &'static str {
        "file"
    }

    fn locked(&self) -> Option<bool> {
        Some(self.inner.identity().is_none())
    }

    /// Entry files are named by a keyed hash of the key, which does not go back: the index is
    /// the listing.
    fn list(&self) -> StoreFuture<'_, Option<Vec<EntryKey>>> {
        Box::pin(async { Ok(None) })
    }

    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        let name = self.inner.naming.file_name(key);
        let identity = self.inner.identity();
        if let (Some(_), Some(idle)) = (&identity, &self.inner.idle) {
            idle.touch();
        }
        Box::pin(blocking(&self.inner, move |inner| {
            let path = inner.path(&name);
            let Some(sealed) = atomic::read_capped(&path, entry::MAX_ENTRY_FILE)
                .map_err(|e| failed("read", &path, e))?
            else {
                return Ok(None);
            };
            let identity = identity.ok_or(StoreError::Locked)?;
            entry::open(&identity, &sealed).map(Some).map_err(|why| {
                StoreError::Backend(format!(
                    "the file store's entry file {} cannot be read: {why}",
                    path.display()
                ))
            })
        }))
    }

    fn write<'a>(&'a self, key: &'a EntryKey, document: &'a SecretBytes) -> StoreFuture<'a, ()> {
        let name = self.inner.naming.file_name(key);
        let document = document.clone();
        Box::pin(blocking(&self.inner, move |inner| {
            let recipient = inner.recipient()?;
            let sealed = entry::seal(&recipient, &document)
                .map_err(|e| StoreError::Backend(format!("cannot encrypt the entry: {e}")))?;
            atomic::replace(&inner.dir, &name, &sealed)
                .map_err(|e| failed("write", &inner.path(&name), e))
        }))
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        let name = self.inner.naming.file_name(key);
        Box::pin(blocking(&self.inner, move |inner| {
            atomic::remove(&inner.dir, &name).map_err(|e| failed("remove", &inner.path(&name), e))
        }))
    }

    fn unlocking(&self) -> Unlocking {
        Unlocking::Passphrase {
            set: self.inner.passphrase_set(),
        }
    }

    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret>, create: bool) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut throttle = self.inner.attempts.lock().await;
            let set = self.inner.passphrase_set();
            let Some(passphrase) = passphrase else {
                return match (set, self.inner.identity().is_some()) {
                    (false, _) => Err(StoreError::Refused(NO_PASSPHRASE_YET.into())),
                    (true, true) => Ok(()),
                    (true, false) => Err(StoreError::Refused(
                        "the file store opens with its passphrase: run `latchkey unlock` and type it".into(),
                    )),
                };
            };
            if !set {
                if !create {
                    return Err(StoreError::Refused(NO_PASSPHRASE_YET.into()));
                }
                if passphrase.is_empty() {
                    return Err(StoreError::Refused(
                        "an empty passphrase would protect nothing: choose one".into(),
                    ));
                }
                let passphrase = passphrase.clone();
                blocking(&self.inner, move |inner| {
                    let identity = inner.create_identity(&passphrase)?;
                    inner.adopt(identity);
                    Ok(())
                })
                .await?;
                throttle.succeeded();
                self.start_idle();
                return Ok(());
            }
            if create {
                return Err(StoreError::Refused(
                    "the file store has a passphrase already: run `latchkey unlock` to unlock it with that one, or `latchkey passwd` to change it".into(),
                ));
            }
            throttle.check(tokio::time::Instant::now())?;
            let passphrase = passphrase.clone();
            let unsealed = blocking(&self.inner, move |inner| {
                Ok(inner
                    .unseal(&passphrase)?
                    .map(|identity| inner.adopt(identity)))
            })
            .await?;
            if unsealed.is_none() {
                throttle.failed(tokio::time::Instant::now());
                warn!("wrong passphrase for the file store");
                return Err(StoreError::WrongPassphrase);
            }
            throttle.succeeded();
            self.start_idle();
            Ok(())
        })
    }

    fn lock(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if let Some(idle) = &self.inner.idle {
                idle.stop();
            }
            self.inner.forget_identity();
            Ok(())
        })
    }

    fn change_passphrase<'a>(&'a self, old: &'a Secret, new: &'a Secret) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut throttle = self.inner.attempts.lock().await;
            if !self.inner.passphrase_set() {
                return Err(StoreError::Refused(NO_PASSPHRASE_YET.into()));
            }
            if new.is_empty() {
                return Err(StoreError::Refused(
                    "an empty passphrase would protect nothing: choose another".into(),
                ));
            }
            throttle.check(tokio::time::Instant::now())?;
            let (old, new) = (old.clone(), new.clone());
            let changed = blocking(&self.inner, move |inner| {
                let Some(identity) = inner.unseal(&old)? else {
                    return Ok(false);
                };
                let sealed = keys::seal(&identity, &new, inner.cost).map_err(|e| {
                    StoreError::Backend(format!("cannot encrypt the identity: {e}"))
                })?;
                let path = inner.path(IDENTITY_FILE);
                atomic::replace(&inner.dir, IDENTITY_FILE, &sealed)
                    .map_err(|e| failed("write", &path, e))?;
                Ok(true)
            })
            .await?;
            if !changed {
                throttle.failed(tokio::time::Instant::now());
                warn!("wrong passphrase for the file store");
                return Err(StoreError::WrongPassphrase);
            }
            throttle.succeeded();
            info!(folder = %self.inner.dir.display(), "file store passphrase changed");
            Ok(())
        })
    }
}

/// Opens the file store in `data_dir`'s `file-store` folder, with its index beside the folder.
pub(crate) async fn open_store(options: crate::StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let keychain = FileKeychain::open(folder_in(&options.data_dir), options.lock_after).await?;
    let index = crate::registry::index_path(&options.data_dir, crate::Backend::File);
    Ok(Arc::new(crate::indexed::IndexedStore::new(keychain, index)))
}
