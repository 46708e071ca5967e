//! The conformance suite every [`LockManager`] must pass (feature `testkit`).
//!
//! Each `check_*` takes a factory building an empty manager on the given [`ManualClock`] (with the
//! default [`TtlPolicy`](crate::TtlPolicy)) and panics naming the broken rule;
//! [`lock_conformance_tests!`](crate::lock_conformance_tests) makes one `#[test]` of each.
//!
//! ```
//! use std::sync::Arc;
//! use oc_locks::{LockManager, MemoryLockManager, TtlPolicy, testkit};
//! testkit::check_reentrant_holds(&|clock| {
//!     Arc::new(MemoryLockManager::with(Arc::new(clock), TtlPolicy::default())) as Arc<dyn LockManager>
//! });
//! ```

// A test kit reports a broken rule by panicking, so unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub mod history;
mod keys;
pub mod model;

pub use keys::*;

use crate::{
    Error, Lock, LockManager, LockMode, LockRequest, ManualClock, Owner, Resource, Timestamp,
};

/// Builds an empty manager on the given clock.
pub type Factory<'a> = &'a dyn Fn(ManualClock) -> Arc<dyn LockManager>;

/// Where the suite's clocks start: 2026-02-19T10:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_771_495_200_000);

fn setup(make: Factory<'_>) -> (Arc<dyn LockManager>, ManualClock) {
    let clock = ManualClock::new(START);
    (make(clock.clone()), clock)
}

fn ex(r: &str, o: &str) -> LockRequest {
    LockRequest::exclusive(r, o).unwrap()
}

fn sh(r: &str, o: &str) -> LockRequest {
    LockRequest::shared(r, o).unwrap()
}

fn res(r: &str) -> Resource {
    Resource::new(r).unwrap()
}

fn own(o: &str) -> Owner {
    Owner::new(o).unwrap()
}

fn refused(m: &dyn LockManager, req: &LockRequest, holder: &str) {
    match m.try_acquire(req) {
        Err(e @ Error::Conflict { .. }) => {
            assert!(e.is_conflict());
            assert!(
                e.holders().iter().any(|h| h.owner.as_str() == holder),
                "{e} should name {holder}"
            );
        }
        other => panic!("{req:?} should conflict with {holder}: {other:?}"),
    }
}

/// Exclusive excludes everyone, shared holders coexist, and refusals name the holder.
pub fn check_modes(make: Factory<'_>) {
    let (m, _) = setup(make);
    let a = m.try_acquire(&sh("doc", "a")).unwrap();
    let b = m.try_acquire(&sh("doc", "b")).unwrap();
    assert_eq!((a.mode, a.holds), (LockMode::Shared, 1));
    assert!(b.token > a.token);
    refused(&*m, &ex("doc", "c"), "a");
    m.release(&res("doc"), &own("a")).unwrap();
    m.release(&res("doc"), &own("b")).unwrap();
    m.try_acquire(&ex("doc", "c")).unwrap();
    refused(&*m, &sh("doc", "d"), "c");
    refused(&*m, &ex("doc", "d"), "c");
    assert_eq!(m.list().unwrap().len(), 1);
}

/// `repo/src` overlaps `repo/src/...` but not `repo/srcx` or siblings.
pub fn check_hierarchy(make: Factory<'_>) {
    let (m, _) = setup(make);
    m.try_acquire(&ex("repo/src", "a")).unwrap();
    refused(&*m, &sh("repo/src/main.rs", "b"), "a");
    refused(&*m, &ex("repo", "b"), "a");
    refused(&*m, &sh("repo/src/deep/er/file.rs", "b"), "a");
    m.try_acquire(&ex("repo/srcx", "b")).unwrap();
    m.try_acquire(&ex("repo/docs/readme.md", "b")).unwrap();
    m.try_acquire(&ex("repo/src/main.rs", "a")).unwrap();
    let held: Vec<String> = m
        .holders(&res("repo/src/main.rs"))
        .unwrap()
        .iter()
        .map(|l| l.resource.to_string())
        .collect();
    assert_eq!(
        held,
        ["repo/src", "repo/src/main.rs"],
        "holders lists overlapping locks"
    );
    let under_repo = m.holders(&res("repo")).unwrap();
    assert_eq!(under_repo.len(), 4);
}

