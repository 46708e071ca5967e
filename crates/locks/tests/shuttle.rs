//! The in-memory manager's waiter queue under shuttle's scheduler (built with
//! `RUSTFLAGS="--cfg shuttle"`; `cargo xtask shuttle` runs it): random and PCT schedules of
//! agents that wait for exclusive and shared locks on overlapping resources. In every schedule
//! no two conflicting holders are inside at once, no increment made under an exclusive lock is
//! lost, and no waiter is left asleep (shuttle reports a deadlock otherwise). A failure prints
//! the schedule that replays it (`shuttle::replay`).

#![cfg(shuttle)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use oc_locks::testkit::START;
use oc_locks::{LockManager, LockRequest, ManualClock, MemoryLockManager, TtlPolicy};
use shuttle::sync::atomic::{AtomicU64, Ordering};
use shuttle::thread;

const WAIT: Duration = Duration::from_secs(3600);

struct Shared {
    m: MemoryLockManager,
    counter: AtomicU64,
    exclusive_inside: AtomicU64,
    shared_inside: AtomicU64,
    increments: AtomicU64,
}

fn exclusive(s: &Shared, resource: &str, owner: &str, wait: bool) {
    let req = LockRequest::exclusive(resource, owner).unwrap();
    let got = if wait {
        s.m.acquire(&req, WAIT)
    } else {
        s.m.try_acquire(&req)
    };
    let Ok(l) = got else { return };
    assert_eq!(
        s.exclusive_inside.fetch_add(1, Ordering::SeqCst),
        0,
        "two exclusive holders"
    );
    assert_eq!(
        s.shared_inside.load(Ordering::SeqCst),
        0,
        "exclusive beside shared"
    );
    // Load, yield, store: without mutual exclusion an increment is lost.
    let v = s.counter.load(Ordering::SeqCst);
    thread::yield_now();
    s.counter.store(v + 1, Ordering::SeqCst);
    s.increments.fetch_add(1, Ordering::SeqCst);
    s.exclusive_inside.fetch_sub(1, Ordering::SeqCst);
    s.m.release(&l.resource, &l.owner).unwrap();
}

fn shared(s: &Shared, resource: &str, owner: &str) {
    let l =
        s.m.acquire(&LockRequest::shared(resource, owner).unwrap(), WAIT)
            .unwrap();
    s.shared_inside.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        s.exclusive_inside.load(Ordering::SeqCst),
        0,
        "shared beside exclusive"
    );
    thread::yield_now();
    s.shared_inside.fetch_sub(1, Ordering::SeqCst);
    s.m.release(&l.resource, &l.owner).unwrap();
}

/// One run: two agents wait for exclusive locks on a directory and a file inside it, one
/// waits for a shared lock beside them, one only tries.
fn scenario() {
    let s = Arc::new(Shared {
        m: MemoryLockManager::with(Arc::new(ManualClock::new(START)), TtlPolicy::default()),
        counter: AtomicU64::new(0),
        exclusive_inside: AtomicU64::new(0),
        shared_inside: AtomicU64::new(0),
        increments: AtomicU64::new(0),
    });
    let agents: Vec<_> = [
        (|s: &Shared| (0..2).for_each(|_| exclusive(s, "repo", "a", true))) as fn(&Shared),
        |s: &Shared| (0..2).for_each(|_| exclusive(s, "repo/src/main.rs", "b", true)),
        |s: &Shared| (0..2).for_each(|_| shared(s, "repo/src", "c")),
        |s: &Shared| exclusive(s, "repo/src", "d", false),
    ]
    .into_iter()
    .map(|f| {
        let s = Arc::clone(&s);
        thread::spawn(move || f(&s))
    })
    .collect();
    for a in agents {
        a.join().unwrap();
    }
    assert_eq!(
        s.counter.load(Ordering::SeqCst),
        s.increments.load(Ordering::SeqCst),
        "an increment under an exclusive lock was lost"
    );
    assert!(s.m.list().unwrap().is_empty(), "every lock was released");
}

#[test]
fn waiter_queue_under_random_and_pct_schedules() {
    let iterations = oc_lincheck::runs(1_000, 20_000);
    shuttle::check_random(scenario, iterations);
    shuttle::check_pct(scenario, iterations, 3);
    oc_lincheck::publish(
        "locks.shuttle.waiter_queue",
        serde_json::json!({ "random_schedules": iterations, "pct_schedules": iterations,
                            "pct_depth": 3, "threads": 4, "failures": 0, "panics": 0 }),
    );
}
