//! Fetching the issuer's keys: rotation, a flood of unknown kids, and issuers that hang or
//! send too much.

use std::time::Duration;

use oc_auth::{AuthError, Verifier};
use serde_json::json;

use super::support::{Issuer, Jwks, Key, claims};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_rotated_key_is_fetched_once_its_kid_arrives() {
    let (old, new) = (Key::ec("2026-11"), Key::rsa("2026-12"));
    let issuer = Issuer::start(&[&old]);
    let (v, clock) = issuer.verifier(issuer.config());
    let c = claims(&issuer.url);
    assert!(v.verify(&old.token(&c)).is_ok());
    assert_eq!(issuer.hits("/jwks"), 1);
    // The issuer rotates; the first token with the new kid, a minute on, fetches the keys again.
    issuer.serve_keys(&[&old, &new]);
    clock.advance(MINUTE);
    assert!(v.verify(&new.token(&c)).is_ok());
    assert_eq!(issuer.hits("/jwks"), 2);
    assert!(v.verify(&new.token(&c)).is_ok());
    assert!(v.verify(&old.token(&c)).is_ok());
    assert_eq!(issuer.hits("/jwks"), 2, "known kids fetch nothing");
    // Discovery happened once.
    assert_eq!(issuer.hits("/.well-known/openid-configuration"), 1);
}

#[test]
fn a_rotation_within_the_minute_is_seen_once_the_minute_is_over() {
    let (old, new) = (Key::ec("a"), Key::ec("b"));
    let issuer = Issuer::start(&[&old]);
    let (v, clock) = issuer.verifier(issuer.config());
    let c = claims(&issuer.url);
    assert!(v.verify(&old.token(&c)).is_ok());
    issuer.serve_keys(&[&new]);
    clock.advance(Duration::from_secs(30));
    assert!(matches!(
        v.verify(&new.token(&c)),
        Err(AuthError::BadToken(_))
    ));
    assert_eq!(issuer.hits("/jwks"), 1, "no refetch within the minute");
    clock.advance(Duration::from_secs(30));
    assert!(v.verify(&new.token(&c)).is_ok());
    assert_eq!(issuer.hits("/jwks"), 2);
}

#[test]
fn a_flood_of_unknown_kids_fetches_at_most_once_a_minute() {
    let key = Key::ec("real");
    let issuer = Issuer::start(&[&key]);
    let (v, clock) = issuer.verifier(issuer.config());
    let c = claims(&issuer.url);
    assert!(v.verify(&key.token(&c)).is_ok());
    let bogus = |i: usize| key.token_with(json!({"kid": format!("bogus-{i}")}), &c);
    let mut fetches = vec![];
    for minute in 0..3 {
        // Each round starts 61 s after the previous one began, spread over 60 s.
        for i in 0..300 {
            if i % 5 == 0 {
                clock.advance(Duration::from_secs(1));
            }
            assert!(matches!(
                v.verify(&bogus(minute * 1000 + i)),
                Err(AuthError::BadToken(_))
            ));
        }
        clock.advance(Duration::from_secs(1));
        fetches.push(issuer.hits("/jwks"));
    }
    // One fetch for the good token, then at most one per minute of bogus kids.
    assert_eq!(fetches, [2, 3, 4]);
    // From many threads at once, still one fetch.
    clock.advance(MINUTE);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (v, bogus) = (&v, &bogus);
            s.spawn(move || {
                for i in 0..50 {
                    assert!(v.verify(&bogus(10_000 + t * 100 + i)).is_err());
                }
            });
        }
    });
    assert_eq!(issuer.hits("/jwks"), 5);
    assert!(v.verify(&key.token(&c)).is_ok(), "the real key still works");
}

#[test]
fn stale_keys_are_refetched_so_a_withdrawn_key_stops_working() {
    let (kept, withdrawn) = (Key::ec("kept"), Key::ec("withdrawn"));
    let issuer = Issuer::start(&[&kept, &withdrawn]);
    let (v, clock) = issuer.verifier(issuer.config());
    let c = claims(&issuer.url);
    assert!(v.verify(&withdrawn.token(&c)).is_ok());
    issuer.serve_keys(&[&kept]);
    clock.advance(Duration::from_secs(3600));
    let mut c2 = c.clone();
    c2["exp"] = (super::support::NOW + 7200).into();
    assert!(matches!(
        v.verify(&withdrawn.token(&c2)),
        Err(AuthError::BadToken(_))
    ));
    assert!(v.verify(&kept.token(&c2)).is_ok());
    assert_eq!(issuer.hits("/jwks"), 2);
}

