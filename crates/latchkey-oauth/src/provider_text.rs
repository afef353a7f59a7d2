//! Text a provider chose (an `error` code, an `error_description`, a reason the `oauth2` crate
//! quotes from an answer) made safe before it reaches an error message, a log or a client.
//!
//! Every such text passes [`sanitize`] where it enters latchkey, with the secrets of the
//! request it answers (refresh token, authorization code, PKCE verifier, device code, client
//! secret, state). Text that echoes any of them, or any run of [`ECHO_RUN`] bytes of one
//! (compared without regard to ASCII case), is withheld whole; so is text with a character
//! outside RFC 6749's error charset (`%x20-21 / %x23-5B / %x5D-7E`: printable ASCII without
//! `"` and `\`), which keeps control characters, escape sequences and look-alike letters out
//! of terminals and logs. What passes is cut to a bound. Nothing is filtered character by
//! character: a text is shown as the provider wrote it, or not at all.

use std::collections::HashSet;

/// The longest error code shown; longer ones are cut.
pub(crate) const CODE_LIMIT: usize = 64;
/// The longest description shown; longer ones are cut.
pub(crate) const DESCRIPTION_LIMIT: usize = 200;
/// Text longer than this is withheld unread: no provider explains an error in 4 KiB.
const READ_LIMIT: usize = 4096;
/// This many bytes of a secret found in a text make it an echo.
pub(crate) const ECHO_RUN: usize = 8;
/// What is said instead of a withheld error code.
pub(crate) const WITHHELD: &str = "an error whose text latchkey does not repeat";

/// `text` as it may be shown, cut to `limit` characters (marked `...`), or `None` when it
/// must be withheld: empty, longer than 4 KiB, outside the RFC 6749 error charset, or
/// echoing one of `secrets`.
pub(crate) fn sanitize(text: &str, limit: usize, secrets: &[&str]) -> Option<String> {
    let text = text.trim_matches(' ');
    if text.is_empty() || text.len() > READ_LIMIT || !text.bytes().all(in_charset) {
        return None;
    }
    if secrets.iter().any(|secret| echoes(text, secret)) {
        return None;
    }
    // Only ASCII is left, so bytes are characters.
    if text.len() <= limit {
        Some(text.to_owned())
    } else {
        Some(format!("{}...", &text[..limit]))
    }
}

/// A provider's error answer as it may be shown: its code, with its description in
/// parentheses when that passes too; a generic phrase when the code does not.
pub(crate) fn provider_error(error: &str, description: Option<&str>, secrets: &[&str]) -> String {
    let Some(code) = sanitize(error, CODE_LIMIT, secrets) else {
        return WITHHELD.to_owned();
    };
    match description.and_then(|d| sanitize(d, DESCRIPTION_LIMIT, secrets)) {
        Some(description) => format!("{code} ({description})"),
        None => code,
    }
}

/// RFC 6749 §5.2's `error` charset, used for descriptions too.
fn in_charset(byte: u8) -> bool {
    matches!(byte, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// Whether `text` holds `secret` or a run of [`ECHO_RUN`] bytes of it (a shorter secret
/// counts whole), ignoring ASCII case.
fn echoes(text: &str, secret: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let text = text.to_ascii_lowercase();
    let secret = secret.to_ascii_lowercase();
    let run = ECHO_RUN.min(secret.len());
    let pieces: HashSet<&[u8]> = secret.as_bytes().windows(run).collect();
    text.as_bytes().windows(run).any(|w| pieces.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH: &str = "rt-5f2a9c81d04e4b7aa1c3";

    #[test]
    fn plain_text_passes() {
        assert_eq!(
            sanitize("invalid_scope", CODE_LIMIT, &[REFRESH]).as_deref(),
            Some("invalid_scope")
        );
        assert_eq!(
            sanitize("The scope 'admin' is not allowed!", 200, &[REFRESH]).as_deref(),
            Some("The scope 'admin' is not allowed!")
        );
    }

    #[test]
    fn a_secret_or_a_long_piece_of_one_withholds_the_whole_text() {
        for text in [
            format!("invalid_grant: {REFRESH}"),
            // A piece of it, in another case.
            "token RT-5F2A9C81 is unknown".to_owned(),
            // The end of it.
            "ends with a1c3".to_owned() + &REFRESH[10..],
        ] {
            assert_eq!(sanitize(&text, 200, &[REFRESH]), None, "{text}");
        }
        // A short secret counts whole.
        assert_eq!(sanitize("code ab12 was used", 200, &["ab12"]), None);
        assert!(sanitize("code ab1 was used", 200, &["ab12"]).is_some());
        // Seven bytes of a long secret are not yet an echo; an empty secret is none.
        assert!(sanitize("rt-5f2a seen", 200, &[REFRESH, ""]).is_some());
    }

    #[test]
    fn characters_outside_the_error_charset_withhold_the_text() {
        for text in [
            "bad\u{1b}[31mred",
            "line\nbreak",
            "tab\there",
            "quote\"d",
            "back\\slash",
            "bell\u{7}",
            "del\u{7f}",
            "caf\u{e9}",
            "\u{202e}reversed",
            "",
            "   ",
        ] {
            assert_eq!(sanitize(text, 200, &[]), None, "{text:?}");
        }
    }

    #[test]
    fn long_text_is_cut_and_huge_text_withheld() {
        let long = "a".repeat(300);
        let cut = sanitize(&long, DESCRIPTION_LIMIT, &[]).unwrap();
        assert_eq!(cut, format!("{}...", "a".repeat(200)));
        assert_eq!(sanitize(&"a".repeat(READ_LIMIT + 1), 200, &[]), None);
    }

    #[test]
    fn provider_errors_keep_what_passes() {
        assert_eq!(
            provider_error("invalid_scope", Some("too much"), &[REFRESH]),
            "invalid_scope (too much)"
        );
        assert_eq!(
            provider_error("invalid_scope", Some(&format!("not {REFRESH}")), &[REFRESH]),
            "invalid_scope"
        );
        assert_eq!(provider_error(REFRESH, None, &[REFRESH]), WITHHELD);
        assert_eq!(provider_error("x\u{1b}", Some("fine"), &[]), WITHHELD);
    }
}
