//! Entry documents in a keychain whose items hold only small blobs (Windows Credential
//! Manager: 2,560 bytes a credential), split into chunks so that a crash between two writes
//! never yields a mixed bundle.
//!
//! Why chunks and not an envelope (a key in the keychain, the ciphertext in a file): the
//! secret stays wholly in the platform keychain, under its protection and its backups, with no
//! second place (and no cipher of ours) to get right. The cost is a few more keychain calls
//! for bundles larger than one blob, which only OAuth bundles with an ID token are.
//!
//! Layout, per entry, in slots named from its key (see [`slot_name`]):
//! - the **head** slot `latchkey:SERVICE/ACCOUNT` (escaped) holds a one-line header and, when the whole
//!   document fits beside it, the document itself (`latchkey1 inline GEN\n` + document);
//!   otherwise it names a generation of chunks, their count, the document's length and its
//!   SHA-256 (`latchkey1 chunks GEN COUNT LEN SHA256\n`);
//! - **chunk** slots `HEAD#GEN.I` hold the document's bytes, at most one blob each.
//!
//! A write puts the new generation's chunks first (generation = the head's + 1), then flips
//! the head to name them, then deletes the chunks of the generations before. A crash before
//! the flip leaves the old head and its chunks untouched (the new chunks are orphans,
//! overwritten or deleted by the next write or removal of the entry, which look at the next
//! generation); a crash after it leaves only stale chunks, deleted next time (writes and
//! removals sweep the two generations before the live one). Only crashes in several tidy-ups
//! in a row can leave chunks no head will name again. A reader checks every chunk's
//! presence, the length and the SHA-256, so a head and chunks that do not belong together
//! (another process writing the same entry at the same moment) are an error, never a bundle.
//! Writes and removals within one process are serialized.
//!
//! Removal deletes the chunks first and the head last, so an interrupted removal never leaves
//! secret bytes no head points at; it is finished by removing again.
//!
//! Generic over a tiny [`BlobSlots`] trait, so the layout is tested without Windows.

use std::sync::Mutex;

use latchkey_core::{EntryKey, SecretBytes, StoreError};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::blocking::BlockingKeychain;

/// A flat keychain of named blobs of bounded size.
pub trait BlobSlots: Send + Sync + 'static {
    /// The largest blob one slot holds, in bytes.
    fn max_blob(&self) -> usize;
    /// The blob in slot `name`, if any.
    fn get(&self, name: &str) -> Result<Option<SecretBytes>, StoreError>;
    /// Stores `blob` (at most [`BlobSlots::max_blob`] bytes) in slot `name`, replacing it.
    fn put(&self, name: &str, blob: &[u8]) -> Result<(), StoreError>;
    /// Deletes slot `name`; `true` if it existed.
    fn delete(&self, name: &str) -> Result<bool, StoreError>;
}

/// The first word of every head.
const MAGIC: &str = "latchkey1";

/// Chunk counts above this are refused when reading a head (bundles are capped far below).
const MAX_CHUNKS: u32 = 4096;

/// The head slot's name of `key`: `latchkey:SERVICE/ACCOUNT`, with `%`, `/`, `#`, ASCII
/// capitals and every non-ASCII byte percent-encoded (upper-case hex) in both. So no two keys
/// share a name, no head looks like a chunk, and names stay distinct where the keychain
/// compares them without regard to case (Credential Manager's target names), while latchkey's
/// keys are case-sensitive.
pub fn slot_name(key: &EntryKey) -> String {
    fn escape(out: &mut String, text: &str) {
        for byte in text.bytes() {
            match byte {
                b'%' | b'/' | b'#' | b'A'..=b'Z' | 0x80.. => {
                    out.push_str(&format!("%{byte:02X}"));
                }
                byte => out.push(char::from(byte)),
            }
        }
    }
    let mut name = String::from("latchkey:");
    escape(&mut name, key.service());
    name.push('/');
    escape(&mut name, key.account());
    name
}

/// The name of chunk `index` of generation `generation` of the entry whose head is `head`.
pub fn chunk_name(head: &str, generation: u64, index: u32) -> String {
    format!("{head}#{generation}.{index}")
}

/// What a head says.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The document is in the head, after the header line.
    Inline { generation: u64, start: usize },
    /// The document is in `count` chunks of generation `generation`.
    Chunks {
        generation: u64,
        count: u32,
        len: usize,
        sha256: String,
    },
}

impl Head {
    fn generation(&self) -> u64 {
        match self {
            Head::Inline { generation, .. } | Head::Chunks { generation, .. } => *generation,
        }
    }

