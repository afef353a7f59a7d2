//! Capability grants in the daemon: the policy gate in front of every request, and the
//! `grant_create`, `grant_list`, `grant_revoke` and `authenticate` methods.
//!
//! The signing key, the revoked grants and one record per grant made live in the store as
//! internal entries (`latchkey:grant-key`, `latchkey:grant-revocations`, and
//! `latchkey:grants` with the grant's id as account), which `status` and `list` hide and which
//! clients can neither read nor write (`latchkey_core::is_internal`). The key is read (or made)
//! at start when the policy protects anything, else on first need; a store that cannot give it
//! (locked) delays it instead of failing the start, and until then every grant is refused.
//!
//! Every refusal a client can cause here (no grant for a protected entry, a forged, expired,
//! not yet valid, wrong-audience or revoked grant, a grant that does not cover the request) is
//! the same `permission_denied` with the same message ([`DENIED`]): nothing tells a client why,
//! so a grant cannot be probed. The reason goes to the debug log, without the token.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use latchkey_core::{Error, TokenService};
use latchkey_grants::{
    Action, Capability, Decision, DenyReason, GrantAuthority, GrantClaims, GrantKey, GrantRequest,
    Jti, Op, Policy, Revocations, ServicePattern, VerifiedGrant,
};
use latchkey_proto::{
    BundleInput, Call, ErrorKind, GetParams, GrantCaps, GrantCreateParams, GrantCreateResult,
    GrantInfo, GrantTokenText, KeyParams, RpcError, Secret, SetParams,
};
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

/// The one message of every refusal a grant (or its absence) causes.
pub const DENIED: &str = "not allowed: this needs a valid grant that covers it";

/// The internal entry holding the signing key.
const KEY_SERVICE: &str = "latchkey:grant-key";
/// The internal entry holding the revoked grants (JSON).
const REVOCATIONS_SERVICE: &str = "latchkey:grant-revocations";
/// The internal service whose accounts are grant ids and whose entries are their records.
const RECORDS_SERVICE: &str = "latchkey:grants";

/// The policy of `[policy] require_grant`, its patterns checked.
pub fn policy(patterns: &[String]) -> Result<Policy, latchkey_grants::PatternError> {
    let patterns = patterns
        .iter()
        .map(|p| ServicePattern::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy::new(patterns))
}

/// The generic refusal.
pub fn denied() -> RpcError {
    RpcError::new(ErrorKind::PermissionDenied, DENIED)
}

fn invalid(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorKind::InvalidRequest, message)
}

