//! Revoked grant ids, each kept until the grant would have expired anyway (plus the leeway),
//! then forgotten. The daemon checks the list on every verification, so a revoked grant stops
//! at once, and saves it (as JSON, in a store entry such as
//! [`crate::REVOCATIONS_ENTRY_SERVICE`]) whenever it changes, so revocation survives a restart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::claims::Jti;
use crate::LEEWAY_SECS;

/// Most ids kept at once. A revocation past this is refused rather than silently dropping an
/// older one.
pub const MAX_REVOKED: usize = 100_000;

/// Why the list could not be changed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// [`MAX_REVOKED`] ids are already revoked and still live.
    #[error("too many revoked grants are still live ({MAX_REVOKED})")]
    Full,
    /// The saved list is not valid JSON of the expected shape.
    #[error("the saved list of revoked grants is damaged")]
    Damaged,
}

/// Revoked ids and until when (Unix seconds) each must be remembered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    /// Id to the time after which the grant is expired anyway.
    revoked: BTreeMap<Jti, u64>,
}

impl Revocations {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revokes `jti`, a grant that expires at `exp` (its `exp` claim; if the daemon does not
    /// know it, `now + MAX_TTL_SECS` is always late enough). Forgets ids already expired at
    /// `now` first. Revoking an id twice keeps the later time.
    pub fn revoke(&mut self, jti: Jti, exp: u64, now: u64) -> Result<(), RevocationError> {
        self.prune(now);
        let until = exp.saturating_add(LEEWAY_SECS);
        if let Some(old) = self.revoked.get_mut(&jti) {
            *old = (*old).max(until);
            return Ok(());
        }
        if self.revoked.len() >= MAX_REVOKED {
            return Err(RevocationError::Full);
        }
        self.revoked.insert(jti, until);
        Ok(())
    }

    /// Whether `jti` is revoked.
    pub fn is_revoked(&self, jti: &Jti) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Forgets ids whose grants are expired at `now` (they are refused as expired anyway).
    /// Returns how many were dropped.
    pub fn prune(&mut self, now: u64) -> usize {
        let before = self.revoked.len();
        self.revoked.retain(|_, until| *until >= now);
        before - self.revoked.len()
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// The list as JSON, for the store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of strings to numbers always serializes")
    }

    /// Reads [`Revocations::to_json`]'s form back. Each id is checked again.
    pub fn from_json(json: &str) -> Result<Self, RevocationError> {
        let list: Self = serde_json::from_str(json).map_err(|_| RevocationError::Damaged)?;
        if list.revoked.len() > MAX_REVOKED {
            return Err(RevocationError::Damaged);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Jti {
        Jti::parse(&format!("{n:032x}")).unwrap()
    }

    #[test]
    fn a_revoked_id_is_remembered_until_its_grant_expires() {
        let mut list = Revocations::new();
        list.revoke(id(1), 100, 50).unwrap();
        assert!(list.is_revoked(&id(1)));
        assert!(!list.is_revoked(&id(2)));
        assert_eq!(list.prune(100 + LEEWAY_SECS), 0);
        assert!(list.is_revoked(&id(1)));
        assert_eq!(list.prune(100 + LEEWAY_SECS + 1), 1);
        assert!(list.is_empty());
    }

    #[test]
    fn revoking_twice_keeps_the_later_time() {
        let mut list = Revocations::new();
        list.revoke(id(1), 500, 0).unwrap();
        list.revoke(id(1), 100, 0).unwrap();
        list.prune(200);
        assert!(list.is_revoked(&id(1)));
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn the_list_round_trips_through_json_and_refuses_damage() {
        let mut list = Revocations::new();
        list.revoke(id(1), 100, 0).unwrap();
        list.revoke(id(2), 200, 0).unwrap();
        let json = list.to_json();
        assert_eq!(Revocations::from_json(&json).unwrap(), list);
        for bad in [
            "",
            "[]",
            r#"{"revoked": {"nothex": 1}}"#,
            r#"{"revoked": {"00000000000000000000000000000001": "soon"}}"#,
            r#"{"revoked": {}, "extra": 1}"#,
        ] {
            assert_eq!(
                Revocations::from_json(bad),
                Err(RevocationError::Damaged),
                "{bad}"
            );
        }
        assert_eq!(
            Revocations::from_json(r#"{"revoked": {}}"#).unwrap().len(),
            0
        );
    }

    #[test]
    fn a_full_list_refuses_more_but_makes_room_as_grants_expire() {
        let mut list = Revocations::new();
        for n in 0..MAX_REVOKED as u64 {
            list.revoked
                .insert(Jti::parse(&format!("{n:032x}")).unwrap(), 10);
        }
        let extra = Jti::parse(&"f".repeat(32)).unwrap();
        assert_eq!(
            list.revoke(extra.clone(), 1000, 0),
            Err(RevocationError::Full)
        );
        list.revoke(extra, 1000, 11).unwrap();
        assert_eq!(list.len(), 1);
    }
}
