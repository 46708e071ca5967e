//! The conformance suite every [`TokenStore`] must pass (feature `testkit`).
//!
//! Each `check_*` function takes two handles on the same, empty storage (`a` and `b`: two
//! stores opened on one file or database, or two clones of a memory store) and the
//! [`ManualClock`] both judge time by, and panics with a message naming the broken rule.
//! [`token_store_conformance_tests!`](crate::token_store_conformance_tests) turns them into one
//! `#[test]` each.
//!
//! ```
//! use std::sync::Arc;
//! use oc_auth::{MemoryTokenStore, testkit};
//! let clock = testkit::clock();
//! let a = MemoryTokenStore::with_clock(Arc::new(clock.clone()));
//! testkit::check_create_verify_list(&a, &a.clone(), &clock);
//! ```

// A test kit reports a broken rule by panicking, so unwrapping is the point here.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

pub use oc_time::ManualClock;
use oc_time::{Clock, Timestamp};

use crate::backend::{MAX_AGENT_BYTES, TOKEN_LEN};
use crate::{AuthError, Identity, Scope, Tenant, TokenStore};

/// The time the suite starts at: 2026-02-19T10:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_771_495_200_000);

/// A clock at [`START`].
pub fn clock() -> ManualClock {
    ManualClock::new(START)
}

/// Generates one `#[test]` per conformance check for the stores built by `$make`, a closure
/// taking a [`ManualClock`] and returning two handles (`Arc<dyn TokenStore>`) on the same
/// fresh, empty storage, both on that clock.
///
/// ```
/// mod memory {
///     use std::sync::Arc;
///     use oc_auth::{MemoryTokenStore, TokenStore};
///     oc_auth::token_store_conformance_tests!(|clock: oc_auth::testkit::ManualClock| {
///         let a = MemoryTokenStore::with_clock(Arc::new(clock));
///         (Arc::new(a.clone()) as Arc<dyn TokenStore>, Arc::new(a) as Arc<dyn TokenStore>)
///     });
/// }
/// ```
#[macro_export]
macro_rules! token_store_conformance_tests {
    ($make:expr) => {
        $crate::token_store_conformance_tests!(@each $make;
            check_create_verify_list, check_scopes_and_tenants, check_revoke,
            check_revoked_on_the_next_call_elsewhere, check_expiry, check_wrong_secret,
            check_malformed_tokens, check_invalid_input, check_last_used_once_a_minute,
            check_concurrent_creates);
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let make = $make;
            let clock = $crate::testkit::clock();
            let (a, b) = make(clock.clone());
            $crate::testkit::$check(&*a, &*b, &clock);
        }
    )*};
}

fn tenant(name: &str) -> Tenant {
    Tenant::new(name).unwrap()
}

fn refused(r: Result<Identity, AuthError>, what: &str) {
    match r {
        Err(AuthError::BadToken(reason)) => {
            assert!(
                reason.len() < 300,
                "{what}: a refusal's reason stays short: {reason:.300}"
            );
        }
        other => panic!("{what}: expected BadToken, got {other:?}"),
    }
}

/// A created token verifies as its agent, scope and tenant from both handles; `list` shows it
/// as `create` described it, never its secret.
pub fn check_create_verify_list(a: &dyn TokenStore, b: &dyn TokenStore, clock: &ManualClock) {
    assert!(a.list().unwrap().is_empty(), "a fresh store lists nothing");
    let (secret, info) = a
        .create("alice", Scope::Work, Some(tenant("acme")), None)
        .unwrap();
    assert_eq!(secret.expose().len(), TOKEN_LEN);
    assert!(secret.expose().starts_with(&format!("oct_{}_", info.id)));
    assert_eq!(
        (
            info.agent.as_str(),
            info.scope,
            info.created_at,
            info.expires_at,
            info.revoked_at,
            info.last_used_at
        ),
        ("alice", Scope::Work, clock.now(), None, None, None)
    );
    assert_eq!(info.tenant, Some(tenant("acme")));
    let want = Identity {
        agent: "alice".into(),
        scope: Scope::Work,
        tenant: Some(tenant("acme")),
    };
    assert_eq!(a.verify(secret.expose()).unwrap(), want);
    assert_eq!(
        b.verify(secret.expose()).unwrap(),
        want,
        "from the other handle"
    );
    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0],
        crate::TokenInfo {
            last_used_at: Some(clock.now()),
            ..info.clone()
        },
        "list shows what create said, and the use"
    );
    assert_eq!(b.get(&info.id).unwrap(), Some(listed[0].clone()));
    let secret_part = &secret.expose()[4 + info.id.len() + 1..];
    let shown = format!("{listed:?} {secret:?} {a:?} {b:?}");
    assert!(
        !shown.contains(secret_part),
        "no Debug shows the secret: {shown}"
    );
}

