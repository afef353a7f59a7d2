//! The Windows Credential Manager backend, through the `keyring` crate (`windows-native`).
//!
//! One generic credential per slot of the [`chunked`](crate::chunked) layout: the target name
//! is the slot's name (`latchkey:SERVICE/ACCOUNT`, chunks `...#GEN.I`), so entries are easy to
//! recognise in the Credential Manager window. A credential's blob holds at most 2,560 bytes;
//! the blob is written as raw bytes (`set_secret`, not the UTF-16 `set_password`, which would
//! halve the room), and bundles larger than one blob are chunked.
//!
//! Listing: `keyring` cannot enumerate credentials, and `CredEnumerate` is not used; the
//! store's index is the list (see [`IndexedStore`](crate::indexed::IndexedStore)). An entry
//! whose index record was lost is still read, written and removed by its key.
//!
//! `keyring` blocks, so the store runs it on blocking threads
//! ([`OnBlockingThreads`](crate::blocking::OnBlockingThreads)).

use latchkey_core::{SecretBytes, StoreError};
use zeroize::Zeroizing;

use crate::blocking::OnBlockingThreads;
use crate::chunked::{BlobSlots, Chunked};

/// The backend's name.
pub const NAME: &str = "credential-manager";

/// `CRED_MAX_CREDENTIAL_BLOB_SIZE`: 5 × 512 bytes.
pub const MAX_BLOB: usize = 2560;

/// The keychain the store is built on.
pub type CredentialManagerKeychain = OnBlockingThreads<Chunked<CredentialManagerSlots>>;

/// The keychain: chunked entries in generic credentials, on blocking threads.
pub fn keychain() -> CredentialManagerKeychain {
    OnBlockingThreads::new(Chunked::new(NAME, CredentialManagerSlots))
}

/// Generic credentials by target name.
pub struct CredentialManagerSlots;

fn entry(name: &str) -> Result<keyring::Entry, StoreError> {
    keyring::Entry::new_with_target(name, "latchkey", "latchkey").map_err(classify)
}

/// Turns a `keyring` failure into a store error, dropping any bytes it carries.
fn classify(err: keyring::Error) -> StoreError {
    match err {
        keyring::Error::NoStorageAccess(_) => {
            StoreError::Unavailable("Credential Manager refused access".into())
        }
        keyring::Error::PlatformFailure(e) => {
            let text = crate::error_text::bounded(e.to_string());
            StoreError::Backend(format!("Credential Manager: {text}"))
        }
        keyring::Error::BadEncoding(_) => {
            StoreError::Backend("Credential Manager returned an unreadable credential".into())
        }
        keyring::Error::TooLong(what, limit) => StoreError::Backend(format!(
            "Credential Manager: the {what} is longer than {limit}"
        )),
        other => {
            let text = crate::error_text::bounded(other.to_string());
            StoreError::Backend(format!("Credential Manager: {text}"))
        }
    }
}

impl BlobSlots for CredentialManagerSlots {
    fn max_blob(&self) -> usize {
        MAX_BLOB
    }

    fn get(&self, name: &str) -> Result<Option<SecretBytes>, StoreError> {
        match entry(name)?.get_secret() {
            Ok(blob) => Ok(Some(Zeroizing::new(blob))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(classify(err)),
        }
    }

    fn put(&self, name: &str, blob: &[u8]) -> Result<(), StoreError> {
        entry(name)?.set_secret(blob).map_err(classify)
    }

    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(err) => Err(classify(err)),
        }
    }
}

/// Whether Credential Manager answers: reading a credential that does not exist must say
/// "no such credential", not fail.
pub fn probe() -> Result<(), StoreError> {
    CredentialManagerSlots
        .get("latchkey:probe/probe")
        .map(|_| ())
}

/// These run against the real Credential Manager (on these machines: Wine's, which does not
/// enforce the blob limit itself, so the test reads back what was stored).
#[cfg(test)]
mod tests {
    use latchkey_core::{EntryKey, EntryRecord, Store};

    use super::*;
    use crate::chunked::{chunk_name, slot_name};
    use crate::indexed::IndexedStore;

