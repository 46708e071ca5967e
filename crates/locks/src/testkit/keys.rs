//! Idempotency keys: retried acquires and releases replay the first result and change nothing.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::{Factory, ex, own, res, setup, sh};
use crate::{Error, IDEMPOTENCY_KEY_TTL, IdempotencyKey, LockManager};

fn key(agent: &str, k: &str) -> IdempotencyKey {
    IdempotencyKey::new(agent, k).unwrap()
}

fn conflict(e: Error, agent: &str, k: &str) {
    assert!(
        matches!(&e, Error::IdempotencyConflict { agent: a, key } if a == agent && key == k),
        "same key, another request: {e}"
    );
    assert!(e.is_conflict());
}

fn holds(m: &dyn LockManager, r: &str, o: &str) -> u32 {
    m.holders(&res(r))
        .unwrap()
        .into_iter()
        .find(|l| l.owner.as_str() == o && l.resource.as_str() == r)
        .map_or(0, |l| l.holds)
}

/// A retried acquire returns the first grant, token and holds, and adds no hold; a retried
/// release drops no second hold; another request under the key is refused; another agent's
/// same key is its own; a refused acquire records no key; a wait that was granted replays too.
pub fn check_idempotent_locks(make: Factory<'_>) {
    let (m, _) = setup(make);
    let k1 = key("a", "k1");
    let first = m.acquire_keyed(&k1, &ex("f", "a"), Duration::ZERO).unwrap();
    assert!(!first.replayed);
    let again = m.acquire_keyed(&k1, &ex("f", "a"), Duration::ZERO).unwrap();
    assert!(again.replayed, "the retry is a replay");
    assert_eq!(again.value, first.value, "the first grant, token and all");
    assert_eq!(holds(&*m, "f", "a"), 1, "the retry added no hold");
    conflict(
        m.acquire_keyed(&k1, &sh("f", "a"), Duration::ZERO)
            .unwrap_err(),
        "a",
        "k1",
    );
    conflict(
        m.acquire_keyed(&k1, &ex("g", "a"), Duration::ZERO)
            .unwrap_err(),
        "a",
        "k1",
    );
    // The same key of another agent is another key; a refused acquire records nothing.
    let b1 = key("b", "k1");
    let e = m
        .acquire_keyed(&b1, &ex("f", "b"), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    let g = m.acquire_keyed(&b1, &ex("g", "b"), Duration::ZERO).unwrap();
    assert!(
        !g.replayed,
        "the refused call recorded nothing; agents do not collide"
    );

    // Re-entry under a second key adds one hold, once.
    let k2 = key("a", "k2");
    let re = m.acquire_keyed(&k2, &ex("f", "a"), Duration::ZERO).unwrap();
    assert_eq!((re.value.holds, re.value.token), (2, first.value.token));
    assert!(
        m.acquire_keyed(&k2, &ex("f", "a"), Duration::ZERO)
            .unwrap()
            .replayed
    );
    assert_eq!(holds(&*m, "f", "a"), 2);

    // Releases: one hold per key, however often retried.
    let k3 = key("a", "k3");
    let r = m.release_keyed(&k3, &res("f"), &own("a")).unwrap();
    assert_eq!((r.value.holds, r.replayed), (1, false));
    let again = m.release_keyed(&k3, &res("f"), &own("a")).unwrap();
    assert!(again.replayed);
    assert_eq!(again.value, r.value);
    assert_eq!(holds(&*m, "f", "a"), 1, "the retry dropped no hold");
    conflict(
        m.release_keyed(&k3, &res("g"), &own("a")).unwrap_err(),
        "a",
        "k3",
    );
    let k4 = key("a", "k4");
    assert_eq!(
        m.release_keyed(&k4, &res("f"), &own("a"))
            .unwrap()
            .value
            .holds,
        0
    );
    assert!(m.release_keyed(&k4, &res("f"), &own("a")).unwrap().replayed);
    assert!(m.holders(&res("f")).unwrap().is_empty());
    // A grant retried after its lock was released returns the first grant, not a new one.
    let late = m.acquire_keyed(&k1, &ex("f", "a"), Duration::ZERO).unwrap();
    assert!(late.replayed);
    assert_eq!(late.value, first.value);
    assert!(m.holders(&res("f")).unwrap().is_empty(), "nothing granted");

    // A keyed wait, granted when the holder releases, then replayed.
    m.try_acquire(&ex("w", "c")).unwrap();
    let k5 = key("d", "k5");
    std::thread::scope(|s| {
        let waiter =
            s.spawn(|| m.acquire_many_keyed(&k5, &[ex("w", "d")], Duration::from_secs(30), None));
        super::wait_for_waiters(&*m, 1);
        m.release(&res("w"), &own("c")).unwrap();
        let got = waiter.join().unwrap().unwrap();
        assert!(!got.replayed);
        let again = m
            .acquire_many_keyed(&k5, &[ex("w", "d")], Duration::ZERO, None)
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.value, got.value);
    });
    assert_eq!(holds(&*m, "w", "d"), 1);
}

/// Keys lapse after [`IDEMPOTENCY_KEY_TTL`]: a retry after that runs afresh.
pub fn check_idempotency_keys_lapse(make: Factory<'_>) {
    let (m, clock) = setup(make);
    let k = key("a", "k");
    let first = m
        .acquire_keyed(
            &k,
            &ex("f", "a").ttl(Duration::from_secs(1)),
            Duration::ZERO,
        )
        .unwrap();
    clock.advance(IDEMPOTENCY_KEY_TTL - Duration::from_millis(1));
    let kept = m
        .acquire_keyed(
            &k,
            &ex("f", "a").ttl(Duration::from_secs(1)),
            Duration::ZERO,
        )
        .unwrap();
    assert!(kept.replayed, "kept for the whole TTL");
    assert_eq!(kept.value, first.value);
    clock.advance(Duration::from_millis(1));
    let fresh = m
        .acquire_keyed(
            &k,
            &ex("f", "a").ttl(Duration::from_secs(1)),
            Duration::ZERO,
        )
        .unwrap();
    assert!(!fresh.replayed, "lapsed after the TTL");
    assert!(fresh.value.token > first.value.token, "a new grant");
}

/// Eight threads retry one keyed acquire at once: exactly one grant, one hold.
pub fn check_idempotent_lock_race(make: Factory<'_>) {
    let (m, _) = setup(make);
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let k = key("a", "race");
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (m, barrier, k) = (m.clone(), barrier.clone(), k.clone());
                s.spawn(move || {
                    barrier.wait();
                    m.acquire_keyed(&k, &ex("f", "a"), Duration::from_secs(30))
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got.iter().filter(|g| !g.replayed).count(), 1, "one grant");
    assert!(
        got.iter().all(|g| g.value == got[0].value),
        "all told of it"
    );
    assert_eq!(holds(&*m, "f", "a"), 1, "one hold");
}
