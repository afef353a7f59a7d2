//! The daemon's side: [`AuditLog`] hands records to a writer thread through a bounded queue,
//! so a request never waits on the disk. The thread serializes what is queued, appends it with
//! one write, and rotates the file by size (`audit.jsonl` becomes `audit.jsonl.1`, `.1`
//! becomes `.2`, ... and the oldest beyond `keep` is removed).
//!
//! Failures are the daemon's to survive, not the requests': a full queue drops the record; a
//! file that cannot be opened or written (a full disk, a link planted at its path) loses that
//! batch and is tried again with the next one. Each stretch of trouble is logged once, with a
//! count of the records lost when it ends, never once per request.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::file::{open_append, prepare_dir};
use crate::{AuditError, Record};

/// Default size past which the file is rotated: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP: u32 = 3;
/// Records that may wait for the writer; beyond it, records are dropped.
pub const QUEUE: usize = 4096;
/// Records written with one system call at most.
const BATCH: usize = 256;

/// Where and how the audit file is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The file (`audit.jsonl` in the state folder).
    pub path: PathBuf,
    /// Rotate once the file would pass this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.jsonl.1` ... `.keep`); 0 keeps none.
    pub keep: u32,
}

enum Message {
    /// Boxed: the queue's slots are allocated (and touched) at start, so their size is what
    /// an idle daemon keeps resident: about 0.9 MB for 4,096 records held inline, about a
    /// tenth of that for pointers.
    Record(Box<Record>),
    /// Answered once everything queued before it is written (or failed).
    Flush(SyncSender<()>),
}

/// The daemon's audit handle: cheap to clone; a disabled one records nothing.
#[derive(Clone, Debug, Default)]
pub struct AuditLog {
    inner: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    queue: SyncSender<Message>,
    /// Records dropped because the queue was full, since the writer last reported.
    dropped: Arc<AtomicU64>,
}

/// Opens the audit file: a function so tests can hand the writer a file that fails.
type Opener = Box<dyn FnMut(&Path) -> Result<File, AuditError> + Send>;

impl AuditLog {
    /// A handle that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the writer thread for `settings`. The file is opened by the thread (and its
    /// folder checked there), so a problem with it shows in the log, never here.
    pub fn start(settings: Settings) -> std::io::Result<Self> {
        Self::start_with(
            settings,
            QUEUE,
            Box::new(|path: &Path| {
                prepare_dir(path)?;
                open_append(path)
            }),
        )
    }

    fn start_with(settings: Settings, queue: usize, opener: Opener) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            sink: Sink {
                settings,
                opener,
                file: None,
                size: 0,
            },
            dropped: dropped.clone(),
            failing: None,
        };
        // The thread logs where its starter logs (the global subscriber in the daemon).
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name("latchkey-audit".into())
            .spawn(move || tracing::dispatcher::with_default(&dispatch, || writer.run(rx)))?;
        Ok(Self {
            inner: Some(Arc::new(Shared { queue: tx, dropped })),
        })
    }

    /// Whether records go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `record` for the writer; never waits. A full queue drops it (counted, and
    /// reported once by the writer).
    pub fn record(&self, record: Record) {
        let Some(shared) = &self.inner else { return };
        match shared.queue.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!(
                        target: "latchkey::audit",
                        "the audit writer is behind; records are dropped until it catches up"
                    );
                }
            }
            // The writer thread is gone (it panicked): nothing more can be recorded.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits, for at most `timeout`, until everything queued so far is written (or has
    /// failed). For shutdown and tests; blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(shared) = &self.inner else {
            return true;
        };
        let (done, wait) = mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        let mut message = Message::Flush(done);
        loop {
            match shared.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                    message = back;
                    std::thread::yield_now();
                }
                Err(_) => return false,
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        wait.recv_timeout(left).is_ok()
    }
}

/// The file end of the writer: the open file, its size, rotation.
struct Sink {
    settings: Settings,
    opener: Opener,
    /// The open file; `None` until opened, and again after a failure (reopened next batch).
    file: Option<File>,
    /// Bytes in the open file.
    size: u64,
}

impl Sink {
    fn open(&mut self) -> Result<&mut File, AuditError> {
        if self.file.is_none() {
            let file = (self.opener)(&self.settings.path)?;
            self.size = file
                .metadata()
                .map_err(AuditError::io(&self.settings.path))?
                .len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    /// Appends `bytes` (whole lines), rotating first if they would take the file past its size.
    fn append(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        self.open()?;
        if self.size > 0 && self.size + bytes.len() as u64 > self.settings.max_bytes {
            self.rotate()?;
        }
        let path = self.settings.path.clone();
        let file = self.open()?;
        let written = file.write_all(bytes).map_err(AuditError::io(&path));
        match written {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Reopened (and its size read again) with the next batch.
                self.file = None;
                Err(err)
            }
        }
    }

    /// Moves the file to `.1` (and the older ones up), then opens a new one.
    fn rotate(&mut self) -> Result<(), AuditError> {
        self.file = None;
        let path = &self.settings.path;
        crate::file::rotate(path, self.settings.keep).map_err(AuditError::io(path))?;
        self.open().map(|_| ())
    }
}

/// The writer thread's state.
struct Writer {
    sink: Sink,
    /// Shared with the handles: records the queue had no room for.
    dropped: Arc<AtomicU64>,
    /// Records lost since writing started to fail; `None` while it works.
    failing: Option<u64>,
}

impl Writer {
    fn run(mut self, queue: Receiver<Message>) {
        let mut lines = Vec::new();
        let mut flushes = Vec::new();
        while let Ok(first) = queue.recv() {
            let mut records = 0u64;
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Record(record) => {
                        record.to_line(&mut lines);
                        records += 1;
                    }
                    Message::Flush(done) => flushes.push(done),
                }
                next = if records < BATCH as u64 {
                    queue.try_recv().ok()
                } else {
                    None
                };
            }
            if !lines.is_empty() {
                self.write(&lines, records);
                lines.clear();
            }
            for done in flushes.drain(..) {
                let _ = done.try_send(());
            }
        }
    }

    fn write(&mut self, lines: &[u8], records: u64) {
        match self.sink.append(lines) {
            Ok(()) => {
                if let Some(lost) = self.failing.take() {
                    info!(
                        target: "latchkey::audit",
                        path = %self.sink.settings.path.display(),
                        lost,
                        "the audit file is written again"
                    );
                }
            }
            Err(err) => match &mut self.failing {
                Some(lost) => *lost += records,
                None => {
                    warn!(
                        target: "latchkey::audit",
                        error = %err,
                        "cannot write the audit file; requests are still served, their audit records are lost until it can be written again"
                    );
                    self.failing = Some(records);
                }
            },
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            warn!(
                target: "latchkey::audit",
                dropped,
                "audit records were dropped while the writer was behind"
            );
        }
    }
}

#[cfg(test)]
mod tests;
