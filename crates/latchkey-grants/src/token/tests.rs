//! Minting and every way a token is refused, with tokens crafted by hand where `jsonwebtoken`
//! would not make them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::claims::{Capability, GrantRequest, Op};
use crate::pattern::ServicePattern;
use crate::revocation::Revocations;
use crate::GrantAuthority;

const NOW: u64 = 1_700_000_000;
const TTL: u64 = 3600;

fn request() -> GrantRequest {
    GrantRequest {
        label: Some("agent".into()),
        capability: Capability {
            services: vec![ServicePattern::new("openai").unwrap()],
            account: None,
            scopes: vec![],
            ops: vec![Op::Get],
        },
        ttl_secs: TTL,
    }
}

struct Fixture {
    key: GrantKey,
    authority: GrantAuthority,
}

fn fixture() -> Fixture {
    let key = GrantKey::generate().unwrap();
    let authority = GrantAuthority::new(&key, Revocations::new());
    Fixture { key, authority }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The claims of a good grant minted at `NOW`, as JSON to modify.
fn good_claims(f: &Fixture) -> Value {
    let minted = f.authority.mint(request(), NOW).unwrap();
    serde_json::to_value(&minted.claims).unwrap()
}

/// Signs `claims` with the fixture's key and a header of `alg` and `typ`.
fn sign(f: &Fixture, alg: Algorithm, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(f.key.bytes())).unwrap()
}

/// Asserts that `token` is refused for `reason`, with the one generic message, and that
/// neither the message nor `Debug` holds any part of the token.
fn assert_refused(f: &Fixture, token: &str, now: u64, reason: RefusalReason) {
    let err = f.authority.verify(token, now).unwrap_err();
    assert_eq!(err.reason(), reason, "token {token:.60}");
    assert_eq!(err.to_string(), "the grant is not valid");
    assert_eq!(format!("{err:?}"), "Refused");
    for part in token.split('.').filter(|p| p.len() >= 8) {
        assert!(!err.to_string().contains(part));
        assert!(!format!("{err:?}").contains(part));
    }
}

#[test]
fn a_minted_grant_verifies_and_carries_its_claims() {
    let f = fixture();
    let minted = f.authority.mint(request(), NOW).unwrap();
    let token = minted.token.expose();
    assert_eq!(token.split('.').count(), 3);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header, json!({"alg": "HS256", "typ": TOKEN_TYPE}));

    let grant = f.authority.verify(token, NOW).unwrap();
    assert_eq!(grant.claims(), &minted.claims);
    assert_eq!(grant.label(), "agent");
    assert_eq!(grant.jti(), &minted.claims.jti);
    assert_eq!(grant.claims().aud, AUDIENCE);
    assert_eq!(grant.claims().exp, NOW + TTL);
}

#[test]
fn two_grants_get_different_ids() {
    let f = fixture();
    let a = f.authority.mint(request(), NOW).unwrap();
    let b = f.authority.mint(request(), NOW).unwrap();
    assert_ne!(a.claims.jti, b.claims.jti);
    assert_ne!(a.token, b.token);
}

#[test]
fn the_window_holds_exactly_from_nbf_minus_leeway_to_exp_plus_leeway() {
    let f = fixture();
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let token = token.expose();
    let exp = NOW + TTL;
    assert!(f.authority.verify(token, exp).is_ok());
    assert!(f.authority.verify(token, exp + LEEWAY_SECS).is_ok());
    assert_refused(&f, token, exp + LEEWAY_SECS + 1, RefusalReason::Expired);
    assert_refused(&f, token, u64::MAX, RefusalReason::Expired);
    assert!(f.authority.verify(token, NOW - LEEWAY_SECS).is_ok());
    assert_refused(&f, token, NOW - LEEWAY_SECS - 1, RefusalReason::NotYetValid);
    assert_refused(&f, token, 0, RefusalReason::NotYetValid);
}

#[test]
fn a_token_signed_with_another_key_is_refused() {
    let f = fixture();
    let other = fixture();
    let token = other.authority.mint(request(), NOW).unwrap().token;
    assert_refused(&f, token.expose(), NOW, RefusalReason::Signature);
}

