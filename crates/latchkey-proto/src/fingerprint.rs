//! [`TokenFingerprint`]: names an access token without carrying it, so a client can tell the
//! daemon "the token you gave me was rejected" (`get`'s `rejected`) and the daemon can tell
//! whether that is still the token it holds.
//!
//! It is the first 16 hex digits (64 bits) of the token's SHA-256. An access token has far
//! more entropy than that, so the fingerprint does not help to guess it; it is still kept out
//! of logs and `Debug` output, like everything derived from a secret.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::Secret;

/// The first 16 lowercase hex digits of an access token's SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenFingerprint([u8; TokenFingerprint::LEN]);

impl TokenFingerprint {
    /// Hex digits in a fingerprint.
    pub const LEN: usize = 16;

    /// The fingerprint of `token`.
    pub fn of(token: &Secret) -> Self {
        let digest = Sha256::digest(token.expose().as_bytes());
        let mut out = [0u8; Self::LEN];
        for (i, byte) in digest.iter().take(Self::LEN / 2).enumerate() {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        Self(out)
    }

    /// Reads a fingerprint as sent: exactly 16 lowercase hex digits, else `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; Self::LEN] = text.as_bytes().try_into().ok()?;
        bytes.iter().all(|b| HEX.contains(b)).then_some(Self(bytes))
    }

    /// Whether this is `token`'s fingerprint.
    pub fn matches(&self, token: &Secret) -> bool {
        *self == Self::of(token)
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

const HEX: [u8; 16] = *b"0123456789abcdef";

impl fmt::Debug for TokenFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenFingerprint(<redacted>)")
    }
}

impl Serialize for TokenFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TokenFingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(
                "rejected must be 16 lowercase hex digits (a token fingerprint)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_the_start_of_the_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea 414140de5dae2223 ...
        let print = TokenFingerprint::of(&Secret::from("abc"));
        assert_eq!(print.as_str(), "ba7816bf8f01cfea");
        assert!(print.matches(&Secret::from("abc")));
        assert!(!print.matches(&Secret::from("abd")));
        assert_eq!(format!("{print:?}"), "TokenFingerprint(<redacted>)");
    }

    #[test]
    fn only_16_lowercase_hex_digits_parse() {
        assert!(TokenFingerprint::parse("ba7816bf8f01cfea").is_some());
        for bad in [
            "",
            "ba7816bf8f01cfe",
            "ba7816bf8f01cfea0",
            "BA7816BF8F01CFEA",
            "ba7816bf8f01cfeg",
            "ba7816bf8f01cfé",
        ] {
            assert!(TokenFingerprint::parse(bad).is_none(), "{bad}");
        }
    }
}
