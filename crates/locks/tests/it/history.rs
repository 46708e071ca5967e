//! Histories of concurrent lock calls checked for linearizability: processes sharing a SQLite
//! file while one is killed, and managers with planted bugs, every one of which the check must
//! catch. (Thread histories run on every backend in the conformance suite,
//! `testkit::check_linearizable`.)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use oc_lincheck::{ProcessLog, publish, read_logs, runs};
use oc_locks::testkit::START;
use oc_locks::testkit::history::{self, LockHistory, Workload};
use oc_locks::{
    Clock, Error, Lock, LockManager, LockRequest, LockStats, ManualClock, MemoryLockManager, Owner,
    Resource, Result, SqliteLockManager, Timestamp, TtlPolicy,
};

use crate::processes::{child, child_env};

fn memory(clock: &ManualClock) -> MemoryLockManager {
    MemoryLockManager::with(Arc::new(clock.clone()), TtlPolicy::default())
}

/// A manager with one planted bug, around a correct one.
struct Planted<M> {
    inner: M,
    bug: Bug,
    clock: ManualClock,
    calls: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Bug {
    /// Grants what it should refuse: the conflict check skipped.
    SkipsConflictCheck,
    /// Hands out the previous grant's token again, now and then.
    ReissuesToken,
    /// Says a lock was released while it stays held.
    ReleaseKeepsHold,
    /// Returns a grant whose lease lapsed while it was on its way (etcd-io/etcd#11456).
    ReturnsLapsedGrant,
}

impl<M: LockManager> LockManager for Planted<M> {
    fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let got = self.inner.acquire(req, wait);
        match (self.bug, got) {
            (Bug::SkipsConflictCheck, Err(Error::Conflict { .. })) if n.is_multiple_of(3) => {
                let now = self.clock.now();
                Ok(Lock {
                    resource: req.resource.clone(),
                    owner: req.owner.clone(),
                    mode: req.mode,
                    token: 1 << 40 | n,
                    holds: 1,
                    acquired_at: now,
                    expires_at: now.saturating_add(req.ttl.unwrap_or(Duration::from_secs(30))),
                })
            }
            (Bug::ReissuesToken, Ok(mut l)) if l.holds == 1 && n.is_multiple_of(4) => {
                l.token -= 1;
                Ok(l)
            }
            (Bug::ReturnsLapsedGrant, Ok(l)) if n.is_multiple_of(5) => {
                // The grant is computed, then the answer is late past its expiry.
                self.clock.advance(Duration::from_millis(
                    l.expires_at.since(self.clock.now()).as_millis() as u64 + 1,
                ));
                Ok(l)
            }
            (_, got) => got,
        }
    }
    fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>> {
        self.inner.acquire_many(reqs, wait)
    }
    fn renew(&self, r: &Resource, o: &Owner, ttl: Option<Duration>) -> Result<Lock> {
        self.inner.renew(r, o, ttl)
    }
    fn release(&self, r: &Resource, o: &Owner) -> Result<Lock> {
        if let Bug::ReleaseKeepsHold = self.bug
            && let Some(l) = self.inner.holders(r)?.into_iter().find(|l| &l.owner == o)
            && l.holds == 1
        {
            return Ok(Lock { holds: 0, ..l });
        }
        self.inner.release(r, o)
    }
    fn release_owner(&self, o: &Owner) -> Result<Vec<Lock>> {
        self.inner.release_owner(o)
    }
    fn sweep_expired(&self) -> Result<Vec<Lock>> {
        self.inner.sweep_expired()
    }
    fn holders(&self, r: &Resource) -> Result<Vec<Lock>> {
        self.inner.holders(r)
    }
    fn list(&self) -> Result<Vec<Lock>> {
        self.inner.list()
    }
    fn stats(&self) -> Result<LockStats> {
        self.inner.stats()
    }
    fn now(&self) -> Timestamp {
        self.inner.now()
    }
}

/// Schedules tried per seed before a planted bug counts as unnoticed.
const SCHEDULES: usize = 3;

