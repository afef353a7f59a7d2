//! The file store's tests, on real files in temporary folders: entries and the lock here,
//! passphrases in [`passphrase`], what the disk may hold after a crash or an attack in
//! [`disk`].

mod disk;
mod passphrase;

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_core::{EntryKey, SecretBytes, StoreError, Unlocking};
use latchkey_proto::Secret;
use zeroize::Zeroizing;

use super::keys::{Cost, IDENTITY_FILE, RECIPIENT_FILE};
use super::naming::{is_entry_name, NAMING_FILE};
use super::FileKeychain;
use crate::keychain::Keychain;

/// A small scrypt work factor: milliseconds instead of a second per passphrase check.
const COST: Cost = Cost::Fixed(4);

const PASSPHRASE: &str = "correct horse battery staple";

fn key(service: &str) -> EntryKey {
    EntryKey::new(service, None).unwrap()
}

fn doc(text: &str) -> SecretBytes {
    Zeroizing::new(text.as_bytes().to_vec())
}

fn secret(text: &str) -> Secret {
    Secret::from(text)
}

/// The store's folder under a test's temporary folder.
fn folder(root: &Path) -> PathBuf {
    super::folder_in(root)
}

async fn open(root: &Path) -> FileKeychain {
    open_idle(root, None).await
}

async fn open_idle(root: &Path, lock_after: Option<Duration>) -> FileKeychain {
    FileKeychain::open_with_cost(folder(root), lock_after, COST)
        .await
        .unwrap()
}

/// A store whose passphrase is [`PASSPHRASE`], unlocked.
async fn created(root: &Path) -> FileKeychain {
    let store = open(root).await;
    store.unlock(Some(&secret(PASSPHRASE)), true).await.unwrap();
    store
}

async fn read(store: &FileKeychain, service: &str) -> Result<Option<String>, StoreError> {
    let found = store.read(&key(service)).await?;
    Ok(found.map(|d| String::from_utf8(d.to_vec()).unwrap()))
}

async fn write(store: &FileKeychain, service: &str, text: &str) -> Result<(), StoreError> {
    store.write(&key(service), &doc(text)).await
}

/// The names of the entry files in the store's folder.
fn entry_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder(root))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| is_entry_name(n))
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn the_first_unlock_chooses_the_passphrase_and_then_entries_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path()).await;
    assert_eq!(store.name(), "file");
    assert_eq!(store.locked(), Some(true));
    assert_eq!(store.unlocking(), Unlocking::Passphrase { set: false });
    assert_eq!(mode(&folder(root.path())), 0o700);
    assert_eq!(mode(&folder(root.path()).join(NAMING_FILE)), 0o600);

    // No passphrase, no recipient: nothing can be stored until an unlock chooses one.
    assert_eq!(
        write(&store, "github", "doc").await,
        Err(StoreError::Locked)
    );
    assert!(entry_files(root.path()).is_empty());
    assert_eq!(read(&store, "github").await, Ok(None));
    for (passphrase, create) in [(None, false), (None, true), (Some(PASSPHRASE), false)] {
        let err = store
            .unlock(passphrase.map(secret).as_ref(), create)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Refused(m) if m.contains("to choose one")),
            "{passphrase:?} {create}: {err}"
        );
    }
    let empty = store.unlock(Some(&secret("")), true).await.unwrap_err();
    assert!(
        matches!(&empty, StoreError::Refused(m) if m.contains("empty")),
        "{empty}"
    );
    assert_eq!(store.unlocking(), Unlocking::Passphrase { set: false });

    store.unlock(Some(&secret(PASSPHRASE)), true).await.unwrap();
    assert_eq!(store.locked(), Some(false));
    assert_eq!(store.unlocking(), Unlocking::Passphrase { set: true });
    for file in [IDENTITY_FILE, RECIPIENT_FILE] {
        assert_eq!(mode(&folder(root.path()).join(file)), 0o600, "{file}");
    }

    write(&store, "github", "{\"token\":\"gho_canary\"}")
        .await
        .unwrap();
    write(&store, "gitlab", "second").await.unwrap();
    write(&store, "gitlab", "second, again").await.unwrap();
    assert_eq!(
        read(&store, "github").await.unwrap().as_deref(),
        Some("{\"token\":\"gho_canary\"}")
    );
    assert_eq!(
        read(&store, "gitlab").await.unwrap().as_deref(),
        Some("second, again")
    );
    assert_eq!(read(&store, "nothing").await, Ok(None));
    let files = entry_files(root.path());
    assert_eq!(files.len(), 2, "one file per entry: {files:?}");
    for name in &files {
        let path = folder(root.path()).join(name);
        assert_eq!(mode(&path), 0o600);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n-> X25519 "));
        let shown = String::from_utf8_lossy(&bytes);
        assert!(!shown.contains("canary") && !shown.contains("second"));
        assert!(!name.contains("git"), "{name}");
    }

    // Choosing again, or unlocking without a passphrase, once one exists.
    let again = store
        .unlock(Some(&secret("another one")), true)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, StoreError::Refused(m) if m.contains("has a passphrase already")),
        "{again}"
    );
    store.unlock(None, false).await.unwrap();
    assert_eq!(store.locked(), Some(false));

    assert!(store.remove(&key("gitlab")).await.unwrap());
    assert!(!store.remove(&key("gitlab")).await.unwrap());
    assert_eq!(read(&store, "gitlab").await, Ok(None));
    assert_eq!(entry_files(root.path()).len(), 1);
    assert_eq!(store.list().await, Ok(None), "names do not go back to keys");
}

