//! Waiting for work across processes and for a backoff to end: a waiting claim in one
//! process sees a create by another within its poll bound, and one waiting for a retry sees
//! its `run_at` pass without a write.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_tasks::testkit::{LONG_POLL, WAKE_WITHIN, wake_after};
use oc_tasks::{
    LabelFilter, MemoryTaskStore, NewTask, RetryPolicy, SqliteTaskStore, TaskStatus, TaskStore,
    Waiting,
};

use crate::processes::{child, child_env};

/// The child's poll bound: the create of another process is seen within it.
const CHILD_POLL: Duration = Duration::from_millis(200);

/// Child part: says `waiting` once it has waited, then waits (up to 60 s) for a task
/// labelled `OC_CHILD_ARG` and prints `claimed <id>` or `none`.
#[test]
fn helper_wait_for_work() {
    let Some((db, label)) = child_env() else {
        return;
    };
    let store = SqliteTaskStore::open(&db).expect("child opens the store");
    let said = std::sync::atomic::AtomicBool::new(false);
    let watcher = |waited: Duration| {
        if waited > Duration::ZERO && !said.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut out = std::io::stdout().lock();
            writeln!(out, "waiting").expect("stdout");
            out.flush().expect("stdout");
        }
        true
    };
    let w = Waiting::new(Duration::from_secs(60))
        .poll(CHILD_POLL)
        .watch(&watcher);
    let got = store
        .claim_next_watched(
            "child",
            Duration::from_secs(60),
            &LabelFilter::any().require(label),
            &w,
        )
        .expect("no error reaches the waiter");
    let mut out = std::io::stdout().lock();
    match got {
        Some(t) => writeln!(out, "claimed {}", t.id).expect("stdout"),
        None => writeln!(out, "none").expect("stdout"),
    }
}

/// A waiter in another process claims a task this process creates: no signal crosses
/// processes, so its poll finds it.
#[test]
fn a_waiter_in_another_process_claims_what_this_one_creates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let store = SqliteTaskStore::open(&db).unwrap();
    let mut c = child("wait::helper_wait_for_work", &db, "gpu")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    // The test harness prints its own lines first.
    let waiting = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.ends_with("waiting"));
    assert!(waiting, "the child waits");
    store.create(NewTask::new("plain")).unwrap();
    let t = store.create(NewTask::new("gpu").label("gpu")).unwrap();
    let answer = lines.by_ref().map_while(Result::ok).find_map(|l| {
        let at = l.find("claimed").or_else(|| l.find("none"))?;
        Some(l[at..].to_owned())
    });
    // Read to the end, so the child never writes to a closed pipe.
    lines.for_each(drop);
    assert!(c.wait().unwrap().success());
    assert_eq!(answer, Some(format!("claimed {}", t.id)));
    let t = store.get(&t.id).unwrap().unwrap();
    assert_eq!(
        (t.status, t.owner.as_deref()),
        (TaskStatus::Running, Some("child"))
    );
}

/// A second handle on the same file (as another process would be) is seen by polling.
#[test]
fn a_waiter_sees_another_handles_create_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let a = SqliteTaskStore::open(&db).unwrap();
    let b = SqliteTaskStore::open(&db).unwrap();
    let w = Waiting::new(Duration::from_secs(60)).poll(CHILD_POLL);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            a.claim_next_watched("w", Duration::from_secs(60), &LabelFilter::any(), &w)
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        let t = b.create(NewTask::new("from b")).unwrap();
        assert_eq!(h.join().unwrap().map(|x| x.id), Some(t.id));
    });
}

/// A task failed under a retry policy is pending again with a `run_at` ahead: a waiter is
/// woken when it passes, though nothing is written then.
fn check_backoff_wakes(store: &dyn TaskStore) {
    let t = store
        .create(NewTask::new("flaky").retry(RetryPolicy::backoff(
            Duration::from_millis(700),
            Duration::from_secs(1),
        )))
        .unwrap();
    let c = store
        .claim_next("w", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    let failed = store
        .fail(&t.id, c.lease.map(|l| l.token), "flaked")
        .unwrap();
    assert_eq!(failed.status, TaskStatus::Pending, "backed off");
    let run_at = failed.run_at.expect("a run_at ahead");
    let started = Instant::now();
    let (got, _) = wake_after(store, &[], Duration::from_secs(60), Duration::ZERO, &|| {});
    let got = got.expect("claimed once the backoff passed");
    assert_eq!(got.id, t.id);
    assert!(store.now() >= run_at, "never before its run_at");
    assert!(
        started.elapsed() < WAKE_WITHIN,
        "woken at the run_at, not by the {LONG_POLL:?} poll: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_backoff_ending_wakes_a_memory_waiter() {
    check_backoff_wakes(&MemoryTaskStore::new());
}

#[test]
fn a_backoff_ending_wakes_a_sqlite_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteTaskStore::open(dir.path().join("opencode.db")).unwrap());
    check_backoff_wakes(&*store);
}
