//! `migrate`: moves every entry to another store, which the daemon uses from then on, and
//! records the choice so a restarted daemon (`--store auto`) opens it too.
//!
//! The request is checked before anything opens: the store's name (one this platform has,
//! not `auto`, not the one in use), the passphrase's size. The target is opened and, when it
//! takes latchkey's passphrase, unlocked with the one given (`create` chooses it when it has
//! none yet); without one the answer is `locked` with `data.unlock_with`, so the CLI knows
//! whether to ask once or twice. One move at a time; it runs as a task of its own, so a
//! client that goes away or a shutdown does not stop it halfway (a crash may: see
//! `latchkey_core`'s migrate module for why nothing is lost then).
//!
//! The marker is written (with `leaving` naming the old store, when that one persists) once
//! every entry is in the new store and before anything is removed from the old one; it is
//! written again without `leaving` once the old store holds no copies. `migrate` to the store
//! in use while the marker says copies may remain removes them.

use latchkey_store::StoreOptions;
use std::sync::{Arc, Mutex};

use latchkey_core::{Error, Migrated, Store, TokenService, Unlocking};
use latchkey_proto::{
    ErrorKind, MigrateParams, MigrateResult, RpcError, Secret, UnlockWith, MAX_PASSPHRASE_LEN,
};
use latchkey_store::Backend;
use tracing::{info, warn};

use crate::store_choice::{self, Choice};

/// No store name is longer; a longer `to` is refused without being looked at.
const MAX_STORE_NAME: usize = 64;

/// What the status says about a store a move went to.
const MOVED_HERE: &str = "moved here by `latchkey migrate`";

/// Runs moves for the handler; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Migrations {
    /// Where the marker and the stores' indexes live.
    options: StoreOptions,
    /// Held for a whole move: two at once could take one keychain for two stores.
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
}

impl Migrations {
    pub(crate) fn new(options: StoreOptions) -> Self {
        Self {
            options,
            one_at_a_time: Arc::default(),
        }
    }

    /// Runs `migrate` for `service`; on success `reason` (why the daemon uses its store) says
    /// the store was moved to.
    pub(crate) async fn run(
        &self,
        service: &TokenService,
        params: &MigrateParams,
        reason: &Arc<Mutex<String>>,
    ) -> Result<MigrateResult, RpcError> {
        let backend = target(&params.to)?;
        let passphrase = checked(params.passphrase.as_ref())?;
        let _one = self.one_at_a_time.lock().await;
        let in_use = service.store_info();
        let marker = store_choice::read(&self.options.data_dir).unwrap_or_else(|err| {
            warn!(error = %err, "cannot read the recorded store choice");
            None
        });
        if backend.name() == in_use.name {
            let leftovers = marker
                .filter(|c| c.store == in_use.name)
                .and_then(|c| c.leaving)
                .and_then(|old| old.parse::<Backend>().ok())
                .filter(|old| *old != Backend::Auto && old.name() != in_use.name);
            return match leftovers {
                Some(old) => self.remove_leftovers(service, old, params).await,
                None => Err(RpcError::new(
                    ErrorKind::InvalidRequest,
                    format!("latchkeyd uses the {} store already", in_use.name),
                )),
            };
        }
        let target = self.open(backend, passphrase, params.create).await?;
        let leaving = in_use.persistent.then(|| in_use.name.to_owned());
        let run = {
            let (service, reason) = (service.clone(), Arc::clone(reason));
            let data_dir = self.options.data_dir.clone();
            let choice = Choice {
                store: backend.name().to_owned(),
                leaving: leaving.clone(),
            };
            async move {
                let moved = service
                    .migrate_with(target, || store_choice::write(&data_dir, &choice))
                    .await
                    .map_err(|e| e.to_rpc())?;
                let mut why = MOVED_HERE.to_owned();
                match &leaving {
                    Some(_) if moved.left == 0 => settled(&data_dir, backend),
                    Some(old) => why.push_str(&format!(
                        "; the {old} store may still hold copies: run `latchkey migrate --to {backend}` again to remove them"
                    )),
                    None => {}
                }
                *reason.lock().unwrap_or_else(|e| e.into_inner()) = why;
                Ok::<_, RpcError>(moved)
            }
        };
        let moved = tokio::spawn(run).await.map_err(|err| {
            warn!(error = %err, "the move stopped");
            RpcError::new(ErrorKind::Internal, "the move stopped unexpectedly")
        })??;
        Ok(result(moved))
    }

    /// Opens `backend` and unlocks it when it takes latchkey's passphrase.
    async fn open(
        &self,
        backend: Backend,
        passphrase: Option<&Secret>,
        create: bool,
    ) -> Result<Arc<dyn Store>, RpcError> {
        let store = store_choice::open_backend(backend, &self.options)
            .await
            .map_err(|err| {
                RpcError::new(
                    ErrorKind::BackendUnavailable,
                    format!("cannot open the {backend} store: {err}"),
                )
            })?
            .store;
        match (store.unlocking(), passphrase) {
            (Unlocking::Passphrase { set }, Some(passphrase)) if set || create => {
                store
                    .unlock(Some(passphrase), create && !set)
                    .await
                    .map_err(|e| Error::from(e).to_rpc())?;
            }
            (Unlocking::Passphrase { set }, _) => return Err(needs_passphrase(backend, set)),
            (_, Some(_)) => {
                return Err(RpcError::new(
                    ErrorKind::InvalidRequest,
                    format!("the {backend} store takes no passphrase"),
                ))
            }
            (_, None) => {}
        }
        Ok(store)
    }

