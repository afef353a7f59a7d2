//! Newline-delimited framing with a size cap.
//!
//! The decoder is fed bytes as they arrive and hands out complete lines. A line longer than the
//! cap is reported once as [`Frame::TooLong`] and its bytes are dropped up to the next newline,
//! so one oversized request never costs the connection or more memory than the cap.

/// Default cap on one request line: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// What the decoder found in the bytes fed so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete line, without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line exceeded the cap; its bytes are being discarded.
    TooLong,
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineDecoder {
    max: usize,
    buf: Vec<u8>,
    discarding: bool,
}

impl LineDecoder {
    /// A decoder that accepts lines of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// The cap in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Appends bytes that arrived.
    ///
    /// While discarding an oversized line, bytes up to its newline are dropped at once.
    pub fn feed(&mut self, mut bytes: &[u8]) {
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
        if self.discarding {
            return None;
        }
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(pos) if pos <= self.max => {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Frame::Line(line))
            }
            Some(pos) => {
                self.buf.drain(..=pos);
                Some(Frame::TooLong)
            }
            None if self.buf.len() > self.max => {
                self.buf.clear();
                self.buf.shrink_to(self.max.min(64 * 1024));
                self.discarding = true;
                Some(Frame::TooLong)
            }
            None => None,
        }
    }

    /// Bytes of an unfinished line (non-zero at end of stream means a truncated request).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Whether a line has begun and not ended: bytes of it are buffered, or an oversized one
    /// is being discarded up to its newline.
    pub fn in_line(&self) -> bool {
        self.discarding || !self.buf.is_empty()
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
    fn memory_stays_bounded_while_discarding() {
        let mut d = LineDecoder::new(8);
        for _ in 0..1000 {
            d.feed(&[b'x'; 1024]);
            let _ = frames(&mut d);
            assert!(d.pending() <= 8 + 1024);
        }
    }
}
