//! Minting and verifying grant tokens with `jsonwebtoken`: HS256 only, `typ` pinned to
//! [`crate::TOKEN_TYPE`], audience [`crate::AUDIENCE`], every claim required.
//!
//! What `jsonwebtoken` checks: the token's shape, that the header's `alg` is HS256 (so `none`,
//! HS512, RS256 and every other algorithm are refused before any key is used), the signature,
//! that `exp`, `nbf`, `aud` and `sub` are present and that `aud` is ours. What this module adds:
//! the size cap (before parsing), the header's `typ`, the claims' exact shape (unknown claims,
//! wrong types and malformed values are refused by [`GrantClaims`]'s deserializer), and the
//! validity window `nbf - LEEWAY_SECS ..= exp + LEEWAY_SECS` against the caller's `now`
//! (`jsonwebtoken` 10.3 can only read the system clock, so its own `exp`/`nbf` checks are
//! switched off and the daemon's clock decides instead; its `leeway` is still set to the same
//! value so turning them on again would agree).
//!
//! Every refusal is the same [`Refused`] to the outside; [`Refused::reason`] tells the daemon's
//! debug log which check failed, and neither ever holds the token.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use zeroize::Zeroizing;

use crate::claims::{GrantClaims, GrantSpecError, Jti};
use crate::key::GrantKey;
use crate::{AUDIENCE, LEEWAY_SECS, MAX_TOKEN_LEN, TOKEN_TYPE};

/// A grant token: a bearer credential, so it is treated like a secret. No `Display`, no
/// `Serialize`; `Debug` prints `GrantToken(..)`; zeroized when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantToken(Zeroizing<String>);

impl GrantToken {
    /// The token's text, to hand to the client that asked for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GrantToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrantToken(..)")
    }
}

/// A grant just minted: the token for the client, the claims for `grant list` and the audit log.
#[derive(Clone, Debug)]
pub struct MintedGrant {
    /// The token to print once.
    pub token: GrantToken,
    /// What it says.
    pub claims: GrantClaims,
}

/// A grant that passed every check: its claims, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedGrant {
    claims: GrantClaims,
}

impl VerifiedGrant {
    /// The grant's id, for the audit log.
    pub fn jti(&self) -> &Jti {
        &self.claims.jti
    }

    /// The grant's label.
    pub fn label(&self) -> &str {
        &self.claims.sub
    }

    /// Every claim.
    pub fn claims(&self) -> &GrantClaims {
        &self.claims
    }
}

/// Why minting failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The request asked for something a grant cannot hold.
    #[error(transparent)]
    Spec(#[from] GrantSpecError),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The token would be longer than [`MAX_TOKEN_LEN`] (too many or too long names).
    #[error("the grant would be longer than {MAX_TOKEN_LEN} bytes; name fewer services or scopes")]
    TooLarge,
    /// `jsonwebtoken` could not sign (not expected with an HMAC key).
    #[error("the grant could not be signed")]
    Signing,
}

/// Which check refused a grant. For the daemon's debug log only: clients get [`Refused`]'s one
/// message whatever the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not a well-formed grant: bad base64 or JSON, wrong number of parts, an `alg` value
    /// `jsonwebtoken` does not know (such as `none`), or claims that do not have a grant's
    /// shape (missing, unknown or mistyped claims; only reachable with a valid signature).
    Malformed,
    /// A known algorithm other than HS256.
    Algorithm,
    /// The header's `typ` is not [`TOKEN_TYPE`].
    Type,
    /// The signature does not match (forged, tampered with, or another key).
    Signature,
    /// The audience is not [`AUDIENCE`].
    Audience,
    /// The claims have a grant's shape but hold something minting refuses (or lack a claim
    /// `jsonwebtoken` requires).
    Claims,
    /// Past `exp` (plus the leeway).
    Expired,
    /// Before `nbf` (minus the leeway).
    NotYetValid,
    /// Its id was revoked.
    Revoked,
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalReason::TooLong => "too long",
            RefusalReason::Malformed => "malformed",
            RefusalReason::Algorithm => "algorithm not allowed",
            RefusalReason::Type => "wrong token type",
            RefusalReason::Signature => "bad signature",
            RefusalReason::Audience => "wrong audience",
            RefusalReason::Claims => "bad claims",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not yet valid",
            RefusalReason::Revoked => "revoked",
        })
    }
}

/// A grant was refused. `Display` and `Debug` are the same for every reason, so a client
/// cannot tell a forged grant from an expired or revoked one; the daemon answers
/// `permission_denied`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("the grant is not valid")]
pub struct Refused {
    reason: RefusalReason,
}

impl Refused {
    pub(crate) fn new(reason: RefusalReason) -> Self {
        Self { reason }
    }

    /// Which check failed, for the daemon's debug log (never for the client).
    pub fn reason(&self) -> RefusalReason {
        self.reason
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Refused")
    }
}

/// Signs and checks tokens with one key. Holds `jsonwebtoken`'s copies of the key, made once.
pub(crate) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub(crate) fn new(key: &GrantKey) -> Self {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(TOKEN_TYPE.to_owned());

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.reject_tokens_expiring_in_less_than = 0;
        // The window is checked in `check_window` against the caller's clock (see the module
        // documentation); the claims are still required here and typed by `GrantClaims`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "sub"]);

        Self {
            encoding: EncodingKey::from_secret(key.bytes()),
            decoding: DecodingKey::from_secret(key.bytes()),
            header,
            validation,
        }
    }

    /// Signs `claims` (already checked by `GrantRequest::into_claims`).
    pub(crate) fn mint(&self, claims: &GrantClaims) -> Result<GrantToken, MintError> {
        let token = Zeroizing::new(
            jsonwebtoken::encode(&self.header, claims, &self.encoding)
                .map_err(|_| MintError::Signing)?,
        );
        if token.len() > MAX_TOKEN_LEN {
            return Err(MintError::TooLarge);
        }
        Ok(GrantToken(token))
    }

    /// Checks everything but revocation.
    pub(crate) fn verify(&self, token: &str, now: u64) -> Result<VerifiedGrant, Refused> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refused::new(RefusalReason::TooLong));
        }
        let data = jsonwebtoken::decode::<GrantClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| Refused::new(reason_of(e.kind())))?;
        if data.header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(Refused::new(RefusalReason::Type));
        }
        let claims = data.claims;
        if claims.aud != AUDIENCE || claims.check().is_err() {
            return Err(Refused::new(RefusalReason::Claims));
        }
        check_window(&claims, now)?;
        Ok(VerifiedGrant { claims })
    }
}

/// `nbf - LEEWAY_SECS <= now <= exp + LEEWAY_SECS`.
pub(crate) fn check_window(claims: &GrantClaims, now: u64) -> Result<(), Refused> {
    if now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(Refused::new(RefusalReason::Expired));
    }
    if claims.nbf > now.saturating_add(LEEWAY_SECS) {
        return Err(Refused::new(RefusalReason::NotYetValid));
    }
    Ok(())
}

/// Maps `jsonwebtoken`'s error to a reason, dropping everything it carries.
fn reason_of(kind: &ErrorKind) -> RefusalReason {
    match kind {
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => RefusalReason::Algorithm,
        ErrorKind::InvalidSignature => RefusalReason::Signature,
        ErrorKind::InvalidAudience => RefusalReason::Audience,
        ErrorKind::ExpiredSignature => RefusalReason::Expired,
        ErrorKind::ImmatureSignature => RefusalReason::NotYetValid,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            RefusalReason::Claims
        }
        _ => RefusalReason::Malformed,
    }
}

#[cfg(test)]
mod tests;
