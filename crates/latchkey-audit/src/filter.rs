//! Which records `latchkey audit` shows: `--service` and `--since`.

use chrono::{DateTime, Duration, Utc};

use crate::Record;

/// What a record must match to be shown.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only records of this service.
    pub service: Option<String>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl Filter {
    /// Whether `record` matches.
    pub fn matches(&self, record: &Record) -> bool {
        if let Some(service) = &self.service {
            if record.entry.as_ref().is_none_or(|e| e.service != *service) {
                return false;
            }
        }
        self.since.is_none_or(|since| record.ts >= since)
    }
}

/// Why a `--since` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a time: use RFC 3339 (2026-12-02T10:00:00Z) or an age such as 10m, 2h, 1d")]
pub struct BadTime(pub String);

/// `--since`: an RFC 3339 time, or an age before `now` (`30s`, `10m`, `2h`, `1d`, `1w`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, BadTime> {
    let bad = || BadTime(text.to_owned());
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let unit_at = text.char_indices().last().map(|(i, _)| i).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        "w" => n.checked_mul(7 * 86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    let age = Duration::try_seconds(seconds).ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;

    #[test]
    fn since_takes_times_and_ages() {
        let now: DateTime<Utc> = "2026-12-02T12:00:00Z".parse().unwrap();
        let at = |s: &str| parse_since(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("10m").unwrap(), "2026-12-02T11:50:00+00:00");
        assert_eq!(at("2h").unwrap(), "2026-12-02T10:00:00+00:00");
        assert_eq!(at("1d").unwrap(), "2026-12-01T12:00:00+00:00");
        assert_eq!(at("30s").unwrap(), "2026-12-02T11:59:30+00:00");
        assert_eq!(
            at("2026-12-02T13:00:00+01:00").unwrap(),
            "2026-12-02T12:00:00+00:00"
        );
        for bad in [
            "",
            "m",
            "10",
            "-5m",
            "10x",
            "1.5h",
            "99999999999999999999d",
            "1d\u{202e}",
        ] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_match_service_and_time() {
        let record = Record::new(Transport::Socket, "get", "ok").entry("github", Some("work"));
        let mut filter = Filter::default();
        assert!(filter.matches(&record));
        filter.service = Some("gitlab".into());
        assert!(!filter.matches(&record));
        filter.service = Some("github".into());
        assert!(filter.matches(&record));
        filter.since = Some(record.ts + Duration::seconds(1));
        assert!(!filter.matches(&record));
        let no_entry = Record::new(Transport::Socket, "lock", "ok");
        assert!(!Filter {
            service: Some("github".into()),
            since: None
        }
        .matches(&no_entry));
    }
}
