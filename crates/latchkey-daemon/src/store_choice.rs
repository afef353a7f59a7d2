//! Which store the daemon opens, and the choice `latchkey migrate` leaves for the next start.
//!
//! The marker [`MARKER`] in the data folder names the store entries were last moved to and,
//! while that move has not removed everything from the store it left, which store that is
//! (`leaving`: running `migrate` to the same store again removes the leftovers). It is written
//! whole or not at all (a private temporary file, synced, renamed over it).
//!
//! At start-up the marker counts only when the store asked for is `auto`: an explicit
//! `--store` (or `[store] backend`) wins, with a warning when it differs. A marker that cannot
//! be read, that names a store this platform lacks, or whose store does not open, is reported,
//! and `auto` chooses as if there were none.
//!
//! [`open_backend`] is the daemon's one call into the store registry.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use latchkey_core::StoreError;
use latchkey_store::{Backend, Selection, StoreOptions};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// The marker's file name in the data folder.
pub const MARKER: &str = "store.json";

/// A marker larger than this was not written by latchkey.
const MAX_MARKER: u64 = 4096;

/// What the marker holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// The store entries were moved to (a `--store` name).
    pub store: String,
    /// The store they were moved from, while it may still hold some of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaving: Option<String>,
}

/// Why the marker could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarkerError {
    /// Reading failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The marker.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a marker latchkey wrote.
    #[error("{} is not a store choice latchkey wrote", path.display())]
    Invalid {
        /// The marker.
        path: PathBuf,
    },
    /// Writing failed; the marker is as it was.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The marker.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The marker's path in `data_dir`.
pub fn marker_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKER)
}

/// The choice recorded in `data_dir`, if any.
pub fn read(data_dir: &Path) -> Result<Option<Choice>, MarkerError> {
    let path = marker_path(data_dir);
    let failed = |source| MarkerError::Read {
        path: path.clone(),
        source,
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(failed(err)),
    };
    if !file.metadata().map_err(failed)?.is_file() {
        return Err(MarkerError::Invalid { path });
    }
    let mut text = Vec::new();
    file.take(MAX_MARKER + 1)
        .read_to_end(&mut text)
        .map_err(failed)?;
    if text.len() as u64 > MAX_MARKER {
        return Err(MarkerError::Invalid { path });
    }
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|_| MarkerError::Invalid { path })
}

/// Records `choice` in `data_dir`, replacing the marker whole.
pub fn write(data_dir: &Path, choice: &Choice) -> Result<(), MarkerError> {
    let path = marker_path(data_dir);
    let temporary = data_dir.join(format!("{MARKER}.tmp"));
    let failed = |source| MarkerError::Write {
        path: path.clone(),
        source,
    };
    // Left over by a crash while writing, or planted: never written through.
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(failed(err)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(failed)?;
    let text = serde_json::to_vec(choice).map_err(|e| failed(e.into()))?;
    let written = file
        .write_all(&text)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(err));
    }
    // The rename itself reaches the disk with the folder.
    #[cfg(unix)]
    if let Err(err) = std::fs::File::open(data_dir).and_then(|dir| dir.sync_all()) {
        warn!(error = %err, "cannot sync the data folder after recording the store");
    }
    Ok(())
}

/// Opens `backend`, its index in `data_dir`.
pub async fn open_backend(
    backend: Backend,
    options: &StoreOptions,
) -> Result<Selection, StoreError> {
    latchkey_store::open(backend, options.clone()).await
}

/// The store to start with when `backend` is asked for: the marker's when `backend` is `auto`
/// and the marker names one that opens; otherwise `backend` itself.
pub async fn open_at_start(
    backend: Backend,
    options: &StoreOptions,
) -> Result<Selection, StoreError> {
    let data_dir = options.data_dir.as_path();
    let note = match plan(backend, read(data_dir), data_dir) {
        Start::Asked(asked) => return open_backend(asked, options).await,
        Start::Marked { store, reason } => match open_backend(store, options).await {
            Ok(mut selection) => {
                selection.reason = reason;
                return Ok(selection);
            }
            Err(err) => {
                warn!(
                    store = store.name(),
                    error = %err,
                    "the store `latchkey migrate` moved the entries to does not open; choosing automatically"
                );
                Some(format!(
                    "the {} store `latchkey migrate` chose does not open",
                    store.name()
                ))
            }
        },
        Start::Auto { note } => note,
    };
    let mut selection = open_backend(Backend::Auto, options).await?;
    if let Some(note) = note {
        selection.reason = format!("{} ({note})", selection.reason);
    }
    Ok(selection)
}

/// What to open at start-up.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    /// The store asked for.
    Asked(Backend),
    /// The store the marker names, and why.
    Marked { store: Backend, reason: String },
    /// `auto`, with a note when a marker was passed over.
    Auto { note: Option<String> },
}

