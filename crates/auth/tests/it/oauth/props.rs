//! Hostile bytes: whatever the token, a typed refusal and never a panic.

use std::sync::OnceLock;

use oc_auth::oauth::JwtVerifier;
use oc_auth::{AuthError, Verifier};
use proptest::prelude::*;

use super::support::{Issuer, Key, b64, claims};

struct Fixture {
    issuer: Issuer,
    verifier: JwtVerifier,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = Key::ec("k");
        let issuer = Issuer::start(&[&key]);
        let (verifier, _) = issuer.verifier(issuer.config());
        assert!(verifier.verify(&key.token(&claims(&issuer.url))).is_ok());
        Fixture { issuer, verifier }
    })
}

fn check(token: &str) {
    match fixture().verifier.verify(token) {
        Err(AuthError::BadToken(_)) => {}
        other => panic!("{token:?}: {other:?}"),
    }
}

proptest! {
    #[test]
    fn random_strings_are_bad_tokens(s in ".{0,300}") {
        check(&s);
    }

    #[test]
    fn random_bytes_in_three_parts_are_bad_tokens(
        h in proptest::collection::vec(any::<u8>(), 0..200),
        p in proptest::collection::vec(any::<u8>(), 0..200),
        s in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        check(&format!("{}.{}.{}", b64(h), b64(p), b64(s)));
    }

    #[test]
    fn random_json_headers_and_claims_are_bad_tokens(
        alg in prop_oneof![Just("ES256".to_owned()), Just("RS256".to_owned()), Just("none".to_owned()), Just("HS256".to_owned()), "[A-Z]{2}[0-9]{3}"],
        kid in prop_oneof![Just("k".to_owned()), ".{0,20}"],
        claim in "[a-z]{1,5}",
        value in prop_oneof![any::<i64>().prop_map(|n| n.to_string()), ".{0,10}".prop_map(|s| format!("{s:?}")), Just("null".to_owned())],
        sig in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let f = fixture();
        let header = serde_json::json!({"alg": alg, "kid": kid}).to_string();
        let mut c = claims(&f.issuer.url);
        c[claim] = serde_json::from_str(&value).unwrap_or_default();
        check(&format!("{}.{}.{}", b64(header), b64(c.to_string()), b64(sig)));
    }
}