#[test]
fn every_planted_bug_is_caught() {
    let bugs = [
        Bug::SkipsConflictCheck,
        Bug::ReissuesToken,
        Bug::ReleaseKeepsHold,
        Bug::ReturnsLapsedGrant,
    ];
    let mut caught = 0;
    for bug in bugs {
        // Every seed must catch it, not just some. A seed fixes the calls; the threads'
        // schedule still varies, and on a loaded machine one schedule may never bring the
        // racing calls together: the seed catches the bug if one of three schedules does.
        for seed in 0..5 {
            let caught = (0..SCHEDULES).any(|_| {
                let clock = ManualClock::new(START);
                let m = Planted {
                    inner: memory(&clock),
                    bug,
                    clock: clock.clone(),
                    calls: AtomicU64::new(0),
                };
                let w = Workload {
                    seed,
                    threads: 4,
                    ops: 60,
                    ..Workload::default()
                };
                !history::check(&history::record(&m, &w, Some(&clock)), 0).is_ok()
            });
            assert!(caught, "{bug:?} went unnoticed with seed {seed}");
        }
        caught += 1;
    }
    publish(
        "locks.planted_bugs",
        serde_json::json!({ "planted": bugs.len(), "caught": caught, "seeds_each": 5, "schedules_per_seed_at_most": SCHEDULES }),
    );
}

const PROCS: u64 = 4;

/// Child part: agent `id` of the workload on a shared SQLite file, on the system clock, its
/// calls appended to its own log.
#[test]
fn helper_lock_history() {
    let Some((db, arg)) = child_env() else {
        return;
    };
    let mut args = arg.split(' ');
    let (id, seed, log) = (
        args.next().unwrap().parse().unwrap(),
        args.next().unwrap().parse().unwrap(),
        args.next().unwrap(),
    );
    let m = SqliteLockManager::options()
        .ttl(TtlPolicy {
            min: Duration::from_millis(10),
            ..TtlPolicy::default()
        })
        .open(&db)
        .unwrap();
    let mut log = ProcessLog::open(Path::new(log), id).unwrap();
    let w = Workload {
        seed,
        ops: 150,
        ttl_ms: (20, 150),
        max_wait_ms: 30,
        pause_us: 2_000,
        ..Workload::default()
    };
    history::run_process(&m, &w, id, &mut log).unwrap();
}

/// Four processes share a SQLite file; one is killed mid-run, so its last call has an
/// unknown outcome and its locks lapse on their own. The joined history must still be
/// linearizable, with tokens unique and growing.
#[test]
fn processes_sharing_a_file_are_linearizable_while_one_is_killed() {
    let mut summary = oc_lincheck::Summary::default();
    let rounds = runs(2, 20);
    for seed in 0..rounds as u64 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("locks.db");
        drop(SqliteLockManager::open(&db).unwrap());
        let logs: Vec<_> = (0..PROCS)
            .map(|i| dir.path().join(format!("p{i}.jsonl")))
            .collect();
        let mut children: Vec<_> = (0..PROCS)
            .map(|i| {
                child(
                    "history::helper_lock_history",
                    &db,
                    &format!("{i} {seed} {}", logs[i as usize].display()),
                )
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        children[0].kill().unwrap();
        for c in &mut children {
            c.wait().unwrap();
        }
        let h: LockHistory = read_logs(&logs).unwrap();
        // Processes read their own clocks: a little slack for the coarse clock's lag.
        let checked = history::check(&h, 5);
        if !checked.is_ok() {
            oc_lincheck::fail(
                &h,
                &format!("seed {seed}"),
                "OC_REPLAY_HISTORY={} OC_REPLAY_SLACK_MS=5 cargo test -p oc-locks --all-features --test it replay_saved_history",
                &checked,
            );
        }
        summary.add(&checked, history::tally(&h));
    }
    publish(
        "locks.sqlite.processes",
        summary.figures(PROCS as usize, serde_json::json!({ "kills": rounds })),
    );
}

/// Replays the check of a saved history: `OC_REPLAY_HISTORY=<file> [OC_REPLAY_SLACK_MS=5]
/// cargo test -p oc-locks --all-features --test it replay_saved_history -- --nocapture` (a
/// failing check prints the file it saved). Does nothing without the variable.
#[test]
#[allow(clippy::print_stderr)]
fn replay_saved_history() {
    let Some(path) = std::env::var_os("OC_REPLAY_HISTORY") else {
        return;
    };
    let slack = std::env::var("OC_REPLAY_SLACK_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let h: LockHistory = oc_lincheck::History::load(path.as_ref()).unwrap();
    let checked = history::check(&h, slack);
    eprintln!("{checked}");
    assert!(checked.is_ok());
}