    /// Reads a head blob's header; `None` if it is not one.
    fn parse(blob: &[u8]) -> Option<Head> {
        let end = blob.iter().position(|&b| b == b'\n')?;
        let line = std::str::from_utf8(&blob[..end]).ok()?;
        let mut words = line.split(' ');
        if words.next()? != MAGIC {
            return None;
        }
        let head = match (words.next()?, words.next()?.parse().ok()?) {
            ("inline", generation) => Head::Inline {
                generation,
                start: end + 1,
            },
            ("chunks", generation) => Head::Chunks {
                generation,
                count: words.next()?.parse().ok().filter(|&n| n <= MAX_CHUNKS)?,
                len: words.next()?.parse().ok()?,
                sha256: words.next()?.to_owned(),
            },
            _ => return None,
        };
        words.next().is_none().then_some(head)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Entry documents over [`BlobSlots`], chunked as the module describes.
pub struct Chunked<S> {
    name: &'static str,
    slots: S,
    /// Serializes this process's writes and removals.
    writing: Mutex<()>,
}

impl<S: BlobSlots> Chunked<S> {
    /// The backend `name` over `slots`.
    pub fn new(name: &'static str, slots: S) -> Self {
        Self {
            name,
            slots,
            writing: Mutex::new(()),
        }
    }

    /// The slots underneath.
    pub fn slots(&self) -> &S {
        &self.slots
    }

    /// The head of the entry whose head slot is `name`, if there is one that parses.
    fn head(&self, name: &str) -> Result<Option<(Head, SecretBytes)>, StoreError> {
        let Some(blob) = self.slots.get(name)? else {
            return Ok(None);
        };
        match Head::parse(&blob) {
            Some(head) => Ok(Some((head, blob))),
            None => Err(StoreError::Backend(
                "a keychain item of this entry is not in latchkey's format".into(),
            )),
        }
    }

    /// Reads and checks the chunks a head names.
    fn gather(
        &self,
        head: &str,
        generation: u64,
        count: u32,
        len: usize,
        sha256: &str,
    ) -> Result<SecretBytes, StoreError> {
        let broken = |why: &str| StoreError::Backend(format!("the entry's chunks {why}"));
        let mut document = Zeroizing::new(Vec::with_capacity(len));
        for index in 0..count {
            let chunk = self
                .slots
                .get(&chunk_name(head, generation, index))?
                .ok_or_else(|| broken("are incomplete"))?;
            if chunk.len() > self.slots.max_blob() || document.len() + chunk.len() > len {
                return Err(broken("do not match their head"));
            }
            document.extend_from_slice(&chunk);
        }
        if document.len() != len || sha256_hex(&document) != sha256 {
            return Err(broken("do not match their head"));
        }
        Ok(document)
    }

    /// Deletes the run of chunks `from..` of `generation` (up to the first missing one), the
    /// last first: chunks are written in order, and deleting backwards keeps what an
    /// interrupted sweep leaves a run starting at `from`, for the next sweep to find.
    fn sweep(&self, head: &str, generation: u64, from: u32) -> Result<(), StoreError> {
        if generation == 0 {
            return Ok(());
        }
        let mut end = from;
        while end < MAX_CHUNKS
            && self
                .slots
                .get(&chunk_name(head, generation, end))?
                .is_some()
        {
            end += 1;
        }
        for index in (from..end).rev() {
            self.slots.delete(&chunk_name(head, generation, index))?;
        }
        Ok(())
    }

    /// Writes `document` as generation `generation` and returns the head blob naming it.
    fn put_document(
        &self,
        head: &str,
        generation: u64,
        document: &[u8],
    ) -> Result<(SecretBytes, u32), StoreError> {
        let max = self.slots.max_blob();
        let mut inline = Zeroizing::new(format!("{MAGIC} inline {generation}\n").into_bytes());
        if inline.len() + document.len() <= max {
            inline.extend_from_slice(document);
            return Ok((inline, 0));
        }
        let mut count = 0;
        for chunk in document.chunks(max) {
            self.slots
                .put(&chunk_name(head, generation, count), chunk)?;
            count += 1;
        }
        let line = format!(
            "{MAGIC} chunks {generation} {count} {} {}\n",
            document.len(),
            sha256_hex(document)
        );
        Ok((Zeroizing::new(line.into_bytes()), count))
    }
}

impl<S: BlobSlots> BlockingKeychain for Chunked<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn read(&self, key: &EntryKey) -> Result<Option<SecretBytes>, StoreError> {
        let name = slot_name(key);
        let Some((head, blob)) = self.head(&name)? else {
            return Ok(None);
        };
        let document = match head {
            Head::Inline { start, .. } => Zeroizing::new(blob[start..].to_vec()),
            Head::Chunks {
                generation,
                count,
                len,
                sha256,
            } => self.gather(&name, generation, count, len, &sha256)?,
        };
        Ok(Some(document))
    }

    fn write(&self, key: &EntryKey, document: &[u8]) -> Result<(), StoreError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let name = slot_name(key);
        // A head that is not ours is replaced; it names no chunks we know of.
        let old = self.slots.get(&name)?.and_then(|blob| Head::parse(&blob));
        let last = old.as_ref().map_or(0, Head::generation);
        let generation = last + 1;
        let (head, count) = self.put_document(&name, generation, document)?;
        self.slots.put(&name, &head)?;
        // The new document is in place; what follows only tidies up: chunks of the
        // generation before the last one (a crash hit the last tidy-up), the last one, and
        // the tail a crashed write of this generation left.
        self.sweep(&name, last.saturating_sub(1), 0)?;
        self.sweep(&name, last, 0)?;
        self.sweep(&name, generation, count)
    }

