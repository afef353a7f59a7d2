//! What a grant says: the registered JWT claims (`aud`, `sub`, `iat`, `nbf`, `exp`, `jti`) and
//! the capability (`cap`: services, optional account, scopes, operations).
//!
//! The same checks run when a grant is minted ([`GrantRequest`]) and again when one is read back
//! from a verified token, so a grant can only ever hold what minting would have accepted.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pattern::{PatternError, ServicePattern};
use crate::{is_reserved, text, MAX_TTL_SECS, MIN_TTL_SECS};

/// Most service patterns one grant may name.
pub const MAX_SERVICES: usize = 32;
/// Most scopes one grant may name.
pub const MAX_SCOPES: usize = 32;
/// Longest scope, in bytes.
pub const MAX_SCOPE_LEN: usize = 256;
/// Longest account name, in bytes (as for entries).
pub const MAX_ACCOUNT_LEN: usize = 256;
/// Longest label (`sub`), in bytes.
pub const MAX_LABEL_LEN: usize = 128;
/// The label of a grant minted without one.
pub const DEFAULT_LABEL: &str = "grant";

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), ()> {
    getrandom::getrandom(buf).map_err(|_| ())
}

/// An operation a grant may allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Op {
    /// Read the entry's secret (`get`).
    Get,
    /// Have the proxy send the entry's secret upstream on the client's behalf.
    Proxy,
}

impl Op {
    /// The operation's name, as in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Proxy => "proxy",
        }
    }
}

impl std::str::FromStr for Op {
    type Err = GrantSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "get" => Ok(Op::Get),
            "proxy" => Ok(Op::Proxy),
            _ => Err(GrantSpecError::UnknownOp),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grant's id (`jti`): 128 random bits as 32 lowercase hex digits. Not a secret: knowing it
/// lets one revoke the grant (through the daemon), not use it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jti(String);

impl Jti {
    /// Length of an id in characters.
    pub const LEN: usize = 32;

