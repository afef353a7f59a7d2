//! What the disk may hold after a crash or an attack: leftover and torn temporary files,
//! planted links, files others can change, garbage where a file of the store should be.

use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use super::super::atomic::{self, ReadError, TEMP_PREFIX};
use super::*;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The path of the only entry file.
fn only_entry(root: &Path) -> PathBuf {
    let files = entry_files(root);
    assert_eq!(files.len(), 1, "{files:?}");
    folder(root).join(&files[0])
}

/// Makes `path`'s modification time an hour old.
fn age_an_hour(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    file.set_modified(hour_ago).unwrap();
}

async fn open_err(root: &Path) -> String {
    match FileKeychain::open_with_cost(folder(root), None, COST).await {
        Err(StoreError::Refused(message)) => message,
        Err(other) => panic!("not refused but {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[test]
fn a_link_planted_at_a_temporary_name_is_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    let planted = root.path().join(format!("{TEMP_PREFIX}0123456789abcdef"));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let err = atomic::create_synced(&planted, b"secret bytes").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    // A dangling link does not create its target either.
    let target = root.path().join("would-be-created");
    let dangling = root.path().join(format!("{TEMP_PREFIX}fedcba9876543210"));
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    assert!(atomic::create_synced(&dangling, b"secret bytes").is_err());
    assert!(!target.exists());
}

#[tokio::test]
async fn an_entry_file_turned_into_a_link_is_neither_read_nor_written_through() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    write(&store, "a", "doc a").await.unwrap();
    let entry = only_entry(root.path());
    let elsewhere = root.path().join("elsewhere.age");
    std::fs::rename(&entry, &elsewhere).unwrap();
    let before = std::fs::read(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    let err = read(&store, "a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("symbolic link")),
        "{err}"
    );
    // A write replaces the link itself.
    write(&store, "a", "doc a, new").await.unwrap();
    assert_eq!(std::fs::read(&elsewhere).unwrap(), before);
    assert!(!std::fs::symlink_metadata(&entry)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        read(&store, "a").await.unwrap().as_deref(),
        Some("doc a, new")
    );
}

#[tokio::test]
async fn a_folder_or_file_others_can_change_is_refused_by_name() {
    let root = tempfile::tempdir().unwrap();
    drop(created(root.path()).await);
    let dir = folder(root.path());

    set_mode(&dir, 0o777);
    let message = open_err(root.path()).await;
    assert!(
        message.contains(&dir.display().to_string()) && message.contains("chmod go-w"),
        "{message}"
    );
    set_mode(&dir, 0o700);

    let identity = dir.join(IDENTITY_FILE);
    set_mode(&identity, 0o620);
    let message = open_err(root.path()).await;
    assert!(
        message.contains(&identity.display().to_string()) && message.contains("0620"),
        "{message}"
    );
    set_mode(&identity, 0o600);

    let link = dir.join("planted");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let message = open_err(root.path()).await;
    assert!(
        message.contains(&link.display().to_string()) && message.contains("symbolic link"),
        "{message}"
    );
    std::fs::remove_file(&link).unwrap();

    // Only root can give a file away; as anyone else, `chown` is refused and the check is
    // covered by latchkey-paths' own tests.
    if latchkey_paths::effective_uid() == 0 {
        let recipient = dir.join(RECIPIENT_FILE);
        std::os::unix::fs::chown(&recipient, Some(65534), None).unwrap();
        let message = open_err(root.path()).await;
        assert!(
            message.contains(&recipient.display().to_string()) && message.contains("uid 65534"),
            "{message}"
        );
        std::os::unix::fs::chown(&recipient, Some(0), None).unwrap();
    }

    // A file of this user's own that the store does not know is left alone.
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    set_mode(&dir.join("notes.txt"), 0o644);
    let store = open(root.path()).await;
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_crash_at_any_point_of_a_write_leaves_the_old_document() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    write(&store, "a", "old").await.unwrap();
    let dir = folder(root.path());
    let entry = only_entry(root.path());
    // Crashed after the temporary file was complete, before the rename: a whole new file
    // under a temporary name.
    let complete = dir.join(format!("{TEMP_PREFIX}00000000000000aa"));
    std::fs::copy(&entry, &complete).unwrap();
    // Crashed while writing: a torn temporary file.
    let torn = dir.join(format!("{TEMP_PREFIX}00000000000000bb"));
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    // And one written just now, as by another daemon sharing the folder.
    let fresh = dir.join(format!("{TEMP_PREFIX}00000000000000cc"));
    std::fs::write(&fresh, b"in progress").unwrap();
    age_an_hour(&complete);
    age_an_hour(&torn);
    assert_eq!(read(&store, "a").await.unwrap().as_deref(), Some("old"));
    drop(store);

    let store = open(root.path()).await;
    assert!(
        !complete.exists() && !torn.exists(),
        "leftovers are removed"
    );
    assert!(fresh.exists(), "a write in progress is not");
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    assert_eq!(read(&store, "a").await.unwrap().as_deref(), Some("old"));
    write(&store, "a", "new").await.unwrap();
    assert_eq!(read(&store, "a").await.unwrap().as_deref(), Some("new"));
}

#[test]
fn a_failed_rename_leaves_the_target_and_no_temporary_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    // A non-empty folder where the file should go: the rename fails.
    std::fs::create_dir(dir.join("target")).unwrap();
    std::fs::write(dir.join("target/inside"), b"x").unwrap();
    assert!(atomic::replace(dir, "target", b"new").is_err());
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["target"]);
    atomic::replace(dir, "file", b"one").unwrap();
    atomic::replace(dir, "file", b"two").unwrap();
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"two");
    assert_eq!(mode(&dir.join("file")), 0o600);
}

