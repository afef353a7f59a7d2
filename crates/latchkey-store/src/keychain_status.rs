//! What a failure of the macOS Keychain means for latchkey, decided from the shape of the
//! `keyring` error and the Security framework status inside it. Kept apart from the backend
//! (which needs macOS to compile) so the decision is tested on every platform.
//!
//! A keychain that may not show its prompt (`errSecInteractionNotAllowed`, as over SSH, or
//! `errSecInteractionRequired`) is a locked keychain: the client gets `locked` and a hint, the
//! entry stays as it was, and the daemon keeps running.

use latchkey_core::StoreError;

/// `errSecInteractionNotAllowed`: the keychain may not ask the user (an SSH session).
pub(crate) const INTERACTION_NOT_ALLOWED: i32 = -25308;
/// `errSecInteractionRequired`: it would have to ask, and asking is not allowed now.
pub(crate) const INTERACTION_REQUIRED: i32 = -25315;

/// How `keyring` reported a failure, without anything it carried from the item.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `keyring::Error::PlatformFailure`.
    Platform,
    /// `keyring::Error::NoStorageAccess`.
    NoAccess,
    /// `keyring::Error::BadEncoding` (its bytes are dropped before this point).
    BadEncoding,
    /// Anything else, by its message.
    Other(String),
}

