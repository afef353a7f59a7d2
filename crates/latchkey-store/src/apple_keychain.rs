//! The macOS Keychain backend, through the `keyring` crate (`apple-native`).
//!
//! One generic password item per entry in the login keychain: service `latchkey:SERVICE`,
//! account `ACCOUNT`, the entry's document as the item's data. The Keychain has no small size
//! limit, so no chunking. Items are bound to the code signature of the binary that wrote them:
//! a rebuilt or unsigned daemon makes macOS ask again.
//!
//! Over SSH the Keychain refuses with `errSecInteractionNotAllowed` (-25308): that is a locked
//! keychain for latchkey ([`StoreError::Locked`]), not a failure (see
//! [`crate::keychain_status`], tested on every platform).
//!
//! Listing: `keyring` cannot enumerate items; the store's index is the list. `keyring` blocks,
//! so the store runs it on blocking threads.

use latchkey_core::{EntryKey, SecretBytes, StoreError};
use zeroize::Zeroizing;

use crate::blocking::{BlockingKeychain, OnBlockingThreads};
use crate::keychain_status::{classify as meaning, Failure};

/// The backend's name.
pub const NAME: &str = "keychain";

/// The keychain the store is built on.
pub type AppleKeychainOnThreads = OnBlockingThreads<AppleKeychain>;

/// The keychain, on blocking threads.
pub fn keychain() -> AppleKeychainOnThreads {
    OnBlockingThreads::new(AppleKeychain)
}

/// Generic password items of the login keychain.
pub struct AppleKeychain;

fn entry(key: &EntryKey) -> Result<keyring::Entry, StoreError> {
    keyring::Entry::new(&format!("latchkey:{}", key.service()), key.account()).map_err(classify)
}

/// The Security framework's status code inside a `keyring` error, if there is one.
fn status(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    err.downcast_ref::<security_framework::base::Error>()
        .map(|e| e.code())
}

/// Turns a `keyring` failure into a store error, dropping any bytes it carries; what it means
/// is decided in [`crate::keychain_status`].
fn classify(err: keyring::Error) -> StoreError {
    match err {
        keyring::Error::PlatformFailure(e) => meaning(Failure::Platform, status(e.as_ref())),
        keyring::Error::NoStorageAccess(e) => meaning(Failure::NoAccess, status(e.as_ref())),
        keyring::Error::BadEncoding(_) => meaning(Failure::BadEncoding, None),
        other => meaning(Failure::Other(other.to_string()), None),
    }
}

impl BlockingKeychain for AppleKeychain {
    fn name(&self) -> &'static str {
        NAME
    }

    fn read(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError> {
        match entry(key)?.get_secret() {
            Ok(document) => Ok(Some(Zeroizing::new(document))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(classify(err)),
        }
    }

    fn write(&self, key: &EntryKey, document: &[u8]) -> Result<(), StoreError> {
        entry(key)?.set_secret(document).map_err(classify)
    }

    fn remove(&self, key: &EntryKey) -> Result<bool, StoreError> {
        match entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(err) => Err(classify(err)),
        }
    }
}

/// Whether the Keychain answers: a missing item must read as missing. A locked keychain
/// (`Locked`) still counts as there.
pub fn probe() -> Result<(), StoreError> {
    let key = EntryKey::new("latchkey-probe", None)
        .map_err(|_| StoreError::Backend("probe key".into()))?;
    match AppleKeychain.read(&key) {
        Ok(_) | Err(StoreError::Locked) => Ok(()),
        Err(err) => Err(err),
    }
}
