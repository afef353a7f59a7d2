//! Capability grants: tokens that let one client use some entries, for a while, and nothing else.
//!
//! A grant is a JWT (`jsonwebtoken`, HS256 only) signed with a 256-bit [`GrantKey`] that the
//! daemon keeps as an entry in its store. It names the services (exact names or `prefix:*`
//! patterns), optionally one account, the scopes and the operations (`get`, `proxy`) it allows,
//! and expires. The daemon mints grants with [`GrantAuthority::mint`], checks the ones clients
//! present with [`GrantAuthority::verify`] (every refusal looks the same from outside: see
//! [`Refused`]), revokes them by id, and asks [`Policy::decide`] whether a request may go on.
//!
//! Layout: [`key`] (the signing key), [`pattern`] (service patterns), [`claims`] (what a grant
//! says), [`token`] (minting and verifying), [`revocation`] (revoked ids), [`authority`] (the
//! daemon's handle over all of it), [`policy`] (allow or deny a request).
//!
//! Time is always passed in as Unix seconds (`now`), so the daemon's clock (and a test's)
//! decides; [`unix_now`] reads the system clock.
#![deny(missing_docs)]

pub mod authority;
pub mod claims;
pub mod key;
pub mod pattern;
pub mod policy;
pub mod revocation;
mod text;
pub mod token;

pub use authority::GrantAuthority;
pub use claims::{Capability, GrantClaims, GrantRequest, GrantSpecError, Jti, Op};
pub use key::{GrantKey, GrantKeyError};
pub use pattern::{PatternError, ServicePattern};
pub use policy::{Action, Decision, DenyReason, Policy};
pub use revocation::{RevocationError, Revocations};
pub use token::{GrantToken, MintError, MintedGrant, RefusalReason, Refused, VerifiedGrant};

/// The audience (`aud`) of every grant: grants are meant for latchkey's daemon and nothing else.
pub const AUDIENCE: &str = "latchkey";

/// The JOSE header's `typ` of every grant (explicit typing, RFC 8725 §3.11), so no other JWT
/// signed with the same key could pass for a grant.
pub const TOKEN_TYPE: &str = "latchkey-grant+jwt";

/// How far, in seconds, `exp` and `nbf` are stretched when a grant is checked. The daemon mints
/// and checks grants on one clock, so this only absorbs that clock being stepped (NTP) between
/// the two; 10 s is long enough for that and short next to any useful lifetime.
pub const LEEWAY_SECS: u64 = 10;

/// Longest grant token accepted, in bytes. Anything longer is refused before it is parsed;
/// minting refuses to make a longer one.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Shortest lifetime a grant may be minted with, in seconds.
pub const MIN_TTL_SECS: u64 = 1;

/// Longest lifetime a grant may be minted with, in seconds (366 days).
pub const MAX_TTL_SECS: u64 = 366 * 24 * 60 * 60;

/// Services whose names start with this are the daemon's own (the grant key, the revocation
/// list). No grant ever reaches them, whatever its patterns, and [`Policy::decide`] refuses any
/// request for them.
pub const RESERVED_PREFIX: &str = "latchkey:";

/// A suggested service name for the entry holding the [`GrantKey`].
pub const KEY_ENTRY_SERVICE: &str = "latchkey:grant-key";

/// A suggested service name for the entry holding the serialized [`Revocations`].
pub const REVOCATIONS_ENTRY_SERVICE: &str = "latchkey:grant-revocations";

/// Whether `service` is one of the daemon's own entries (see [`RESERVED_PREFIX`]).
pub fn is_reserved(service: &str) -> bool {
    service.starts_with(RESERVED_PREFIX)
}

/// The system clock as Unix seconds (0 if it reads before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
