//! Who may do what: `[policy] require_grant` and the grants clients present.
//!
//! The daemon sorts each request into an [`Action`] and asks [`Policy::decide`], after
//! verifying the grant if one was presented (a grant that fails verification ends the request
//! with `permission_denied` before this point: it never falls back to "no grant"). A `Deny`
//! becomes `permission_denied` on the wire, with the reason's message.
//!
//! The rules:
//! - The daemon's own entries ([`crate::RESERVED_PREFIX`]) are never used or changed through
//!   a request, grant or not.
//! - With a grant, a request is a restricted one: it may only use ([`Action::Use`]) entries
//!   the grant covers (service, account, scopes, operation), whether or not they are
//!   protected, and never manage anything ([`Action::Manage`]: `set`, `clear`, `list`,
//!   minting or revoking grants, ...).
//! - Without a grant, using an entry whose service matches `require_grant` is refused;
//!   everything else is allowed as before grants existed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::claims::Op;
use crate::is_reserved;
use crate::pattern::{any_matches, ServicePattern};
use crate::token::VerifiedGrant;

/// The `[policy]` settings grants care about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Services that can only be used with a grant (`["openai", "github:*"]`).
    #[serde(default)]
    pub require_grant: Vec<ServicePattern>,
}

/// What a request wants to do, as the daemon classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Use one entry's secret: `get` (and `run`, credential helpers, ... through it) is
    /// [`Op::Get`]; a proxied request is [`Op::Proxy`].
    Use {
        /// The operation.
        op: Op,
        /// The entry's service.
        service: &'a str,
        /// The entry's account (the default account's name when the request named none).
        account: &'a str,
        /// The scopes the request asks for.
        scopes: &'a [String],
    },
    /// Change, list or administer: `set`, `clear`, `list`, `login`, `logout`, `migrate`,
    /// `provider_secret`, `lock`, `unlock`, `reload`, and every `grant` call. `service` is
    /// the entry concerned, if there is one.
    Manage {
        /// The entry's service, if the call names one.
        service: Option<&'a str>,
    },
    /// Reveals no entry and changes nothing (`version`).
    Neutral,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// The entry is protected by `require_grant` and no grant was presented.
    GrantRequired,
    /// The grant does not cover this service, account, scope or operation.
    NotCovered,
    /// A request with a grant tried to manage something.
    GrantCannotManage,
    /// The entry is one of the daemon's own.
    Reserved,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::GrantRequired => "this entry can only be used with a grant",
            DenyReason::NotCovered => "the grant does not allow this",
            DenyReason::GrantCannotManage => {
                "a grant only allows using entries, not changing or listing them or managing grants"
            }
            DenyReason::Reserved => "this entry belongs to latchkey itself",
        })
    }
}

impl std::error::Error for DenyReason {}

/// The answer to [`Policy::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Go on.
    Allow,
    /// Answer `permission_denied`.
    Deny(DenyReason),
}

impl Decision {
    /// `Ok(())` or the reason, for `?`.
    pub fn into_result(self) -> Result<(), DenyReason> {
        match self {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(reason),
        }
    }
}

impl Policy {
    /// A policy protecting `require_grant`.
    pub fn new(require_grant: Vec<ServicePattern>) -> Self {
        Self { require_grant }
    }

    /// Whether using `service` needs a grant.
    pub fn requires_grant(&self, service: &str) -> bool {
        any_matches(&self.require_grant, service)
    }

    /// Decides `action`, for a request that presented `grant` (already verified) or none.
    pub fn decide(&self, action: &Action<'_>, grant: Option<&VerifiedGrant>) -> Decision {
        match *action {
            Action::Neutral => Decision::Allow,
            Action::Manage { service } => {
                if service.is_some_and(is_reserved) {
                    Decision::Deny(DenyReason::Reserved)
                } else if grant.is_some() {
                    Decision::Deny(DenyReason::GrantCannotManage)
                } else {
                    Decision::Allow
                }
            }
            Action::Use {
                op,
                service,
                account,
                scopes,
            } => {
                if is_reserved(service) {
                    return Decision::Deny(DenyReason::Reserved);
                }
                match grant {
                    Some(grant) if grant.claims().cap.covers(op, service, account, scopes) => {
                        Decision::Allow
                    }
                    Some(_) => Decision::Deny(DenyReason::NotCovered),
                    None if self.requires_grant(service) => {
                        Decision::Deny(DenyReason::GrantRequired)
                    }
                    None => Decision::Allow,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
