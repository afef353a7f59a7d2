//! The non-secret index of a persistent store: the [`EntryRecord`]s of every entry, kept in a
//! snapshot file plus an append-only journal beside it, both mode 0600.
//!
//! A change appends one JSON line to the journal (`{"put":RECORD}` or `{"remove":KEY}`) and
//! fsyncs it, so a `set` costs the same with ten entries or ten thousand. When the journal
//! holds more lines than twice the live entries (and at least [`MIN_COMPACT_LINES`]), the whole
//! state is written to a new snapshot atomically (temporary file created fresh and never
//! through a link, fsync, rename) and the journal is emptied. A crash between those two steps
//! is harmless: replaying a journal over a snapshot that already includes it changes nothing.
//! A torn last line (a crash mid-append) is dropped on load and cut off before the next append.
//!
//! It exists so that `status` and `list` can answer at start-up while the keychain is locked.
//! It is a cache, never the truth: a missing or unreadable index is replaced by an empty one
//! (and [`IndexFile::trusted`] says so, so the store is asked for its item list first), and the
//! store reconciles it with the keychain's own item list whenever it lists. A version 1 index
//! (one pretty-printed snapshot, no journal) loads as is and is rewritten as version 2 on the
//! first change.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use latchkey_core::{EntryKey, EntryRecord};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

/// The snapshot format written now; version 1 (the same document, without a journal) loads.
const INDEX_VERSION: u32 = 2;

/// The journal is never compacted below this many lines, so small indexes are not rewritten
/// every few changes.
pub const MIN_COMPACT_LINES: usize = 64;

#[derive(Serialize, Deserialize)]
struct IndexDocument {
    version: u32,
    entries: Vec<Arc<EntryRecord>>,
}

/// One journal line.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    Put(Arc<EntryRecord>),
    Remove(EntryKey),
}

/// The index files and their in-memory copy.
pub struct IndexFile {
    path: PathBuf,
    journal_path: PathBuf,
    records: Mutex<BTreeMap<EntryKey, Arc<EntryRecord>>>,
    /// Whether the files were read whole (or a torn last line dropped); `false` when there was
    /// no index or it was unreadable.
    trusted: bool,
    /// Serializes file writes (and the memory changes they record) so the files always end
    /// as the last state.
    writing: tokio::sync::Mutex<Journal>,
}

/// The journal as the writer knows it.
#[derive(Default)]
struct Journal {
    /// Open for appending; `None` until the first append or after a failure.
    file: Option<File>,
    /// Lines in the journal (what compaction is measured by).
    lines: usize,
    /// Where the last whole line ends, when a torn tail must be cut off before appending.
    cut_at: Option<u64>,
    /// Whether the next write must rewrite the snapshot (an old format, a dropped tail).
    compact: bool,
}

/// Why the index could not be written.
#[derive(Debug, thiserror::Error)]
#[error("could not write the index file {path}: {source}")]
pub struct IndexError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What loading found.
struct Loaded {
    records: BTreeMap<EntryKey, Arc<EntryRecord>>,
    trusted: bool,
    journal: Journal,
}

/// Why the index on disk cannot be used.
enum Unreadable {
    Missing,
    Broken(String),
}

/// Reads the snapshot; `Missing` if there is none.
fn read_snapshot(path: &Path) -> Result<(BTreeMap<EntryKey, Arc<EntryRecord>>, u32), Unreadable> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unreadable::Missing),
        Err(e) => return Err(Unreadable::Broken(e.to_string())),
    };
    let doc = serde_json::from_slice::<IndexDocument>(&bytes)
        .map_err(|_| Unreadable::Broken("not an index document".into()))?;
    if doc.version == 0 || doc.version > INDEX_VERSION {
        return Err(Unreadable::Broken(format!(
            "unknown version {}",
            doc.version
        )));
    }
    let records = doc
        .entries
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    Ok((records, doc.version))
}