    /// `migrate` to the store in use while the marker says `old` may hold copies.
    async fn remove_leftovers(
        &self,
        service: &TokenService,
        old: Backend,
        params: &MigrateParams,
    ) -> Result<MigrateResult, RpcError> {
        let store = self
            .open(old, params.passphrase.as_ref(), params.create)
            .await?;
        let to = service.store_info().name;
        let cleaned = service
            .remove_leftovers(store)
            .await
            .map_err(|e| e.to_rpc())?;
        if cleaned.left == 0 {
            if let Ok(to) = to.parse::<Backend>() {
                settled(&self.options.data_dir, to);
            }
        }
        Ok(result(cleaned))
    }
}

/// Records that the old store holds no copies any more (a failure only costs a later
/// `migrate` finding nothing to remove).
fn settled(data_dir: &std::path::Path, store: Backend) {
    let choice = Choice {
        store: store.name().to_owned(),
        leaving: None,
    };
    match store_choice::write(data_dir, &choice) {
        Ok(()) => info!(store = store.name(), "the old store holds no copies"),
        Err(err) => warn!(error = %err, "cannot record that the old store holds no copies"),
    }
}

fn invalid(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorKind::InvalidRequest, message)
}

/// The store to move to, refused unless this platform has it. Never echoes the request.
fn target(to: &str) -> Result<Backend, RpcError> {
    let names = || {
        let names: Vec<_> = Backend::on_this_platform()
            .into_iter()
            .filter(|b| *b != Backend::Auto)
            .map(Backend::name)
            .collect();
        format!("unknown store; use {}", names.join(", "))
    };
    if to.len() > MAX_STORE_NAME {
        return Err(invalid(names()));
    }
    match to.parse::<Backend>() {
        Err(_) => Err(invalid(names())),
        Ok(Backend::Auto) => Err(invalid(format!(
            "name the store to move to (auto is a way to choose one): {}",
            names().trim_start_matches("unknown store; ")
        ))),
        Ok(backend) if !backend.available() => Err(invalid(format!(
            "the {backend} store does not exist on this platform"
        ))),
        Ok(backend) => Ok(backend),
    }
}

/// The passphrase, refused when empty or longer than [`MAX_PASSPHRASE_LEN`].
fn checked(passphrase: Option<&Secret>) -> Result<Option<&Secret>, RpcError> {
    match passphrase.map(|p| p.expose().len()) {
        Some(0) => Err(invalid("the passphrase is empty")),
        Some(len) if len > MAX_PASSPHRASE_LEN => Err(invalid(format!(
            "the passphrase is longer than {MAX_PASSPHRASE_LEN} bytes"
        ))),
        _ => Ok(passphrase),
    }
}

/// The answer to a move into a passphrase store without a (new) passphrase.
fn needs_passphrase(backend: Backend, set: bool) -> RpcError {
    let mut rpc = RpcError::new(
        ErrorKind::Locked,
        if set {
            format!("the {backend} store is locked: moving there needs its passphrase")
        } else {
            format!("the {backend} store has no passphrase yet: moving there chooses one")
        },
    );
    rpc.data.unlock_with = Some(if set {
        UnlockWith::Passphrase
    } else {
        UnlockWith::NewPassphrase
    });
    rpc.data.hint =
        Some("`latchkey migrate` asks for it on a terminal, or reads it from stdin".into());
    rpc
}

fn result(moved: Migrated) -> MigrateResult {
    MigrateResult {
        from: moved.from.to_owned(),
        to: moved.to.to_owned(),
        copied: moved.copied,
        already_there: moved.already_there,
        removed: moved.removed,
        left: moved.left,
        adopted: moved.adopted,
    }
}

/// `from -> to` for the audit line: store names only, `to` only when it names a store.
pub(crate) fn audit_name(from: &str, to: &str) -> String {
    let to = match to.parse::<Backend>() {
        Ok(backend) if to.len() <= MAX_STORE_NAME => backend.name(),
        _ => "<unknown store>",
    };
    format!("{from} -> {to}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_checked_without_echo() {
        assert_eq!(target("memory").unwrap(), Backend::Memory);
        for bad in ["", "HOSTILE", "auto", "Memory", &"x".repeat(100_000)] {
            let err = target(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRequest);
            assert!(err.message.contains("memory"), "{}", err.message);
            assert!(!err.message.contains("HOSTILE") && !err.message.contains("xxx"));
        }
        let other = if cfg!(windows) {
            "keychain"
        } else {
            "credential-manager"
        };
        assert!(target(other)
            .unwrap_err()
            .message
            .contains("does not exist on this platform"));
    }

    #[test]
    fn passphrases_are_bounded() {
        assert!(checked(None).unwrap().is_none());
        let ok = Secret::from("correct horse".to_owned());
        assert!(checked(Some(&ok)).is_ok());
        for bad in [String::new(), "p".repeat(MAX_PASSPHRASE_LEN + 1)] {
            let bad = Secret::from(bad);
            let err = checked(Some(&bad)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRequest);
            assert!(!err.message.contains("ppp"));
        }
        let longest = Secret::from("p".repeat(MAX_PASSPHRASE_LEN));
        assert!(checked(Some(&longest)).is_ok());
    }

    #[test]
    fn the_audit_names_stores_only() {
        assert_eq!(
            audit_name("memory", "secret-service"),
            "memory -> secret-service"
        );
        assert_eq!(
            audit_name("memory", "HOSTILE\u{1b}[2J"),
            "memory -> <unknown store>"
        );
    }

    #[test]
    fn a_missing_passphrase_says_how_to_ask_for_it() {
        let existing = needs_passphrase(Backend::Memory, true);
        assert_eq!(existing.kind(), ErrorKind::Locked);
        assert_eq!(existing.data.unlock_with, Some(UnlockWith::Passphrase));
        let new = needs_passphrase(Backend::Memory, false);
        assert_eq!(new.data.unlock_with, Some(UnlockWith::NewPassphrase));
    }
}
