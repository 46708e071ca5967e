//! What a token must be to be accepted, and every way it can be refused.

use oc_auth::oauth::{OAuthConfig, ScopeMap};
use oc_auth::{AuthError, Identity, Scope, Tenant, Verifier};
use ring::hmac;
use serde_json::{Value, json};

use super::support::{AUDIENCE, Issuer, Key, NOW, b64, claims};

/// Verifies `token` with a fresh verifier of `issuer`.
fn verify(issuer: &Issuer, token: &str) -> Result<Identity, AuthError> {
    issuer.verifier(issuer.config()).0.verify(token)
}

/// Asserts `token` is refused as a bad token whose reason says `says`.
fn check_bad(issuer: &Issuer, token: &str, says: &str) {
    match verify(issuer, token) {
        Err(AuthError::BadToken(why)) => assert!(why.contains(says), "{why:?} lacks {says:?}"),
        other => panic!("expected a bad token saying {says:?}, got {other:?}"),
    }
}

fn with(issuer: &Issuer, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims(&issuer.url);
    change(c.as_object_mut().unwrap());
    c
}

fn alice(scope: Scope) -> Identity {
    Identity {
        agent: "oauth:alice".into(),
        scope,
        tenant: Some(Tenant::new("acme").unwrap()),
    }
}

#[test]
fn a_good_token_of_each_algorithm_is_its_identity() {
    let (rsa, ec) = (Key::rsa("r1"), Key::ec("e1"));
    let issuer = Issuer::start(&[&rsa, &ec]);
    let (v, _) = issuer.verifier(issuer.config());
    let c = claims(&issuer.url);
    assert_eq!(v.verify(&rsa.token(&c)), Ok(alice(Scope::Work)));
    assert_eq!(v.verify(&ec.token(&c)), Ok(alice(Scope::Work)));
    let pss = rsa.token_with(json!({"alg": "PS256"}), &c);
    assert_eq!(v.verify(&pss), Ok(alice(Scope::Work)));
    // One discovery and one fetch served all three.
    assert_eq!(issuer.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(issuer.hits("/jwks"), 1);
}

#[test]
fn the_highest_known_scope_wins_and_none_is_insufficient_scope() {
    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    let (v, _) = issuer.verifier(issuer.config());
    let scoped = |s: Value| key.token(&with(&issuer, |c| _ = c.insert("scope".into(), s)));
    assert_eq!(
        v.verify(&scoped("oc:read oc:admin oc:work".into())),
        Ok(alice(Scope::Admin))
    );
    assert_eq!(
        v.verify(&scoped(json!(["oc:read", "x"]))),
        Ok(alice(Scope::Read))
    );
    for none in [
        json!("openid profile"),
        json!("OC:ADMIN"),
        json!(""),
        json!(7),
    ] {
        assert_eq!(
            v.verify(&scoped(none)),
            Err(AuthError::InsufficientScope {
                needed: "oc:read".into()
            })
        );
    }
    let no_scope = key.token(&with(&issuer, |c| _ = c.remove("scope")));
    assert!(matches!(
        v.verify(&no_scope),
        Err(AuthError::InsufficientScope { .. })
    ));
    // Scopes of the server's own choosing.
    let custom = issuer
        .config()
        .with_scopes(ScopeMap::new([("tasks", Scope::Work)]).unwrap());
    let (v, _) = issuer.verifier(custom);
    assert_eq!(v.verify(&scoped("tasks".into())), Ok(alice(Scope::Work)));
    assert_eq!(
        v.verify(&scoped("oc:admin".into())),
        Err(AuthError::InsufficientScope {
            needed: "tasks".into()
        })
    );
}

#[test]
fn the_agent_and_tenant_come_from_the_configured_claims() {
    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    let c = with(&issuer, |c| {
        _ = c.insert("preferred_username".into(), "bob".into())
    });
    let (v, _) = issuer.verifier(issuer.config().with_agent_claim("preferred_username"));
    assert_eq!(
        v.verify(&key.token(&c)).map(|i| i.agent),
        Ok("oauth:bob".into())
    );
    let untenanted = OAuthConfig::new(issuer.url.clone(), AUDIENCE);
    let (v, _) = issuer.verifier(untenanted);
    assert_eq!(v.verify(&key.token(&c)).map(|i| i.tenant), Ok(None));
    // With a tenant claim configured, a token without one is refused, not let into the default store.
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| _ = c.remove("org"))),
        "org",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("org".into(), "Acme; drop".into())
        })),
        "tenant",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| _ = c.remove("sub"))),
        "sub",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("sub".into(), "a\nb".into())
        })),
        "control",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("sub".into(), "a".repeat(257).into())
        })),
        "256",
    );
}