    /// A new random id.
    pub(crate) fn generate() -> Result<Self, ()> {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes)?;
        Ok(Jti(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Checks and wraps an id given by a user (`grant revoke ID`) or read from a token.
    pub fn parse(id: &str) -> Result<Self, GrantSpecError> {
        let ok = id.len() == Self::LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Jti(id.to_owned()))
        } else {
            Err(GrantSpecError::Jti)
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Jti {
    type Error = GrantSpecError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Jti> for String {
    fn from(value: Jti) -> Self {
        value.0
    }
}

impl fmt::Display for Jti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Jti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jti({})", self.0)
    }
}

/// Why a grant's content was refused. Messages never repeat the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantSpecError {
    /// No service pattern given.
    #[error("a grant needs at least one service")]
    NoServices,
    /// More than [`MAX_SERVICES`] patterns.
    #[error("a grant may name at most {MAX_SERVICES} services")]
    TooManyServices,
    /// A pattern names the daemon's own entries.
    #[error("a grant cannot name latchkey's own entries (latchkey:...)")]
    Reserved,
    /// A pattern is malformed.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// No operation given.
    #[error("a grant needs at least one operation (get, proxy)")]
    NoOps,
    /// An operation other than `get` or `proxy`.
    #[error("unknown operation: a grant allows only get and proxy")]
    UnknownOp,
    /// More than [`MAX_SCOPES`] scopes.
    #[error("a grant may name at most {MAX_SCOPES} scopes")]
    TooManyScopes,
    /// A scope is empty, too long, or has a control or invisible character.
    #[error("a scope {0}")]
    Scope(&'static str),
    /// The account is empty, too long, or has a control or invisible character.
    #[error("the account name {0}")]
    Account(&'static str),
    /// The label is empty, too long, or has a control or invisible character.
    #[error("the label {0}")]
    Label(&'static str),
    /// The lifetime is outside [`MIN_TTL_SECS`]..=[`MAX_TTL_SECS`].
    #[error("a grant's lifetime must be between {MIN_TTL_SECS} s and {MAX_TTL_SECS} s")]
    Ttl,
    /// Not a grant id (32 lowercase hex digits).
    #[error("a grant id is 32 lowercase hexadecimal digits")]
    Jti,
}

/// What a grant allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// The services (exact names or patterns) it reaches.
    pub services: Vec<ServicePattern>,
    /// The one account it reaches; `None`: every account of those services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The scopes a request under it may ask for (a request's scopes must all be among them);
    /// empty: no limit on the scopes asked for. Asking for scopes only narrows which entry
    /// serves a request; the entry's token is served with whatever scopes it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The operations it allows.
    pub ops: Vec<Op>,
}

impl Capability {
    /// Checks every limit; also sorts and dedups the lists, so equal capabilities compare equal.
    pub(crate) fn normalize(&mut self) -> Result<(), GrantSpecError> {
        self.services.sort();
        self.services.dedup();
        self.ops.sort();
        self.ops.dedup();
        self.scopes.sort();
        self.scopes.dedup();
        self.check()
    }

    /// Whether this capability allows `op` on the entry `service`/`account` with the
    /// requested `scopes`. Never true for the daemon's own entries.
    pub fn covers(&self, op: Op, service: &str, account: &str, scopes: &[String]) -> bool {
        !is_reserved(service)
            && self.ops.contains(&op)
            && crate::pattern::any_matches(&self.services, service)
            && self.account.as_deref().is_none_or(|a| a == account)
            && (self.scopes.is_empty() || scopes.iter().all(|s| self.scopes.contains(s)))
    }

    /// Checks every limit without changing anything.
    pub(crate) fn check(&self) -> Result<(), GrantSpecError> {
        if self.services.is_empty() {
            return Err(GrantSpecError::NoServices);
        }
        if self.services.len() > MAX_SERVICES {
            return Err(GrantSpecError::TooManyServices);
        }
        if self.services.iter().any(|p| is_reserved(p.as_str())) {
            return Err(GrantSpecError::Reserved);
        }
        if self.ops.is_empty() {
            return Err(GrantSpecError::NoOps);
        }
        if self.scopes.len() > MAX_SCOPES {
            return Err(GrantSpecError::TooManyScopes);
        }
        for scope in &self.scopes {
            text::check(scope, MAX_SCOPE_LEN).map_err(|p| GrantSpecError::Scope(p.describe()))?;
        }
        if let Some(account) = &self.account {
            text::check(account, MAX_ACCOUNT_LEN)
                .map_err(|p| GrantSpecError::Account(p.describe()))?;
        }
        Ok(())
    }
}

/// The claims of a grant token. Unknown claims make a token invalid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    /// Always [`crate::AUDIENCE`].
    pub aud: String,
    /// The grant's label, for `grant list` and the audit log.
    pub sub: String,
    /// When it was minted (Unix seconds).
    pub iat: u64,
    /// When it starts to be valid (Unix seconds; the mint time).
    pub nbf: u64,
    /// When it stops being valid (Unix seconds).
    pub exp: u64,
    /// Its unique id.
    pub jti: Jti,
    /// What it allows.
    pub cap: Capability,
}

impl GrantClaims {
    /// The checks minting applies, run on claims read back from a token.
    pub(crate) fn check(&self) -> Result<(), GrantSpecError> {
        text::check(&self.sub, MAX_LABEL_LEN).map_err(|p| GrantSpecError::Label(p.describe()))?;
        if self.nbf > self.exp || self.iat > self.nbf {
            return Err(GrantSpecError::Ttl);
        }
        self.cap.check()
    }
}

/// What the daemon asks [`crate::GrantAuthority::mint`] for (`latchkey grant create`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRequest {
    /// A label (`--name`); `None`: [`DEFAULT_LABEL`].
    pub label: Option<String>,
    /// What the grant allows.
    pub capability: Capability,
    /// Its lifetime in seconds (`--ttl`).
    pub ttl_secs: u64,
}

impl GrantRequest {
    /// Checks the request and turns it into claims minted `now` with id `jti`.
    pub(crate) fn into_claims(self, now: u64, jti: Jti) -> Result<GrantClaims, GrantSpecError> {
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            return Err(GrantSpecError::Ttl);
        }
        let exp = now.checked_add(self.ttl_secs).ok_or(GrantSpecError::Ttl)?;
        let label = self.label.unwrap_or_else(|| DEFAULT_LABEL.to_owned());
        text::check(&label, MAX_LABEL_LEN).map_err(|p| GrantSpecError::Label(p.describe()))?;
        let mut cap = self.capability;
        cap.normalize()?;
        Ok(GrantClaims {
            aud: crate::AUDIENCE.to_owned(),
            sub: label,
            iat: now,
            nbf: now,
            exp,
            jti,
            cap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(services: &[&str]) -> Capability {
        Capability {
            services: services
                .iter()
                .map(|s| ServicePattern::new(s).unwrap())
                .collect(),
            account: None,
            scopes: vec![],
            ops: vec![Op::Get],
        }
    }

    fn request(capability: Capability) -> GrantRequest {
        GrantRequest {
            label: None,
            capability,
            ttl_secs: 3600,
        }
    }

    fn jti() -> Jti {
        Jti::generate().unwrap()
    }

    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let a = jti();
        let b = jti();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), Jti::LEN);
        assert_eq!(Jti::parse(a.as_str()).unwrap(), a);
        for bad in ["", "xyz", &"A".repeat(32), &"0".repeat(31), &"0".repeat(33)] {
            assert_eq!(Jti::parse(bad), Err(GrantSpecError::Jti));
        }
    }

