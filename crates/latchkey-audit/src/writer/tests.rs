//! The writer with real files: lines, rotation, a disk that refuses writes (`/dev/full`), a
//! queue that overflows.

#[cfg(target_os = "linux")]
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::*;
use crate::{reader, rotated_path};

const WAIT: Duration = Duration::from_secs(10);

fn record(n: usize) -> Record {
    Record::new(crate::Transport::Socket, "get", "ok").entry(&format!("svc{n}"), Some("default"))
}

fn settings(dir: &Path, max_bytes: u64, keep: u32) -> Settings {
    Settings {
        path: dir.join("audit.jsonl"),
        max_bytes,
        keep,
    }
}

/// The records of one file, in order.
fn records_in(path: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    let mut malformed = 0;
    reader::read_file(path, &mut |line| match line {
        reader::Line::Record(r) => out.push(*r),
        reader::Line::Malformed => malformed += 1,
    })
    .unwrap();
    assert_eq!(malformed, 0, "{}", path.display());
    out
}

/// Collects what a fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capturing() -> (Captured, impl tracing::Subscriber + Send + Sync) {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (captured, subscriber)
}

#[test]
fn records_are_appended_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::start(settings(dir.path(), DEFAULT_MAX_BYTES, 3)).unwrap();
    for n in 0..100 {
        log.record(record(n));
    }
    assert!(log.flush(WAIT));
    let got = records_in(&dir.path().join("audit.jsonl"));
    assert_eq!(got.len(), 100);
    assert_eq!(got[99].entry.as_ref().unwrap().service, "svc99");
}

#[test]
fn a_disabled_log_records_nothing_and_flushes_at_once() {
    let log = AuditLog::disabled();
    assert!(!log.is_enabled());
    log.record(record(1));
    assert!(log.flush(Duration::ZERO));
}

#[test]
fn rotation_keeps_the_newest_files_under_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let max = 1000;
    let log = AuditLog::start(settings(dir.path(), max, 2)).unwrap();
    for n in 0..200 {
        log.record(record(n));
        // One record per batch, so the size check runs between records.
        assert!(log.flush(WAIT));
    }
    let path = dir.path().join("audit.jsonl");
    assert!(rotated_path(&path, 1).exists());
    assert!(rotated_path(&path, 2).exists());
    assert!(!rotated_path(&path, 3).exists(), "only `keep` old files");
    let mut all = Vec::new();
    for file in [rotated_path(&path, 2), rotated_path(&path, 1), path.clone()] {
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size <= max, "{} is {size} bytes", file.display());
        all.extend(records_in(&file));
    }
    // The newest records, in order, none missing between the files.
    let names: Vec<String> = all
        .iter()
        .map(|r| r.entry.as_ref().unwrap().service.clone())
        .collect();
    let first: usize = names[0].trim_start_matches("svc").parse().unwrap();
    let expected: Vec<String> = (first..200).map(|n| format!("svc{n}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn keep_zero_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::start(settings(dir.path(), 500, 0)).unwrap();
    for n in 0..50 {
        log.record(record(n));
        assert!(log.flush(WAIT));
    }
    let path = dir.path().join("audit.jsonl");
    assert!(!rotated_path(&path, 1).exists());
    assert!(std::fs::metadata(&path).unwrap().len() <= 500);
}

/// A disk that refuses every write (the kernel's `/dev/full` answers ENOSPC), then recovers:
/// records are dropped without blocking anyone, the trouble is logged once, its end once, and
/// records after it are written.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_costs_records_not_requests_and_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let full = Arc::new(AtomicBool::new(true));
    let full_now = full.clone();
    let opener: Opener = Box::new(move |path: &Path| {
        if full_now.load(Ordering::SeqCst) {
            std::fs::OpenOptions::new()
                .append(true)
                .open("/dev/full")
                .map_err(AuditError::io(path))
        } else {
            open_append(path)
        }
    });
    let (captured, subscriber) = capturing();
    let log = tracing::subscriber::with_default(subscriber, || {
        AuditLog::start_with(settings(dir.path(), DEFAULT_MAX_BYTES, 3), QUEUE, opener).unwrap()
    });
    let started = std::time::Instant::now();
    for n in 0..500 {
        log.record(record(n));
        if n % 50 == 0 {
            assert!(log.flush(WAIT));
        }
    }
    assert!(log.flush(WAIT));
    assert!(started.elapsed() < WAIT);
    assert!(!path.exists());
    let text = captured.text();
    assert_eq!(
        text.matches("cannot write the audit file").count(),
        1,
        "{text}"
    );
    assert!(text.contains("No space left on device"), "{text}");

    full.store(false, Ordering::SeqCst);
    log.record(record(1000));
    assert!(log.flush(WAIT));
    let text = captured.text();
    assert!(text.contains("the audit file is written again"), "{text}");
    assert!(text.contains("lost=500"), "{text}");
    let got = records_in(&path);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entry.as_ref().unwrap().service, "svc1000");
}

/// A writer stuck on its file (here: an open that waits) fills the queue; recording still
/// returns at once, and the overflow is counted and reported.
#[test]
fn a_stuck_writer_drops_records_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let (release, stuck) = mpsc::channel::<()>();
    let (entered, in_open) = mpsc::channel::<()>();
    let stuck = Mutex::new(stuck);
    let opener: Opener = Box::new(move |path: &Path| {
        let _ = entered.send(());
        let _ = stuck.lock().unwrap().recv();
        open_append(path)
    });
    let (captured, subscriber) = capturing();
    let log = tracing::subscriber::with_default(subscriber, || {
        let log =
            AuditLog::start_with(settings(dir.path(), DEFAULT_MAX_BYTES, 3), 4, opener).unwrap();
        log.record(record(0));
        // The writer holds record 0 and waits in the open; the queue takes four more.
        in_open.recv_timeout(WAIT).unwrap();
        let started = std::time::Instant::now();
        for n in 1..100 {
            log.record(record(n));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        log
    });
    drop(release);
    assert!(log.flush(WAIT));
    let got = records_in(&dir.path().join("audit.jsonl"));
    assert_eq!(got.len(), 5);
    let text = captured.text();
    assert_eq!(
        text.matches("the audit writer is behind").count(),
        1,
        "{text}"
    );
    assert!(text.contains("dropped=95"), "{text}");
}
