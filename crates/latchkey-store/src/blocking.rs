//! Keychains whose library blocks (the `keyring` crate's Credential Manager and macOS
//! Keychain): a synchronous twin of [`Keychain`], and the adapter that runs its calls on
//! tokio's blocking threads so they never stall the daemon's workers.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use latchkey_core::{EntryKey, SecretBytes, StoreError, StoreFuture};

use crate::keychain::Keychain;

/// A keychain with blocking calls; see [`Keychain`] for what each one means.
pub trait BlockingKeychain: Send + Sync + 'static {
    /// The backend's name, as the `--store` flag spells it.
    fn name(&self) -> &'static str;

    /// The keys of every entry, or `None` (the default) when the keychain cannot enumerate.
    fn list(&self) -> Result<Option<Vec<EntryKey>>, StoreError> {
        Ok(None)
    }

    /// The secret document of an entry.
    fn read(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError>;

    /// Stores an entry's document whole (the old one stays if this fails).
    fn write(&self, key: &EntryKey, document: &[u8]) -> Result<(), StoreError>;

    /// Removes an entry's document; `true` if there was one.
    fn remove(&self, key: &EntryKey) -> Result<bool, StoreError>;
}

const UNKNOWN: u8 = 0;
const UNLOCKED: u8 = 1;
const LOCKED: u8 = 2;

/// Runs a [`BlockingKeychain`] on blocking threads. The lock state is what the last call
/// saw: `Locked` marks the keychain locked, any other answer unlocked.
pub struct OnBlockingThreads<B> {
    inner: Arc<B>,
    state: Arc<AtomicU8>,
}

impl<B: BlockingKeychain> OnBlockingThreads<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner: Arc::new(inner),
            state: Arc::new(AtomicU8::new(UNKNOWN)),
        }
    }

    /// The wrapped keychain, for calls that may block the current thread.
    pub fn blocking(&self) -> &B {
        &self.inner
    }

    /// Runs `op` on a blocking thread and notes what it says about the lock state.
    fn run<T, F>(&self, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&B) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let result = tokio::task::spawn_blocking(move || op(&inner))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::Backend(format!("a keychain call failed: {e}")))
                });
            match &result {
                Err(StoreError::Locked) => state.store(LOCKED, Ordering::SeqCst),
                Ok(_) | Err(StoreError::Backend(_)) => state.store(UNLOCKED, Ordering::SeqCst),
                Err(_) => {}
            }
            result
        })
    }
}

impl<B: BlockingKeychain> Keychain for OnBlockingThreads<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn locked(&self) -> Option<bool> {
        match self.state.load(Ordering::SeqCst) {
            UNLOCKED => Some(false),
            LOCKED => Some(true),
            _ => None,
        }
    }

    fn list(&self) -> StoreFuture<'_, Option<Vec<EntryKey>>> {
        self.run(|inner| inner.list())
    }

    fn read<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, Option<SecretBytes>> {
        let key = key.clone();
        self.run(move |inner| inner.read(&key))
    }

    fn write<'a>(&'a self, key: &'a EntryKey, document: &'a SecretBytes) -> StoreFuture<'a, ()> {
        let key = key.clone();
        let document = document.clone();
        self.run(move |inner| inner.write(&key, &document))
    }

    fn remove<'a>(&'a self, key: &'a EntryKey) -> StoreFuture<'a, bool> {
        let key = key.clone();
        self.run(move |inner| inner.remove(&key))
    }
}