#[test]
fn an_issuer_that_hangs_or_floods_is_a_bounded_error() {
    let key = Key::ec("k");
    let issuer = Issuer::start(&[&key]);
    let c = claims(&issuer.url);
    for jwks in [Jwks::HangBeforeHeaders, Jwks::HangInBody, Jwks::Huge] {
        issuer.serve(jwks.clone());
        let (v, _) = issuer.verifier(issuer.config());
        match v.verify(&key.token(&c)) {
            Err(AuthError::Backend(why)) => {
                assert!(why.contains("/jwks"), "{jwks:?}: {why}");
                assert!(!why.contains(&key.token(&c)), "no token in messages");
            }
            other => panic!("{jwks:?}: {other:?}"),
        }
    }
    // Once the issuer answers again, and a minute has passed, tokens work.
    issuer.serve_keys(&[&key]);
    let (v, clock) = issuer.verifier(issuer.config());
    issuer.serve(Jwks::Huge);
    assert!(matches!(
        v.verify(&key.token(&c)),
        Err(AuthError::Backend(_))
    ));
    issuer.serve_keys(&[&key]);
    assert!(
        matches!(v.verify(&key.token(&c)), Err(AuthError::Backend(_))),
        "not refetched within the minute"
    );
    clock.advance(MINUTE);
    assert!(v.verify(&key.token(&c)).is_ok());
}

#[test]
fn only_the_first_keys_up_to_the_cap_are_kept() {
    let keys: Vec<Key> = (0..40).map(|i| Key::ec(&format!("k{i}"))).collect();
    let refs: Vec<&Key> = keys.iter().collect();
    let issuer = Issuer::start(&refs);
    let (v, _) = issuer.verifier(issuer.config());
    let c = claims(&issuer.url);
    assert!(v.verify(&keys[0].token(&c)).is_ok());
    assert!(v.verify(&keys[31].token(&c)).is_ok());
    assert!(matches!(
        v.verify(&keys[32].token(&c)),
        Err(AuthError::BadToken(_))
    ));
}

#[test]
fn metadata_naming_another_issuer_is_not_used() {
    let key = Key::ec("k");
    let issuer = Issuer::start(&[&key]);
    issuer.metadata_names("http://127.0.0.1:1");
    let (v, _) = issuer.verifier(issuer.config());
    match v.verify(&key.token(&claims(&issuer.url))) {
        Err(AuthError::Backend(why)) => assert!(why.contains("names another issuer"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(issuer.hits("/jwks"), 0);
    // A configured jwks_uri skips discovery.
    let config = issuer
        .config()
        .with_jwks_uri(format!("{}/jwks", issuer.url));
    let (v, _) = issuer.verifier(config);
    assert!(v.verify(&key.token(&claims(&issuer.url))).is_ok());
}

#[test]
fn a_known_key_is_used_while_a_slow_refetch_is_under_way() {
    let key = Key::ec("k");
    let issuer = Issuer::start(&[&key]);
    let mut config = issuer.config();
    config.fetch_timeout = Duration::from_secs(5);
    let (v, clock) = issuer.verifier(config);
    let mut c = claims(&issuer.url);
    c["exp"] = (super::support::NOW + 7200).into();
    assert!(v.verify(&key.token(&c)).is_ok());
    // The keys are past their age, and the issuer stops answering.
    clock.advance(Duration::from_secs(3600));
    issuer.serve(Jwks::HangBeforeHeaders);
    let unknown = key.token_with(json!({"kid": "new"}), &c);
    std::thread::scope(|s| {
        let waiting = s.spawn(|| v.verify(&unknown));
        while issuer.hits("/jwks") < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The fetch hangs; a token with the known key does not wait for it.
        assert!(v.verify(&key.token(&c)).is_ok());
        assert!(
            !waiting.is_finished(),
            "the unknown kid waits for the fetch"
        );
        assert!(matches!(
            waiting.join().unwrap(),
            Err(AuthError::BadToken(_))
        ));
    });
}

#[test]
fn threads_that_waited_for_a_fetch_do_not_fetch_again_on_the_system_clock() {
    let key = Key::ec("k");
    let issuer = Issuer::start(&[&key]);
    let mut c = claims(&issuer.url);
    c["exp"] = 4_102_444_800i64.into();
    let tokens: Vec<String> = (0..4)
        .map(|i| key.token_with(json!({"kid": format!("new-{i}")}), &c))
        .collect();
    // The fetch hangs until its 1 s timeout; three threads queue behind it meanwhile.
    issuer.serve(Jwks::HangBeforeHeaders);
    let config = issuer
        .config()
        .with_jwks_uri(format!("{}/jwks", issuer.url));
    let v = oc_auth::oauth::JwtVerifier::new(config).unwrap();
    std::thread::scope(|s| {
        let first = s.spawn(|| v.verify(&tokens[0]));
        while issuer.hits("/jwks") < 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let rest: Vec<_> = tokens[1..]
            .iter()
            .map(|t| s.spawn(|| v.verify(t)))
            .collect();
        assert!(matches!(first.join().unwrap(), Err(AuthError::Backend(_))));
        for r in rest {
            assert!(matches!(r.join().unwrap(), Err(AuthError::Backend(_))));
        }
    });
    assert_eq!(issuer.hits("/jwks"), 1, "one fetch for the four of them");
}
