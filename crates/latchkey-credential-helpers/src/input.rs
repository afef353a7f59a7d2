//! Reading a request from stdin with a cap on its size, into memory that is wiped when it is
//! dropped (a request can carry a password).
//!
//! The buffer is allocated once at its largest size, so reading never moves the bytes and
//! leaves an unwiped copy behind.

use std::io::{BufRead, Read};

use zeroize::Zeroizing;

/// The most a request may hold, in bytes, for either helper.
pub const MAX_INPUT: usize = 64 * 1024;

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The request is longer than allowed.
    #[error("the input is longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Reading failed.
    #[error("cannot read the input: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything up to end of input, at most `max` bytes.
pub fn read_all(reader: impl Read, max: usize) -> Result<Zeroizing<Vec<u8>>, InputError> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(max + 1));
    reader.take(max as u64 + 1).read_to_end(&mut buffer)?;
    if buffer.len() > max {
        return Err(InputError::TooLarge { max });
    }
    Ok(buffer)
}

/// Lines up to the first empty line or end of input, whichever comes first, at most `max`
/// bytes (the empty line itself is not returned). Nothing after the empty line is read, so a
/// caller that keeps its end open after it is not waited for.
pub fn read_until_blank_line(
    reader: impl BufRead,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, InputError> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(max + 1));
    let mut reader = reader.take(max as u64 + 1);
    loop {
        let start = buffer.len();
        let read = reader.read_until(b'\n', &mut buffer)?;
        if buffer.len() > max {
            return Err(InputError::TooLarge { max });
        }
        if read == 0 {
            return Ok(buffer);
        }
        if buffer[start..] == *b"\n" {
            buffer.truncate(start);
            return Ok(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_cap_and_refuses_more() {
        let exact = [b'x'; 100];
        assert_eq!(read_all(&exact[..], 100).unwrap().len(), 100);
        let over = [b'x'; 101];
        assert!(matches!(
            read_all(&over[..], 100),
            Err(InputError::TooLarge { max: 100 })
        ));
    }

    #[test]
    fn stops_at_the_first_blank_line() {
        let input = b"a=1\nb=2\n\nc=3\n";
        let read = read_until_blank_line(&input[..], 100).unwrap();
        assert_eq!(&read[..], b"a=1\nb=2\n");
        let no_blank = b"a=1\nb=2";
        let read = read_until_blank_line(&no_blank[..], 100).unwrap();
        assert_eq!(&read[..], b"a=1\nb=2");
        assert!(read_until_blank_line(&b""[..], 100).unwrap().is_empty());
    }

    #[test]
    fn a_long_request_without_a_blank_line_is_refused() {
        let mut input = Vec::new();
        for _ in 0..1000 {
            input.extend_from_slice(b"key=value\n");
        }
        assert!(matches!(
            read_until_blank_line(&input[..], 4096),
            Err(InputError::TooLarge { max: 4096 })
        ));
        // One endless line is refused too.
        let endless = [b'x'; 10_000];
        assert!(matches!(
            read_until_blank_line(&endless[..], 4096),
            Err(InputError::TooLarge { .. })
        ));
    }
}
