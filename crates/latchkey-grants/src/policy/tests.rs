//! Policy decisions, with grants minted and verified for real.

use super::*;
use crate::claims::{Capability, GrantRequest};
use crate::key::GrantKey;
use crate::revocation::Revocations;
use crate::GrantAuthority;

const NOW: u64 = 1_700_000_000;

fn policy() -> Policy {
    serde_json::from_str(r#"{"require_grant": ["openai", "github:*"]}"#).unwrap()
}

fn grant(services: &[&str], account: Option<&str>, scopes: &[&str], ops: &[Op]) -> VerifiedGrant {
    let authority = GrantAuthority::new(&GrantKey::generate().unwrap(), Revocations::new());
    let request = GrantRequest {
        label: None,
        capability: Capability {
            services: services
                .iter()
                .map(|s| ServicePattern::new(s).unwrap())
                .collect(),
            account: account.map(str::to_owned),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ops: ops.to_vec(),
        },
        ttl_secs: 60,
    };
    let minted = authority.mint(request, NOW).unwrap();
    authority.verify(minted.token.expose(), NOW).unwrap()
}

fn get<'a>(service: &'a str, account: &'a str, scopes: &'a [String]) -> Action<'a> {
    Action::Use {
        op: Op::Get,
        service,
        account,
        scopes,
    }
}

const NONE: &[String] = &[];

#[test]
fn protected_entries_need_a_grant_and_others_do_not() {
    let p = policy();
    let deny = Decision::Deny(DenyReason::GrantRequired);
    assert_eq!(p.decide(&get("openai", "default", NONE), None), deny);
    assert_eq!(p.decide(&get("github:work", "me", NONE), None), deny);
    assert_eq!(
        p.decide(&get("github", "default", NONE), None),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&get("gitlab", "default", NONE), None),
        Decision::Allow
    );
    assert!(p.requires_grant("openai"));
    assert!(!p.requires_grant("openai2"));
    assert_eq!(
        Policy::default().decide(&get("openai", "default", NONE), None),
        Decision::Allow
    );
}

#[test]
fn a_grant_allows_its_services_only() {
    let p = policy();
    let g = grant(&["openai"], None, &[], &[Op::Get]);
    assert_eq!(
        p.decide(&get("openai", "default", NONE), Some(&g)),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&get("openai", "work", NONE), Some(&g)),
        Decision::Allow
    );
    let deny = Decision::Deny(DenyReason::NotCovered);
    assert_eq!(
        p.decide(&get("github:work", "default", NONE), Some(&g)),
        deny
    );
    // With a grant, even unprotected entries are out of reach unless it covers them.
    assert_eq!(p.decide(&get("gitlab", "default", NONE), Some(&g)), deny);

    let family = grant(&["github:*"], None, &[], &[Op::Get]);
    assert_eq!(
        p.decide(&get("github:work", "x", NONE), Some(&family)),
        Decision::Allow
    );
    assert_eq!(p.decide(&get("github", "x", NONE), Some(&family)), deny);
    assert_eq!(p.decide(&get("openai", "x", NONE), Some(&family)), deny);
}

#[test]
fn a_grant_allows_its_account_only() {
    let p = policy();
    let g = grant(&["openai"], Some("work"), &[], &[Op::Get]);
    assert_eq!(
        p.decide(&get("openai", "work", NONE), Some(&g)),
        Decision::Allow
    );
    let deny = Decision::Deny(DenyReason::NotCovered);
    assert_eq!(p.decide(&get("openai", "default", NONE), Some(&g)), deny);
    assert_eq!(p.decide(&get("openai", "Work", NONE), Some(&g)), deny);
}

#[test]
fn a_grant_allows_its_scopes_only() {
    let p = policy();
    let g = grant(&["github:*"], None, &["repo", "read:org"], &[Op::Get]);
    let ok = ["repo".to_string()];
    let both = ["read:org".to_string(), "repo".to_string()];
    let extra = ["repo".to_string(), "admin".to_string()];
    assert_eq!(
        p.decide(&get("github:a", "d", NONE), Some(&g)),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&get("github:a", "d", &ok), Some(&g)),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&get("github:a", "d", &both), Some(&g)),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&get("github:a", "d", &extra), Some(&g)),
        Decision::Deny(DenyReason::NotCovered)
    );
    let unscoped = grant(&["github:*"], None, &[], &[Op::Get]);
    assert_eq!(
        p.decide(&get("github:a", "d", &extra), Some(&unscoped)),
        Decision::Allow
    );
}

#[test]
fn a_grant_allows_its_operations_only() {
    let p = policy();
    let get_only = grant(&["openai"], None, &[], &[Op::Get]);
    let proxy_only = grant(&["openai"], None, &[], &[Op::Proxy]);
    let proxy = Action::Use {
        op: Op::Proxy,
        service: "openai",
        account: "default",
        scopes: NONE,
    };
    let deny = Decision::Deny(DenyReason::NotCovered);
    assert_eq!(p.decide(&proxy, Some(&get_only)), deny);
    assert_eq!(p.decide(&proxy, Some(&proxy_only)), Decision::Allow);
    assert_eq!(
        p.decide(&get("openai", "default", NONE), Some(&proxy_only)),
        deny
    );
}

#[test]
fn a_grant_never_manages_anything() {
    let p = policy();
    let g = grant(&["*"], None, &[], &[Op::Get, Op::Proxy]);
    let deny = Decision::Deny(DenyReason::GrantCannotManage);
    for service in [Some("openai"), Some("gitlab"), None] {
        assert_eq!(p.decide(&Action::Manage { service }, Some(&g)), deny);
        assert_eq!(p.decide(&Action::Manage { service }, None), Decision::Allow);
    }
    assert_eq!(p.decide(&Action::Neutral, Some(&g)), Decision::Allow);
    assert_eq!(p.decide(&Action::Neutral, None), Decision::Allow);
}

#[test]
fn the_daemons_own_entries_are_out_of_reach_even_for_a_star_grant() {
    let p = policy();
    let g = grant(&["*"], None, &[], &[Op::Get, Op::Proxy]);
    let deny = Decision::Deny(DenyReason::Reserved);
    for service in [crate::KEY_ENTRY_SERVICE, crate::REVOCATIONS_ENTRY_SERVICE] {
        assert_eq!(p.decide(&get(service, "default", NONE), Some(&g)), deny);
        assert_eq!(p.decide(&get(service, "default", NONE), None), deny);
        let manage = Action::Manage {
            service: Some(service),
        };
        assert_eq!(p.decide(&manage, None), deny);
    }
    assert_eq!(
        p.decide(&get("anything", "default", NONE), Some(&g)),
        Decision::Allow
    );
}

#[test]
fn decisions_turn_into_results_and_messages() {
    assert_eq!(Decision::Allow.into_result(), Ok(()));
    let err = Decision::Deny(DenyReason::GrantRequired)
        .into_result()
        .unwrap_err();
    assert_eq!(err.to_string(), "this entry can only be used with a grant");
}

#[test]
fn a_policy_with_a_bad_pattern_is_refused_when_read() {
    assert!(serde_json::from_str::<Policy>(r#"{"require_grant": ["git*"]}"#).is_err());
    assert_eq!(
        serde_json::from_str::<Policy>("{}").unwrap(),
        Policy::default()
    );
}