/// Every scope and the default tenant round-trip; tokens are listed oldest first.
pub fn check_scopes_and_tenants(a: &dyn TokenStore, b: &dyn TokenStore, clock: &ManualClock) {
    let mut ids = Vec::new();
    for (i, scope) in [Scope::Read, Scope::Work, Scope::Admin]
        .into_iter()
        .enumerate()
    {
        let t = (i == 1).then(|| tenant("team_2"));
        let (secret, info) = a
            .create(&format!("agent-{i}"), scope, t.clone(), None)
            .unwrap();
        let who = b.verify(secret.expose()).unwrap();
        assert_eq!((who.scope, who.tenant), (scope, t));
        ids.push(info.id);
        clock.advance(Duration::from_millis(5));
    }
    let listed: Vec<String> = b.list().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(listed, ids, "oldest first");
}

/// A revoked token is refused; revoking again changes nothing; an unknown id is `NotFound`, a
/// malformed one `Invalid`; other tokens stay accepted.
pub fn check_revoke(a: &dyn TokenStore, b: &dyn TokenStore, clock: &ManualClock) {
    let (keep, _) = a.create("bob", Scope::Admin, None, None).unwrap();
    let (gone, info) = a.create("alice", Scope::Work, None, None).unwrap();
    a.verify(gone.expose()).unwrap();
    clock.advance(Duration::from_secs(1));
    let revoked = a.revoke(&info.id).unwrap();
    assert_eq!(revoked.revoked_at, Some(clock.now()));
    refused(a.verify(gone.expose()), "a revoked token");
    clock.advance(Duration::from_secs(1));
    let again = b.revoke(&info.id).unwrap();
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    assert_eq!(
        b.get(&info.id).unwrap().unwrap().revoked_at,
        revoked.revoked_at
    );
    assert!(
        matches!(
            b.revoke("0123456789abcdef"),
            Err(AuthError::NotFound { .. })
        ),
        "an unknown id"
    );
    for bad in [
        "",
        "xyz",
        "0123456789ABCDEF",
        &"0".repeat(10_000),
        "0123456789abcdeé",
    ] {
        assert!(
            matches!(b.revoke(bad), Err(AuthError::Invalid { .. })),
            "a malformed id {bad:.20}"
        );
    }
    assert_eq!(b.verify(keep.expose()).unwrap().agent, "bob");
}

/// A token revoked through one handle is refused by the other on its very next call, having
/// been accepted by it just before (nothing cached outlives a revocation).
pub fn check_revoked_on_the_next_call_elsewhere(
    a: &dyn TokenStore,
    b: &dyn TokenStore,
    _clock: &ManualClock,
) {
    let (secret, info) = a.create("alice", Scope::Admin, None, None).unwrap();
    for _ in 0..3 {
        b.verify(secret.expose()).unwrap();
    }
    a.revoke(&info.id).unwrap();
    refused(b.verify(secret.expose()), "revoked by the other handle");
}

/// A token is accepted until its expiry and refused from it on, by both handles; one without
/// an expiry stays accepted.
pub fn check_expiry(a: &dyn TokenStore, b: &dyn TokenStore, clock: &ManualClock) {
    let until = clock.now().saturating_add(Duration::from_secs(10));
    let (secret, info) = a.create("alice", Scope::Work, None, Some(until)).unwrap();
    let (forever, _) = a.create("bob", Scope::Work, None, None).unwrap();
    assert_eq!(info.expires_at, Some(until));
    clock.advance(Duration::from_millis(9_999));
    b.verify(secret.expose()).unwrap();
    clock.advance(Duration::from_millis(1));
    refused(b.verify(secret.expose()), "at its expiry");
    refused(a.verify(secret.expose()), "after its expiry");
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    b.verify(forever.expose()).unwrap();
    let listed = a.list().unwrap();
    assert_eq!(listed.len(), 2, "expired tokens are still listed");
}