#[test]
fn a_token_of_another_issuer_or_audience_is_refused() {
    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("iss".into(), "http://127.0.0.1:1".into())
        })),
        "issued by",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| _ = c.remove("iss"))),
        "no iss",
    );
    // Another server's resource URL, alone or among others.
    let other = "http://127.0.0.1:9/other-mcp";
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| _ = c.insert("aud".into(), other.into()))),
        "another audience",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("aud".into(), json!([other, "x"]))
        })),
        "another audience",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("aud".into(), format!("{AUDIENCE}/").into())
        })),
        "another audience",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| _ = c.remove("aud"))),
        "no aud",
    );
    let among = key.token(&with(&issuer, |c| {
        _ = c.insert("aud".into(), json!([other, AUDIENCE]))
    }));
    assert_eq!(verify(&issuer, &among), Ok(alice(Scope::Work)));
}

#[test]
fn expiry_and_not_before_are_checked_with_a_small_leeway() {
    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    let at =
        |name: &str, t: i64| key.token(&with(&issuer, |c| _ = c.insert(name.into(), t.into())));
    check_bad(&issuer, &at("exp", NOW - 61), "expired");
    check_bad(&issuer, &at("exp", NOW - 60), "expired");
    assert!(
        verify(&issuer, &at("exp", NOW - 59)).is_ok(),
        "within the leeway"
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| _ = c.remove("exp"))),
        "no exp",
    );
    check_bad(
        &issuer,
        &key.token(&with(&issuer, |c| {
            _ = c.insert("exp".into(), "tomorrow".into())
        })),
        "exp is not a number",
    );
    check_bad(&issuer, &at("nbf", NOW + 61), "not valid yet");
    assert!(
        verify(&issuer, &at("nbf", NOW + 59)).is_ok(),
        "within the leeway"
    );
    check_bad(&issuer, &at("iat", NOW + 3600), "in the future");
    // Fractional and huge dates do not overflow.
    let frac = key.token(&with(&issuer, |c| {
        _ = c.insert("exp".into(), json!(NOW as f64 + 0.5))
    }));
    assert!(verify(&issuer, &frac).is_ok());
    let far = key.token(&with(&issuer, |c| _ = c.insert("exp".into(), json!(1e300))));
    assert!(verify(&issuer, &far).is_ok());
    let (v, clock) = issuer.verifier(issuer.config());
    let t = key.token(&claims(&issuer.url));
    assert!(v.verify(&t).is_ok());
    clock.advance(std::time::Duration::from_secs(300 + 60));
    assert!(
        matches!(v.verify(&t), Err(AuthError::BadToken(_))),
        "expired as time passed"
    );
}

