//! Idempotency keys across store handles: one keyed claim, or one keyed lock acquire, retried
//! at once from several threads on two handles (two pools, as two hosts have) grants once.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use oc_locks::LockManager;
use oc_postgres::{PgLockManager, PgLockOptions, PgTaskStore};
use oc_tasks::{LabelFilter, NewTask, TaskFilter, TaskStatus, TaskStore};

use crate::server::{fresh_options, server};

#[test]
fn a_keyed_claim_retried_on_two_handles_grants_once() {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let opts = fresh_options(pg);
    let a = Arc::new(PgTaskStore::connect(opts.clone()).unwrap());
    let b = Arc::new(PgTaskStore::connect(opts).unwrap());
    a.create_many((0..8).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    let key = oc_tasks::IdempotencyKey::new("w", "claim-1").unwrap();
    let barrier = Barrier::new(8);
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let store: &PgTaskStore = if i % 2 == 0 { &a } else { &b };
                let (key, barrier) = (&key, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    store
                        .claim_next_keyed(key, "w", Duration::from_secs(60), &LabelFilter::any())
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
    let running = a
        .count(&TaskFilter::new().status(TaskStatus::Running))
        .unwrap();
    assert_eq!(running, 1);
}

#[test]
fn a_keyed_lock_retried_on_two_managers_grants_once() {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let opts = fresh_options(pg);
    let a = PgLockManager::connect(PgLockOptions::new(opts.clone())).unwrap();
    let b = PgLockManager::connect(PgLockOptions::new(opts)).unwrap();
    let key = oc_locks::IdempotencyKey::new("w", "lock-1").unwrap();
    let req = oc_locks::LockRequest::exclusive("repo/src", "w").unwrap();
    let barrier = Barrier::new(8);
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let m: &PgLockManager = if i % 2 == 0 { &a } else { &b };
                let (key, req, barrier) = (&key, &req, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    m.acquire_keyed(key, req, Duration::from_secs(10)).unwrap()
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
    let held = a.holders(&req.resource).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].holds, 1, "one hold");
}
