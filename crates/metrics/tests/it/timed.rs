//! `TimedLocks` forwards the keyed methods and the watched wait to the manager it wraps.

use std::thread;
use std::time::Duration;

use oc_locks::{Error, IdempotencyKey, LockManager, LockRequest, MemoryLockManager, WATCH_EVERY};
use oc_metrics::Exporter;

#[test]
fn release_forgetting_is_forwarded() {
    let exporter = Exporter::new().unwrap();
    let locks = exporter.timed_locks(MemoryLockManager::new());
    let key = IdempotencyKey::new("agent-1", "lost-answer").unwrap();
    let req = LockRequest::exclusive("repo/a", "agent-1").unwrap();
    let first = locks.acquire_keyed(&key, &req, Duration::ZERO).unwrap();
    assert!(!first.replayed);

    let back = locks.release_forgetting(&key).unwrap();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((back[0].token, back[0].holds), (first.value.token, 0));
    assert!(locks.inner().list().unwrap().is_empty(), "given back");

    let retry = locks.acquire_keyed(&key, &req, Duration::ZERO).unwrap();
    assert!(!retry.replayed, "the key was forgotten: {retry:?}");
    assert!(retry.value.token > first.value.token);

    // A release's key is refused by the wrapped manager, and kept.
    let rel = IdempotencyKey::new("agent-1", "release").unwrap();
    locks
        .release_keyed(&rel, &req.resource, &req.owner)
        .unwrap();
    let e = locks.release_forgetting(&rel).unwrap_err();
    assert!(matches!(e, Error::IdempotencyConflict { .. }), "{e}");
}

/// A watched wait through the wrapper keeps its place in the wrapped manager's queue: a waiter
/// that came later is served after it, so its token is greater. (Waiting in slices of
/// `WATCH_EVERY`, as the trait's default does, leaves the queue between slices and lets the later
/// waiter pass.)
#[test]
fn a_watched_wait_is_forwarded_and_keeps_its_place() {
    let exporter = Exporter::new().unwrap();
    let locks = exporter.timed_locks(MemoryLockManager::new());
    let held = LockRequest::exclusive("repo/a", "holder").unwrap();
    locks.try_acquire(&held).unwrap();
    let first = LockRequest::exclusive("repo/a", "first").unwrap();
    let later = LockRequest::exclusive("repo/a", "later").unwrap();
    let (first_token, later_token) = thread::scope(|s| {
        let watched = s.spawn(|| {
            let keep_waiting = |_: Duration| true;
            let got = locks
                .acquire_many_watched(
                    std::slice::from_ref(&first),
                    Duration::from_secs(30),
                    &keep_waiting,
                )
                .unwrap();
            locks.release(&first.resource, &first.owner).unwrap();
            got[0].token
        });
        // Queued first: its conflict is counted under the lock that queues it.
        queued(&locks, 1);
        let plain = s.spawn(|| {
            let got = locks.acquire(&later, Duration::from_secs(30)).unwrap();
            locks.release(&later.resource, &later.owner).unwrap();
            got.token
        });
        queued(&locks, 2);
        // What is tested is the watched wait's own period: let a few of them pass, then free
        // the lock (a wait in slices would have left the queue and rejoined behind by now).
        thread::sleep(WATCH_EVERY * 3);
        locks.release(&held.resource, &held.owner).unwrap();
        (watched.join().unwrap(), plain.join().unwrap())
    });
    assert!(
        first_token < later_token,
        "the watched waiter, queued first, is served first: {first_token:?} vs {later_token:?}"
    );
}

/// Waits until `n` requests have met a conflict (each blocked waiter counts one when it queues).
fn queued(locks: &impl LockManager, n: u64) {
    while locks.stats().unwrap().conflicts_detected < n {
        thread::yield_now();
    }
}
