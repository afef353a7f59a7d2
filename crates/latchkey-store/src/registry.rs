//! Which stores this platform has, and what `auto` means here.
//!
//! Each platform lists its backends in `PLATFORM`, in `auto`'s order of preference: its
//! keychain(s), then (Unix) the encrypted file store. `auto` takes the first that opens and
//! says why. Where the platform has a file store, `auto` never falls back to memory: if no
//! store opens, it fails and says what each one answered. Elsewhere (no file store) it falls
//! back to memory, saying so loudly. A new backend is its module plus one line in its
//! platform's list (and a [`Backend`] name).
//!
//! | platform | backends (`auto` order) | index file |
//! |---|---|---|
//! | Linux | `secret-service`, `file` | `secret-service-index.json`, `file-index.json` |
//! | macOS | `keychain`, `file` | `keychain-index.json`, `file-index.json` |
//! | other Unix | `file` | `file-index.json` |
//! | Windows | `credential-manager` | `credential-manager-index.json` |
//! | everywhere | `memory` (only when asked for, or on a platform without a file store) | none |

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::{Store, StoreError};

use crate::memory::MemoryStore;

/// A backend the user can ask for (`--store`, `[store] backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The best one this platform has.
    Auto,
    /// The Secret Service on the session bus (Linux): `secret-service`.
    SecretService,
    /// The macOS Keychain: `keychain`.
    Keychain,
    /// Windows Credential Manager: `credential-manager`.
    CredentialManager,
    /// The encrypted file store (Unix): `file`.
    File,
    /// Memory only, nothing persists: `memory`.
    Memory,
}

impl Backend {
    /// Every backend, in the order help texts name them.
    pub const ALL: [Backend; 6] = [
        Backend::Auto,
        Backend::SecretService,
        Backend::Keychain,
        Backend::CredentialManager,
        Backend::File,
        Backend::Memory,
    ];

    /// The name flags and the config file use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::SecretService => "secret-service",
            Backend::Keychain => "keychain",
            Backend::CredentialManager => "credential-manager",
            Backend::File => "file",
            Backend::Memory => "memory",
        }
    }

    /// Whether this platform has the backend.
    pub fn available(self) -> bool {
        matches!(self, Backend::Auto | Backend::Memory)
            || PLATFORM.iter().any(|entry| entry.backend == self)
    }

    /// The backends this platform has, `auto` first and `memory` last.
    pub fn on_this_platform() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.available()).collect()
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::on_this_platform()
                    .into_iter()
                    .map(Backend::name)
                    .collect();
                format!("unknown store; use {}", names.join(", "))
            })
    }
}

/// What opening a store needs besides the backend's name.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The data folder: the indexes, and the file store's folder.
    pub data_dir: PathBuf,
    /// Lock the file store again after this long without a read (`[store] lock_after_secs`);
    /// `None`: only `latchkey lock` (or the end of the daemon) locks it. Other stores ignore it.
    pub lock_after: Option<Duration>,
}

impl StoreOptions {
    /// Options with the data folder `data_dir` and no idle locking.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            lock_after: None,
        }
    }
}

/// The store that was opened and why it was chosen.
pub struct Selection {
    /// The open store.
    pub store: Arc<dyn Store>,
    /// Why this one, for the start-up log.
    pub reason: String,
    /// Whether this is a fallback that will not keep entries (worth a warning).
    pub fallback: bool,
}

/// The future a registered backend's opener returns.
type Opening = Pin<Box<dyn Future<Output = Result<Arc<dyn Store>, StoreError>> + Send>>;

/// One backend of this platform.
struct Registered {
    backend: Backend,
    /// Opens it; its index goes in the options' data folder.
    open: fn(StoreOptions) -> Opening,
    /// What it is and why it serves, for the start-up log and `status`, once open.
    why: fn(&StoreOptions, &dyn Store) -> String,
}

/// Where a backend's index lives in the data folder.
pub(crate) fn index_path(data_dir: &Path, backend: Backend) -> PathBuf {
    data_dir.join(format!("{}-index.json", backend.name()))
}

#[cfg(target_os = "linux")]
const PLATFORM: &[Registered] = &[
    Registered {
        backend: Backend::SecretService,
        open: |options| Box::pin(crate::secret_service::open_store(options.data_dir)),
        why: |_, _| "the session bus offers org.freedesktop.secrets".into(),
    },
    FILE_STORE,
];

#[cfg(target_os = "macos")]
const PLATFORM: &[Registered] = &[
    Registered {
        backend: Backend::Keychain,
        open: |options| Box::pin(open_keyring(options.data_dir, Backend::Keychain)),
        why: |_, _| "the macOS Keychain answers".into(),
    },
    FILE_STORE,
];

#[cfg(windows)]
const PLATFORM: &[Registered] = &[Registered {
    backend: Backend::CredentialManager,
    open: |options| Box::pin(open_keyring(options.data_dir, Backend::CredentialManager)),
    why: |_, _| "Windows Credential Manager answers".into(),
}];

#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
const PLATFORM: &[Registered] = &[FILE_STORE];

#[cfg(not(any(unix, windows)))]
const PLATFORM: &[Registered] = &[];

/// The encrypted file store, after the platform's keychain.
#[cfg(unix)]
const FILE_STORE: Registered = Registered {
    backend: Backend::File,
    open: |options| Box::pin(crate::file::open_store(options)),
    why: file_store_why,
};

