//! The non-secret index of a persistent store: one JSON file of [`EntryRecord`]s, mode 0600,
//! rewritten atomically (temporary file, fsync, rename) on every change.
//!
//! It exists so that `status` and `list` can answer at start-up while the keychain is locked.
//! It is a cache, never the truth: a missing or unreadable file is replaced by an empty one,
//! and the store reconciles it with the keychain's own item list whenever it lists.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use latchkey_core::{EntryKey, EntryRecord};
use serde::{Deserialize, Serialize};
use tracing::warn;

const INDEX_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct IndexDocument {
    version: u32,
    entries: Vec<EntryRecord>,
}

/// The index file and its in-memory copy.
pub struct IndexFile {
    path: PathBuf,
    records: Mutex<BTreeMap<EntryKey, EntryRecord>>,
    /// Serializes file writes so the file always ends as the last state.
    writing: tokio::sync::Mutex<()>,
}

/// Why the index could not be written.
#[derive(Debug, thiserror::Error)]
#[error("could not write the index file {path}: {source}")]
pub struct IndexError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl IndexFile {
    /// Loads the index at `path`; a missing or unreadable file gives an empty index.
    pub fn load(path: PathBuf) -> Self {
        let records = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<IndexDocument>(&bytes) {
                Ok(doc) => doc
                    .entries
                    .into_iter()
                    .map(|r| (r.key.clone(), r))
                    .collect(),
                Err(_) => {
                    warn!(path = %path.display(), "index file unreadable; rebuilding it from the keychain");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "index file unreadable; rebuilding it from the keychain");
                BTreeMap::new()
            }
        };
        Self {
            path,
            records: Mutex::new(records),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn records(&self) -> MutexGuard<'_, BTreeMap<EntryKey, EntryRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `key`, if indexed.
    pub fn get(&self, key: &EntryKey) -> Option<EntryRecord> {
        self.records().get(key).cloned()
    }

    /// Every indexed record.
    pub fn all(&self) -> Vec<EntryRecord> {
        self.records().values().cloned().collect()
    }

    /// Adds or replaces a record and saves the file.
    pub async fn put(&self, record: EntryRecord) -> Result<(), IndexError> {
        self.records().insert(record.key.clone(), record);
        self.save().await
    }

    /// Removes a record and saves the file.
    pub async fn remove(&self, key: &EntryKey) -> Result<(), IndexError> {
        self.records().remove(key);
        self.save().await
    }

    /// Keeps only the records whose keys satisfy `keep`, saving if anything was dropped.
    pub async fn retain(&self, keep: impl Fn(&EntryKey) -> bool) -> Result<(), IndexError> {
        let changed = {
            let mut records = self.records();
            let before = records.len();
            records.retain(|k, _| keep(k));
            records.len() != before
        };
        if changed {
            self.save().await?;
        }
        Ok(())
    }

    async fn save(&self) -> Result<(), IndexError> {
        let _writing = self.writing.lock().await;
        let doc = IndexDocument {
            version: INDEX_VERSION,
            entries: self.all(),
        };
        let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        let path = Arc::new(self.path.clone());
        let target = Arc::clone(&path);
        tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| IndexError {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the new one.
///
/// The temporary file is created fresh (`O_EXCL`) and never through a link (`O_NOFOLLOW`), so
/// a link planted at its name cannot redirect the write.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let result = (|| {
        let mut file = match options.open(&tmp) {
            // Left by a crashed writer with our pid: remove it (the name, not what it points
            // at) and start again.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                options.open(&tmp)?
            }
            other => other?,
        };
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and parents) with mode 0700 for the new components.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use latchkey_proto::Kind;

    fn record(service: &str) -> EntryRecord {
        EntryRecord {
            key: EntryKey::new(service, None).unwrap(),
            kind: Kind::ApiKey,
            scopes: vec![],
            expires_at: None,
            has_refresh_token: false,
            provider: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            last_refreshed_at: None,
            needs_login: false,
        }
    }

    #[tokio::test]
    async fn survives_reload_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/index.json");
        let index = IndexFile::load(path.clone());
        index.put(record("a")).await.unwrap();
        index.put(record("b")).await.unwrap();
        index
            .remove(&EntryKey::new("a", None).unwrap())
            .await
            .unwrap();
        let again = IndexFile::load(path.clone());
        let services: Vec<_> = again
            .all()
            .iter()
            .map(|r| r.key.service().to_owned())
            .collect();
        assert_eq!(services, ["b"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[tokio::test]
    async fn corrupt_file_heals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let index = IndexFile::load(path.clone());
        assert!(index.all().is_empty());
        index.put(record("c")).await.unwrap();
        assert_eq!(IndexFile::load(path).all().len(), 1);
    }

    #[tokio::test]
    async fn retain_drops_missing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let index = IndexFile::load(path.clone());
        index.put(record("keep")).await.unwrap();
        index.put(record("gone")).await.unwrap();
        index.retain(|k| k.service() == "keep").await.unwrap();
        assert_eq!(IndexFile::load(path).all().len(), 1);
    }
}
