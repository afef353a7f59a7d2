//! Checks shared by every name a grant carries (labels, patterns, accounts, scopes): not empty,
//! not too long, nothing that hides or reorders text when a list of grants is shown.

use latchkey_proto::text::hidden;

/// Why a piece of text was refused. Never repeats the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextProblem {
    Empty,
    TooLong,
    Unprintable,
}

/// Checks `text` against the rules above, with `max` bytes at most.
pub(crate) fn check(text: &str, max: usize) -> Result<(), TextProblem> {
    if text.is_empty() {
        return Err(TextProblem::Empty);
    }
    if text.len() > max {
        return Err(TextProblem::TooLong);
    }
    if text.chars().any(|c| c.is_control() || hidden(c).is_some()) {
        return Err(TextProblem::Unprintable);
    }
    Ok(())
}

impl TextProblem {
    /// A short phrase for error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TextProblem::Empty => "is empty",
            TextProblem::TooLong => "is too long",
            TextProblem::Unprintable => "contains a control or invisible character",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_long_and_hidden_text() {
        assert_eq!(check("", 8), Err(TextProblem::Empty));
        assert_eq!(check("123456789", 8), Err(TextProblem::TooLong));
        assert_eq!(check("a\nb", 8), Err(TextProblem::Unprintable));
        assert_eq!(check("a\u{202E}b", 8), Err(TextProblem::Unprintable));
        assert_eq!(check("a\u{200B}b", 8), Err(TextProblem::Unprintable));
        assert_eq!(check("repo:read", 16), Ok(()));
    }
}
