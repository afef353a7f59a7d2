//! The grant signing key: 256 random bits from the OS, zeroized when dropped, never printed.
//!
//! The daemon keeps it as an entry in its store (suggested service: [`crate::KEY_ENTRY_SERVICE`]),
//! never in a file of its own: [`GrantKey::to_text`] gives the entry's secret and
//! [`GrantKey::from_text`] reads it back. Replacing the key invalidates every grant minted with
//! the old one.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the key in bytes (256 bits, the output size of HS256's SHA-256).
pub const KEY_LEN: usize = 32;

/// Length of the key's text form: unpadded base64url of 32 bytes.
pub const KEY_TEXT_LEN: usize = 43;

/// Why a key could not be made or read. The messages never hold the key's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantKeyError {
    /// The text is not 43 characters of unpadded base64url, or does not decode to 32 bytes.
    #[error("the grant key entry is not a 256-bit key in base64url")]
    Malformed,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A 256-bit HMAC key for signing and checking grants.
///
/// No `Display`, no `Serialize`, and `Debug` prints `GrantKey(..)`: the only way out is
/// [`GrantKey::to_text`], for the store.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct GrantKey([u8; KEY_LEN]);

impl GrantKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, GrantKeyError> {
        let mut key = GrantKey([0; KEY_LEN]);
        crate::claims::fill_random(&mut key.0).map_err(|()| GrantKeyError::Random)?;
        Ok(key)
    }

    /// The key as the text to keep in the store's entry (43 characters of unpadded base64url).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Reads a key back from [`GrantKey::to_text`]'s form. Surrounding whitespace is not
    /// accepted, so a damaged entry is found rather than half-read.
    pub fn from_text(text: &str) -> Result<Self, GrantKeyError> {
        if text.len() != KEY_TEXT_LEN {
            return Err(GrantKeyError::Malformed);
        }
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| GrantKeyError::Malformed)?,
        );
        let mut key = GrantKey([0; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(GrantKeyError::Malformed);
        }
        key.0.copy_from_slice(&bytes);
        Ok(key)
    }

    /// The raw key, for the signer in [`crate::token`].
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_round_trip_through_text() {
        let a = GrantKey::generate().unwrap();
        let b = GrantKey::generate().unwrap();
        assert_ne!(a, b);
        let text = a.to_text();
        assert_eq!(text.len(), KEY_TEXT_LEN);
        assert_eq!(GrantKey::from_text(&text).unwrap(), a);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = GrantKey::generate().unwrap();
        let text = key.to_text();
        let debug = format!("{key:?} {:#?}", key);
        assert!(!debug.contains(text.as_str()));
        assert!(!debug.contains(&text[..8]));
        assert_eq!(format!("{key:?}"), "GrantKey(..)");
    }

    #[test]
    fn malformed_text_is_refused_without_echoing_it() {
        let good = GrantKey::generate().unwrap().to_text();
        let cases = [
            String::new(),
            format!(" {}", &good[1..]),
            format!("{}\n", &good[..42]),
            format!("{}=", &good[..42]),
            "!".repeat(KEY_TEXT_LEN),
            format!("{}A", good.as_str()),
            good[..42].to_string(),
        ];
        for case in cases {
            let err = GrantKey::from_text(&case).unwrap_err();
            assert_eq!(err, GrantKeyError::Malformed);
            if !case.trim().is_empty() {
                assert!(!err.to_string().contains(case.trim()));
            }
        }
    }
}
