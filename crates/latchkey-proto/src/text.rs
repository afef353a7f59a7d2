//! Characters that change how text looks without being seen: bidirectional controls,
//! zero-width characters and line/paragraph separators. Entry names may not hold them (the
//! daemon refuses such names) and clients escape them, with control characters, before showing
//! text another process sent. One list, shared by both sides.

/// Why a character is unsafe to show as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hidden {
    /// Reorders the text around it (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C).
    Bidi,
    /// Takes no room (U+200B–U+200D, U+2060, U+FEFF).
    ZeroWidth,
    /// Breaks the line without being a control character (U+2028, U+2029).
    Separator,
}

/// The class of `c` if it is a hidden character, else `None`.
pub fn hidden(c: char) -> Option<Hidden> {
    match c {
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{061C}' => Some(Hidden::Bidi),
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => Some(Hidden::ZeroWidth),
        '\u{2028}' | '\u{2029}' => Some(Hidden::Separator),
        _ => None,
    }
}

/// Whether `c` must be escaped before it reaches a terminal: a control character or a hidden one.
pub fn unsafe_to_show(c: char) -> bool {
    c.is_control() || hidden(c).is_some()
}

/// `text` with every character that is [`unsafe_to_show`] replaced by its `\u{..}` escape.
/// The result holds only characters safe to show, so escaping it again changes nothing.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_to_show(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert_eq!(hidden(c), Some(Hidden::Bidi), "{c:?}");
        }
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
            assert_eq!(hidden(c), Some(Hidden::ZeroWidth), "{c:?}");
        }
        for c in ['\u{2028}', '\u{2029}'] {
            assert_eq!(hidden(c), Some(Hidden::Separator), "{c:?}");
        }
        for c in ['a', 'é', '😀', '\u{2065}', '\u{202F}', '\u{2061}', 'ش'] {
            assert_eq!(hidden(c), None, "{c:?}");
        }
    }

    #[test]
    fn escape_is_idempotent() {
        let once = escape("a\u{1b}[2J\u{202E}b\u{200B}\u{2028}\u{85}");
        assert_eq!(once, "a\\u{1b}[2J\\u{202e}b\\u{200b}\\u{2028}\\u{85}");
        assert_eq!(escape(&once), once);
        assert_eq!(escape("José 😀"), "José 😀");
    }
}
