//! An entry file's content: the entry's secret document encrypted with age to the store's
//! X25519 recipient (binary age format, one recipient), so `age -d -i identity.txt FILE.age`
//! gives the document back byte for byte.

use std::io::{Read, Write};

use age::x25519::{Identity, Recipient};
use age::DecryptError;
use latchkey_core::SecretBytes;
use zeroize::Zeroizing;

/// Largest entry file read. A document is at most one request line (16 MiB at the most).
pub(crate) const MAX_ENTRY_FILE: u64 = 32 * 1024 * 1024;

/// `document` encrypted to `recipient`.
pub(crate) fn seal(recipient: &Recipient, document: &[u8]) -> Result<Vec<u8>, String> {
    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient as _))
        .map_err(|e| e.to_string())?;
    let mut sealed = Vec::with_capacity(document.len() + 256);
    let mut writer = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| e.to_string())?;
    writer
        .write_all(document)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| e.to_string())?;
    Ok(sealed)
}

/// The document inside `sealed`; the error says why not, never with any of its bytes.
pub(crate) fn open(identity: &Identity, sealed: &[u8]) -> Result<SecretBytes, String> {
    let decryptor =
        age::Decryptor::new_buffered(sealed).map_err(|e| format!("it is not an age file ({e})"))?;
    let mut reader = match decryptor.decrypt(std::iter::once(identity as _)) {
        Ok(reader) => reader,
        Err(DecryptError::NoMatchingKeys) => {
            return Err("it was encrypted to another key than this store's".into())
        }
        Err(err) => return Err(format!("it is damaged ({err})")),
    };
    // The plaintext is shorter than the file: this buffer never grows (and leaves no copies).
    let mut document = Zeroizing::new(Vec::with_capacity(sealed.len()));
    reader
        .read_to_end(&mut document)
        .map_err(|e| format!("it is damaged ({e})"))?;
    Ok(document)
}