/// Re-acquiring adds holds (same token); the lock stays until released as many times.
pub fn check_reentrant_holds(make: Factory<'_>) {
    let (m, _) = setup(make);
    let first = m.try_acquire(&ex("f", "a")).unwrap();
    let second = m.try_acquire(&ex("f", "a")).unwrap();
    assert_eq!((second.holds, second.token), (2, first.token));
    assert_eq!(
        m.try_acquire(&sh("f", "a")).unwrap().holds,
        3,
        "a weaker mode is another hold"
    );
    for left in [2, 1] {
        assert_eq!(m.release(&res("f"), &own("a")).unwrap().holds, left);
        refused(&*m, &sh("f", "b"), "a");
    }
    assert_eq!(m.release(&res("f"), &own("a")).unwrap().holds, 0);
    let e = m.release(&res("f"), &own("a")).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let st = m.stats().unwrap();
    assert_eq!((st.total_locks, st.reentrant, st.released), (1, 2, 1));
}

/// Shared upgrades to exclusive when alone; not while another holder shares.
pub fn check_upgrade(make: Factory<'_>) {
    let (m, _) = setup(make);
    m.try_acquire(&sh("f", "a")).unwrap();
    m.try_acquire(&sh("f", "b")).unwrap();
    refused(&*m, &ex("f", "a"), "b");
    m.release(&res("f"), &own("b")).unwrap();
    let up = m.try_acquire(&ex("f", "a")).unwrap();
    assert_eq!((up.mode, up.holds), (LockMode::Exclusive, 2));
    refused(&*m, &sh("f", "b"), "a");
}

/// Releasing someone else's lock is refused, naming the holder; nothing changes.
pub fn check_wrong_owner(make: Factory<'_>) {
    let (m, _) = setup(make);
    let l = m.try_acquire(&ex("f", "a")).unwrap();
    for e in [
        m.release(&res("f"), &own("b")).unwrap_err(),
        m.renew(&res("f"), &own("b"), None).unwrap_err(),
    ] {
        assert!(matches!(e, Error::NotHeld { .. }) && e.is_conflict(), "{e}");
        assert!(e.to_string().contains("held by a"), "{e}");
    }
    assert_eq!(m.list().unwrap(), vec![l]);
}

/// Bad names and TTLs are refused before anything is touched.
pub fn check_bad_input(make: Factory<'_>) {
    let (m, _) = setup(make);
    m.try_acquire(&ex("keep", "a")).unwrap();
    let before = m.list().unwrap();
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(10),
        Duration::from_secs(100_000),
    ] {
        let e = m.try_acquire(&ex("f", "a").ttl(ttl)).unwrap_err();
        assert!(
            matches!(e, Error::InvalidTtl { .. }) && e.is_invalid_input(),
            "{e}"
        );
        let e = m.renew(&res("keep"), &own("a"), Some(ttl)).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
    }
    for bad in ["", "/x", "a//b", "../up", "a/./b"] {
        assert!(
            LockRequest::exclusive(bad, "a")
                .unwrap_err()
                .is_invalid_input()
        );
    }
    assert!(
        LockRequest::exclusive("x", "")
            .unwrap_err()
            .is_invalid_input()
    );
    assert!(
        m.acquire_many(&[], Duration::ZERO)
            .unwrap_err()
            .is_invalid_input()
    );
    assert!(
        m.acquire_many(&[ex("x", "a"), ex("y", "b")], Duration::ZERO)
            .unwrap_err()
            .is_invalid_input()
    );
    assert_eq!(m.list().unwrap(), before);
}