    fn remove(&self, key: &EntryKey) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let name = slot_name(key);
        let old = self.slots.get(&name)?.and_then(|blob| Head::parse(&blob));
        let last = old.as_ref().map_or(0, Head::generation);
        // Stale chunks, the live ones, those a crashed write may have left, then the head.
        for generation in [last.saturating_sub(1), last, last + 1] {
            self.sweep(&name, generation, 0)?;
        }
        self.slots.delete(&name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Credential Manager's limit.
    const LIMIT: usize = 2560;

    /// Slots in memory that enforce [`LIMIT`] and can "crash": after `ops_left` more puts or
    /// deletes, every call fails, as if the process had died there.
    #[derive(Default)]
    struct MemorySlots {
        blobs: Mutex<BTreeMap<String, Vec<u8>>>,
        ops_left: Mutex<Option<usize>>,
    }

    impl MemorySlots {
        fn crash_after(&self, ops: usize) {
            *self.ops_left.lock().unwrap() = Some(ops);
        }
        fn restart(&self) {
            *self.ops_left.lock().unwrap() = None;
        }
        fn step(&self) -> Result<(), StoreError> {
            match &mut *self.ops_left.lock().unwrap() {
                Some(0) => Err(StoreError::Unavailable("crashed".into())),
                Some(n) => {
                    *n -= 1;
                    Ok(())
                }
                None => Ok(()),
            }
        }
        fn names(&self) -> Vec<String> {
            self.blobs.lock().unwrap().keys().cloned().collect()
        }
    }

    impl BlobSlots for MemorySlots {
        fn max_blob(&self) -> usize {
            LIMIT
        }
        fn get(&self, name: &str) -> Result<Option<SecretBytes>, StoreError> {
            let blobs = self.blobs.lock().unwrap();
            Ok(blobs.get(name).map(|b| Zeroizing::new(b.clone())))
        }
        fn put(&self, name: &str, blob: &[u8]) -> Result<(), StoreError> {
            if blob.len() > LIMIT {
                return Err(StoreError::Backend("blob over the limit".into()));
            }
            self.step()?;
            self.blobs
                .lock()
                .unwrap()
                .insert(name.to_owned(), blob.to_vec());
            Ok(())
        }
        fn delete(&self, name: &str) -> Result<bool, StoreError> {
            self.step()?;
            Ok(self.blobs.lock().unwrap().remove(name).is_some())
        }
    }

    fn store() -> Chunked<MemorySlots> {
        Chunked::new("test", MemorySlots::default())
    }

    fn key() -> EntryKey {
        EntryKey::new("https://idp.example.com/a#b", Some("me%40work")).unwrap()
    }

    /// A document of `len` bytes that differs by `seed` everywhere.
    fn document(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| b'a' + (i as u8 ^ seed) % 26).collect()
    }

    fn read(store: &Chunked<MemorySlots>) -> Option<Vec<u8>> {
        store.read(&key()).unwrap().map(|d| d.to_vec())
    }

    #[test]
    fn documents_of_every_size_round_trip_in_blobs_within_the_limit() {
        let store = store();
        for len in [0, 1, 100, LIMIT - 30, LIMIT, LIMIT + 1, 6 * 1024, 64 * 1024] {
            let doc = document(len, 7);
            store.write(&key(), &doc).unwrap();
            assert_eq!(read(&store), Some(doc), "{len} bytes");
            let blobs = store.slots().blobs.lock().unwrap();
            assert!(blobs.values().all(|b| b.len() <= LIMIT));
            // One head, plus exactly the chunks a chunked document needs: nothing stale.
            let chunks = if len + 19 <= LIMIT {
                0
            } else {
                len.div_ceil(LIMIT)
            };
            assert_eq!(blobs.len(), 1 + chunks, "{len} bytes: {:?}", blobs.keys());
        }
    }