fn time(secs: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The daemon's grants. Cheap to clone.
#[derive(Clone)]
pub struct Grants {
    inner: Arc<Inner>,
}

struct Inner {
    service: TokenService,
    /// `[policy]`, as at start.
    policy: Policy,
    /// Loaded from the store on first need; stays unset while the store cannot give it.
    authority: OnceCell<GrantAuthority>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl Grants {
    /// Grants kept in `service`'s store, enforcing `policy`.
    pub fn new(service: TokenService, policy: Policy) -> Self {
        Self {
            inner: Arc::new(Inner {
                service,
                policy,
                authority: OnceCell::new(),
            }),
        }
    }

    /// Reads (or makes) the key now, so a later first grant does not pay for it; a store that
    /// cannot give it now is tried again at the first need.
    pub async fn preload(&self) {
        if let Err(err) = self.authority().await {
            warn!(error = %err.message, "the grant key is not available yet; grants are refused until it is");
        }
    }

    async fn read(&self, service: &str, account: Option<&str>) -> Result<Option<Secret>, Error> {
        let params = GetParams {
            service: service.to_owned(),
            account: account.map(str::to_owned),
            scopes: Vec::new(),
            min_valid_secs: None,
            grant: None,
            proxy: false,
            rejected: None,
        };
        match self.inner.service.get(&params).await {
            Ok(result) => Ok(Some(result.secret)),
            Err(Error::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn write(&self, service: &str, account: Option<&str>, text: String) -> Result<(), Error> {
        self.inner
            .service
            .set(SetParams {
                service: service.to_owned(),
                account: account.map(str::to_owned),
                bundle: BundleInput::ApiKey {
                    key: Secret::new(text),
                },
            })
            .await
            .map(|_| ())
    }

    async fn load(&self) -> Result<GrantAuthority, RpcError> {
        let key = match self.read(KEY_SERVICE, None).await.map_err(|e| e.to_rpc())? {
            Some(text) => GrantKey::from_text(text.expose()).map_err(|_| {
                RpcError::new(ErrorKind::Internal, "the stored grant key is damaged")
            })?,
            None => {
                let key = GrantKey::generate()
                    .map_err(|e| RpcError::new(ErrorKind::Internal, e.to_string()))?;
                self.write(KEY_SERVICE, None, key.to_text().to_string())
                    .await
                    .map_err(|e| e.to_rpc())?;
                info!("made a new grant key and stored it");
                key
            }
        };
        let revoked = match self
            .read(REVOCATIONS_SERVICE, None)
            .await
            .map_err(|e| e.to_rpc())?
        {
            Some(json) => Revocations::from_json(json.expose())
                .map_err(|e| RpcError::new(ErrorKind::Internal, e.to_string()))?,
            None => Revocations::new(),
        };
        Ok(GrantAuthority::new(&key, revoked))
    }

    async fn authority(&self) -> Result<&GrantAuthority, RpcError> {
        self.inner.authority.get_or_try_init(|| self.load()).await
    }

    /// Checks `token`; the verified grant, or the generic refusal.
    pub async fn verify(&self, token: &GrantTokenText) -> Result<VerifiedGrant, RpcError> {
        let authority = match self.authority().await {
            Ok(authority) => authority,
            Err(err) => {
                warn!(error = %err.message, "a grant was presented but the grant key is not available");
                return Err(denied());
            }
        };
        authority
            .verify(token.expose(), latchkey_grants::unix_now())
            .map_err(|refused| {
                debug!(reason = %refused.reason(), "grant refused");
                denied()
            })
    }

    /// The policy gate: may `call` go on, given the grant it carries (a `get`'s own `grant`)
    /// or the one its connection presented (`bound`)? The verified grant it runs under, if
    /// any. Entries under `latchkey:` asked for without a grant pass here: the handler
    /// refuses them with its own message.
    pub async fn admit(
        &self,
        call: &Call,
        bound: Option<&GrantTokenText>,
    ) -> Result<Option<VerifiedGrant>, RpcError> {
        let token = match call {
            Call::Get(params) => params.grant.as_ref().or(bound),
            // `authenticate` checks its own token.
            Call::Authenticate(_) => None,
            _ => bound,
        };
        let grant = match token {
            Some(token) => Some(self.verify(token).await?),
            // A proxied request always runs under the agent's grant: without one the proxy
            // would serve any unprotected entry to whoever reaches its port.
            None if matches!(call, Call::Get(params) if params.proxy) => {
                debug!("a proxied get without a grant refused");
                return Err(denied());
            }
            None => None,
        };
        let account;
        let action = match call {
            Call::Get(params) => {
                account = params
                    .account
                    .as_deref()
                    .unwrap_or(latchkey_proto::DEFAULT_ACCOUNT);
                Action::Use {
                    op: if params.proxy { Op::Proxy } else { Op::Get },
                    service: &params.service,
                    account,
                    scopes: &params.scopes,
                }
            }
            Call::Version | Call::Authenticate(_) => Action::Neutral,
            _ => Action::Manage { service: None },
        };
        match self.inner.policy.decide(&action, grant.as_ref()) {
            Decision::Allow => Ok(grant),
            Decision::Deny(DenyReason::Reserved) if grant.is_none() => Ok(None),
            Decision::Deny(reason) => {
                debug!(method = call.method(), reason = %reason, "request refused by the grant policy");
                Err(denied())
            }
        }
    }

    /// `grant_create`: mints a grant and records it (without its token) before handing it out.
    pub async fn create(&self, params: &GrantCreateParams) -> Result<GrantCreateResult, RpcError> {
        let caps = &params.caps;
        let services = caps
            .services
            .iter()
            .map(|s| ServicePattern::new(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        let ops = if caps.ops.is_empty() {
            vec![Op::Get]
        } else {
            caps.ops
                .iter()
                .map(|op| op.parse::<Op>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(e.to_string()))?
        };
        let request = GrantRequest {
            label: params.name.clone(),
            capability: Capability {
                services,
                account: caps.account.clone(),
                scopes: caps.scopes.clone(),
                ops,
            },
            ttl_secs: params.ttl_secs,
        };
        let authority = self.authority().await?;
        let minted = authority
            .mint(request, latchkey_grants::unix_now())
            .map_err(|e| invalid(e.to_string()))?;
        let record = serde_json::to_string(&minted.claims)
            .map_err(|_| RpcError::new(ErrorKind::Internal, "cannot record the grant"))?;
        let id = minted.claims.jti.to_string();
        self.write(RECORDS_SERVICE, Some(&id), record)
            .await
            .map_err(|e| e.to_rpc())?;
        info!(target: "latchkey::audit", method = "grant_create", grant = %id, expires = minted.claims.exp, result = "ok");
        let token = GrantTokenText::new(minted.token.expose().to_owned())
            .ok_or_else(|| RpcError::new(ErrorKind::Internal, "the grant is too long"))?;
        Ok(GrantCreateResult {
            token,
            grant: self.info(&minted.claims, authority),
        })
    }

    fn info(&self, claims: &GrantClaims, authority: &GrantAuthority) -> GrantInfo {
        let cap = &claims.cap;
        GrantInfo {
            id: claims.jti.to_string(),
            name: claims.sub.clone(),
            caps: GrantCaps {
                services: cap.services.iter().map(|p| p.as_str().to_owned()).collect(),
                account: cap.account.clone(),
                scopes: cap.scopes.clone(),
                ops: cap.ops.iter().map(|op| op.as_str().to_owned()).collect(),
            },
            created_at: time(claims.iat),
            expires_at: time(claims.exp),
            revoked: authority.is_revoked(&claims.jti),
        }
    }

    /// The record of grant `id`, if one is stored.
    async fn record(&self, id: &str) -> Result<Option<GrantClaims>, RpcError> {
        let Some(text) = self
            .read(RECORDS_SERVICE, Some(id))
            .await
            .map_err(|e| e.to_rpc())?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_str(text.expose()).ok())
    }

    /// `grant_list`: the grants not yet expired, oldest first; expired records are removed.
    pub async fn list(&self) -> Result<Vec<GrantInfo>, RpcError> {
        let authority = self.authority().await?;
        let now = latchkey_grants::unix_now();
        let mut found = Vec::new();
        for id in self.inner.service.accounts(RECORDS_SERVICE) {
            match self.record(&id).await? {
                Some(claims) if claims.exp.saturating_add(latchkey_grants::LEEWAY_SECS) >= now => {
                    found.push(claims);
                }
                _ => {
                    // Expired (or unreadable): a grant nobody can use any more.
                    let cleared = self
                        .inner
                        .service
                        .clear(KeyParams {
                            service: RECORDS_SERVICE.to_owned(),
                            account: Some(id),
                        })
                        .await;
                    if let Err(err) = cleared {
                        debug!(error = %err, "cannot remove an expired grant's record");
                    }
                }
            }
        }
        found.sort_by(|a, b| (a.iat, &a.jti).cmp(&(b.iat, &b.jti)));
        Ok(found.iter().map(|c| self.info(c, authority)).collect())
    }

    /// `grant_revoke`: revokes grant `id` at once (for every connection that presented it)
    /// and stores the revocation; `not_found` for an id no grant has.
    pub async fn revoke(&self, id: &str) -> Result<bool, RpcError> {
        let jti = Jti::parse(id).map_err(|e| invalid(e.to_string()))?;
        let authority = self.authority().await?;
        let Some(claims) = self.record(jti.as_str()).await? else {
            return Err(RpcError::new(
                ErrorKind::NotFound,
                "no grant of that id (see `latchkey grant list`)",
            ));
        };
        let now = latchkey_grants::unix_now();
        // In force from here on, even if saving it fails below.
        let revoked = authority
            .revoke(jti.clone(), Some(claims.exp), now)
            .map_err(|e| RpcError::new(ErrorKind::TooLarge, e.to_string()))?;
        self.write(REVOCATIONS_SERVICE, None, revoked.to_json())
            .await
            .map_err(|e| {
                warn!(grant = %jti, error = %e, "grant revoked but the revocation could not be stored; it holds until latchkeyd restarts");
                e.to_rpc()
            })?;
        info!(target: "latchkey::audit", method = "grant_revoke", grant = %jti, result = "ok");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_patterns_are_checked() {
        let policy = policy(&["openai".into(), "github:*".into()]).unwrap();
        assert!(policy.requires_grant("openai"));
        assert!(policy.requires_grant("github:work"));
        assert!(!policy.requires_grant("gitlab"));
        assert!(super::policy(&["git*hub".into()]).is_err());
    }

    #[test]
    fn times_never_panic() {
        assert_eq!(time(0).timestamp(), 0);
        assert_eq!(time(u64::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
