//! What a `get` serves: a client's view of a bundle (never its refresh token), borrowed from
//! the cached bundle where it can be, so that writing the answer copies the secret once, into
//! the answer.

use std::fmt;
use std::sync::Arc;

use latchkey_proto::{GetResult, GetResultRef};
use serde::{Serialize, Serializer};

use crate::bundle::{StoredBundle, TokenBundle};

/// The outcome of a successful `get`.
pub enum Served {
    /// A stored bundle, shared with the cache (a reference count, not a copy).
    Bundle(Arc<StoredBundle>),
    /// A result made for this call (after a refresh).
    Result(GetResult),
}

impl Served {
    /// The result, borrowed.
    pub fn view(&self) -> GetResultRef<'_> {
        match self {
            Served::Bundle(stored) => view_of(&stored.bundle),
            Served::Result(result) => result.as_view(),
        }
    }

    /// The result, owned.
    pub fn into_result(self) -> GetResult {
        match self {
            Served::Bundle(stored) => result_of(&stored.bundle),
            Served::Result(result) => result,
        }
    }
}

/// As the [`GetResult`] it stands for.
impl Serialize for Served {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(serializer)
    }
}

/// Names the kind only: a bundle's secrets never reach a `Debug` line.
impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Served({:?})", self.view().kind)
    }
}

/// What a client sees of a bundle: never the refresh token.
fn view_of(bundle: &TokenBundle) -> GetResultRef<'_> {
    let (secret, token_type, username, expires_at, scopes): (_, _, _, _, &[String]) = match bundle {
        TokenBundle::OAuth2(b) => (
            &b.access_token,
            Some(b.token_type.as_str()),
            None,
            b.expires_at,
            &b.scopes,
        ),
        TokenBundle::ApiKey { key } => (key, None, None, None, &[]),
        TokenBundle::Password { username, password } => {
            (password, None, Some(username.as_str()), None, &[])
        }
    };
    GetResultRef {
        secret,
        kind: bundle.kind(),
        token_type,
        username,
        expires_at,
        scopes,
    }
}

/// [`view_of`], owned.
pub(super) fn result_of(bundle: &TokenBundle) -> GetResult {
    view_of(bundle).to_result()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use latchkey_proto::BundleInput;

    use super::Served;
    use crate::bundle::{StoredBundle, TokenBundle};

    fn bundles() -> Vec<TokenBundle> {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 14, 0, 0).unwrap();
        let inputs = [
            r#"{"kind":"oauth2","access_token":"at-\"1","refresh_token":"rt-never-shown","expires_in":60,"scopes":["repo","read:org"]}"#,
            r#"{"kind":"api_key","key":"sk-ü\n"}"#,
            r#"{"kind":"password","username":"José","password":"hunter2"}"#,
        ];
        inputs
            .iter()
            .map(|json| {
                let input: BundleInput = serde_json::from_str(json).unwrap();
                TokenBundle::from_input(input, now).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_shared_bundle_serves_what_a_copied_result_would() {
        for bundle in bundles() {
            let shared = Served::Bundle(Arc::new(StoredBundle::new(bundle)));
            let owned = Served::Result(shared.view().to_result());
            let json = serde_json::to_string(&shared).unwrap();
            assert_eq!(json, serde_json::to_string(&owned).unwrap());
            assert_eq!(json, serde_json::to_string(&owned.into_result()).unwrap());
            let mut written = Vec::new();
            shared.view().write_json(&mut written).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), json);
            // Never the refresh token; never a secret in `Debug`.
            assert!(!json.contains("rt-never-shown"), "{json}");
            let debug = format!("{shared:?}");
            for secret in ["at-", "sk-", "hunter2", "rt-"] {
                assert!(!debug.contains(secret), "{debug}");
            }
            assert_eq!(shared.into_result().kind, shared_kind(&json));
        }
    }

    fn shared_kind(json: &str) -> latchkey_proto::Kind {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        serde_json::from_value(value["kind"].clone()).unwrap()
    }
}