#[test]
fn a_tampered_payload_or_header_is_refused() {
    let f = fixture();
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let parts: Vec<&str> = token.expose().split('.').collect();

    let mut claims = good_claims(&f);
    claims["cap"]["services"] = json!(["*"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_refused(&f, &tampered, NOW, RefusalReason::Signature);

    let header = json!({"alg": "HS256", "typ": TOKEN_TYPE, "kid": "x"});
    let tampered = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
    assert_refused(&f, &tampered, NOW, RefusalReason::Signature);

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_refused(&f, &flipped, NOW, RefusalReason::Signature);

    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    assert_refused(&f, &unsigned, NOW, RefusalReason::Signature);
}

#[test]
fn alg_none_is_refused_with_or_without_a_signature() {
    let f = fixture();
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let parts: Vec<&str> = token.expose().split('.').collect();
    let payload = b64(&good_claims(&f));
    for alg in ["none", "None", "NONE", ""] {
        let header = b64(&json!({"alg": alg, "typ": TOKEN_TYPE}));
        assert_refused(
            &f,
            &format!("{header}.{payload}."),
            NOW,
            RefusalReason::Malformed,
        );
        assert_refused(
            &f,
            &format!("{header}.{payload}"),
            NOW,
            RefusalReason::Malformed,
        );
        let with_sig = format!("{header}.{payload}.{}", parts[2]);
        assert_refused(&f, &with_sig, NOW, RefusalReason::Malformed);
    }
    let no_alg = b64(&json!({"typ": TOKEN_TYPE}));
    assert_refused(
        &f,
        &format!("{no_alg}.{payload}."),
        NOW,
        RefusalReason::Malformed,
    );
}

#[test]
fn other_algorithms_are_refused_even_when_signed_with_the_right_key() {
    let f = fixture();
    let claims = good_claims(&f);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&f, alg, Some(TOKEN_TYPE), &claims);
        assert_refused(&f, &token, NOW, RefusalReason::Algorithm);
    }
    // Public-key algorithms by hand: a key confusion attack would sign with the HMAC key.
    let payload = b64(&claims);
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let header = b64(&json!({"alg": alg, "typ": TOKEN_TYPE}));
        let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        assert_refused(&f, &token, NOW, RefusalReason::Algorithm);
    }
}

#[test]
fn a_wrong_or_missing_type_is_refused() {
    let f = fixture();
    let claims = good_claims(&f);
    for typ in [
        Some("JWT"),
        Some("at+jwt"),
        Some("LATCHKEY-GRANT+JWT"),
        None,
    ] {
        let token = sign(&f, Algorithm::HS256, typ, &claims);
        assert_refused(&f, &token, NOW, RefusalReason::Type);
    }
    assert!(f
        .authority
        .verify(&sign(&f, Algorithm::HS256, Some(TOKEN_TYPE), &claims), NOW)
        .is_ok());
}

#[test]
fn a_wrong_audience_is_refused() {
    let f = fixture();
    let mut claims = good_claims(&f);
    claims["aud"] = json!("someone-else");
    let token = sign(&f, Algorithm::HS256, Some(TOKEN_TYPE), &claims);
    assert_refused(&f, &token, NOW, RefusalReason::Audience);
    claims["aud"] = json!(["latchkey", "someone-else"]);
    let token = sign(&f, Algorithm::HS256, Some(TOKEN_TYPE), &claims);
    assert_refused(&f, &token, NOW, RefusalReason::Malformed);
}

#[test]
fn claims_of_the_wrong_shape_are_refused_even_when_signed() {
    let f = fixture();
    let good = good_claims(&f);
    let mut cases: Vec<Value> = Vec::new();
    for missing in ["aud", "sub", "iat", "nbf", "exp", "jti", "cap"] {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(missing);
        cases.push(c);
    }
    let edits: [(&str, Value); 8] = [
        // GHSA-h395-gr6q-cpjc: a string time must not skip the check.
        ("nbf", json!("99999999999")),
        ("exp", json!("never")),
        ("exp", json!(-1)),
        ("exp", json!(1.5e12)),
        ("jti", json!("not-an-id")),
        ("admin", json!(true)),
        (
            "cap",
            json!({"services": ["openai"], "ops": ["get", "set"]}),
        ),
        ("cap", json!({"services": ["git*"], "ops": ["get"]})),
    ];
    for (field, value) in edits {
        let mut c = good.clone();
        c[field] = value;
        cases.push(c);
    }
    for claims in cases {
        let token = sign(&f, Algorithm::HS256, Some(TOKEN_TYPE), &claims);
        assert_refused(&f, &token, NOW, RefusalReason::Malformed);
    }
}

