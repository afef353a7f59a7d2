//! Wrong passphrases, the wait they cost, and changing the passphrase.

use std::time::Duration;

use super::*;

async fn unlock(store: &FileKeychain, passphrase: &str) -> Result<(), StoreError> {
    store.unlock(Some(&secret(passphrase)), false).await
}

#[tokio::test(start_paused = true)]
async fn wrong_passphrases_cost_a_growing_wait_that_a_right_one_resets() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    store.lock().await.unwrap();
    let second = Duration::from_secs(1);

    assert_eq!(
        unlock(&store, "guess 1").await,
        Err(StoreError::WrongPassphrase)
    );
    assert_eq!(store.locked(), Some(true));
    // Within the wait even the right passphrase is not checked.
    assert_eq!(
        unlock(&store, PASSPHRASE).await,
        Err(StoreError::TooSoon { secs: 1 })
    );
    tokio::time::advance(second).await;
    assert_eq!(
        unlock(&store, "guess 2").await,
        Err(StoreError::WrongPassphrase)
    );
    assert_eq!(
        unlock(&store, "guess 3").await,
        Err(StoreError::TooSoon { secs: 2 })
    );
    tokio::time::advance(second).await;
    assert_eq!(
        unlock(&store, "guess 3").await,
        Err(StoreError::TooSoon { secs: 1 })
    );
    tokio::time::advance(second).await;
    assert_eq!(
        unlock(&store, "guess 3").await,
        Err(StoreError::WrongPassphrase)
    );
    assert_eq!(
        unlock(&store, "guess 4").await,
        Err(StoreError::TooSoon { secs: 4 })
    );
    // A passphrase change is checked and throttled the same way.
    assert_eq!(
        store
            .change_passphrase(&secret(PASSPHRASE), &secret("new"))
            .await,
        Err(StoreError::TooSoon { secs: 4 })
    );
    tokio::time::advance(4 * second).await;
    assert_eq!(
        store
            .change_passphrase(&secret("guess 4"), &secret("new"))
            .await,
        Err(StoreError::WrongPassphrase)
    );
    assert_eq!(
        unlock(&store, PASSPHRASE).await,
        Err(StoreError::TooSoon { secs: 8 })
    );
    tokio::time::advance(8 * second).await;
    unlock(&store, PASSPHRASE).await.unwrap();
    assert_eq!(store.locked(), Some(false));

    // Counting starts again.
    store.lock().await.unwrap();
    assert_eq!(
        unlock(&store, "guess 5").await,
        Err(StoreError::WrongPassphrase)
    );
    assert_eq!(
        unlock(&store, PASSPHRASE).await,
        Err(StoreError::TooSoon { secs: 1 })
    );
}

#[tokio::test(start_paused = true)]
async fn the_wait_stops_growing_at_a_minute() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    store.lock().await.unwrap();
    for wait in [1u64, 2, 4, 8, 16, 32, 60, 60] {
        assert_eq!(
            unlock(&store, "guess").await,
            Err(StoreError::WrongPassphrase)
        );
        assert_eq!(
            unlock(&store, "guess").await,
            Err(StoreError::TooSoon { secs: wait })
        );
        tokio::time::advance(Duration::from_secs(wait)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_passphrase_change_re_encrypts_the_identity_only() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    write(&store, "a", "doc a").await.unwrap();
    let entries_before: Vec<Vec<u8>> = entry_files(root.path())
        .iter()
        .map(|n| std::fs::read(folder(root.path()).join(n)).unwrap())
        .collect();
    let identity_before = std::fs::read(folder(root.path()).join(IDENTITY_FILE)).unwrap();
    let recipient_before = std::fs::read(folder(root.path()).join(RECIPIENT_FILE)).unwrap();

    let empty = store
        .change_passphrase(&secret(PASSPHRASE), &secret(""))
        .await
        .unwrap_err();
    assert!(
        matches!(&empty, StoreError::Refused(m) if m.contains("empty")),
        "{empty}"
    );
    store
        .change_passphrase(&secret(PASSPHRASE), &secret("a new one"))
        .await
        .unwrap();
    assert_eq!(
        store.locked(),
        Some(false),
        "the lock state does not change"
    );
    assert_ne!(
        std::fs::read(folder(root.path()).join(IDENTITY_FILE)).unwrap(),
        identity_before
    );
    assert_eq!(
        std::fs::read(folder(root.path()).join(RECIPIENT_FILE)).unwrap(),
        recipient_before
    );
    let entries_after: Vec<Vec<u8>> = entry_files(root.path())
        .iter()
        .map(|n| std::fs::read(folder(root.path()).join(n)).unwrap())
        .collect();
    assert_eq!(entries_after, entries_before);

    store.lock().await.unwrap();
    assert_eq!(
        unlock(&store, PASSPHRASE).await,
        Err(StoreError::WrongPassphrase)
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    unlock(&store, "a new one").await.unwrap();
    assert_eq!(read(&store, "a").await.unwrap().as_deref(), Some("doc a"));
    // A new instance agrees.
    let again = open(root.path()).await;
    unlock(&again, "a new one").await.unwrap();
    assert_eq!(read(&again, "a").await.unwrap().as_deref(), Some("doc a"));
}

#[tokio::test]
async fn no_passphrase_to_change_before_one_is_chosen() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path()).await;
    let err = store
        .change_passphrase(&secret("old"), &secret("new"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Refused(m) if m.contains("latchkey unlock")),
        "{err}"
    );
}

#[tokio::test]
async fn two_stores_on_one_folder_share_one_passphrase() {
    let root = tempfile::tempdir().unwrap();
    let one = open(root.path()).await;
    let two = open(root.path()).await;
    one.unlock(Some(&secret(PASSPHRASE)), true).await.unwrap();
    // The second one saw no passphrase when it opened; it sees one now.
    assert_eq!(two.unlocking(), Unlocking::Passphrase { set: true });
    let err = two.unlock(Some(&secret("mine")), true).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Refused(m) if m.contains("already")),
        "{err}"
    );
    write(&two, "from two", "doc").await.unwrap();
    assert_eq!(
        read(&one, "from two").await.unwrap().as_deref(),
        Some("doc")
    );
    // Creating a file that exists never replaces it.
    let dir = folder(root.path());
    let before = std::fs::read(dir.join(IDENTITY_FILE)).unwrap();
    assert!(!super::super::atomic::create(&dir, IDENTITY_FILE, b"other").unwrap());
    assert_eq!(std::fs::read(dir.join(IDENTITY_FILE)).unwrap(), before);
}
