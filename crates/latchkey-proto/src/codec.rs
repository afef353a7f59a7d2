//! Newline-delimited framing with a size cap.
//!
//! The decoder is fed bytes as they arrive and hands out complete lines. A line longer than the
//! cap is reported once as [`Frame::TooLong`] and its bytes are dropped up to the next newline,
//! so one oversized request never costs the connection or more memory than the cap.

/// Default cap on one request line: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Overwrites bytes that may have held a secret (a request or an answer line) with zeros.
///
/// One `memset` (a byte-at-a-time volatile loop would cost a request more than its parse),
/// kept from being optimized away by handing the bytes to [`std::hint::black_box`] after.
pub fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// What the decoder found in the bytes fed so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete line, without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line exceeded the cap; its bytes are being discarded.
    TooLong,
}

/// [`Frame`], borrowing the line from the decoder instead of copying it out.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameRef<'a> {
    /// One complete line, without its `\n` (and without a trailing `\r`).
    Line(&'a [u8]),
    /// A line exceeded the cap; its bytes are being discarded.
    TooLong,
}

/// Splits a byte stream into lines of at most `max` bytes.
///
/// Bytes of lines already handed out are wiped (they may hold a secret, as a `set` request
/// does) before their memory is reused or freed.
#[derive(Debug)]
pub struct LineDecoder {
    max: usize,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out, wiped when `buf` is next compacted.
    consumed: usize,
    discarding: bool,
}

impl LineDecoder {
    /// A decoder that accepts lines of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            consumed: 0,
            discarding: false,
        }
    }

    /// The cap in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Wipes and drops the lines already handed out.
    fn compact(&mut self) {
        if self.consumed == 0 {
            return;
        }
        wipe(&mut self.buf[..self.consumed]);
        if self.consumed == self.buf.len() {
            self.buf.clear();
        } else {
            // The unread tail moves to the front; its old copy is wiped too.
            let tail = self.buf.len() - self.consumed;
            self.buf.copy_within(self.consumed.., 0);
            wipe(&mut self.buf[tail..]);
            self.buf.truncate(tail);
        }
        self.consumed = 0;
    }

    /// Appends bytes that arrived.
    ///
    /// While discarding an oversized line, bytes up to its newline are dropped at once.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        self.compact();
        if self.discarding {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    self.discarding = false;
                    bytes = &bytes[pos + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame, if one is complete.
    pub fn next_frame(&mut self) -> Option<Frame> {
        Some(match self.next_frame_ref()? {
            FrameRef::Line(line) => Frame::Line(line.to_vec()),
            FrameRef::TooLong => Frame::TooLong,
        })
    }

    /// The next frame, if one is complete, borrowed until the decoder is used again.
    pub fn next_frame_ref(&mut self) -> Option<FrameRef<'_>> {
        if self.discarding {
            return None;
        }
        let unread = &self.buf[self.consumed..];
        match unread.iter().position(|&b| b == b'\n') {
            Some(pos) if pos <= self.max => {
                let start = self.consumed;
                self.consumed += pos + 1;
                let mut line = &self.buf[start..start + pos];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                Some(FrameRef::Line(line))
            }
            Some(pos) => {
                self.consumed += pos + 1;
                Some(FrameRef::TooLong)
            }
            None if unread.len() > self.max => {
                self.consumed = self.buf.len();
                self.compact();
                self.buf.shrink_to(self.max.min(64 * 1024));
                self.discarding = true;
                Some(FrameRef::TooLong)
            }
            None => None,
        }
    }

    /// Bytes of an unfinished line (non-zero at end of stream means a truncated request).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Whether a line has begun and not ended: bytes of it are buffered, or an oversized one
    /// is being discarded up to its newline.
    pub fn in_line(&self) -> bool {
        self.discarding || self.pending() > 0
    }
}

impl Drop for LineDecoder {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(decoder: &mut LineDecoder) -> Vec<Frame> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    #[test]
    fn splits_lines_across_feeds() {
        let mut d = LineDecoder::new(16);
        d.feed(b"ab");
        assert!(frames(&mut d).is_empty());
        d.feed(b"c\r\nde\nf");
        assert_eq!(
            frames(&mut d),
            vec![Frame::Line(b"abc".to_vec()), Frame::Line(b"de".to_vec())]
        );
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn oversized_line_is_reported_once_and_skipped() {
        let mut d = LineDecoder::new(4);
        d.feed(b"0123456789");
        assert_eq!(frames(&mut d), vec![Frame::TooLong]);
        d.feed(b"more bytes of the same line");
        assert!(frames(&mut d).is_empty());
        assert!(d.in_line() && d.pending() == 0);
        d.feed(b"tail\nok\n");
        assert_eq!(frames(&mut d), vec![Frame::Line(b"ok".to_vec())]);
        assert!(!d.in_line());
    }

    #[test]
    fn oversized_line_within_one_feed() {
        let mut d = LineDecoder::new(4);
        d.feed(b"0123456789\nabc\n");
        assert_eq!(
            frames(&mut d),
            vec![Frame::TooLong, Frame::Line(b"abc".to_vec())]
        );
    }

    #[test]
    fn line_of_exactly_the_cap_is_accepted() {
        let mut d = LineDecoder::new(4);
        d.feed(b"abcd\n");
        assert_eq!(frames(&mut d), vec![Frame::Line(b"abcd".to_vec())]);
    }

    #[test]
    fn borrowed_lines_and_wiped_consumed_bytes() {
        let mut d = LineDecoder::new(16);
        d.feed(b"secret-1\r\nsecret-2\npart");
        assert_eq!(d.next_frame_ref(), Some(FrameRef::Line(b"secret-1")));
        assert_eq!(d.next_frame_ref(), Some(FrameRef::Line(b"secret-2")));
        assert_eq!(d.next_frame_ref(), None);
        assert_eq!(d.pending(), 4);
        d.feed(b"ial\n");
        // The handed-out lines are gone and the unfinished one moved to the front; every byte
        // they left behind in the buffer's memory is zero.
        assert_eq!(&d.buf[..], b"partial\n");
        let left_behind = &d.buf.spare_capacity_mut()[..23 - 8];
        // SAFETY: these bytes were written by the first feed; reading them back is defined.
        assert!(left_behind.iter().all(|b| unsafe { b.assume_init() } == 0));
        assert_eq!(d.next_frame_ref(), Some(FrameRef::Line(b"partial")));
        assert!(!d.in_line());
    }

    #[test]
    fn memory_stays_bounded_while_discarding() {
        let mut d = LineDecoder::new(8);
        for _ in 0..1000 {
            d.feed(&[b'x'; 1024]);
            let _ = frames(&mut d);
            assert!(d.pending() <= 8 + 1024);
        }
    }
}
