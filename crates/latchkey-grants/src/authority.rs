//! The daemon's handle over grants: one key, its signer, and the revoked ids, behind a cheap
//! clone. Everything the daemon's handlers need is a method here; time comes in as `now`
//! (Unix seconds) from the daemon's clock.
//!
//! The revoked ids sit behind a std `Mutex` (held for a map look-up, never across an await).
//!
//! Checking a token's signature and claims costs far more than the rest of a cached `get`
//! (about 80,000 instructions against 12,000), and a client sends the same token with every
//! request. So the grants that passed are remembered with their token: the same bytes again
//! skip `jsonwebtoken`, while the validity window and revocation are still checked on every
//! use. Any other token, even one differing in a byte, is checked in full. The remembered
//! tokens are wiped when dropped, like the secrets the daemon caches.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use zeroize::Zeroizing;

use crate::claims::{GrantRequest, Jti};
use crate::key::GrantKey;
use crate::revocation::{RevocationError, Revocations};
use crate::token::{
    check_window, MintError, MintedGrant, RefusalReason, Refused, Signer, VerifiedGrant,
};

/// Verified grants remembered at most; when full, the memory starts over.
const VERIFIED_CAP: usize = 256;

/// Mints, verifies and revokes grants. Clones share the same state.
#[derive(Clone)]
pub struct GrantAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    /// Made once from the key; the key itself is not kept.
    signer: Signer,
    /// Owned here; the daemon gets copies to save.
    revoked: Mutex<Revocations>,
    /// Grants that passed the signature and claim checks, with their token, by a hash of the
    /// token under a key of this process's own.
    verified: Mutex<HashMap<u64, (Zeroizing<String>, VerifiedGrant)>>,
    hasher: RandomState,
}

impl fmt::Debug for GrantAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantAuthority")
            .field("revoked", &self.revoked().len())
            .finish_non_exhaustive()
    }
}

impl GrantAuthority {
    /// An authority signing with `key`, starting from the saved `revoked` list (or
    /// [`Revocations::new`]).
    pub fn new(key: &GrantKey, revoked: Revocations) -> Self {
        Self {
            inner: Arc::new(Inner {
                signer: Signer::new(key),
                revoked: Mutex::new(revoked),
                verified: Mutex::new(HashMap::new()),
                hasher: RandomState::new(),
            }),
        }
    }

    /// Mints a grant at `now`. The token is for the client, once; the claims may be kept and
    /// listed (they hold no secret).
    pub fn mint(&self, request: GrantRequest, now: u64) -> Result<MintedGrant, MintError> {
        let jti = Jti::generate().map_err(|()| MintError::Random)?;
        let claims = request.into_claims(now, jti)?;
        let token = self.inner.signer.mint(&claims)?;
        Ok(MintedGrant { token, claims })
    }

    /// Checks a token a client presented, at `now`. Every failure is the same [`Refused`];
    /// log [`Refused::reason`] at debug level if at all, never the token.
    pub fn verify(&self, token: &str, now: u64) -> Result<VerifiedGrant, Refused> {
        if token.len() > crate::MAX_TOKEN_LEN {
            return Err(Refused::new(RefusalReason::TooLong));
        }
        let hash = self.inner.hasher.hash_one(token);
        let known = self
            .verified()
            .get(&hash)
            .filter(|(known, _)| known.as_str() == token)
            .map(|(_, grant)| grant.clone());
        let grant = match known {
            Some(grant) => {
                check_window(grant.claims(), now)?;
                grant
            }
            None => {
                let grant = self.inner.signer.verify(token, now)?;
                let mut verified = self.verified();
                if verified.len() >= VERIFIED_CAP {
                    verified.clear();
                }
                verified.insert(hash, (Zeroizing::new(token.to_owned()), grant.clone()));
                grant
            }
        };
        if self.revoked().is_revoked(grant.jti()) {
            return Err(Refused::new(RefusalReason::Revoked));
        }
        Ok(grant)
    }

    /// Revokes grant `jti` (whose `exp` is given if known; otherwise it is remembered for the
    /// longest lifetime a grant can have). Takes effect for every later [`verify`]. Returns the
    /// list to save.
    ///
    /// [`verify`]: GrantAuthority::verify
    pub fn revoke(
        &self,
        jti: Jti,
        exp: Option<u64>,
        now: u64,
    ) -> Result<Revocations, RevocationError> {
        let exp = exp.unwrap_or_else(|| now.saturating_add(crate::MAX_TTL_SECS));
        let mut revoked = self.revoked();
        revoked.revoke(jti, exp, now)?;
        Ok(revoked.clone())
    }

    /// Whether `jti` is revoked.
    pub fn is_revoked(&self, jti: &Jti) -> bool {
        self.revoked().is_revoked(jti)
    }

    /// A copy of the revoked ids, pruned at `now`, for saving.
    pub fn revocations(&self, now: u64) -> Revocations {
        let mut revoked = self.revoked();
        revoked.prune(now);
        revoked.clone()
    }

    fn verified(&self) -> MutexGuard<'_, HashMap<u64, (Zeroizing<String>, VerifiedGrant)>> {
        // Entries are inserted whole, so a poisoned lock still holds good ones.
        self.inner
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn revoked(&self) -> MutexGuard<'_, Revocations> {
        // The map is never left half-changed, so a poisoned lock still holds a good list.
        self.inner
            .revoked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