#[test]
fn claims_minting_would_refuse_are_refused_even_when_signed() {
    let f = fixture();
    let good = good_claims(&f);
    let edits: [(&str, Value); 5] = [
        (
            "cap",
            json!({"services": ["latchkey:grant-key"], "ops": ["get"]}),
        ),
        ("cap", json!({"services": [], "ops": ["get"]})),
        ("cap", json!({"services": ["openai"], "ops": []})),
        ("sub", json!("a\u{202E}b")),
        ("nbf", json!(NOW + TTL + 1)),
    ];
    for (field, value) in edits {
        let mut c = good.clone();
        c[field] = value;
        let token = sign(&f, Algorithm::HS256, Some(TOKEN_TYPE), &c);
        assert_refused(&f, &token, NOW, RefusalReason::Claims);
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let f = fixture();
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let good = token.expose();
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "a.b".into(),
        "a.b.c".into(),
        format!("{good}.x"),
        format!(" {good}"),
        format!("{good}\n"),
        good.replace('.', ""),
        "\u{0}\u{1}\u{2}".into(),
        "Bearer abc.def.ghi".into(),
        "é.é.é".into(),
    ];
    for case in cases {
        let err = f.authority.verify(&case, NOW).unwrap_err();
        assert_eq!(err.to_string(), "the grant is not valid");
        assert!(
            matches!(
                err.reason(),
                RefusalReason::Malformed | RefusalReason::Signature
            ),
            "{case:.40}: {}",
            err.reason()
        );
    }
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let f = fixture();
    assert_refused(
        &f,
        &"a".repeat(MAX_TOKEN_LEN + 1),
        NOW,
        RefusalReason::TooLong,
    );
    assert_refused(&f, &"a.".repeat(1 << 20), NOW, RefusalReason::TooLong);
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let padded = format!("{}{}", token.expose(), "A".repeat(MAX_TOKEN_LEN));
    assert_refused(&f, &padded, NOW, RefusalReason::TooLong);
}

#[test]
fn minting_refuses_a_grant_that_would_be_oversized() {
    let f = fixture();
    let mut r = request();
    r.capability.scopes = (0..32).map(|i| format!("{i:0>200}")).collect();
    assert_eq!(f.authority.mint(r, NOW).unwrap_err(), MintError::TooLarge);
}

#[test]
fn a_revoked_grant_stops_at_once_and_stays_revoked_across_a_restart() {
    let f = fixture();
    let a = f.authority.mint(request(), NOW).unwrap();
    let b = f.authority.mint(request(), NOW).unwrap();
    assert!(f.authority.verify(a.token.expose(), NOW).is_ok());

    let saved = f
        .authority
        .revoke(a.claims.jti.clone(), Some(a.claims.exp), NOW)
        .unwrap();
    assert_refused(&f, a.token.expose(), NOW, RefusalReason::Revoked);
    assert!(f.authority.is_revoked(&a.claims.jti));
    assert!(f.authority.verify(b.token.expose(), NOW).is_ok());

    let restarted = GrantAuthority::new(&f.key, Revocations::from_json(&saved.to_json()).unwrap());
    let err = restarted.verify(a.token.expose(), NOW + 1).unwrap_err();
    assert_eq!(err.reason(), RefusalReason::Revoked);
    assert!(restarted.verify(b.token.expose(), NOW + 1).is_ok());

    // Once the grant has expired anyway, its id is forgotten and it is refused as expired.
    let later = a.claims.exp + LEEWAY_SECS + 1;
    assert!(restarted.revocations(later).is_empty());
    let err = restarted.verify(a.token.expose(), later).unwrap_err();
    assert_eq!(err.reason(), RefusalReason::Expired);
}

#[test]
fn revoking_without_knowing_exp_covers_the_longest_lifetime() {
    let f = fixture();
    let a = f.authority.mint(request(), NOW).unwrap();
    f.authority.revoke(a.claims.jti.clone(), None, NOW).unwrap();
    assert!(f.authority.revocations(NOW + TTL + LEEWAY_SECS + 1).len() == 1);
    assert_refused(&f, a.token.expose(), NOW + TTL, RefusalReason::Revoked);
}

#[test]
fn a_new_key_invalidates_old_grants() {
    let f = fixture();
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let rotated = fixture();
    assert_refused(&rotated, token.expose(), NOW, RefusalReason::Signature);
    let reread = GrantAuthority::new(
        &GrantKey::from_text(&f.key.to_text()).unwrap(),
        Revocations::new(),
    );
    assert!(reread.verify(token.expose(), NOW).is_ok());
}

