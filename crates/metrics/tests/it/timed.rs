//! `TimedLocks` forwards the keyed methods to the manager it wraps.

use std::time::Duration;

use oc_locks::{Error, IdempotencyKey, LockManager, LockRequest, MemoryLockManager};
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