#[test]
fn a_changed_token_or_another_signer_is_refused() {
    let (ours, theirs) = (Key::rsa("r1"), Key::rsa("r1"));
    let issuer = Issuer::start(&[&ours]);
    let good = ours.token(&claims(&issuer.url));
    // A byte of the signature flipped.
    let mut bytes = good.clone().into_bytes();
    let last = bytes.len() - 10;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    check_bad(
        &issuer,
        &String::from_utf8(bytes).unwrap(),
        "signature does not verify",
    );
    // The claims changed after signing: admin instead of work.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = with(&issuer, |c| _ = c.insert("scope".into(), "oc:admin".into()));
    let tampered = format!("{}.{}.{}", parts[0], b64(forged.to_string()), parts[2]);
    check_bad(&issuer, &tampered, "signature does not verify");
    // Signed by another issuer's key naming our kid, and naming its own.
    check_bad(
        &issuer,
        &theirs.token(&claims(&issuer.url)),
        "signature does not verify",
    );
    let stranger = Key::ec("elsewhere");
    check_bad(
        &issuer,
        &stranger.token(&claims(&issuer.url)),
        "no key \"elsewhere\"",
    );
    // A signature of the right length but empty.
    check_bad(
        &issuer,
        &format!("{}.{}.", parts[0], parts[1]),
        "signature does not verify",
    );
}

#[test]
fn unsigned_hmac_and_mismatched_algorithms_are_refused() {
    let (rsa, ec) = (Key::rsa("r1"), Key::ec("e1"));
    let issuer = Issuer::start(&[&rsa, &ec]);
    let c = claims(&issuer.url).to_string();
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none","kid":"r1"}"#), b64(&c));
    check_bad(&issuer, &unsigned, "alg none");
    // The classic confusion: HS256 keyed with the RSA public key, which anyone has.
    let input = format!("{}.{}", b64(r#"{"alg":"HS256","kid":"r1"}"#), b64(&c));
    let secret = hmac::Key::new(hmac::HMAC_SHA256, rsa.public_pem().as_bytes());
    let mac = hmac::sign(&secret, input.as_bytes());
    check_bad(&issuer, &format!("{input}.{}", b64(mac.as_ref())), "HMAC");
    // The header's alg must fit the key the kid names.
    let es_over_rsa = rsa.token_with(json!({"alg": "RS256", "kid": "e1"}), &claims(&issuer.url));
    check_bad(&issuer, &es_over_rsa, "not a key for RS256");
    let rs_as_es = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"ES256","kid":"r1"}"#),
        b64(&c),
        b64([0u8; 64])
    );
    check_bad(&issuer, &rs_as_es, "not a key for ES256");
    // A JWK naming an algorithm binds the key to it.
    let mut jwk = rsa.jwk();
    jwk["alg"] = "PS256".into();
    issuer.serve(super::support::Jwks::Serve(
        json!({"keys": [jwk]}).to_string(),
    ));
    check_bad(
        &issuer,
        &rsa.token(&claims(&issuer.url)),
        "not a key for RS256",
    );
    let pss = rsa.token_with(json!({"alg": "PS256"}), &claims(&issuer.url));
    assert_eq!(verify(&issuer, &pss), Ok(alice(Scope::Work)));
}

#[test]
fn a_token_without_kid_uses_the_only_fitting_key() {
    let (rsa, ec) = (Key::rsa("r1"), Key::ec("e1"));
    let issuer = Issuer::start(&[&rsa, &ec]);
    let c = claims(&issuer.url);
    let no_kid = |k: &Key| k.token_with(json!({"kid": null}), &c);
    assert_eq!(verify(&issuer, &no_kid(&ec)), Ok(alice(Scope::Work)));
    assert_eq!(verify(&issuer, &no_kid(&rsa)), Ok(alice(Scope::Work)));
    let ec2 = Key::ec("e2");
    issuer.serve_keys(&[&ec, &ec2]);
    check_bad(&issuer, &no_kid(&ec), "several keys");
}

