//! Service patterns, as written in `[policy] require_grant` and in a grant's services: an exact
//! service name (`openai`), a family (`github:*`: every service whose name starts with
//! `github:`, but not `github` itself), or `*` (every service).
//!
//! Only these three forms exist: a `*` anywhere else, or a prefix not ending in `:`, is refused,
//! so `git*` cannot quietly cover `gitlab` too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text;

/// Longest pattern accepted, in bytes (the longest service name, 512, plus nothing).
pub const MAX_PATTERN_LEN: usize = 512;

/// Why a pattern was refused. The message never repeats the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// Empty, too long, or with a control or invisible character.
    #[error("a service pattern {0}")]
    Text(&'static str),
    /// A `*` that is not the whole pattern or the end of `prefix:*`.
    #[error("a service pattern may only be a name, `prefix:*` or `*`")]
    Wildcard,
}

/// A validated service pattern.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServicePattern(String);

impl ServicePattern {
    /// Checks and wraps `pattern`.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        text::check(pattern, MAX_PATTERN_LEN).map_err(|p| PatternError::Text(p.describe()))?;
        let stars = pattern.matches('*').count();
        let well_formed = match stars {
            0 => true,
            1 => pattern == "*" || pattern.ends_with(":*"),
            _ => false,
        };
        if !well_formed {
            return Err(PatternError::Wildcard);
        }
        Ok(Self(pattern.to_owned()))
    }

    /// Whether `service` is covered.
    pub fn matches(&self, service: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => service.starts_with(prefix) && service.len() > prefix.len(),
            None => self.0 == service,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether any of `patterns` covers `service`.
pub fn any_matches(patterns: &[ServicePattern], service: &str) -> bool {
    patterns.iter().any(|p| p.matches(service))
}

impl TryFrom<String> for ServicePattern {
    type Error = PatternError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<ServicePattern> for String {
    fn from(value: ServicePattern) -> Self {
        value.0
    }
}

impl fmt::Display for ServicePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServicePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ServicePattern {
        ServicePattern::new(s).unwrap()
    }

    #[test]
    fn exact_names_match_only_themselves() {
        assert!(p("openai").matches("openai"));
        assert!(!p("openai").matches("openai2"));
        assert!(!p("openai").matches("OpenAI"));
        assert!(!p("openai").matches("open"));
        assert!(!p("openai").matches(""));
    }

    #[test]
    fn families_match_names_under_the_prefix_only() {
        let github = p("github:*");
        assert!(github.matches("github:work"));
        assert!(github.matches("github:a:b"));
        assert!(!github.matches("github"));
        assert!(!github.matches("github:"));
        assert!(!github.matches("githubx:work"));
        assert!(!github.matches("gitlab:work"));
    }

    #[test]
    fn a_lone_star_matches_every_service() {
        assert!(p("*").matches("openai"));
        assert!(p("*").matches("github:work"));
        assert!(!p("*").matches(""));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["git*", "*:x", "a:*:*", "**", "a*b", ":*x", "a:**"] {
            assert_eq!(
                ServicePattern::new(bad),
                Err(PatternError::Wildcard),
                "{bad}"
            );
        }
        for bad in ["", "a\nb", "a\u{202E}:*", &"x".repeat(MAX_PATTERN_LEN + 1)] {
            assert!(matches!(
                ServicePattern::new(bad),
                Err(PatternError::Text(_))
            ));
        }
        assert!(ServicePattern::new(":*").is_ok());
    }

    #[test]
    fn patterns_round_trip_through_serde_and_are_checked_when_read() {
        let list: Vec<ServicePattern> = serde_json::from_str(r#"["openai", "github:*"]"#).unwrap();
        assert_eq!(list, vec![p("openai"), p("github:*")]);
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"["openai","github:*"]"#
        );
        assert!(serde_json::from_str::<Vec<ServicePattern>>(r#"["git*"]"#).is_err());
        assert!(any_matches(&list, "github:me"));
        assert!(!any_matches(&list, "gitlab"));
    }
}