#[test]
fn debug_output_never_holds_a_token_or_the_key() {
    let f = fixture();
    let minted = f.authority.mint(request(), NOW).unwrap();
    let token = minted.token.expose().to_owned();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let key_text = f.key.to_text();
    let grant = f.authority.verify(&token, NOW).unwrap();
    let refused = f.authority.verify(&format!("{token}x"), NOW).unwrap_err();
    let outputs = [
        format!("{:?}", minted.token),
        format!("{minted:?}"),
        format!("{minted:#?}"),
        format!("{grant:?}"),
        format!("{:?}", f.authority),
        format!("{refused:?} {refused}"),
        format!("{:?}", Signer::new(&f.key)),
    ];
    for out in outputs {
        assert!(!out.contains(&signature), "{out}");
        assert!(!out.contains(&token), "{out}");
        assert!(!out.contains(key_text.as_str()), "{out}");
    }
    assert_eq!(format!("{:?}", minted.token), "GrantToken(..)");
}

#[test]
fn every_refusal_reads_the_same() {
    let f = fixture();
    let good = f.authority.mint(request(), NOW).unwrap();
    f.authority
        .revoke(good.claims.jti.clone(), Some(good.claims.exp), NOW)
        .unwrap();
    let claims = good_claims(&f);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("x");
    let tokens = [
        good.token.expose().to_owned(),
        "x".repeat(MAX_TOKEN_LEN + 1),
        "junk".into(),
        sign(&f, Algorithm::HS512, Some(TOKEN_TYPE), &claims),
        sign(&f, Algorithm::HS256, Some("JWT"), &claims),
        sign(&f, Algorithm::HS256, Some(TOKEN_TYPE), &wrong_aud),
        fixture()
            .authority
            .mint(request(), NOW)
            .unwrap()
            .token
            .expose()
            .to_owned(),
    ];
    let mut reasons = std::collections::HashSet::new();
    for token in &tokens {
        let err = f.authority.verify(token, NOW).unwrap_err();
        reasons.insert(err.reason());
        assert_eq!(err.to_string(), "the grant is not valid");
        assert_eq!(format!("{err:?}"), "Refused");
    }
    assert_eq!(
        reasons.len(),
        tokens.len(),
        "each case hits a different check"
    );
    let expired = f.authority.mint(request(), NOW).unwrap();
    let err = f
        .authority
        .verify(expired.token.expose(), NOW + TTL * 2)
        .unwrap_err();
    assert_eq!(err.to_string(), "the grant is not valid");
}

#[test]
fn a_remembered_grant_does_not_vouch_for_a_token_that_differs_from_it() {
    let f = fixture();
    let token = f.authority.mint(request(), NOW).unwrap().token;
    let token = token.expose();
    // Verified once, so remembered.
    assert!(f.authority.verify(token, NOW).is_ok());
    let parts: Vec<&str> = token.split('.').collect();

    // The remembered grant's signature with wider claims.
    let mut claims = good_claims(&f);
    claims["cap"]["services"] = json!(["*"]);
    let widened = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_refused(&f, &widened, NOW, RefusalReason::Signature);
    // One byte more, or one byte less (whichever check refuses it).
    assert!(f.authority.verify(&format!("{token}A"), NOW).is_err());
    assert!(f.authority.verify(&token[..token.len() - 1], NOW).is_err());
    // The remembered one still verifies, and still expires on time.
    assert!(f.authority.verify(token, NOW + 1).is_ok());
    assert_refused(
        &f,
        token,
        NOW + TTL + LEEWAY_SECS + 1,
        RefusalReason::Expired,
    );
}

#[test]
fn grants_verify_the_same_after_the_memory_of_verified_grants_fills_and_starts_over() {
    let f = fixture();
    let tokens: Vec<GrantToken> = (0..300)
        .map(|_| f.authority.mint(request(), NOW).unwrap().token)
        .collect();
    for round in 0..2 {
        for token in &tokens {
            let grant = f.authority.verify(token.expose(), NOW + round).unwrap();
            assert_eq!(grant.label(), "agent");
        }
    }
    let first = f.authority.verify(tokens[0].expose(), NOW).unwrap();
    f.authority
        .revoke(first.jti().clone(), Some(first.claims().exp), NOW)
        .unwrap();
    assert_refused(&f, tokens[0].expose(), NOW, RefusalReason::Revoked);
    assert!(f.authority.verify(tokens[1].expose(), NOW).is_ok());
}