/// A right id with a wrong secret is refused, whatever the secret; so is a right secret under
/// another token's id.
pub fn check_wrong_secret(a: &dyn TokenStore, b: &dyn TokenStore, _clock: &ManualClock) {
    let (secret, info) = a.create("alice", Scope::Admin, None, None).unwrap();
    let (other, other_info) = a.create("bob", Scope::Read, None, None).unwrap();
    let t = secret.expose();
    let last = t.len() - 1;
    let flipped = if t.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{flipped}", &t[..last]);
    refused(b.verify(&wrong), "one digit of the secret changed");
    let zeros = format!("oct_{}_{}", info.id, "0".repeat(64));
    refused(b.verify(&zeros), "an all-zero secret");
    let swapped = other.expose().replace(&other_info.id, &info.id);
    refused(b.verify(&swapped), "bob's secret under alice's id");
    assert_eq!(
        b.verify(t).unwrap().agent,
        "alice",
        "refusals revoke nothing"
    );
}

/// Malformed tokens are `BadToken`, and nothing panics.
pub fn check_malformed_tokens(a: &dyn TokenStore, b: &dyn TokenStore, _clock: &ManualClock) {
    let (secret, _) = a.create("alice", Scope::Admin, None, None).unwrap();
    let t = secret.expose();
    let huge = format!("{t}{}", "a".repeat(1 << 20));
    let wrong_prefix = t.replacen("oct_", "ocx_", 1);
    let no_prefix = &t[4..];
    let non_ascii = format!("{}é", &t[..t.len() - 2]);
    let upper = t.to_ascii_uppercase();
    let spaced = format!(" {}", &t[..t.len() - 1]);
    let nul = format!("{}\0", &t[..t.len() - 1]);
    let newline = format!("{}\n", &t[..t.len() - 1]);
    let sql = format!("oct_' OR 1=1 --{}", "a".repeat(t.len() - 15));
    for bad in [
        "",
        "oct_",
        "oct",
        "Bearer",
        &huge,
        &wrong_prefix,
        no_prefix,
        &non_ascii,
        &upper,
        &spaced,
        &nul,
        &newline,
        &sql,
        "🙂🙂🙂",
    ] {
        refused(
            b.verify(bad),
            &format!("{:?}", bad.chars().take(40).collect::<String>()),
        );
    }
}

/// Agent names follow the task store's limits (1 to 1,024 bytes, no NUL): a refusal is
/// `Invalid` and creates nothing.
pub fn check_invalid_input(a: &dyn TokenStore, b: &dyn TokenStore, _clock: &ManualClock) {
    for bad in [
        String::new(),
        "a\0b".into(),
        "a".repeat(MAX_AGENT_BYTES + 1),
    ] {
        assert!(
            matches!(
                a.create(&bad, Scope::Work, None, None),
                Err(AuthError::Invalid { what: "agent", .. })
            ),
            "agent {bad:.20?}"
        );
    }
    assert!(
        b.list().unwrap().is_empty(),
        "a refused create stores nothing"
    );
    let longest = "é".repeat(MAX_AGENT_BYTES / 2);
    let (secret, _) = a.create(&longest, Scope::Work, None, None).unwrap();
    assert_eq!(b.verify(secret.expose()).unwrap().agent, longest);
}

/// `last_used_at` is written by the first use, then at most once a minute.
pub fn check_last_used_once_a_minute(a: &dyn TokenStore, b: &dyn TokenStore, clock: &ManualClock) {
    let (secret, info) = a.create("alice", Scope::Work, None, None).unwrap();
    assert_eq!(b.get(&info.id).unwrap().unwrap().last_used_at, None);
    let first = clock.now();
    a.verify(secret.expose()).unwrap();
    clock.advance(Duration::from_secs(59));
    b.verify(secret.expose()).unwrap();
    assert_eq!(
        a.get(&info.id).unwrap().unwrap().last_used_at,
        Some(first),
        "not rewritten within a minute"
    );
    clock.advance(Duration::from_secs(1));
    b.verify(secret.expose()).unwrap();
    assert_eq!(
        a.get(&info.id).unwrap().unwrap().last_used_at,
        Some(clock.now()),
        "rewritten a minute after"
    );
}

/// Creates from many threads, through both handles at once, give distinct ids, each verifying
/// as its own agent.
pub fn check_concurrent_creates(a: &dyn TokenStore, b: &dyn TokenStore, _clock: &ManualClock) {
    const THREADS: usize = 8;
    const EACH: usize = 16;
    let made: Vec<(String, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = if t % 2 == 0 { a } else { b };
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let agent = format!("agent-{t}-{i}");
                            let (secret, info) =
                                store.create(&agent, Scope::Work, None, None).unwrap();
                            (info.id, secret.into_string(), agent)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let ids: HashSet<&str> = made.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), THREADS * EACH, "every id distinct");
    assert_eq!(a.list().unwrap().len(), THREADS * EACH);
    for (_, secret, agent) in made.iter().step_by(7) {
        assert_eq!(&b.verify(secret).unwrap().agent, agent);
    }
}
