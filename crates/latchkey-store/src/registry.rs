//! Which stores this platform has, and what `auto` means here.
//!
//! Each platform lists its keychain backends in [`PLATFORM`], in `auto`'s order of preference;
//! `auto` takes the first that opens and otherwise falls back to memory, saying so loudly. A
//! new backend is its module plus one line in its platform's list (and a [`Backend`] name).
//!
//! | platform | backends (`auto` order) | index file |
//! |---|---|---|
//! | Linux | `secret-service` | `secret-service-index.json` |
//! | macOS | `keychain` | `keychain-index.json` |
//! | Windows | `credential-manager` | `credential-manager-index.json` |
//! | everywhere | `memory` (never chosen by `auto` unless nothing else opens) | none |

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

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
    /// Memory only, nothing persists: `memory`.
    Memory,
}

impl Backend {
    /// Every backend, in the order help texts name them.
    pub const ALL: [Backend; 5] = [
        Backend::Auto,
        Backend::SecretService,
        Backend::Keychain,
        Backend::CredentialManager,
        Backend::Memory,
    ];

    /// The name flags and the config file use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::SecretService => "secret-service",
            Backend::Keychain => "keychain",
            Backend::CredentialManager => "credential-manager",
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
    /// Opens it; the argument is the data folder, where its index goes.
    open: fn(PathBuf) -> Opening,
    /// Why `auto` took it, for the start-up log.
    why: &'static str,
}

/// Where a backend's index lives in the data folder.
pub(crate) fn index_path(data_dir: &Path, backend: Backend) -> PathBuf {
    data_dir.join(format!("{}-index.json", backend.name()))
}

#[cfg(target_os = "linux")]
const PLATFORM: &[Registered] = &[Registered {
    backend: Backend::SecretService,
    open: |dir| Box::pin(crate::secret_service::open_store(dir)),
    why: "the session bus offers org.freedesktop.secrets",
}];

#[cfg(target_os = "macos")]
const PLATFORM: &[Registered] = &[Registered {
    backend: Backend::Keychain,
    open: |dir| Box::pin(open_keyring(dir, Backend::Keychain)),
    why: "the macOS Keychain answers",
}];

#[cfg(windows)]
const PLATFORM: &[Registered] = &[Registered {
    backend: Backend::CredentialManager,
    open: |dir| Box::pin(open_keyring(dir, Backend::CredentialManager)),
    why: "Windows Credential Manager answers",
}];

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
const PLATFORM: &[Registered] = &[];

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

/// Opens the backend asked for. `data_dir` holds the index of persistent stores.
///
/// `Auto` never fails: without a usable keychain it returns the memory store with `fallback`
/// set. An explicit backend that cannot be opened, or that this platform does not have, is an
/// error.
pub async fn open(backend: Backend, data_dir: PathBuf) -> Result<Selection, StoreError> {
    match backend {
        Backend::Memory => Ok(Selection {
            store: Arc::new(MemoryStore::new()),
            reason: "memory store requested".into(),
            fallback: false,
        }),
        Backend::Auto => Ok(open_auto(data_dir).await),
        asked => {
            let Some(entry) = PLATFORM.iter().find(|e| e.backend == asked) else {
                return Err(StoreError::Unavailable(format!(
                    "the {asked} store does not exist on this platform"
                )));
            };
            Ok(Selection {
                store: (entry.open)(data_dir).await?,
                reason: format!("{asked} store requested"),
                fallback: false,
            })
        }
    }
}

/// The first of this platform's backends that opens, or memory.
async fn open_auto(data_dir: PathBuf) -> Selection {
    let mut problems = Vec::new();
    for entry in PLATFORM {
        match (entry.open)(data_dir.clone()).await {
            Ok(store) => {
                return Selection {
                    store,
                    reason: entry.why.into(),
                    fallback: false,
                }
            }
            Err(err) => problems.push(format!("{}: {err}", entry.backend)),
        }
    }
    Selection {
        store: Arc::new(MemoryStore::new()),
        reason: if problems.is_empty() {
            "this platform has no keychain backend".into()
        } else {
            format!("no usable keychain ({})", problems.join("; "))
        },
        fallback: true,
    }
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
            [Backend::Auto, Backend::SecretService, Backend::Memory]
        );
        #[cfg(target_os = "macos")]
        assert_eq!(
            Backend::on_this_platform(),
            [Backend::Auto, Backend::Keychain, Backend::Memory]
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
        let refused = open(other, dir.path().to_owned()).await;
        assert!(matches!(refused, Err(StoreError::Unavailable(m)) if m.contains("this platform")));
    }
}
