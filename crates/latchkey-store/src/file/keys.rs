//! The store's key pair, in age's own formats so the stock `age` tool can recover everything.
//!
//! - `identity.age`: an age file encrypted with the user's passphrase (age's scrypt recipient),
//!   whose content is an ordinary age identity file (`AGE-SECRET-KEY-1...` and comments). So
//!   `age -d identity.age > identity.txt` asks for the passphrase and gives the identity, and
//!   `age -d -i identity.txt FILE.age` gives an entry's document.
//! - `recipient.txt`: the matching public recipient (`age1...`) in plain text, so the store
//!   can encrypt new documents while it is locked.
//!
//! A passphrase change re-encrypts `identity.age` only: the X25519 key never changes, so no
//! entry file is touched.
//!
//! scrypt's work factor `log2(N)` follows age's calibration (time `N = 2^10`, double until a
//! second) but stops at 18, the factor the stock `age -p` uses: so an unlock (or a wrong
//! guess) costs about a second on this machine and never more than 256 MiB of memory (scrypt
//! needs `2^log_n` KiB; age alone would pick 19 on a loaded machine here, 20 or 21 on a fast
//! one). Tests of this crate alone may fix a small factor (`Cost::Fixed`, compiled for tests only); nothing outside
//! can. Decryption accepts factors up to [`MAX_LOG_N`], so a file from the stock tool or from
//! another machine opens, and a planted file cannot make the daemon spend more than 1 GiB.

use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519::{Identity, Recipient};
use age::DecryptError;
use latchkey_proto::Secret;
use zeroize::Zeroizing;

/// The passphrase-encrypted identity.
pub(crate) const IDENTITY_FILE: &str = "identity.age";
/// The public recipient, in plain text.
pub(crate) const RECIPIENT_FILE: &str = "recipient.txt";

/// Largest `identity.age` read: a real one is a few hundred bytes.
pub(crate) const MAX_IDENTITY_FILE: u64 = 16 * 1024;
/// Largest `recipient.txt` read: a real one is 63 bytes.
pub(crate) const MAX_RECIPIENT_FILE: u64 = 1024;

/// The work factor the stock `age -p` uses, and the most this store chooses.
const STANDARD_LOG_N: u8 = 18;
/// The largest work factor an `identity.age` may ask for.
pub(crate) const MAX_LOG_N: u8 = 20;
// What this store writes, it can read.
const _: () = assert!(MAX_LOG_N >= STANDARD_LOG_N);
/// The work factor timed to calibrate.
const PROBE_LOG_N: u8 = 10;

/// How hard scrypt works on the passphrase.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cost {
    /// About a second on this machine, at most [`STANDARD_LOG_N`].
    Calibrated,
    /// A fixed work factor `log2(N)`: this crate's tests only.
    #[cfg(test)]
    Fixed(u8),
}

/// Why `identity.age` did not give an identity.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnsealError {
    /// The passphrase does not open it.
    #[error("wrong passphrase")]
    Wrong,
    /// It is not what the store wrote.
    #[error("{0}")]
    Damaged(String),
}

fn secret_string(passphrase: &Secret) -> SecretString {
    SecretString::from(passphrase.expose().to_owned())
}

/// `identity` as the content of an age identity file.
fn identity_file(identity: &Identity) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# latchkey's file store: decrypt an entry with `age -d -i THIS-FILE ENTRY.age`\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    ))
}

/// The identity in an age identity file's content: its one line that is neither empty nor a
/// comment.
fn parse_identity_file(text: &[u8]) -> Result<Identity, UnsealError> {
    let damaged = || UnsealError::Damaged("it does not hold one age identity".into());
    let text = std::str::from_utf8(text).map_err(|_| damaged())?;
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let (Some(line), None) = (keys.next(), keys.next()) else {
        return Err(damaged());
    };
    Identity::from_str(line).map_err(|_| damaged())
}

/// The work factor that takes about a second here (age's rule), at most [`STANDARD_LOG_N`].
fn calibrated_log_n() -> u8 {
    let params = scrypt::Params::new(PROBE_LOG_N, 8, 1, 32).expect("valid scrypt parameters");
    let mut out = Zeroizing::new([0u8; 32]);
    let started = std::time::Instant::now();
    scrypt::scrypt(b"", b"", &params, out.as_mut_slice()).expect("a 32-byte output");
    let mut took = started.elapsed().max(std::time::Duration::from_micros(1));
    let mut log_n = PROBE_LOG_N;
    while took < std::time::Duration::from_secs(1) && log_n < STANDARD_LOG_N {
        log_n += 1;
        took *= 2;
    }
    log_n
}

/// `identity` encrypted with `passphrase`: the content of `identity.age`. Takes about a second
/// ([`Cost::Calibrated`]).
pub(crate) fn seal(
    identity: &Identity,
    passphrase: &Secret,
    cost: Cost,
) -> Result<Vec<u8>, String> {
    let mut recipient = age::scrypt::Recipient::new(secret_string(passphrase));
    recipient.set_work_factor(match cost {
        Cost::Calibrated => calibrated_log_n(),
        #[cfg(test)]
        Cost::Fixed(log_n) => log_n,
    });
    let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient as _))
        .map_err(|e| e.to_string())?;
    let text = identity_file(identity);
    let mut sealed = Vec::with_capacity(text.len() + 256);
    let mut writer = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| e.to_string())?;
    writer
        .write_all(text.as_bytes())
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| e.to_string())?;
    Ok(sealed)
}

