//! The names of entry files: `HMAC-SHA256(naming key, entry key)` in hex, plus `.age`, so a
//! listing of the folder shows how many entries there are but not which services they are for.
//!
//! The naming key is 32 random bytes in `naming.key` (mode 0600), made when the store is first
//! opened. It is not encrypted: the store must find an entry's file while locked, to write it.
//! It hides the names from someone who sees the folder's listing (a backup index, `ls` over a
//! shoulder); whoever can read the folder's files can read it too. Losing it loses the way to
//! the entries (their files stay decryptable with `age`), so backups keep it with them.

use std::path::Path;

use hmac::{Hmac, Mac};
use latchkey_core::{EntryKey, StoreError};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::atomic;

/// The file holding the naming key.
pub(crate) const NAMING_FILE: &str = "naming.key";

/// What every entry file's name ends with.
pub(crate) const ENTRY_SUFFIX: &str = ".age";

/// Bytes in the naming key.
const KEY_LEN: usize = 32;

/// Bytes to hex, lower case.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Whether `name` is an entry file's name (64 hex digits and the suffix).
#[cfg(test)]
pub(crate) fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(ENTRY_SUFFIX).is_some_and(|stem| {
        stem.len() == 2 * 32 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The naming key, wiped on drop.
pub(crate) struct Naming {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Naming {
    /// Reads `dir/naming.key`, or makes one if there is none (another process making one at the
    /// same moment wins, and both use its key).
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(NAMING_FILE);
        let damaged = |why: String| {
            StoreError::Backend(format!(
                "{} is damaged ({why}); without it the entries' files cannot be found: restore it from a backup",
                path.display()
            ))
        };
        // Twice at most: missing, then made by us or by whoever was first.
        for _ in 0..2 {
            match atomic::read_capped(&path, KEY_LEN as u64 + 1) {
                Ok(Some(bytes)) => {
                    let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                        damaged(format!("{} bytes instead of {KEY_LEN}", bytes.len()))
                    })?;
                    return Ok(Self {
                        key: Zeroizing::new(key),
                    });
                }
                Ok(None) => {
                    let mut key = Zeroizing::new([0u8; KEY_LEN]);
                    getrandom::getrandom(key.as_mut_slice()).map_err(|e| {
                        StoreError::Backend(format!("no random bytes for the naming key: {e}"))
                    })?;
                    let made = atomic::create(dir, NAMING_FILE, key.as_slice()).map_err(|e| {
                        StoreError::Backend(format!("cannot create {}: {e}", path.display()))
                    })?;
                    if made {
                        return Ok(Self { key });
                    }
                }
                Err(err) => return Err(damaged(err.to_string())),
            }
        }
        Err(damaged("it keeps changing".into()))
    }

    /// The name of `key`'s entry file.
    pub(crate) fn file_name(&self, key: &EntryKey) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes a key of any length");
        // Length-prefixed, so no two keys give the same input.
        let service = key.service().as_bytes();
        mac.update(&(service.len() as u64).to_be_bytes());
        mac.update(service);
        mac.update(key.account().as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{}{ENTRY_SUFFIX}", hex(&digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_keyed_hashes_that_reveal_nothing_and_differ_per_store() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let first = Naming::load_or_create(one.path()).unwrap();
        let again = Naming::load_or_create(one.path()).unwrap();
        let other = Naming::load_or_create(two.path()).unwrap();
        let key = EntryKey::new("github", Some("work")).unwrap();
        let name = first.file_name(&key);
        assert!(is_entry_name(&name), "{name}");
        assert!(!name.contains("github") && !name.contains("work"));
        assert_eq!(name, again.file_name(&key), "the key is kept");
        assert_ne!(name, other.file_name(&key), "each store has its own key");
        // Moving a character between service and account changes the name.
        let shifted = EntryKey::new("githubw", Some("ork")).unwrap();
        assert_ne!(name, first.file_name(&shifted));
        let meta = std::fs::metadata(one.path().join(NAMING_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_naming_key_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NAMING_FILE), b"short").unwrap();
        let err = Naming::load_or_create(dir.path()).err().unwrap();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("naming.key") && m.contains("5 bytes")),
            "{err}"
        );
        assert_eq!(
            std::fs::read(dir.path().join(NAMING_FILE)).unwrap(),
            b"short"
        );
    }
}