#[test]
fn huge_and_malformed_tokens_are_bad_tokens_and_fetch_nothing() {
    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    let (v, _) = issuer.verifier(issuer.config());
    let good = key.token(&claims(&issuer.url));
    let padded = format!("{good}{}", "A".repeat(16 * 1024));
    let huge = "A".repeat(100 * 1024 * 1024);
    for (token, says) in [
        (huge.as_str(), "over the limit"),
        (padded.as_str(), "over the limit"),
        ("", "three"),
        ("...", "three"),
        ("..", "header"),
        ("Bearer x.y.z", "outside the base64url"),
        ("eyJ.eyJ.eyJ", "header"),
        ("e30.e30.", "alg"),
        (
            &format!("{}.W10.", b64(r#"{"alg":"ES256"}"#)),
            "payload is not a JSON object",
        ),
        (
            &format!("{}.e30=.", b64(r#"{"alg":"ES256"}"#)),
            "outside the base64url",
        ),
        (
            &format!("{}.{}.", b64(r#"{"alg":"ES256"}"#), b64("[".repeat(10_000))),
            "payload is not JSON",
        ),
    ] {
        match v.verify(token) {
            Err(AuthError::BadToken(why)) => assert!(why.contains(says), "{why:?} lacks {says:?}"),
            other => panic!("{:?}: {other:?}", &token[..token.len().min(60)]),
        }
    }
    assert_eq!(issuer.hits("/jwks"), 0);
}

#[test]
fn beside_static_tokens_in_one_chain_each_credential_goes_to_its_verifier() {
    use std::sync::Arc;

    use oc_auth::{MemoryTokenStore, TokenStore, Verifiers};

    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    let (jwt, _) = issuer.verifier(issuer.config());
    let store = Arc::new(MemoryTokenStore::new());
    let (secret, _) = store.create("bob", Scope::Read, None, None).unwrap();
    let chain = Verifiers::new().tokens(store).other(Arc::new(jwt));
    let header = |t: &str| format!("Bearer {t}");
    assert_eq!(
        chain.verify_header(Some(&header(&key.token(&claims(&issuer.url))))),
        Ok(alice(Scope::Work))
    );
    assert_eq!(
        chain
            .verify_header(Some(&header(secret.expose())))
            .map(|i| i.agent),
        Ok("bob".into())
    );
    let expired = key.token(&with(&issuer, |c| {
        _ = c.insert("exp".into(), (NOW - 3600).into())
    }));
    assert!(matches!(
        chain.verify_header(Some(&header(&expired))),
        Err(AuthError::BadToken(_))
    ));
}

/// The security review's finding: a JWT whose agent claim names the agent of a static token
/// acted as that agent. OAuth agents are `oauth:<claim>`, and no static token may be issued
/// to a name in that namespace, so neither can borrow the other's agent.
#[test]
fn an_oauth_token_cannot_act_as_a_static_tokens_agent() {
    use oc_auth::{MemoryTokenStore, OAUTH_AGENT_PREFIX, TokenStore, Verifiers};
    use std::sync::Arc;

    let key = Key::ec("e1");
    let issuer = Issuer::start(&[&key]);
    let (jwt, _) = issuer.verifier(issuer.config());
    let store = Arc::new(MemoryTokenStore::new());
    let (secret, _) = store.create("bob", Scope::Work, None, None).unwrap();
    let chain = Verifiers::new().tokens(store.clone()).other(Arc::new(jwt));
    let header = |t: &str| format!("Bearer {t}");
    let as_bob = key.token(&with(&issuer, |c| _ = c.insert("sub".into(), "bob".into())));
    let from_jwt = chain.verify_header(Some(&header(&as_bob))).unwrap();
    let from_static = chain.verify_header(Some(&header(secret.expose()))).unwrap();
    assert_eq!(from_static.agent, "bob");
    assert_eq!(from_jwt.agent, "oauth:bob");
    assert_ne!(from_jwt.agent, from_static.agent, "two agents, not one");
    // The namespace is the OAuth tokens' alone.
    for taken in ["oauth:bob", "oauth:"] {
        assert!(
            matches!(
                store.create(taken, Scope::Work, None, None),
                Err(AuthError::Invalid { what: "agent", .. })
            ),
            "{taken}"
        );
    }
    assert_eq!(OAUTH_AGENT_PREFIX, "oauth:");
}