    #[test]
    fn a_crash_before_the_head_flips_keeps_the_old_document() {
        let store = store();
        let old = document(6 * 1024, 1);
        store.write(&key(), &old).unwrap();
        // The new document needs 26 chunks and a head: crash after 0, 1, ... 26 puts.
        let new = document(64 * 1024, 2);
        for ops in 0..=26 {
            store.slots().crash_after(ops);
            assert!(store.write(&key(), &new).is_err());
            store.slots().restart();
            assert_eq!(read(&store), Some(old.clone()), "crash after {ops} puts");
        }
        // The next write overwrites and tidies the orphans of the crashed ones.
        let newer = document(3 * 1024, 3);
        store.write(&key(), &newer).unwrap();
        assert_eq!(read(&store), Some(newer));
        assert_eq!(store.slots().names().len(), 1 + 2);
    }

    #[test]
    fn a_crash_after_the_head_flips_serves_the_new_document_and_tidies_later() {
        let store = store();
        store.write(&key(), &document(6 * 1024, 1)).unwrap();
        let new = document(6 * 1024, 2);
        // Three chunks and the head are written, then the crash hits the first delete.
        store.slots().crash_after(4);
        assert!(store.write(&key(), &new).is_err());
        store.slots().restart();
        assert_eq!(read(&store), Some(new));
        assert_eq!(store.slots().names().len(), 1 + 3 + 3, "old chunks left");
        store.write(&key(), b"small").unwrap();
        assert_eq!(read(&store), Some(b"small".to_vec()));
        assert_eq!(store.slots().names(), [slot_name(&key())]);
    }

    #[test]
    fn chunks_that_do_not_match_their_head_are_an_error_not_a_bundle() {
        let store = store();
        store.write(&key(), &document(6 * 1024, 1)).unwrap();
        let head = slot_name(&key());
        let middle = chunk_name(&head, 1, 1);
        // Another writer's chunk of the same size in place of ours.
        store
            .slots()
            .put(&middle, &document(LIMIT, 9)[..LIMIT])
            .unwrap();
        assert!(matches!(
            store.read(&key()),
            Err(StoreError::Backend(m)) if m.contains("do not match")
        ));
        store.slots().delete(&middle).unwrap();
        assert!(matches!(
            store.read(&key()),
            Err(StoreError::Backend(m)) if m.contains("incomplete")
        ));
    }

    #[test]
    fn removal_deletes_every_slot_even_after_a_crashed_write() {
        let store = store();
        store.write(&key(), &document(6 * 1024, 1)).unwrap();
        store.slots().crash_after(2);
        assert!(store.write(&key(), &document(9 * 1024, 2)).is_err());
        store.slots().restart();
        // An interrupted removal leaves an entry that is either whole or an error, and
        // removing again finishes it.
        store.slots().crash_after(2);
        assert!(store.remove(&key()).is_err());
        store.slots().restart();
        assert!(store.remove(&key()).unwrap());
        assert!(store.slots().names().is_empty());
        assert_eq!(read(&store), None);
        assert!(!store.remove(&key()).unwrap());
    }

    #[test]
    fn heads_that_are_not_ours_are_refused() {
        for blob in [
            &b"secret"[..],
            b"latchkey1 chunks 1 99999 5 x\n",
            b"latchkey1 inline x\n",
            b"latchkey1 chunks 1 2 5 ab extra\n",
        ] {
            assert_eq!(
                Head::parse(blob),
                None,
                "{:?}",
                String::from_utf8_lossy(blob)
            );
        }
        let store = store();
        store
            .slots()
            .put(&slot_name(&key()), b"not a head")
            .unwrap();
        assert!(store.read(&key()).is_err());
        // A write replaces it.
        store.write(&key(), b"doc").unwrap();
        assert_eq!(read(&store), Some(b"doc".to_vec()));
    }

    #[test]
    fn slot_names_are_unambiguous() {
        let name = |s: &str, a: &str| slot_name(&EntryKey::new(s, Some(a)).unwrap());
        assert_ne!(name("a/b", "c"), name("a", "b/c"));
        assert_ne!(name("a%2Fb", "c"), name("a/b", "c"));
        assert!(!name("a#1.0", "c").contains('#'));
        assert_eq!(name("github", "default"), "latchkey:github/default");
        // Keys that differ only by case (ASCII or not) stay apart when compared without case.
        let folded = |s: &str, a: &str| name(s, a).to_lowercase();
        assert_ne!(folded("GitHub", "default"), folded("github", "default"));
        assert_ne!(folded("github", "Me"), folded("github", "me"));
        assert_ne!(folded("straße", "x"), folded("STRASSE", "x"));
        assert_ne!(folded("é", "x"), folded("É", "x"));
        assert!(name("é", "x").is_ascii());
    }
}
