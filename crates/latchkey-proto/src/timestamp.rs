//! Timestamps on the wire: RFC 3339 in UTC with a `Z`, and 0, 3, 6 or 9 fraction digits,
//! byte for byte what chrono's own `Serialize` writes, but without going through `fmt`
//! (a `list` of 10,000 entries writes 20,000 of them).
//!
//! Years outside 0..=9999 and leap seconds are rare enough to be left to chrono.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// The longest text written here: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// Serializes a timestamp as chrono does (for `#[serde(serialize_with)]`).
pub(crate) fn serialize<S: Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match format(time, &mut buf) {
        Some(text) => serializer.serialize_str(text),
        None => serde::Serialize::serialize(time, serializer),
    }
}

/// Serializes an optional timestamp: `null` or as [`serialize`].
pub(crate) fn serialize_option<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serialize(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// Writes `time` into `buf`; `None` when chrono must write it (a year outside 0..=9999, a
/// leap second).
fn format<'b>(time: &DateTime<Utc>, buf: &'b mut [u8; MAX_LEN]) -> Option<&'b str> {
    let year = time.year();
    let nano = time.nanosecond();
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return None;
    }
    let year = year as u32;
    two(&mut buf[0..2], year / 100);
    two(&mut buf[2..4], year % 100);
    buf[4] = b'-';
    two(&mut buf[5..7], time.month());
    buf[7] = b'-';
    two(&mut buf[8..10], time.day());
    buf[10] = b'T';
    two(&mut buf[11..13], time.hour());
    buf[13] = b':';
    two(&mut buf[14..16], time.minute());
    buf[16] = b':';
    two(&mut buf[17..19], time.second());
    let (fraction, digits) = if nano == 0 {
        (0, 0)
    } else if nano % 1_000_000 == 0 {
        (nano / 1_000_000, 3)
    } else if nano % 1_000 == 0 {
        (nano / 1_000, 6)
    } else {
        (nano, 9)
    };
    let mut len = 19;
    if digits > 0 {
        buf[19] = b'.';
        let mut rest = fraction;
        for i in (0..digits).rev() {
            buf[20 + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        len = 20 + digits;
    }
    buf[len] = b'Z';
    // Only ASCII digits and separators were written.
    std::str::from_utf8(&buf[..=len]).ok()
}

fn two(out: &mut [u8], value: u32) {
    out[0] = b'0' + (value / 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn ours(time: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(time, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 12, 2, 9, 5, 7).unwrap();
        let nanos = [
            0,
            1,
            7,
            999,
            1_000,
            5_000,
            999_000,
            1_000_000,
            120_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
            100_000_000,
            10,
        ];
        let days = [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            base,
            Utc.with_ymd_and_hms(2000, 2, 29, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        ];
        for day in days {
            for nano in nanos {
                let time = day + chrono::Duration::nanoseconds(nano);
                assert_eq!(ours(&time), serde_json::to_string(&time).unwrap(), "{nano}");
            }
        }
    }

    #[test]
    fn leaves_odd_times_to_chrono() {
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        let before_zero = Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap();
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        for time in [far, before_zero, leap] {
            assert_eq!(ours(&time), serde_json::to_string(&time).unwrap());
        }
        let mut out = Vec::new();
        serialize_option(&None, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(out, b"null");
    }
}