/// Locks lapse at their expiry: others get them with a larger token, the old owner learns it.
pub fn check_expiry(make: Factory<'_>) {
    let (m, clock) = setup(make);
    let a = m
        .try_acquire(&ex("f", "a").ttl(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(a.expires_at, START.saturating_add(Duration::from_secs(5)));
    m.try_acquire(&ex("g", "a").ttl(Duration::from_secs(5)))
        .unwrap();
    clock.advance(Duration::from_secs(4));
    let renewed = m
        .renew(&res("g"), &own("a"), Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        (renewed.token, renewed.expires_at),
        (a.token + 1, m.now().saturating_add(Duration::from_secs(10)))
    );
    refused(&*m, &ex("f", "b"), "a");
    clock.advance(Duration::from_secs(1));
    let b = m.try_acquire(&ex("f", "b")).unwrap();
    assert!(
        b.token > renewed.token,
        "a lapsed lock's successor gets a larger token"
    );
    for e in [
        m.release(&res("f"), &own("a")).unwrap_err(),
        m.renew(&res("f"), &own("a"), None).unwrap_err(),
    ] {
        assert!(
            matches!(e, Error::NotHeld { .. }),
            "a's lock was replaced: {e}"
        );
    }
    m.try_acquire(&ex("h", "a").ttl(Duration::from_secs(1)))
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let e = m.release(&res("h"), &own("a")).unwrap_err();
    assert!(matches!(e, Error::Expired { .. }), "{e}");
    assert!(m.list().unwrap().iter().all(|l| l.resource.as_str() != "h"));
    clock.advance(Duration::from_secs(9));
    let swept = m.sweep_expired().unwrap();
    let names: Vec<&str> = swept.iter().map(|l| l.resource.as_str()).collect();
    assert_eq!(
        names,
        ["g"],
        "only g lapsed since (f is b's now, with the default 30 s)"
    );
    assert_eq!(m.stats().unwrap().expired_locks, 3, "f, h and g lapsed");
}

/// `acquire_many` takes all or nothing, in canonical order, merging duplicates.
pub fn check_acquire_many(make: Factory<'_>) {
    let (m, _) = setup(make);
    m.try_acquire(&ex("b/2", "x")).unwrap();
    let e = m
        .acquire_many(&[ex("c", "a"), ex("b", "a"), ex("a", "a")], Duration::ZERO)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Conflict { resource, .. } if resource == "b"),
        "{e}"
    );
    assert_eq!(
        m.list().unwrap().len(),
        1,
        "nothing granted when one is refused"
    );
    let got = m
        .acquire_many(
            &[ex("c", "a"), sh("a", "a"), ex("a", "a"), sh("d/1", "a")],
            Duration::ZERO,
        )
        .unwrap();
    let names: Vec<(&str, LockMode)> = got.iter().map(|l| (l.resource.as_str(), l.mode)).collect();
    assert_eq!(
        names,
        [
            ("a", LockMode::Exclusive),
            ("c", LockMode::Exclusive),
            ("d/1", LockMode::Shared)
        ]
    );
    assert!(
        got.windows(2).all(|w| w[0].token < w[1].token),
        "granted in canonical order"
    );
    let freed = m.release_owner(&own("a")).unwrap();
    assert_eq!(freed.len(), 3);
    assert_eq!(m.list().unwrap().len(), 1);
}