/// Replays the journal over `records`; the journal's state for the writer.
fn replay(
    path: &Path,
    records: &mut BTreeMap<EntryKey, Arc<EntryRecord>>,
) -> Result<Journal, Unreadable> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unreadable::Missing),
        Err(e) => return Err(Unreadable::Broken(e.to_string())),
    };
    let mut journal = Journal::default();
    let mut start = 0;
    while start < bytes.len() {
        let Some(len) = bytes[start..].iter().position(|&b| b == b'\n') else {
            // No newline: a line torn by a crash mid-append. Dropped, and cut off later.
            journal.cut_at = Some(start as u64);
            journal.compact = true;
            break;
        };
        let line = &bytes[start..start + len];
        match serde_json::from_slice::<Change>(line) {
            Ok(Change::Put(record)) => {
                records.insert(record.key.clone(), record);
            }
            Ok(Change::Remove(key)) => {
                records.remove(&key);
            }
            Err(_) => {
                return Err(Unreadable::Broken(format!(
                    "journal line {} unreadable",
                    journal.lines + 1
                )))
            }
        }
        journal.lines += 1;
        start += len + 1;
    }
    Ok(journal)
}

fn load_files(path: &Path, journal_path: &Path) -> Result<Loaded, Unreadable> {
    let (mut records, version, snapshot) = match read_snapshot(path) {
        Ok((records, version)) => (records, version, true),
        Err(Unreadable::Missing) => (BTreeMap::new(), INDEX_VERSION, false),
        Err(broken) => return Err(broken),
    };
    let mut journal = match replay(journal_path, &mut records) {
        Ok(journal) => journal,
        Err(Unreadable::Missing) if snapshot => Journal::default(),
        Err(why) => return Err(why),
    };
    journal.compact |= version < INDEX_VERSION;
    Ok(Loaded {
        records,
        trusted: true,
        journal,
    })
}

impl IndexFile {
    /// Loads the index at `path` (the snapshot; the journal is beside it, ending `.journal`).
    /// A missing or unreadable index gives an empty, untrusted one.
    pub fn load(path: PathBuf) -> Self {
        let journal_path = path.with_extension("journal");
        let loaded = match load_files(&path, &journal_path) {
            Ok(loaded) => loaded,
            Err(why) => {
                let broken = matches!(why, Unreadable::Broken(_));
                if let Unreadable::Broken(why) = why {
                    warn!(path = %path.display(), %why, "index unreadable; rebuilding it from the keychain");
                }
                Loaded {
                    records: BTreeMap::new(),
                    trusted: false,
                    // What is on disk is of no use: the first write replaces it whole.
                    journal: Journal {
                        compact: broken,
                        ..Journal::default()
                    },
                }
            }
        };
        debug!(
            entries = loaded.records.len(),
            journal_lines = loaded.journal.lines,
            trusted = loaded.trusted,
            "index loaded"
        );
        Self {
            path,
            journal_path,
            records: Mutex::new(loaded.records),
            trusted: loaded.trusted,
            writing: tokio::sync::Mutex::new(loaded.journal),
        }
    }

    /// Where the snapshot is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the index was read from disk whole: if not, it knows nothing yet and the
    /// keychain must be listed before its records are served.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    fn records(&self) -> MutexGuard<'_, BTreeMap<EntryKey, Arc<EntryRecord>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `key`, if indexed.
    pub fn get(&self, key: &EntryKey) -> Option<Arc<EntryRecord>> {
        self.records().get(key).cloned()
    }

    /// Every indexed record.
    pub fn all(&self) -> Vec<Arc<EntryRecord>> {
        self.records().values().cloned().collect()
    }

    /// Adds or replaces a record and records that in the journal.
    pub async fn put(&self, record: Arc<EntryRecord>) -> Result<(), IndexError> {
        let mut journal = self.writing.lock().await;
        let line = change_line(&Change::Put(record.clone()));
        self.records().insert(record.key.clone(), record);
        self.append(&mut journal, line).await
    }