/// The identity inside `sealed` (the content of `identity.age`), with `passphrase`. Takes as
/// long as the work factor the file names (refused beyond [`MAX_LOG_N`]).
pub(crate) fn unseal(sealed: &[u8], passphrase: &Secret) -> Result<Identity, UnsealError> {
    let damaged = |e: DecryptError| UnsealError::Damaged(e.to_string());
    let decryptor = age::Decryptor::new_buffered(sealed).map_err(damaged)?;
    if !decryptor.is_scrypt() {
        return Err(UnsealError::Damaged(
            "it is an age file, but not one encrypted with a passphrase".into(),
        ));
    }
    let mut key = age::scrypt::Identity::new(secret_string(passphrase));
    key.set_max_work_factor(MAX_LOG_N);
    let mut reader = match decryptor.decrypt(std::iter::once(&key as _)) {
        Ok(reader) => reader,
        Err(DecryptError::DecryptionFailed | DecryptError::NoMatchingKeys) => {
            return Err(UnsealError::Wrong)
        }
        Err(err) => return Err(damaged(err)),
    };
    // The plaintext is shorter than the file: this buffer never grows (and leaves no copies).
    let mut text = Zeroizing::new(Vec::with_capacity(sealed.len()));
    reader
        .read_to_end(&mut text)
        .map_err(|e| UnsealError::Damaged(e.to_string()))?;
    parse_identity_file(&text)
}

/// The content of `recipient.txt` for `recipient`.
pub(crate) fn recipient_file(recipient: &Recipient) -> String {
    format!("{recipient}\n")
}

/// The recipient in `recipient.txt`'s content.
pub(crate) fn parse_recipient(text: &[u8]) -> Option<Recipient> {
    let text = std::str::from_utf8(text).ok()?;
    Recipient::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_COST: Cost = Cost::Fixed(4);

    #[test]
    fn an_identity_comes_back_with_its_passphrase_only() {
        let identity = Identity::generate();
        let passphrase = Secret::from("correct horse");
        let sealed = seal(&identity, &passphrase, TEST_COST).unwrap();
        let back = unseal(&sealed, &passphrase).unwrap();
        assert_eq!(back.to_public(), identity.to_public());
        assert!(matches!(
            unseal(&sealed, &Secret::from("wrong horse")),
            Err(UnsealError::Wrong)
        ));
        let shown = String::from_utf8_lossy(&sealed);
        assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
        assert!(
            shown.starts_with("age-encryption.org/v1\n-> scrypt "),
            "{shown}"
        );
    }

    #[test]
    fn a_damaged_identity_file_says_so_without_its_content() {
        let passphrase = Secret::from("p");
        for garbage in [
            &b""[..],
            b"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
            b"age-encryption.org/v1\n-> scrypt AAAA 4\nshort\n--- AAAA\n",
            &[0xff; 300],
        ] {
            match unseal(garbage, &passphrase) {
                Err(UnsealError::Damaged(why)) => assert!(!why.contains("SECRET"), "{why}"),
                other => panic!("{:?}", other.map(|_| ())),
            }
        }
        // An age file, but for a recipient rather than a passphrase.
        let other = Identity::generate();
        let encrypted = age::encrypt(&other.to_public(), b"not an identity").unwrap();
        assert!(matches!(
            unseal(&encrypted, &passphrase),
            Err(UnsealError::Damaged(why)) if why.contains("passphrase")
        ));
        // The right passphrase, but the content is not an identity.
        let mut recipient = age::scrypt::Recipient::new(secret_string(&passphrase));
        recipient.set_work_factor(4);
        let sealed = age::encrypt(&recipient, b"hello").unwrap();
        assert!(matches!(
            unseal(&sealed, &passphrase),
            Err(UnsealError::Damaged(why)) if why.contains("age identity")
        ));
    }

    #[test]
    fn the_calibrated_work_factor_is_bounded_by_the_stock_tools() {
        let log_n = calibrated_log_n();
        assert!((PROBE_LOG_N..=STANDARD_LOG_N).contains(&log_n), "{log_n}");
    }

    #[test]
    fn an_identity_file_asking_for_too_much_work_is_refused_before_any() {
        let identity = Identity::generate();
        let passphrase = Secret::from("p");
        let sealed = seal(&identity, &passphrase, TEST_COST).unwrap();
        // The work factor is the stanza's last argument: make it 21 (2 GiB, minutes).
        let text = String::from_utf8_lossy(&sealed).into_owned();
        let line_end = text.find("\n--- ").unwrap();
        let stanza = text[..line_end].lines().nth(1).unwrap().to_owned();
        assert!(
            stanza.starts_with("-> scrypt ") && stanza.ends_with(" 4"),
            "{stanza}"
        );
        let bigger = stanza.replace(" 4", " 21");
        let tampered = [
            &sealed[..text.find(&stanza).unwrap()],
            bigger.as_bytes(),
            &sealed[text.find(&stanza).unwrap() + stanza.len()..],
        ]
        .concat();
        let started = std::time::Instant::now();
        let Err(UnsealError::Damaged(why)) = unseal(&tampered, &passphrase) else {
            panic!("a work factor of 21 was accepted");
        };
        assert!(why.contains("21") || why.contains("work"), "{why}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn recipients_round_trip_and_garbage_is_none() {
        let recipient = Identity::generate().to_public();
        let text = recipient_file(&recipient);
        assert_eq!(parse_recipient(text.as_bytes()), Some(recipient));
        assert_eq!(parse_recipient(b"age1nope"), None);
        assert_eq!(parse_recipient(&[0xff, 0xfe]), None);
    }
}