/// Statistics: the seed's fields and the extra ones.
pub fn check_stats(make: Factory<'_>) {
    let (m, clock) = setup(make);
    m.try_acquire(&ex("a", "one")).unwrap();
    clock.advance(Duration::from_secs(2));
    m.try_acquire(&ex("b", "one")).unwrap();
    m.try_acquire(&sh("c", "two")).unwrap();
    refused(&*m, &ex("a", "two"), "one");
    clock.advance(Duration::from_secs(2));
    m.release(&res("a"), &own("one")).unwrap();
    m.release(&res("b"), &own("one")).unwrap();
    m.try_acquire(&ex("d", "three").ttl(Duration::from_secs(1)))
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let st = m.stats().unwrap();
    assert_eq!(st.total_locks, 4);
    assert_eq!(st.active_locks, 1, "c");
    assert_eq!(st.expired_locks, 1, "d");
    assert_eq!(st.conflicts_detected, 1);
    assert_eq!(st.released, 2);
    assert_eq!(st.average_hold_time, 3000.0, "a held 4 s, b 2 s");
    assert_eq!(st.max_hold_time, 4000);
    assert_eq!(st.by_owner.len(), 1);
    assert_eq!(
        (st.by_owner[0].owner.as_str(), st.by_owner[0].count),
        ("two", 1)
    );
    let oldest = st.oldest_lock.clone().expect("c is held");
    assert_eq!((oldest.resource.as_str(), oldest.age_ms), ("c", 3000));
    assert!((st.conflict_rate() - 0.25).abs() < 1e-9);
    let json = serde_json::to_string(&st).unwrap();
    for key in [
        "totalLocks",
        "activeLocks",
        "expiredLocks",
        "conflictsDetected",
        "averageHoldTime",
    ] {
        assert!(json.contains(&format!("\"{key}\"")), "{key} in {json}");
    }
}

/// Waiting: granted when the holder releases; a timeout names the holder.
pub fn check_waiting(make: Factory<'_>) {
    let (m, _) = setup(make);
    m.try_acquire(&ex("f", "a")).unwrap();
    let started = Instant::now();
    let e = m
        .acquire(&ex("f", "b"), Duration::from_millis(50))
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "waited the whole deadline"
    );
    assert!(
        matches!(&e, Error::Timeout { .. }) && e.is_conflict() && e.to_string().contains('a'),
        "{e}"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| m.acquire(&ex("f", "b"), Duration::from_secs(30)));
        wait_for_waiters(&*m, 1);
        m.release(&res("f"), &own("a")).unwrap();
        let got = waiter.join().unwrap().unwrap();
        assert_eq!(got.owner.as_str(), "b");
    });
    let st = m.stats().unwrap();
    assert_eq!((st.waits, st.timeouts, st.waiting), (2, 1, 0));
}

/// A watched wait: its watcher is asked while it waits, it is granted when the holder releases,
/// and it ends, leaving the queue, as soon as the watcher says stop.
pub fn check_watched_wait(make: Factory<'_>) {
    use std::sync::atomic::AtomicBool;
    let (asked, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let (m, _) = setup(make);
    m.try_acquire(&ex("f", "a")).unwrap();
    let watcher = |_: Duration| {
        asked.fetch_add(1, Ordering::SeqCst);
        !stop.load(Ordering::SeqCst)
    };
    std::thread::scope(|s| {
        let waiter =
            s.spawn(|| m.acquire_many_watched(&[ex("f", "b")], Duration::from_secs(60), &watcher));
        let until = Instant::now() + Duration::from_secs(30);
        while asked.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < until, "the watcher was never asked");
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        let e = waiter.join().unwrap().unwrap_err();
        assert!(
            matches!(&e, Error::Timeout { waited, .. } if *waited < Duration::from_secs(60)),
            "stopped before the deadline: {e}"
        );
    });
    assert_eq!(
        m.stats().unwrap().waiting,
        0,
        "a stopped waiter left the queue"
    );
    m.release(&res("f"), &own("a")).unwrap();
    m.try_acquire(&ex("f", "c")).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            m.acquire_many_watched(
                &[ex("f", "b"), ex("g", "b")],
                Duration::from_secs(60),
                &|_| true,
            )
        });
        wait_for_waiters(&*m, 1);
        m.release(&res("f"), &own("c")).unwrap();
        let got = waiter.join().unwrap().unwrap();
        assert_eq!(
            got.iter().map(|l| l.owner.as_str()).collect::<Vec<_>>(),
            ["b", "b"]
        );
    });
}

