//! The non-secret facts kept about each entry, and the state computed from them, including
//! the refresh window.
//!
//! The refresh window is how long before `expires_at` a token counts as expiring (and `get`
//! refreshes it): the later of 60 s and 10 % of the token's lifetime, but never more than half
//! of that lifetime. So a token that lives only a few seconds is still served for the first
//! half of its life instead of being refreshed again the moment it arrives.

use chrono::{DateTime, Duration, Utc};
use latchkey_proto::{Kind, Metadata, State};
use serde::{Deserialize, Serialize};

use crate::bundle::TokenBundle;
use crate::key::EntryKey;

/// What the daemon remembers about an entry without its secrets. Stores persist it next to the
/// secret (for example in an index file) so that `status` and `list` never touch the keychain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The entry.
    #[serde(flatten)]
    pub key: EntryKey,
    /// The credential kind.
    pub kind: Kind,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the access token expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether a refresh token is held.
    #[serde(default)]
    pub has_refresh_token: bool,
    /// The OAuth provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// First stored.
    pub created_at: DateTime<Utc>,
    /// Last written.
    pub updated_at: DateTime<Utc>,
    /// Last refreshed by the daemon.
    #[serde(default)]
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// The provider refused the refresh token.
    #[serde(default)]
    pub needs_login: bool,
}

impl EntryRecord {
    /// The record for `bundle` written at `now`; `previous` keeps the creation time.
    pub fn describe(
        key: EntryKey,
        bundle: &TokenBundle,
        now: DateTime<Utc>,
        previous: Option<&EntryRecord>,
    ) -> Self {
        let (has_refresh_token, provider) = match bundle {
            TokenBundle::OAuth2(b) => (b.refresh_token.is_some(), b.provider.clone()),
            _ => (false, None),
        };
        EntryRecord {
            key,
            kind: bundle.kind(),
            scopes: bundle.scopes().to_vec(),
            expires_at: bundle.expires_at(),
            has_refresh_token,
            provider,
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
            last_refreshed_at: None,
            needs_login: false,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> State {
        if self.needs_login {
            return State::NeedsLogin;
        }
        match self.expires_at {
            None => State::Valid,
            Some(expires_at) if now >= expires_at => State::Expired,
            Some(expires_at) => {
                let issued = self.last_refreshed_at.unwrap_or(self.updated_at);
                if expires_at - now <= refresh_window(issued, expires_at) {
                    State::Expiring
                } else {
                    State::Valid
                }
            }
        }
    }

    /// The protocol's view of this record.
    pub fn metadata(&self, now: DateTime<Utc>, last_used_at: Option<DateTime<Utc>>) -> Metadata {
        Metadata {
            service: self.key.service().to_owned(),
            account: self.key.account().to_owned(),
            kind: self.kind,
            scopes: self.scopes.clone(),
            expires_at: self.expires_at,
            has_refresh_token: self.has_refresh_token,
            provider: self.provider.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_used_at,
            last_refreshed_at: self.last_refreshed_at,
            state: self.state(now),
            unsaved: false,
        }
    }
}

/// How long before expiry a token counts as expiring: the later of 60 s and 10 % of its
/// lifetime, at most half of its lifetime.
pub fn refresh_window(issued: DateTime<Utc>, expires_at: DateTime<Utc>) -> Duration {
    let lifetime = lifetime(issued, expires_at);
    (lifetime / 10).max(Duration::seconds(60)).min(lifetime / 2)
}

/// How long a token was issued for (zero for a clock that ran backwards).
pub fn lifetime(issued: DateTime<Utc>, expires_at: DateTime<Utc>) -> Duration {
    (expires_at - issued).max(Duration::zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(expires_in: Option<i64>) -> (EntryRecord, DateTime<Utc>) {
        let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let rec = EntryRecord {
            key: EntryKey::new("svc", None).unwrap(),
            kind: Kind::Oauth2,
            scopes: vec![],
            expires_at: expires_in.map(|s| t0 + Duration::seconds(s)),
            has_refresh_token: true,
            provider: None,
            created_at: t0,
            updated_at: t0,
            last_refreshed_at: None,
            needs_login: false,
        };
        (rec, t0)
    }

    #[test]
    fn no_expiry_is_always_valid() {
        let (rec, t0) = record(None);
        assert_eq!(rec.state(t0 + Duration::days(9999)), State::Valid);
    }

    #[test]
    fn states_follow_the_clock() {
        // One hour lifetime: the window is max(60 s, 6 min) = 6 min.
        let (rec, t0) = record(Some(3600));
        assert_eq!(rec.state(t0), State::Valid);
        assert_eq!(rec.state(t0 + Duration::seconds(3600 - 361)), State::Valid);
        assert_eq!(
            rec.state(t0 + Duration::seconds(3600 - 360)),
            State::Expiring
        );
        assert_eq!(rec.state(t0 + Duration::seconds(3599)), State::Expiring);
        assert_eq!(rec.state(t0 + Duration::seconds(3600)), State::Expired);
        // A clock that jumped back never makes a token look expired.
        assert_eq!(rec.state(t0 - Duration::hours(2)), State::Valid);
    }

    #[test]
    fn short_lifetimes_use_the_minimum_window() {
        let (rec, t0) = record(Some(200));
        assert_eq!(rec.state(t0 + Duration::seconds(139)), State::Valid);
        assert_eq!(rec.state(t0 + Duration::seconds(140)), State::Expiring);
    }

    #[test]
    fn the_window_never_exceeds_half_the_lifetime() {
        // 100 s: half of it (50 s), not the 60 s minimum.
        let (rec, t0) = record(Some(100));
        assert_eq!(rec.state(t0 + Duration::seconds(49)), State::Valid);
        assert_eq!(rec.state(t0 + Duration::seconds(50)), State::Expiring);
        // 2 s, as a strict OpenID provider issues: valid for its first second.
        let (rec, t0) = record(Some(2));
        assert_eq!(rec.state(t0), State::Valid);
        assert_eq!(rec.state(t0 + Duration::milliseconds(999)), State::Valid);
        assert_eq!(rec.state(t0 + Duration::seconds(1)), State::Expiring);
    }

    #[test]
    fn needs_login_wins() {
        let (mut rec, t0) = record(Some(3600));
        rec.needs_login = true;
        assert_eq!(rec.state(t0), State::NeedsLogin);
    }

    #[test]
    fn record_json_is_flat() {
        let (rec, _) = record(Some(10));
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["service"], "svc");
        assert_eq!(json["account"], "default");
        let back: EntryRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }
}