    fn record(key: &EntryKey) -> std::sync::Arc<EntryRecord> {
        crate::test_support::api_key_record(key.clone())
    }

    /// The chunk sizes of `key`'s live generation, as Credential Manager returns them, after
    /// checking that no chunk of the next generation exists.
    fn stored_chunks(key: &EntryKey) -> Vec<usize> {
        let name = slot_name(key);
        let head = CredentialManagerSlots.get(&name).unwrap().expect("a head");
        assert!(head.len() <= MAX_BLOB);
        let line = std::str::from_utf8(&head[..head.iter().position(|&b| b == b'\n').unwrap()])
            .unwrap()
            .to_owned();
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words[..2], ["latchkey1", "chunks"], "{line}");
        let generation: u64 = words[2].parse().unwrap();
        let count: u32 = words[3].parse().unwrap();
        assert_eq!(
            CredentialManagerSlots
                .get(&chunk_name(&name, generation - 1, 0))
                .unwrap(),
            None,
            "the previous generation is deleted"
        );
        (0..count)
            .map(|i| {
                let chunk = CredentialManagerSlots.get(&chunk_name(&name, generation, i));
                chunk.unwrap().expect("every chunk").len()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bundles_of_6_and_64_kib_round_trip_in_blobs_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("credential-manager-index.json");
        let key = EntryKey::new(&format!("latchkey-test/{}", std::process::id()), None).unwrap();
        let store = IndexedStore::new(keychain(), index.clone());
        for len in [6 * 1024_usize, 64 * 1024] {
            let document: Vec<u8> = (0..len).map(|i| b'a' + (i % 23) as u8).collect();
            let document = Zeroizing::new(document);
            store.write(&key, &document, &record(&key)).await.unwrap();
            assert_eq!(store.read(&key).await.unwrap(), Some(document));
            let chunks = stored_chunks(&key);
            assert_eq!(chunks.len(), len.div_ceil(MAX_BLOB), "{len} bytes");
            assert!(chunks.iter().all(|&c| c <= MAX_BLOB), "{chunks:?}");
            assert_eq!(chunks.iter().sum::<usize>(), len);
        }
        // A restarted daemon finds the entry through its index and reads it back.
        drop(store);
        let store = IndexedStore::new(keychain(), index);
        let listed = store.indexed().expect("a trusted index");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            store.read(&key).await.unwrap().map(|d| d.len()),
            Some(64 * 1024)
        );
        assert!(store.remove(&key).await.unwrap());
        let name = slot_name(&key);
        assert_eq!(CredentialManagerSlots.get(&name).unwrap(), None);
        for generation in 1..=3 {
            assert_eq!(
                CredentialManagerSlots
                    .get(&chunk_name(&name, generation, 0))
                    .unwrap(),
                None
            );
        }
        assert_eq!(store.read(&key).await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_that_differ_only_by_case_keep_their_own_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let store = IndexedStore::new(keychain(), dir.path().join("index.json"));
        let pid = std::process::id();
        let upper = EntryKey::new(&format!("Case-{pid}"), Some("Me")).unwrap();
        let lower = EntryKey::new(&format!("case-{pid}"), Some("me")).unwrap();
        for (key, doc) in [(&upper, b"upper"), (&lower, b"lower")] {
            let doc = Zeroizing::new(doc.to_vec());
            store.write(key, &doc, &record(key)).await.unwrap();
        }
        let read = |key| store.read(key);
        assert_eq!(read(&upper).await.unwrap().unwrap().as_slice(), b"upper");
        assert_eq!(read(&lower).await.unwrap().unwrap().as_slice(), b"lower");
        assert!(store.remove(&upper).await.unwrap());
        assert_eq!(read(&lower).await.unwrap().unwrap().as_slice(), b"lower");
        assert!(store.remove(&lower).await.unwrap());
    }

    #[test]
    fn a_blob_over_the_limit_is_refused_before_it_reaches_credential_manager() {
        let name = format!("latchkey:test-over-limit/{}", std::process::id());
        assert!(CredentialManagerSlots
            .put(&name, &[b'x'; MAX_BLOB + 1])
            .is_err());
        assert_eq!(CredentialManagerSlots.get(&name).unwrap(), None);
        probe().unwrap();
    }
}