/// Where the file store is and what the user must do before it serves secrets.
#[cfg(unix)]
fn file_store_why(options: &StoreOptions, store: &dyn Store) -> String {
    let folder = crate::file::folder_in(&options.data_dir);
    let next = match store.unlocking() {
        latchkey_core::Unlocking::Passphrase { set: false } => {
            "run `latchkey unlock` to choose a passphrase"
        }
        _ => "it is locked until `latchkey unlock`",
    };
    format!(
        "using the encrypted file store in {}; {next}",
        folder.display()
    )
}

/// Opens a `keyring` backend once a probe on a blocking thread says it answers.
#[cfg(any(target_os = "macos", windows))]
async fn open_keyring(data_dir: PathBuf, backend: Backend) -> Result<Arc<dyn Store>, StoreError> {
    #[cfg(target_os = "macos")]
    use crate::apple_keychain::{keychain, probe};
    #[cfg(windows)]
    use crate::credential_manager::{keychain, probe};
    use crate::indexed::IndexedStore;

    tokio::task::spawn_blocking(probe)
        .await
        .map_err(|e| StoreError::Backend(format!("probing the keychain failed: {e}")))??;
    let index = index_path(&data_dir, backend);
    Ok(Arc::new(IndexedStore::new(keychain(), index)))
}

/// Opens the backend asked for; the options say where its files go.
///
/// `Auto` takes the first of this platform's backends that opens. On a platform without a file
/// store it never fails: without a usable keychain it returns the memory store with `fallback`
/// set. Where there is a file store, memory is never chosen by `auto`: if nothing opens, that
/// is an error naming what each backend answered. An explicit backend that cannot be opened, or
/// that this platform does not have, is an error.
pub async fn open(backend: Backend, options: StoreOptions) -> Result<Selection, StoreError> {
    match backend {
        Backend::Memory => Ok(Selection {
            store: Arc::new(MemoryStore::new()),
            reason: "memory store requested".into(),
            fallback: false,
        }),
        Backend::Auto => open_auto(options).await,
        asked => {
            let Some(entry) = PLATFORM.iter().find(|e| e.backend == asked) else {
                return Err(StoreError::Unavailable(format!(
                    "the {asked} store does not exist on this platform"
                )));
            };
            let store = (entry.open)(options.clone()).await?;
            let why = (entry.why)(&options, &*store);
            Ok(Selection {
                store,
                reason: format!("{asked} store requested: {why}"),
                fallback: false,
            })
        }
    }
}

/// The first of this platform's backends that opens; or memory, on a platform without a file
/// store.
async fn open_auto(options: StoreOptions) -> Result<Selection, StoreError> {
    let mut problems = Vec::new();
    for entry in PLATFORM {
        match (entry.open)(options.clone()).await {
            Ok(store) => {
                let why = (entry.why)(&options, &*store);
                let reason = if problems.is_empty() {
                    why
                } else {
                    format!("no usable keychain ({}): {why}", problems.join("; "))
                };
                return Ok(Selection {
                    store,
                    reason,
                    fallback: false,
                });
            }
            Err(err) => problems.push(format!("{}: {err}", entry.backend)),
        }
    }
    if Backend::File.available() {
        return Err(StoreError::Unavailable(format!(
            "no store could be opened ({}); `--store memory` keeps entries in memory only",
            problems.join("; ")
        )));
    }
    Ok(Selection {
        store: Arc::new(MemoryStore::new()),
        reason: if problems.is_empty() {
            "this platform has no keychain backend".into()
        } else {
            format!("no usable keychain ({})", problems.join("; "))
        },
        fallback: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_this_platforms_stores() {
        for backend in Backend::ALL {
            assert_eq!(backend.name().parse::<Backend>(), Ok(backend));
        }
        let err = "keyutils".parse::<Backend>().unwrap_err();
        assert!(err.contains("auto") && err.contains("memory"), "{err}");
        #[cfg(target_os = "linux")]
        assert_eq!(
            Backend::on_this_platform(),
            [
                Backend::Auto,
                Backend::SecretService,
                Backend::File,
                Backend::Memory
            ]
        );
        #[cfg(target_os = "macos")]
        assert_eq!(
            Backend::on_this_platform(),
            [
                Backend::Auto,
                Backend::Keychain,
                Backend::File,
                Backend::Memory
            ]
        );
        #[cfg(windows)]
        assert_eq!(
            Backend::on_this_platform(),
            [Backend::Auto, Backend::CredentialManager, Backend::Memory]
        );
    }

    #[tokio::test]
    async fn a_backend_of_another_platform_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = if cfg!(windows) {
            Backend::Keychain
        } else {
            Backend::CredentialManager
        };
        let refused = open(other, StoreOptions::new(dir.path().to_owned())).await;
        assert!(matches!(refused, Err(StoreError::Unavailable(m)) if m.contains("this platform")));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_store_says_where_it_is_and_what_to_do_and_refuses_an_open_folder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let selection = open(Backend::File, StoreOptions::new(data.clone()))
            .await
            .unwrap();
        assert_eq!(selection.store.name(), "file");
        assert!(selection.store.persistent());
        assert!(!selection.fallback);
        assert_eq!(selection.store.locked(), Some(true));
        let folder = crate::file::folder_in(&data);
        for part in [
            "file store requested",
            "encrypted file store in",
            &folder.display().to_string(),
            "run `latchkey unlock` to choose a passphrase",
        ] {
            assert!(selection.reason.contains(part), "{}", selection.reason);
        }
        drop(selection);
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let Err(StoreError::Refused(message)) = open(Backend::File, StoreOptions::new(data)).await
        else {
            panic!("an open folder was used");
        };
        assert!(
            message.contains(&folder.display().to_string()) && message.contains("chmod go-w"),
            "{message}"
        );
    }
}