/// The store error for a failure with the Security framework `status` found inside it.
pub(crate) fn classify(failure: Failure, status: Option<i32>) -> StoreError {
    let may_not_prompt = matches!(status, Some(INTERACTION_NOT_ALLOWED | INTERACTION_REQUIRED));
    match failure {
        Failure::Platform | Failure::NoAccess if may_not_prompt => StoreError::Locked,
        Failure::NoAccess => StoreError::Unavailable("the Keychain refused access".into()),
        Failure::BadEncoding => {
            StoreError::Backend("the Keychain returned an unreadable item".into())
        }
        Failure::Platform => StoreError::Backend(match status {
            Some(code) => format!("Keychain: status {code}"),
            None => "Keychain: a platform failure".into(),
        }),
        Failure::Other(text) => {
            StoreError::Backend(format!("Keychain: {}", crate::error_text::bounded(text)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use latchkey_core::{EntryKey, Error, SecretBytes, SystemClock, TokenService};
    use latchkey_proto::{BundleInput, ErrorKind, GetParams, SetParams};
    use zeroize::Zeroizing;

    use super::*;
    use crate::blocking::{BlockingKeychain, OnBlockingThreads};
    use crate::indexed::IndexedStore;
    use crate::keychain::Keychain;

    #[test]
    fn a_keychain_that_may_not_prompt_is_locked() {
        for status in [INTERACTION_NOT_ALLOWED, INTERACTION_REQUIRED] {
            for failure in [Failure::Platform, Failure::NoAccess] {
                assert!(
                    matches!(classify(failure, Some(status)), StoreError::Locked),
                    "status {status}"
                );
            }
        }
    }

    #[test]
    fn other_failures_are_not_locked_and_carry_no_item_bytes() {
        assert!(matches!(
            classify(Failure::NoAccess, Some(-25293)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify(Failure::NoAccess, None),
            StoreError::Unavailable(_)
        ));
        let StoreError::Backend(text) = classify(Failure::Platform, Some(-25299)) else {
            panic!("a platform failure is a backend error");
        };
        assert_eq!(text, "Keychain: status -25299");
        let StoreError::Backend(text) = classify(Failure::BadEncoding, None) else {
            panic!("an unreadable item is a backend error");
        };
        assert!(!text.contains("0x"), "{text}");
        // The status alone does not make an unrelated failure `locked`.
        assert!(matches!(
            classify(Failure::Other("x".into()), Some(INTERACTION_NOT_ALLOWED)),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn long_platform_messages_are_cut_on_a_character_boundary() {
        let StoreError::Backend(text) = classify(Failure::Other("é".repeat(150)), None) else {
            panic!("other failures are backend errors");
        };
        let message = text.strip_prefix("Keychain: ").unwrap();
        assert!(
            message.len() <= crate::error_text::MAX_ERROR_TEXT,
            "{}",
            message.len()
        );
        assert!(message.chars().all(|c| c == 'é'));
    }

    /// Items in memory that answer as the Keychain does once the session may not prompt
    /// (`ssh` set): every call fails with `errSecInteractionNotAllowed`, through [`classify`].
    #[derive(Clone, Default)]
    struct SshKeychain {
        items: Arc<Mutex<BTreeMap<EntryKey, Vec<u8>>>>,
        ssh: Arc<AtomicBool>,
    }

    impl SshKeychain {
        fn refused(&self) -> Result<(), StoreError> {
            if self.ssh.load(Ordering::SeqCst) {
                return Err(classify(Failure::Platform, Some(INTERACTION_NOT_ALLOWED)));
            }
            Ok(())
        }
    }

    impl BlockingKeychain for SshKeychain {
        fn name(&self) -> &'static str {
            "keychain"
        }
        fn read(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError> {
            self.refused()?;
            let items = self.items.lock().unwrap();
            Ok(items.get(key).map(|d| Zeroizing::new(d.clone())))
        }
        fn write(&self, key: &EntryKey, document: &[u8]) -> Result<(), StoreError> {
            self.refused()?;
            let mut items = self.items.lock().unwrap();
            items.insert(key.clone(), document.to_vec());
            Ok(())
        }
        fn remove(&self, key: &EntryKey) -> Result<bool, StoreError> {
            self.refused()?;
            Ok(self.items.lock().unwrap().remove(key).is_some())
        }
    }

    fn set(service: &str, key: &str) -> SetParams {
        SetParams {
            service: service.into(),
            account: None,
            bundle: BundleInput::ApiKey { key: key.into() },
        }
    }

    fn get(service: &str) -> GetParams {
        GetParams {
            service: service.into(),
            account: None,
            scopes: vec![],
            min_valid_secs: None,
            grant: None,
            proxy: false,
            rejected: None,
        }
    }

    /// A fresh daemon's service over the same keychain and index (nothing cached).
    async fn service(keychain: &SshKeychain, dir: &std::path::Path) -> TokenService {
        let index = dir.join("keychain-index.json");
        let store = IndexedStore::new(OnBlockingThreads::new(keychain.clone()), index);
        TokenService::open(Arc::new(store), Arc::new(SystemClock))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn over_ssh_get_and_set_answer_locked_and_the_entry_survives() {
        let dir = tempfile::tempdir().unwrap();
        let keychain = SshKeychain::default();
        let before = service(&keychain, dir.path()).await;
        before.set(set("api", "sk-first")).await.unwrap();
        drop(before);

        keychain.ssh.store(true, Ordering::SeqCst);
        let over_ssh = service(&keychain, dir.path()).await;
        let err = over_ssh.get(&get("api")).await.unwrap_err();
        assert!(matches!(err, Error::Locked), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Locked);
        let wire = serde_json::to_value(err.to_rpc()).unwrap();
        assert_eq!(wire["data"]["kind"], "locked", "{wire}");
        assert!(over_ssh.store_info().locked == Some(true));
        let err = over_ssh.set(set("api", "sk-second")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Locked);
        // The entry is still listed from the index, without touching the keychain.
        assert_eq!(over_ssh.list().len(), 1);
        drop(over_ssh);

        keychain.ssh.store(false, Ordering::SeqCst);
        let back = service(&keychain, dir.path()).await;
        let got = back.get(&get("api")).await.unwrap();
        assert_eq!(got.secret.expose(), "sk-first");
    }

    #[tokio::test]
    async fn the_lock_state_follows_the_last_answer() {
        let keychain = SshKeychain::default();
        let on_threads = OnBlockingThreads::new(keychain.clone());
        let key = EntryKey::new("api", None).unwrap();
        assert_eq!(on_threads.locked(), None);
        keychain.ssh.store(true, Ordering::SeqCst);
        assert!(matches!(
            on_threads.read(&key).await,
            Err(StoreError::Locked)
        ));
        assert_eq!(on_threads.locked(), Some(true));
        keychain.ssh.store(false, Ordering::SeqCst);
        assert!(on_threads.read(&key).await.unwrap().is_none());
        assert_eq!(on_threads.locked(), Some(false));
    }
}