fn plan(backend: Backend, marker: Result<Option<Choice>, MarkerError>, data_dir: &Path) -> Start {
    let path = marker_path(data_dir);
    if backend != Backend::Auto {
        if let Ok(Some(choice)) = &marker {
            if choice.store != backend.name() {
                warn!(
                    asked = backend.name(),
                    marker = %path.display(),
                    "`latchkey migrate` moved the entries to another store; the store asked for wins"
                );
            }
        }
        return Start::Asked(backend);
    }
    let choice = match marker {
        Ok(Some(choice)) => choice,
        Ok(None) => return Start::Auto { note: None },
        Err(err) => {
            warn!(error = %err, "ignoring the store `latchkey migrate` recorded; choosing automatically");
            return Start::Auto {
                note: Some("the store `latchkey migrate` recorded is unreadable".into()),
            };
        }
    };
    match choice.store.parse::<Backend>() {
        Ok(store) if store != Backend::Auto && store.available() => {
            let mut reason = format!("moved here by `latchkey migrate` ({})", path.display());
            if let Some(old) = leftovers(&choice) {
                reason.push_str(&format!(
                    "; the {old} store may still hold copies: run `latchkey migrate --to {}` again to remove them",
                    store.name()
                ));
            }
            Start::Marked { store, reason }
        }
        _ => {
            warn!(
                marker = %path.display(),
                "the store `latchkey migrate` recorded does not exist on this platform; choosing automatically"
            );
            Start::Auto {
                note: Some("the store `latchkey migrate` recorded does not exist here".into()),
            }
        }
    }
}

/// The store a recorded move may have left copies in, if it is one this platform has.
fn leftovers(choice: &Choice) -> Option<&'static str> {
    let old = choice.leaving.as_deref()?.parse::<Backend>().ok()?;
    (old != Backend::Auto).then(|| old.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(store: &str, leaving: Option<&str>) -> Choice {
        Choice {
            store: store.into(),
            leaving: leaving.map(str::to_owned),
        }
    }

    #[test]
    fn a_choice_is_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &choice("memory", Some("secret-service"))).unwrap();
        assert_eq!(
            read(dir.path()).unwrap(),
            Some(choice("memory", Some("secret-service")))
        );
        // A temporary file left by a crash is replaced, not written through.
        std::fs::write(dir.path().join("store.json.tmp"), b"junk").unwrap();
        write(dir.path(), &choice("memory", None)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(choice("memory", None)));
        assert!(!dir.path().join("store.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(marker_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_marker_latchkey_did_not_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = marker_path(dir.path());
        for junk in [
            &b"not json"[..],
            br#"{"store":"memory","extra":1}"#,
            br#"{"leaving":"memory"}"#,
            &[b' '; 5000][..],
        ] {
            std::fs::write(&path, junk).unwrap();
            assert!(
                matches!(read(dir.path()), Err(MarkerError::Invalid { .. })),
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[tokio::test]
    async fn auto_follows_the_marker_and_an_explicit_store_wins() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &choice("memory", Some("secret-service"))).unwrap();
        let chosen = open_at_start(Backend::Auto, &StoreOptions::new(dir.path().to_owned()))
            .await
            .unwrap();
        assert_eq!(chosen.store.name(), "memory");
        assert!(
            chosen.reason.contains("moved here by `latchkey migrate`")
                && chosen.reason.contains("may still hold copies"),
            "{}",
            chosen.reason
        );
        let asked = open_at_start(Backend::Memory, &StoreOptions::new(dir.path().to_owned()))
            .await
            .unwrap();
        assert_eq!(asked.reason, "memory store requested");
    }

    #[test]
    fn a_marker_naming_an_unknown_store_or_unreadable_falls_back_to_auto() {
        let dir = tempfile::tempdir().unwrap();
        for store in ["keyutils", "auto", "\u{1b}[2J"] {
            let planned = plan(Backend::Auto, Ok(Some(choice(store, None))), dir.path());
            assert!(
                matches!(&planned, Start::Auto { note: Some(n) } if n.contains("does not exist here")),
                "{planned:?}"
            );
        }
        let unreadable = Err(MarkerError::Invalid {
            path: marker_path(dir.path()),
        });
        assert!(matches!(
            plan(Backend::Auto, unreadable, dir.path()),
            Start::Auto { note: Some(_) }
        ));
        assert_eq!(
            plan(Backend::Auto, Ok(None), dir.path()),
            Start::Auto { note: None }
        );
        assert_eq!(
            plan(
                Backend::Memory,
                Ok(Some(choice("keyutils", None))),
                dir.path()
            ),
            Start::Asked(Backend::Memory)
        );
    }
}
