//! Keychain libraries' error texts, cut to a bounded length (they can be long, and they are
//! shown to clients), always on a character boundary: a localized platform message with a
//! multi-byte character at the cut must not panic the daemon.

/// The longest error text kept from a keychain library, in bytes.
pub(crate) const MAX_ERROR_TEXT: usize = 200;

/// `text`, cut to at most [`MAX_ERROR_TEXT`] bytes at a character boundary.
pub(crate) fn bounded(mut text: String) -> String {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multibyte_character_at_the_cut_is_dropped_whole() {
        // 199 ASCII bytes, then a 2-byte character straddling byte 200.
        let text = format!("{}é and more", "a".repeat(199));
        let cut = bounded(text);
        assert_eq!(cut, "a".repeat(199));
    }

    #[test]
    fn short_texts_are_kept_and_long_ones_cut() {
        assert_eq!(bounded("Zugriff verweigert".into()), "Zugriff verweigert");
        assert_eq!(bounded("ü".repeat(300)).len(), MAX_ERROR_TEXT);
    }
}
