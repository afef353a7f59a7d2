//! Reading the audit trail: the file and its rotated predecessors, oldest first, and a
//! [`Follower`] that keeps reading the file as it grows and across rotation.
//!
//! The file is the user's own, but a reader still treats it as untrusted input: a line longer
//! than [`MAX_LINE`] is skipped without being held in memory, and a line that is not a record
//! is reported as [`Line::Malformed`] for the caller to count, never a panic.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::file::FileId;
use crate::{rotated_path, Record};

/// Longest line read as a record; longer ones are skipped as malformed.
pub const MAX_LINE: usize = 64 * 1024;

/// Rotated files looked for at most (`audit.jsonl.1` ... `.1000`).
const MAX_ROTATED: u32 = 1000;

/// One line of the file.
#[derive(Debug)]
pub enum Line {
    /// A record.
    Record(Box<Record>),
    /// Not a record (not JSON, another shape, too long, not UTF-8).
    Malformed,
}

/// Splits bytes into lines, holding at most [`MAX_LINE`] bytes of an unfinished one.
#[derive(Default)]
struct Splitter {
    pending: Vec<u8>,
    /// The current line passed [`MAX_LINE`]: its bytes are dropped up to its newline.
    overlong: bool,
}

impl Splitter {
    fn feed(&mut self, mut bytes: &[u8], out: &mut dyn FnMut(Line)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let (part, rest) = match newline {
                Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                None => (bytes, None),
            };
            if !self.overlong {
                if self.pending.len() + part.len() > MAX_LINE {
                    self.overlong = true;
                    self.pending.clear();
                } else {
                    self.pending.extend_from_slice(part);
                }
            }
            match rest {
                Some(rest) => {
                    self.end_line(out);
                    bytes = rest;
                }
                None => break,
            }
        }
    }

    fn end_line(&mut self, out: &mut dyn FnMut(Line)) {
        if self.overlong {
            out(Line::Malformed);
        } else if !self.pending.iter().all(u8::is_ascii_whitespace) {
            out(parse(&self.pending));
        }
        self.pending.clear();
        self.overlong = false;
    }

    /// The end of a file that will not grow: an unfinished last line is malformed.
    fn finish(&mut self, out: &mut dyn FnMut(Line)) {
        if self.overlong || !self.pending.is_empty() {
            out(Line::Malformed);
        }
        self.pending.clear();
        self.overlong = false;
    }
}

fn parse(line: &[u8]) -> Line {
    match serde_json::from_slice::<Record>(line) {
        Ok(record) => Line::Record(Box::new(record)),
        Err(_) => Line::Malformed,
    }
}

/// Reads `file` from where it is to its end into `splitter`.
fn drain(
    file: &mut File,
    splitter: &mut Splitter,
    out: &mut dyn FnMut(Line),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => splitter.feed(&buf[..n], out),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// Every line of `path`, in order.
pub fn read_file(path: &Path, out: &mut dyn FnMut(Line)) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut splitter = Splitter::default();
    drain(&mut file, &mut splitter, out)?;
    splitter.finish(out);
    Ok(())
}