fn wait_for_waiters(m: &dyn LockManager, n: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while m.stats().unwrap().waiting < n {
        assert!(Instant::now() < until, "no waiter showed up");
        std::thread::yield_now();
    }
}

/// First come, first served: a queued exclusive request is not overtaken by compatible shared ones.
pub fn check_no_starvation(make: Factory<'_>) {
    let (m, _) = setup(make);
    m.try_acquire(&sh("f", "reader-1")).unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| m.acquire(&ex("f", "writer"), Duration::from_secs(30)));
        wait_for_waiters(&*m, 1);
        // Compatible with the shared holder, but the writer came first.
        let e = m.try_acquire(&sh("f", "reader-2")).unwrap_err();
        assert!(
            e.holders()
                .iter()
                .any(|h| h.owner.as_str() == "writer" && h.expires_at.is_none()),
            "{e}"
        );
        let e = m.try_acquire(&sh("f/child", "reader-3")).unwrap_err();
        assert!(e.is_conflict(), "{e}");
        m.release(&res("f"), &own("reader-1")).unwrap();
        assert_eq!(writer.join().unwrap().unwrap().owner.as_str(), "writer");
    });
}

/// Threads incrementing a counter with a non-atomic read-modify-write, only under an exclusive
/// lock: the total is exact. Shared holders coexist meanwhile on another resource.
pub fn check_mutual_exclusion(make: Factory<'_>, threads: usize, per_thread: usize) {
    let (m, _) = setup(make);
    let counter = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (m, counter) = (&m, &counter);
            s.spawn(move || {
                let me = format!("t{t}");
                let req = ex("counter", &me);
                for _ in 0..per_thread {
                    let l = m.acquire(&req, Duration::from_secs(60)).unwrap();
                    // Load, yield, store: without the lock, increments would be lost.
                    let v = counter.load(Ordering::Relaxed);
                    std::thread::yield_now();
                    counter.store(v + 1, Ordering::Relaxed);
                    m.release(&l.resource, &l.owner).unwrap();
                }
            });
        }
    });
    assert_eq!(
        counter.load(Ordering::Relaxed),
        (threads * per_thread) as u64,
        "no increment lost"
    );
    // Shared holders hold at the same time.
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (m, barrier) = (&m, &barrier);
            s.spawn(move || {
                let l = m
                    .acquire(&sh("docs", &format!("r{t}")), Duration::from_secs(60))
                    .unwrap();
                barrier.wait();
                assert_eq!(m.holders(&res("docs")).unwrap().len(), 4, "all four share");
                barrier.wait();
                m.release(&l.resource, &l.owner).unwrap();
            });
        }
    });
}

/// Tokens strictly increase over every grant.
pub fn check_tokens_increase(make: Factory<'_>) {
    let (m, _) = setup(make);
    let mut last = 0;
    for i in 0..50 {
        let r = format!("r{}", i % 7);
        let l: Lock = m.try_acquire(&ex(&r, "a")).unwrap();
        assert!(l.token > last, "token {} after {last}", l.token);
        last = l.token;
        m.release(&l.resource, &l.owner).unwrap();
    }
}

/// A clock that moves `step` forward each time it is read: every call then seems to take
/// longer than the step, which is how [`check_late_grants_refused`] makes answers arrive late.
#[derive(Debug)]
pub struct LeapingClock {
    now: std::sync::atomic::AtomicI64,
    step: Duration,
}

impl LeapingClock {
    /// Starting at [`START`], leaping `step` per reading.
    pub fn new(step: Duration) -> LeapingClock {
        LeapingClock {
            now: std::sync::atomic::AtomicI64::new(START.as_millis()),
            step,
        }
    }
}

impl crate::Clock for LeapingClock {
    fn now(&self) -> Timestamp {
        let step = i64::try_from(self.step.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.now.fetch_add(step, Ordering::Relaxed))
    }
}

