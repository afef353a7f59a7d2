//! `get --min-valid N`: when the token served is valid for less than N seconds, a note on
//! stderr says so (stdout keeps the secret alone, for `$(...)`). The daemon serves the
//! freshest token it has rather than failing: it refreshes early for at most half of a
//! token's lifetime, and a provider may issue tokens that live less than N seconds.

/// Now, in seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The note for a token that expires at `expires_at` (Unix seconds), served at `now` to a
/// `get` that asked for `min_valid` seconds, if it falls short.
pub fn note(expires_at: Option<i64>, min_valid: Option<u64>, now: i64) -> Option<String> {
    let (expires_at, min_valid) = (expires_at?, min_valid?);
    let left = expires_at.saturating_sub(now).max(0);
    (u64::try_from(left).ok()? < min_valid).then(|| {
        format!(
            "note: this token is valid for {left} more seconds only, less than the --min-valid \
             {min_valid} asked for: it is the freshest there is (latchkey refreshes early for at \
             most half of a token's lifetime, and the provider may issue shorter-lived tokens)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_short_of_min_valid_gets_a_note() {
        let now = 1_780_000_000;
        let in_an_hour = Some(now + 3600);
        let text = note(in_an_hour, Some(7200), now).unwrap();
        assert!(text.contains("valid for 3600 more seconds only"), "{text}");
        assert!(text.contains("--min-valid 7200"), "{text}");
        assert!(!text.contains("expired"), "{text}");
        assert_eq!(note(in_an_hour, Some(3600), now), None);
        assert_eq!(note(in_an_hour, None, now), None);
        assert_eq!(note(None, Some(7200), now), None);
        assert!(note(Some(now - 5), Some(1), now)
            .unwrap()
            .contains(" 0 more"));
    }
}