/// The rotated predecessors of `path` that exist, oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=MAX_ROTATED)
        .map(|n| rotated_path(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files
}

/// Every line of the rotated files and then of `path`, oldest first. A missing `path` is
/// not an error (nothing audited yet).
pub fn read_all(path: &Path, out: &mut dyn FnMut(Line)) -> std::io::Result<()> {
    for file in rotated_files(path) {
        match read_file(&file, out) {
            // Rotated away meanwhile.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    match read_file(path, out) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Reads the file as it grows; when it is rotated (a new file at the path), reads the old one
/// to its end, then the new one from its start.
pub struct Follower {
    path: PathBuf,
    /// The file being read and what it is; `None` until the path exists.
    open: Option<(File, FileId)>,
    splitter: Splitter,
}

impl Follower {
    /// Follows `path` from its start (a missing file is waited for).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            open: None,
            splitter: Splitter::default(),
        }
    }

    /// Reads what was added since the last call, across a rotation if one happened.
    pub fn poll(&mut self, out: &mut dyn FnMut(Line)) -> std::io::Result<()> {
        if let Some((file, _)) = &mut self.open {
            drain(file, &mut self.splitter, out)?;
        }
        // The file now at the path, opened to learn what it is (and read it if it is new).
        let mut now = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        let now_id = FileId::of(&now)?;
        match &mut self.open {
            Some((file, id)) if *id == now_id => {
                // Truncated in place (not by latchkey): start over.
                if now.metadata()?.len() < file.stream_position()? {
                    file.seek(SeekFrom::Start(0))?;
                    self.splitter = Splitter::default();
                    drain(file, &mut self.splitter, out)?;
                }
                Ok(())
            }
            _ => {
                // A new file: what the old one still had was read above (the daemon writes
                // only to the new one once it is there).
                let old = self.open.take().map(|(mut old, id)| {
                    let drained = drain(&mut old, &mut self.splitter, out);
                    self.splitter.finish(out);
                    drained.map(|()| id)
                });
                if let Some(old_id) = old.transpose()? {
                    self.read_skipped(old_id, out)?;
                }
                drain(&mut now, &mut self.splitter, out)?;
                self.open = Some((now, now_id));
                Ok(())
            }
        }
    }

    /// Reads the rotated files newer than the one last followed (`old`): more than one
    /// rotation can happen between two polls. If `old` is gone (rotated past `keep`), every
    /// rotated file left is newer than it.
    fn read_skipped(&mut self, old: FileId, out: &mut dyn FnMut(Line)) -> std::io::Result<()> {
        let files = rotated_files(&self.path);
        let mut newer = Vec::new();
        for path in files.iter().rev() {
            let Ok(file) = File::open(path) else { continue };
            if FileId::of(&file)? == old {
                break;
            }
            newer.push(file);
        }
        for mut file in newer.into_iter().rev() {
            drain(&mut file, &mut self.splitter, out)?;
            self.splitter.finish(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;
    use std::io::Write;

    fn collect(lines: &mut Vec<Line>) -> impl FnMut(Line) + '_ {
        move |line| lines.push(line)
    }

    fn line(service: &str) -> Vec<u8> {
        let mut out = Vec::new();
        Record::new(Transport::Dbus, "set", "ok")
            .entry(service, Some("default"))
            .to_line(&mut out);
        out
    }

    fn services(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match l {
                Line::Record(r) => r.entry.as_ref().unwrap().service.clone(),
                Line::Malformed => "?".to_owned(),
            })
            .collect()
    }

    #[test]
    fn hostile_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut bytes = line("a");
        bytes.extend_from_slice(b"not json\n\n{\"ts\":1}\n");
        bytes.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        bytes.push(b'\n');
        bytes.extend_from_slice(b"\xff\xfe\n");
        bytes.extend(line("b"));
        bytes.extend_from_slice(b"{\"partial\":");
        std::fs::write(&path, bytes).unwrap();
        let mut lines = Vec::new();
        read_all(&path, &mut collect(&mut lines)).unwrap();
        assert_eq!(services(&lines), ["a", "?", "?", "?", "?", "b", "?"]);
    }

    #[test]
    fn rotated_files_come_first_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(rotated_path(&path, 2), line("old")).unwrap();
        std::fs::write(rotated_path(&path, 1), line("older-than-now")).unwrap();
        std::fs::write(&path, line("now")).unwrap();
        let mut lines = Vec::new();
        read_all(&path, &mut collect(&mut lines)).unwrap();
        assert_eq!(services(&lines), ["old", "older-than-now", "now"]);
        let missing = dir.path().join("none.jsonl");
        read_all(&missing, &mut collect(&mut lines)).unwrap();
    }

    #[test]
    fn a_follower_reads_growth_partial_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut follower = Follower::new(&path);
        let mut lines = Vec::new();
        follower.poll(&mut collect(&mut lines)).unwrap();
        assert!(lines.is_empty(), "no file yet");

        let mut file = File::create(&path).unwrap();
        file.write_all(&line("one")).unwrap();
        let two = line("two");
        file.write_all(&two[..10]).unwrap();
        follower.poll(&mut collect(&mut lines)).unwrap();
        assert_eq!(services(&lines), ["one"], "half a line waits");
        file.write_all(&two[10..]).unwrap();
        follower.poll(&mut collect(&mut lines)).unwrap();
        assert_eq!(services(&lines), ["one", "two"]);

        // Rotation: the last line of the old file lands after the follower last looked.
        file.write_all(&line("three")).unwrap();
        std::fs::rename(&path, rotated_path(&path, 1)).unwrap();
        let mut new = File::create(&path).unwrap();
        new.write_all(&line("four")).unwrap();
        follower.poll(&mut collect(&mut lines)).unwrap();
        assert_eq!(services(&lines), ["one", "two", "three", "four"]);
        new.write_all(&line("five")).unwrap();
        follower.poll(&mut collect(&mut lines)).unwrap();
        assert_eq!(services(&lines), ["one", "two", "three", "four", "five"]);
    }

    /// Rotates `path` the way the writer does, keeping `keep` old files, and starts the new
    /// file with `content`.
    /// Rotates as the daemon's writer does, then writes the new file.
    fn rotate(path: &Path, keep: u32, content: &[u8]) {
        crate::file::rotate(path, keep).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn a_follower_catches_up_on_several_rotations_between_polls() {
        for keep in [5, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            std::fs::write(&path, line("a")).unwrap();
            let mut follower = Follower::new(&path);
            let mut lines = Vec::new();
            follower.poll(&mut collect(&mut lines)).unwrap();
            // Three rotations before the next poll; with keep = 2 the followed file is gone.
            rotate(&path, keep, &line("b"));
            rotate(&path, keep, &line("c"));
            rotate(&path, keep, &line("d"));
            follower.poll(&mut collect(&mut lines)).unwrap();
            assert_eq!(services(&lines), ["a", "b", "c", "d"], "keep = {keep}");
        }
    }
}