/// A grant or renewal whose lease lapsed before the answer reached the caller is refused with
/// `Expired`, never returned as held (etcd-io/etcd#11456): on a [`LeapingClock`] that moves
/// 5 s per reading, a 1 s lock lapses between the grant and its delivery. For managers that
/// read their clock again on delivery (SQLite, PostgreSQL); the in-memory manager grants and
/// returns under one reading and one mutex, with nothing in between.
pub fn check_late_grants_refused(make: &dyn Fn(Arc<dyn crate::Clock>) -> Arc<dyn LockManager>) {
    let m = make(Arc::new(LeapingClock::new(Duration::from_secs(5))));
    let req = ex("late", "a").ttl(Duration::from_secs(1));
    let e = m.try_acquire(&req).unwrap_err();
    assert!(matches!(e, Error::Expired { .. }), "a late grant: {e}");
    let e = m
        .acquire_many(
            &[req.clone(), ex("late2", "a").ttl(Duration::from_secs(1))],
            Duration::ZERO,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Expired { .. }), "late grants: {e}");
    // With a lease longer than the delay, the same calls succeed, and a short renewal is late.
    let held = m
        .try_acquire(&ex("late3", "a").ttl(Duration::from_secs(600)))
        .unwrap();
    let e = m
        .renew(&held.resource, &held.owner, Some(Duration::from_secs(1)))
        .unwrap_err();
    assert!(matches!(e, Error::Expired { .. }), "a late renewal: {e}");
}

/// Histories of concurrent calls are linearizable: [`history::record`] runs the random
/// workload on 6 threads (100 ms of the manager's clock pass per real millisecond, so leases
/// lapse mid-run), and [`history::check`] checks each against the model and for fencing
/// tokens; 8 histories, 80 with `OC_SOAK=1`. Publishes its figures (`oc_lincheck::publish`)
/// under `locks.linearizable.` and the test's name.
pub fn check_linearizable(make: Factory<'_>) {
    let mut summary = oc_lincheck::Summary::default();
    for seed in 0..oc_lincheck::runs(8, 80) as u64 {
        let (store, clock) = setup(make);
        let w = history::Workload {
            seed,
            ..history::Workload::default()
        };
        let h = history::record(&*store, &w, Some(&clock));
        let checked = history::check(&h, 0);
        if !checked.is_ok() {
            oc_lincheck::fail(
                &h,
                &format!(
                    "seed {seed} (history::Workload {{ seed: {seed}, ..Default::default() }} makes the same calls)"
                ),
                "OC_REPLAY_HISTORY={} cargo test -p oc-locks --all-features --test it replay_saved_history",
                &checked,
            );
        }
        summary.add(&checked, history::tally(&h));
    }
    oc_lincheck::publish(
        &format!("locks.linearizable.{}", oc_lincheck::test_name()),
        summary.figures(history::Workload::default().threads, serde_json::json!({})),
    );
}

/// Generates one `#[test]` per conformance check for the manager built by `$make`
/// (a closure from [`ManualClock`](crate::ManualClock) to `Arc<dyn LockManager>`), with
/// `$threads` × `$per_thread` locked increments in the mutual-exclusion check.
#[macro_export]
macro_rules! lock_conformance_tests {
    ($make:expr, $threads:expr, $per_thread:expr) => {
        $crate::lock_conformance_tests!(@each $make; check_modes, check_hierarchy, check_reentrant_holds,
            check_upgrade, check_wrong_owner, check_bad_input, check_expiry, check_acquire_many,
            check_stats, check_waiting, check_watched_wait, check_no_starvation, check_tokens_increase,
            check_linearizable, check_idempotent_locks, check_idempotency_keys_lapse,
            check_idempotent_lock_race, check_idempotent_give_back);
        #[test]
        fn check_mutual_exclusion() {
            let make = $make;
            $crate::testkit::check_mutual_exclusion(&make, $threads, $per_thread);
        }
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let make = $make;
            $crate::testkit::$check(&make);
        }
    )*};
}