    /// Removes a record and records that in the journal.
    pub async fn remove(&self, key: &EntryKey) -> Result<(), IndexError> {
        let mut journal = self.writing.lock().await;
        if self.records().remove(key).is_none() && !journal.compact {
            return Ok(());
        }
        let line = change_line(&Change::Remove(key.clone()));
        self.append(&mut journal, line).await
    }

    /// Keeps only the records whose keys satisfy `keep`; if anything was dropped, the snapshot
    /// is rewritten.
    pub async fn retain(&self, keep: impl Fn(&EntryKey) -> bool) -> Result<(), IndexError> {
        let mut journal = self.writing.lock().await;
        let changed = {
            let mut records = self.records();
            let before = records.len();
            records.retain(|k, _| keep(k));
            records.len() != before
        };
        if changed {
            journal.compact = true;
            self.append(&mut journal, Vec::new()).await?;
        }
        Ok(())
    }

    /// Appends `line` to the journal, or rewrites the snapshot when the journal has grown past
    /// twice the live entries (or must be rewritten anyway). Called with the writing lock held
    /// and the change already made in memory.
    async fn append(&self, journal: &mut Journal, line: Vec<u8>) -> Result<(), IndexError> {
        let live = self.records().len();
        let snapshot = if journal.compact || journal.lines + 1 > (2 * live).max(MIN_COMPACT_LINES) {
            let doc = IndexDocument {
                version: INDEX_VERSION,
                entries: self.all(),
            };
            Some(serde_json::to_vec(&doc).unwrap_or_default())
        } else {
            None
        };
        let mut state = std::mem::take(journal);
        let path = self.path.clone();
        let journal_path = self.journal_path.clone();
        let (state, result) = tokio::task::spawn_blocking(move || {
            let result = match snapshot {
                Some(bytes) => state.compact_to(&path, &journal_path, &bytes),
                None => state.append(&journal_path, &line),
            };
            (state, result)
        })
        .await
        .unwrap_or_else(|e| (Journal::default(), Err(std::io::Error::other(e))));
        *journal = state;
        result.map_err(|source| {
            // Whatever the files hold now, the next write rewrites them whole.
            journal.compact = true;
            journal.file = None;
            IndexError {
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// The journal line of a change, newline included.
fn change_line(change: &Change) -> Vec<u8> {
    let mut line = serde_json::to_vec(change).unwrap_or_default();
    line.push(b'\n');
    line
}

impl Journal {
    /// Opens the journal for appending: created 0600 if missing, never through a link.
    fn open(path: &Path) -> std::io::Result<File> {
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(path)?;
        // A new journal's name must survive a crash as well as its first line.
        sync_dir(dir)?;
        Ok(file)
    }

    /// Appends one line and makes it durable.
    fn append(&mut self, path: &Path, line: &[u8]) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            slot => slot.insert(Self::open(path)?),
        };
        if let Some(at) = self.cut_at.take() {
            file.set_len(at)?;
        }
        file.write_all(line)?;
        file.sync_data()?;
        self.lines += 1;
        Ok(())
    }

    /// Writes `snapshot` atomically, then empties the journal (which it includes).
    fn compact_to(&mut self, path: &Path, journal: &Path, snapshot: &[u8]) -> std::io::Result<()> {
        write_atomically(path, snapshot)?;
        let file = match &mut self.file {
            Some(file) => file,
            slot => slot.insert(Self::open(journal)?),
        };
        file.set_len(0)?;
        file.sync_all()?;
        self.lines = 0;
        self.cut_at = None;
        self.compact = false;
        Ok(())
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
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes the names in `dir` durable. On Windows a folder cannot be opened as a file and
/// NTFS journals its metadata itself, so there is nothing to do.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
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

    fn record(service: &str) -> Arc<EntryRecord> {
        crate::test_support::api_key_record(EntryKey::new(service, None).unwrap())
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
        // Force a snapshot too, so both files are checked.
        again.retain(|_| false).await.unwrap();
        again.put(record("b")).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for file in [&path, &path.with_extension("journal")] {
                let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", file.display());
            }
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
        assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
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

    fn services(index: &IndexFile) -> Vec<String> {
        index
            .all()
            .iter()
            .map(|r| r.key.service().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_change_appends_one_line_and_the_snapshot_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let index = IndexFile::load(path.clone());
        for i in 0..10 {
            index.put(record(&format!("s{i}"))).await.unwrap();
        }
        // Ten puts: ten journal lines, no snapshot yet.
        assert!(!path.exists());
        let journal = path.with_extension("journal");
        let text = std::fs::read_to_string(&journal).unwrap();
        assert_eq!(text.lines().count(), 10, "{text}");
        index.put(record("s3")).await.unwrap();
        index
            .remove(&EntryKey::new("s4", None).unwrap())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&journal).unwrap().lines().count(),
            12
        );
        let again = IndexFile::load(path);
        assert!(again.trusted());
        assert_eq!(services(&again).len(), 9);
        assert!(!services(&again).contains(&"s4".to_owned()));
    }

    #[tokio::test]
    async fn the_journal_is_compacted_past_twice_the_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let journal = path.with_extension("journal");
        let index = IndexFile::load(path.clone());
        // One entry written over and over: the journal never holds more than the minimum.
        for _ in 0..(3 * MIN_COMPACT_LINES) {
            index.put(record("busy")).await.unwrap();
            let lines = std::fs::read_to_string(&journal).unwrap().lines().count();
            assert!(lines <= MIN_COMPACT_LINES, "{lines} lines");
        }
        let snapshot: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(snapshot["version"], INDEX_VERSION);
        assert_eq!(services(&IndexFile::load(path)), ["busy"]);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let journal = path.with_extension("journal");
        let index = IndexFile::load(path.clone());
        index.put(record("whole")).await.unwrap();
        drop(index);
        // A crash in the middle of appending the second line.
        let torn = change_line(&Change::Put(record("torn")));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        file.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(file);

        let index = IndexFile::load(path.clone());
        assert!(index.trusted());
        assert_eq!(services(&index), ["whole"]);
        index.put(record("next")).await.unwrap();
        let again = IndexFile::load(path);
        assert!(again.trusted());
        assert_eq!(services(&again), ["next", "whole"]);
    }

    #[tokio::test]
    async fn a_broken_middle_line_makes_the_index_untrusted_until_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let journal = path.with_extension("journal");
        let mut text = String::from_utf8(change_line(&Change::Put(record("a")))).unwrap();
        text.push_str("{ not json\n");
        text.push_str(&String::from_utf8(change_line(&Change::Put(record("b")))).unwrap());
        std::fs::write(&journal, text).unwrap();
        let index = IndexFile::load(path.clone());
        assert!(!index.trusted());
        assert!(index.all().is_empty());
        index.put(record("c")).await.unwrap();
        let again = IndexFile::load(path);
        assert!(again.trusted());
        assert_eq!(services(&again), ["c"]);
    }

    #[tokio::test]
    async fn a_version_1_index_loads_and_is_rewritten_on_the_first_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let old = serde_json::json!({"version": 1, "entries": [record("old")]});
        std::fs::write(&path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
        let index = IndexFile::load(path.clone());
        assert!(index.trusted());
        assert_eq!(services(&index), ["old"]);
        index.put(record("new")).await.unwrap();
        let snapshot: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(snapshot["version"], INDEX_VERSION);
        assert_eq!(services(&IndexFile::load(path)), ["new", "old"]);
    }

    #[test]
    fn no_index_is_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!IndexFile::load(dir.path().join("index.json")).trusted());
    }
}
