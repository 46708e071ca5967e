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

/// [`LockManager::release_forgetting`] gives a keyed grant whose answer was lost back and
/// forgets its key in one step: the resources are free and a retry with the key acquires anew
/// (new, greater tokens). A lock that is no longer the grant's (released and taken afresh, or
/// lapsed) is left alone, and the key forgotten all the same; a re-entrant grant drops its one
/// hold; an unknown key is a no-op; a key recorded by a release is refused and kept.
pub fn check_idempotent_give_back(make: Factory<'_>) {
    let (m, clock) = setup(make);
    let k = key("a", "lost");
    let reqs = [ex("f", "a"), sh("g", "a")];
    let first = m
        .acquire_many_keyed(&k, &reqs, Duration::ZERO, None)
        .unwrap();
    assert!(!first.replayed);
    let back = m.release_forgetting(&k).unwrap();
    assert_eq!(back.len(), 2, "both locks given back: {back:?}");
    assert!(back.iter().all(|l| l.holds == 0), "{back:?}");
    assert!(m.holders(&res("f")).unwrap().is_empty(), "f is free");
    assert!(m.holders(&res("g")).unwrap().is_empty(), "g is free");
    let other = m.try_acquire(&ex("f", "b")).unwrap();
    m.release(&other.resource, &other.owner).unwrap();
    let retry = m
        .acquire_many_keyed(&k, &reqs, Duration::ZERO, None)
        .unwrap();
    assert!(
        !retry.replayed,
        "the key was forgotten: the retry acquires anew"
    );
    let newest = first.value.iter().map(|l| l.token).max().unwrap();
    assert!(
        retry.value.iter().all(|l| l.token > newest),
        "new grants: {:?} after {:?}",
        retry.value,
        first.value
    );

    // f released and taken afresh: no longer the grant's, left alone; g still is.
    m.release(&res("f"), &own("a")).unwrap();
    let fresh = m.try_acquire(&ex("f", "a")).unwrap();
    let back = m.release_forgetting(&k).unwrap();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((back[0].resource.as_str(), back[0].holds), ("g", 0));
    assert_eq!(m.holders(&res("f")).unwrap(), vec![fresh], "f did not move");
    let after = m.acquire_keyed(&k, &ex("h", "a"), Duration::ZERO).unwrap();
    assert!(
        !after.replayed,
        "forgotten all the same: no conflict, a new grant"
    );

    // An unknown key: nothing to give back.
    assert_eq!(m.release_forgetting(&key("a", "never")).unwrap(), vec![]);

    // A re-entrant grant drops the one hold it added.
    m.try_acquire(&ex("x", "c")).unwrap();
    let k2 = key("c", "again");
    let re = m.acquire_keyed(&k2, &ex("x", "c"), Duration::ZERO).unwrap();
    assert_eq!(re.value.holds, 2);
    let back = m.release_forgetting(&k2).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].holds, back[0].token), (1, re.value.token));
    assert_eq!(holds(&*m, "x", "c"), 1, "the unkeyed hold stays");

    // A key recorded by a release is not a grant: refused, and kept.
    let k3 = key("c", "rel");
    m.release_keyed(&k3, &res("x"), &own("c")).unwrap();
    conflict(m.release_forgetting(&k3).unwrap_err(), "c", "rel");
    assert!(m.release_keyed(&k3, &res("x"), &own("c")).unwrap().replayed);

    // A grant that lapsed is left alone (whoever holds the resource now keeps it).
    let k4 = key("d", "lapsed");
    let short = ex("y", "d").ttl(Duration::from_secs(1));
    m.acquire_keyed(&k4, &short, Duration::ZERO).unwrap();
    clock.advance(Duration::from_secs(2));
    let now = m.try_acquire(&ex("y", "e")).unwrap();
    assert_eq!(m.release_forgetting(&k4).unwrap(), vec![]);
    assert_eq!(m.holders(&res("y")).unwrap(), vec![now]);
    let e = m.acquire_keyed(&k4, &short, Duration::ZERO).unwrap_err();
    assert!(
        matches!(e, Error::Conflict { .. }),
        "forgotten: the retry meets e's lock rather than replaying: {e}"
    );
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