#[tokio::test]
async fn a_locked_store_writes_and_removes_but_reads_only_after_unlock() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    write(&store, "kept", "old").await.unwrap();
    write(&store, "gone", "bye").await.unwrap();
    store.lock().await.unwrap();
    assert_eq!(store.locked(), Some(true));
    assert_eq!(read(&store, "kept").await, Err(StoreError::Locked));
    // A missing entry is missing, locked or not.
    assert_eq!(read(&store, "never").await, Ok(None));
    write(&store, "new", "written while locked").await.unwrap();
    write(&store, "kept", "new").await.unwrap();
    assert!(store.remove(&key("gone")).await.unwrap());
    let unlocked_without = store.unlock(None, false).await.unwrap_err();
    assert!(
        matches!(&unlocked_without, StoreError::Refused(m) if m.contains("type it")),
        "{unlocked_without}"
    );
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    assert_eq!(
        read(&store, "new").await.unwrap().as_deref(),
        Some("written while locked")
    );
    assert_eq!(read(&store, "kept").await.unwrap().as_deref(), Some("new"));
    assert_eq!(read(&store, "gone").await, Ok(None));
    // Locking twice is fine.
    store.lock().await.unwrap();
    store.lock().await.unwrap();
    assert_eq!(store.locked(), Some(true));
}

#[tokio::test]
async fn a_new_instance_starts_locked_with_every_entry_intact() {
    let root = tempfile::tempdir().unwrap();
    let first = created(root.path()).await;
    write(&first, "a", "doc a").await.unwrap();
    drop(first);
    let second = open(root.path()).await;
    assert_eq!(second.locked(), Some(true));
    assert_eq!(second.unlocking(), Unlocking::Passphrase { set: true });
    assert_eq!(read(&second, "a").await, Err(StoreError::Locked));
    // recipient.txt lets it write before any unlock.
    write(&second, "b", "doc b").await.unwrap();
    second
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    assert_eq!(read(&second, "a").await.unwrap().as_deref(), Some("doc a"));
    assert_eq!(read(&second, "b").await.unwrap().as_deref(), Some("doc b"));
}