#[tokio::test]
async fn a_damaged_entry_file_is_a_clear_error_without_its_bytes() {
    let root = tempfile::tempdir().unwrap();
    let store = created(root.path()).await;
    write(&store, "a", "doc a").await.unwrap();
    let entry = only_entry(root.path());
    let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
    let good = std::fs::read(&entry).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not an age file", b"garbage-canary-0123456789".to_vec()),
        ("not an age file", Vec::new()),
        ("damaged", good[..good.len() - 7].to_vec()),
        ("damaged", {
            let mut flipped = good.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            flipped
        }),
        (
            "another key",
            super::super::entry::seal(
                &age::x25519::Identity::generate().to_public(),
                b"other canary",
            )
            .unwrap(),
        ),
    ];
    for (expected, bytes) in cases {
        std::fs::write(&entry, &bytes).unwrap();
        let err = read(&store, "a").await.unwrap_err();
        let StoreError::Backend(message) = &err else {
            panic!("{expected}: {err}");
        };
        assert!(
            message.contains(expected) && message.contains(&name),
            "{expected}: {message}"
        );
        assert!(!message.contains("canary"), "{message}");
    }

    // Too large to be an entry: refused before reading (a sparse file, no disk used).
    std::fs::File::options()
        .write(true)
        .open(&entry)
        .unwrap()
        .set_len(super::super::entry::MAX_ENTRY_FILE + 1)
        .unwrap();
    let err = read(&store, "a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("more than")),
        "{err}"
    );

    // A FIFO would block a plain open: refused at once.
    std::fs::remove_file(&entry).unwrap();
    let c_path = std::ffi::CString::new(entry.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let err = read(&store, "a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("not a regular file")),
        "{err}"
    );
    assert!(matches!(
        atomic::read_capped(&entry, 10),
        Err(ReadError::NotRegular)
    ));

    // Writing the entry again heals it.
    std::fs::remove_file(&entry).unwrap();
    write(&store, "a", "doc a again").await.unwrap();
    assert_eq!(
        read(&store, "a").await.unwrap().as_deref(),
        Some("doc a again")
    );
}

#[tokio::test]
async fn a_damaged_identity_file_is_reported_and_costs_no_wait() {
    let root = tempfile::tempdir().unwrap();
    drop(created(root.path()).await);
    let identity = folder(root.path()).join(IDENTITY_FILE);
    for garbage in [&b"garbage"[..], b"", &[0u8; 20_000]] {
        std::fs::write(&identity, garbage).unwrap();
        let store = open(root.path()).await;
        let err = store
            .unlock(Some(&secret(PASSPHRASE)), false)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("identity.age")),
            "{err}"
        );
        // Not a wrong passphrase: the next attempt is checked at once.
        let again = store
            .unlock(Some(&secret(PASSPHRASE)), false)
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::Backend(_)), "{again}");
        assert_eq!(store.locked(), Some(true));
    }
}

#[tokio::test]
async fn a_missing_or_damaged_recipient_is_written_again_at_unlock() {
    let root = tempfile::tempdir().unwrap();
    drop(created(root.path()).await);
    let recipient = folder(root.path()).join(RECIPIENT_FILE);
    let good = std::fs::read(&recipient).unwrap();

    // As after a crash between identity.age and recipient.txt: no writing until an unlock.
    std::fs::remove_file(&recipient).unwrap();
    let store = open(root.path()).await;
    assert_eq!(write(&store, "a", "doc").await, Err(StoreError::Locked));
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&recipient).unwrap(), good);
    write(&store, "a", "doc").await.unwrap();

    std::fs::write(&recipient, b"age1garbage").unwrap();
    let store = open(root.path()).await;
    let err = write(&store, "b", "doc").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("recipient.txt")),
        "{err}"
    );
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&recipient).unwrap(), good);
    write(&store, "b", "doc b").await.unwrap();
    assert_eq!(read(&store, "b").await.unwrap().as_deref(), Some("doc b"));

    // Another key's recipient (a swapped file): replaced by the identity's own at unlock.
    let other = age::x25519::Identity::generate().to_public();
    std::fs::write(&recipient, format!("{other}\n")).unwrap();
    let store = open(root.path()).await;
    store
        .unlock(Some(&secret(PASSPHRASE)), false)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&recipient).unwrap(), good);
}

#[tokio::test]
async fn a_damaged_naming_key_stops_the_store_from_opening() {
    let root = tempfile::tempdir().unwrap();
    drop(created(root.path()).await);
    std::fs::write(folder(root.path()).join(NAMING_FILE), b"not 32 bytes").unwrap();
    match FileKeychain::open_with_cost(folder(root.path()), None, COST).await {
        Err(StoreError::Backend(m)) => assert!(m.contains("naming.key"), "{m}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened"),
    }
}