    #[test]
    fn a_request_becomes_normalized_claims() {
        let mut c = cap(&["openai", "github:*", "openai"]);
        c.ops = vec![Op::Proxy, Op::Get, Op::Proxy];
        c.scopes = vec!["b".into(), "a".into(), "b".into()];
        let claims = request(c).into_claims(1000, jti()).unwrap();
        assert_eq!(claims.aud, crate::AUDIENCE);
        assert_eq!(claims.sub, DEFAULT_LABEL);
        assert_eq!((claims.iat, claims.nbf, claims.exp), (1000, 1000, 4600));
        let names: Vec<_> = claims.cap.services.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["github:*", "openai"]);
        assert_eq!(claims.cap.ops, [Op::Get, Op::Proxy]);
        assert_eq!(claims.cap.scopes, ["a", "b"]);
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut r = request(cap(&[]));
        assert_eq!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::NoServices)
        );
        r.capability = cap(&["latchkey:grant-key"]);
        assert_eq!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::Reserved)
        );
        r.capability = cap(&["latchkey:*"]);
        assert_eq!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::Reserved)
        );
        r.capability = cap(&["openai"]);
        r.capability.ops.clear();
        assert_eq!(r.clone().into_claims(0, jti()), Err(GrantSpecError::NoOps));
        r.capability = cap(&["openai"]);
        r.capability.scopes = vec!["a\u{0}".into()];
        assert!(matches!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::Scope(_))
        ));
        r.capability.scopes = (0..=MAX_SCOPES).map(|i| i.to_string()).collect();
        assert_eq!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::TooManyScopes)
        );
        r.capability = cap(&["openai"]);
        r.capability.account = Some(String::new());
        assert!(matches!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::Account(_))
        ));
        r.capability.account = None;
        r.label = Some("a\u{202E}b".into());
        assert!(matches!(
            r.clone().into_claims(0, jti()),
            Err(GrantSpecError::Label(_))
        ));
        r.label = None;
        for ttl in [0, MAX_TTL_SECS + 1] {
            r.ttl_secs = ttl;
            assert_eq!(r.clone().into_claims(0, jti()), Err(GrantSpecError::Ttl));
        }
        r.ttl_secs = MAX_TTL_SECS;
        assert_eq!(
            r.clone().into_claims(u64::MAX, jti()),
            Err(GrantSpecError::Ttl)
        );
        let many: Vec<String> = (0..=MAX_SERVICES).map(|i| format!("s{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        r.capability = cap(&many);
        assert_eq!(
            r.into_claims(0, jti()),
            Err(GrantSpecError::TooManyServices)
        );
    }

    #[test]
    fn ops_parse_from_their_names_only() {
        assert_eq!("get".parse::<Op>(), Ok(Op::Get));
        assert_eq!("proxy".parse::<Op>(), Ok(Op::Proxy));
        assert_eq!("set".parse::<Op>(), Err(GrantSpecError::UnknownOp));
        assert!(serde_json::from_str::<Op>(r#""clear""#).is_err());
    }
}