#[tokio::test]
async fn under_the_indexed_store_the_index_lists_what_the_files_cannot() {
    let root = tempfile::tempdir().unwrap();
    let selection = crate::open(
        crate::Backend::File,
        crate::StoreOptions::new(root.path().to_owned()),
    )
    .await
    .unwrap();
    let store = selection.store;
    store
        .unlock(Some(&secret(PASSPHRASE)), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let record = crate::test_support::api_key_record(key("listed"));
    store
        .write(&record.key, &doc("listed doc"), &record)
        .await
        .unwrap();
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key("listed"));
    store.lock().await.unwrap();
    assert_eq!(store.locked(), Some(true));
    assert_eq!(
        store.list().await.unwrap().len(),
        1,
        "listing needs no unlock"
    );
    drop(store);
    // A restarted daemon lists it from the index, locked.
    let again = crate::indexed::IndexedStore::new(
        open(root.path()).await,
        root.path().join("file-index.json"),
    );
    assert_eq!(latchkey_core::Store::locked(&again), Some(true));
    let listed = latchkey_core::Store::list(&again).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key("listed"));
}

#[tokio::test]
async fn the_age_library_decrypts_the_files_as_the_stock_tool_would() {
    use age::secrecy::SecretString;
    use std::io::Read;
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    let document = "{\"version\":1,\"bundle\":{\"kind\":\"api_key\",\"key\":\"sk-canary\"}}";
    write(&store, "openai", document).await.unwrap();

    // identity.age: an ordinary passphrase-encrypted age file holding an identity file.
    let sealed = std::fs::read(folder(root.path()).join(IDENTITY_FILE)).unwrap();
    let decryptor = age::Decryptor::new(&sealed[..]).unwrap();
    assert!(decryptor.is_scrypt());
    let passphrase = age::scrypt::Identity::new(SecretString::from(PASSPHRASE.to_owned()));
    let mut identity_file = Vec::new();
    decryptor
        .decrypt(std::iter::once(&passphrase as _))
        .unwrap()
        .read_to_end(&mut identity_file)
        .unwrap();
    let identities = age::IdentityFile::from_buffer(&identity_file[..])
        .unwrap()
        .into_identities()
        .unwrap();
    assert_eq!(identities.len(), 1);

    // recipient.txt matches it.
    let recipient = std::fs::read_to_string(folder(root.path()).join(RECIPIENT_FILE)).unwrap();
    let text = String::from_utf8(identity_file).unwrap();
    assert!(text.contains(&format!("# public key: {}", recipient.trim())));

    let [entry] = &entry_files(root.path())[..] else {
        panic!("one entry file");
    };
    let sealed = std::fs::read(folder(root.path()).join(entry)).unwrap();
    let decryptor = age::Decryptor::new(&sealed[..]).unwrap();
    let mut plain = Vec::new();
    decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as _))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, document.as_bytes());
}

#[tokio::test(start_paused = true)]
async fn an_idle_store_locks_itself_and_reads_keep_it_open() {
    let root = tempfile::tempdir().unwrap();
    let after = Duration::from_secs(60);
    let store = open_idle(root.path(), Some(after)).await;
    store.unlock(Some(&secret(PASSPHRASE)), true).await.unwrap();
    write(&store, "a", "doc").await.unwrap();

    /// Lets the idle timer's task run; whether the store is locked then.
    async fn settled(store: &FileKeychain) -> bool {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        store.locked() == Some(true)
    }

    tokio::time::advance(Duration::from_secs(50)).await;
    assert!(!settled(&store).await);
    // A read at 50 s moves the deadline to 110 s.
    assert_eq!(read(&store, "a").await.unwrap().as_deref(), Some("doc"));
    tokio::time::advance(Duration::from_secs(50)).await;
    assert!(!settled(&store).await, "read 50 s ago");
    // Writes need no key and do not count.
    write(&store, "a", "doc 2").await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(settled(&store).await, "60 s without a read");
    assert_eq!(read(&store, "a").await, Err(StoreError::Locked));

    // Unlocking starts the timer again; locking by hand stops it.
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(!settled(&store).await);
    store.lock().await.unwrap();
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(
        !settled(&store).await,
        "the new unlock counts from its own time"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(settled(&store).await);

    // Without `lock_after`, nothing locks by itself.
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    tokio::time::advance(Duration::from_secs(30 * 86_400)).await;
    assert!(!settled(&store).await);
}
