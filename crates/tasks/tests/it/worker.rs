//! `BatchWorker`: a lost lease reported and never finished; several workers on one SQLite
//! file running every task once.

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::worker::BatchWorker;
use oc_tasks::{
    Error, ManualClock, MemoryTaskStore, NewTask, SqliteTaskStore, TaskId, TaskStatus, TaskStore,
    Timestamp, testkit,
};

fn store() -> (Arc<MemoryTaskStore>, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    (
        Arc::new(MemoryTaskStore::with_clock(Arc::new(clock.clone()))),
        clock,
    )
}

/// Leases lost to another agent (lapsed, reaped, claimed again): a queued task is dropped by
/// the next heartbeat and never handed out, a handed-out one is reported by it and its
/// acknowledgement refused, one acknowledged first is refused by the store and reported by
/// the flush; none is finished, and the other agent's runs are untouched.
#[test]
fn lost_leases_are_reported_never_finished() {
    let (s, clock) = store();
    for n in ["a", "b", "c"] {
        s.create(NewTask::new(n).id(TaskId::new(n).unwrap()))
            .unwrap();
    }
    let w = BatchWorker::builder(s.clone(), "w")
        .batch(3)
        .ttl(Duration::from_secs(10))
        .flush_every(Duration::from_secs(3600))
        .start()
        .unwrap();
    let a = w.next().unwrap().unwrap();
    let b = w.next().unwrap().unwrap();
    assert_eq!(w.held(), 3, "all three claimed at once");
    clock.advance(Duration::from_secs(11));
    assert_eq!(s.reap_expired(s.now()).unwrap().len(), 3);
    let theirs = s
        .claim_many("other", Duration::from_secs(60), 3, &Default::default())
        .unwrap();
    assert_eq!(theirs.len(), 3);

    w.complete(&b, None).unwrap();
    w.heartbeat().unwrap();
    let mut lost: Vec<&str> = Vec::new();
    let reported = w.take_lost();
    lost.extend(reported.iter().map(|l| l.id.as_str()));
    lost.sort();
    assert_eq!(lost, ["a", "c"], "the handed-out and the queued one");
    assert!(
        reported
            .iter()
            .all(|l| matches!(l.error, Error::LeaseLost { .. }))
    );
    assert_eq!(w.next().unwrap(), None, "a lost task is never handed out");
    assert!(matches!(w.complete(&a, None), Err(Error::LeaseLost { .. })));

    let lost = w.flush().unwrap();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (lost[0].id.as_str(), lost[0].token),
        ("b", b.lease.unwrap().token)
    );
    assert!(matches!(lost[0].error, Error::LeaseLost { .. }));
    for t in &theirs {
        let now = s.get(&t.id).unwrap().unwrap();
        assert_eq!(
            (now.status, now.owner.as_deref()),
            (TaskStatus::Running, Some("other"))
        );
    }
    assert!(
        matches!(w.complete(&b, None), Err(Error::InvalidInput { .. })),
        "acknowledged once only"
    );
    assert!(w.shutdown().unwrap().is_empty());
}

/// Acknowledgements wait for a full batch (or the interval, or a flush); shutdown writes
/// them and gives back what was still queued.
#[test]
fn acknowledgements_go_in_batches_and_shutdown_releases_the_queue() {
    let (s, _clock) = store();
    s.create_many((0..5).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    let w = BatchWorker::builder(s.clone(), "w")
        .batch(3)
        .flush_every(Duration::from_secs(3600))
        .start()
        .unwrap();
    let done = |s: &MemoryTaskStore| s.counts(10).unwrap().count(TaskStatus::Completed);
    for _ in 0..2 {
        let t = w.next().unwrap().unwrap();
        w.complete(&t, None).unwrap();
    }
    assert_eq!(done(&s), 0, "two acknowledgements wait for a third");
    let t = w.next().unwrap().unwrap();
    w.fail(&t, "broke").unwrap();
    assert_eq!(done(&s), 2, "a full batch is written");
    assert_eq!(s.counts(10).unwrap().count(TaskStatus::Failed), 1);
    let t = w.next().unwrap().unwrap();
    w.complete(&t, None).unwrap();
    assert!(w.flush().unwrap().is_empty());
    assert_eq!(done(&s), 3);
    assert_eq!(w.held(), 1, "the fifth task is queued");
    let lost = w.shutdown().unwrap();
    assert!(lost.is_empty());
    assert_eq!(
        s.counts(10).unwrap().count(TaskStatus::Pending),
        1,
        "the queued one is released"
    );
}

/// Four workers, each with a handle of its own on one SQLite file, run 400 tasks.
#[test]
fn workers_on_one_sqlite_file_run_each_task_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opencode.db");
    testkit::check_batch_workers(
        &|| Arc::new(SqliteTaskStore::open(&path).unwrap()) as Arc<dyn TaskStore>,
        4,
        400,
    );
}
