//! Batches: `complete_many`, `fail_many` and `heartbeat_many` answer each item as the single
//! call would, and leave the counts and history the single calls would.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Factory, LEASE, id, new, setup, token};
use crate::{
    Error, HistoryEntry, MAX_BATCH, RetryPolicy, Task, TaskId, TaskStats, TaskStatus, TaskStore,
};

/// What an answer says, without what differs between two groups of like tasks (ids, tokens).
fn outcome(r: &crate::Result<Task>) -> String {
    match r {
        Ok(t) => format!(
            "ok {} result={:?} error={:?} v{} attempts={} leased={} run_at={:?}",
            t.status,
            t.result,
            t.error,
            t.version,
            t.attempts,
            t.lease.is_some(),
            t.run_at
        ),
        Err(Error::LeaseLost { token, .. }) => {
            format!("lease lost (token given: {})", token.is_some())
        }
        Err(Error::NotFound { .. }) => "not found".into(),
        Err(Error::InvalidTransition { from, to, .. }) => format!("invalid {from} -> {to}"),
        Err(e) => format!("other: {e}"),
    }
}

/// A history entry without its task and token (which differ between the two groups).
fn entry(h: &HistoryEntry) -> String {
    format!(
        "v{} {} {:?}->{} by {:?} at {} token={} error={:?}",
        h.version,
        h.kind,
        h.from,
        h.to,
        h.actor,
        h.at,
        h.token.is_some(),
        h.error
    )
}

/// What the counts of statuses, entries and runs say, as signed numbers to subtract.
fn tally(s: &dyn TaskStore) -> Vec<i128> {
    let c = s.counts(1_000).unwrap();
    let st: TaskStats = s.stats(0).unwrap();
    let mut v: Vec<i128> = c.by_status.iter().map(|(_, n)| i128::from(*n)).collect();
    v.extend(c.entered.iter().map(|(_, n)| i128::from(*n)));
    v.extend(st.runs.counts.iter().map(|n| i128::from(*n)));
    v.push(i128::from(st.runs.sum_ms));
    v
}

/// The tasks of group `g`, claimed (or started, or finished) as the checks need, and the
/// tokens of its claims by name.
fn group(s: &dyn TaskStore, g: &str) -> Vec<(String, u64)> {
    let name = |n: &str| format!("{g}-{n}");
    for n in ["ok1", "ok2", "bad", "done", "f1", "started"] {
        s.create(new(&name(n))).unwrap();
    }
    s.create(new(&name("f2")).max_attempts(3).retry(RetryPolicy::backoff(
        Duration::from_secs(5),
        Duration::from_secs(60),
    )))
    .unwrap();
    s.create(new(&name("child")).depends_on(id(&name("ok1"))))
        .unwrap();
    let mut tokens = Vec::new();
    for n in ["ok1", "ok2", "bad", "done", "f1", "f2"] {
        let t = s.claim(&id(&name(n)), "w", LEASE).unwrap();
        tokens.push((n.to_owned(), token(&t)));
    }
    s.start(&id(&name("started")), "w").unwrap();
    let done = tokens.iter().find(|(n, _)| n == "done").unwrap().1;
    s.complete(&id(&name("done")), Some(done), None).unwrap();
    tokens
}

/// The items of a batch of group `g`: each as the id, the token and the payload.
type Items<P> = Vec<(TaskId, Option<u64>, P)>;

fn items(g: &str, tokens: &[(String, u64)]) -> (Items<Option<serde_json::Value>>, Items<String>) {
    let tok = |n: &str| tokens.iter().find(|(x, _)| x == n).map(|(_, t)| *t);
    let t = |n: &str| id(&format!("{g}-{n}"));
    let complete = vec![
        (t("ok1"), tok("ok1"), Some(json!({"n": 1}))),
        (t("bad"), tok("bad").map(|b| b + 1_000), None),
        (t("missing"), Some(1), None),
        (t("done"), tok("done"), None),
        (t("ok2"), tok("ok2"), None),
        (t("ok1"), tok("ok1"), None),
        (t("started"), None, None),
    ];
    let fail = vec![
        (t("f1"), tok("f1"), "it broke".to_owned()),
        (t("f2"), tok("f2"), "try again".to_owned()),
        (
            t("bad"),
            tok("bad").map(|b| b + 1_000),
            "not mine".to_owned(),
        ),
        (t("ok2"), tok("ok2"), "too late".to_owned()),
        (t("missing"), Some(1), "nobody".to_owned()),
    ];
    (complete, fail)
}

/// `complete_many`, `fail_many` and `heartbeat_many` on a mixed batch (good items, a wrong
/// token, an unknown id, a finished task, an id given twice) answer each item as the single
/// call would, one refused item stopping none of the others; the tasks, their histories, the
/// counts by status, the entries into each status and the run durations afterwards are those
/// the single calls leave; a completion in a batch releases its dependents; a batch over
/// [`MAX_BATCH`] is refused whole.
pub fn check_batch_finishes(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let (xt, yt) = (group(&*s, "x"), group(&*s, "y"));
    clock.advance(Duration::from_millis(1_500));
    let before = tally(&*s);

    // Group x in batches.
    let (xc, xf) = items("x", &xt);
    let xbad = xt.iter().find(|(n, _)| n == "bad").unwrap().1;
    let batch_done: Vec<String> = s.complete_many(&xc).unwrap().iter().map(outcome).collect();
    let batch_failed: Vec<String> = s.fail_many(&xf).unwrap().iter().map(outcome).collect();
    let beats = [
        (id("x-bad"), xbad),
        (id("x-ok1"), xt[0].1),
        (id("x-missing"), 1),
    ];
    let batch_beats: Vec<String> = s
        .heartbeat_many(&beats, Duration::from_secs(90))
        .unwrap()
        .iter()
        .map(outcome)
        .collect();
    let middle = tally(&*s);

    // Group y, one call at a time.
    let (yc, yf) = items("y", &yt);
    let ybad = yt.iter().find(|(n, _)| n == "bad").unwrap().1;
    let single_done: Vec<String> = yc
        .iter()
        .map(|(i, t, r)| outcome(&s.complete(i, *t, r.clone())))
        .collect();
    let single_failed: Vec<String> = yf
        .iter()
        .map(|(i, t, e)| outcome(&s.fail(i, *t, e)))
        .collect();
    let single_beats: Vec<String> = [
        (id("y-bad"), ybad),
        (id("y-ok1"), yt[0].1),
        (id("y-missing"), 1),
    ]
    .iter()
    .map(|(i, t)| outcome(&s.heartbeat(i, *t, Duration::from_secs(90))))
    .collect();
    let after = tally(&*s);

    assert_eq!(batch_done, single_done, "complete_many answers as complete");
    assert!(batch_done[0].starts_with("ok completed"), "{batch_done:?}");
    assert_eq!(
        batch_done[1..4],
        [
            "lease lost (token given: true)".to_owned(),
            "not found".to_owned(),
            "lease lost (token given: true)".to_owned(),
        ],
        "a wrong token, an unknown id, a finished task"
    );
    assert!(batch_done[4].starts_with("ok completed"), "{batch_done:?}");
    assert_eq!(
        batch_done[5], "lease lost (token given: true)",
        "finished once"
    );
    assert!(batch_done[6].starts_with("ok completed"), "{batch_done:?}");
    assert_eq!(batch_failed, single_failed, "fail_many answers as fail");
    assert!(batch_failed[0].starts_with("ok failed"), "{batch_failed:?}");
    assert!(
        batch_failed[1].starts_with("ok pending"),
        "{batch_failed:?}"
    );
    assert_eq!(
        batch_beats, single_beats,
        "heartbeat_many answers as heartbeat"
    );
    assert!(batch_beats[0].contains("leased=true"), "{batch_beats:?}");
    let delta = |a: &[i128], b: &[i128]| a.iter().zip(b).map(|(x, y)| y - x).collect::<Vec<_>>();
    assert_eq!(
        delta(&before, &middle),
        delta(&middle, &after),
        "the batches moved the counts, entries and run durations as the single calls did"
    );
    for n in ["ok1", "ok2", "bad", "done", "f1", "f2", "started", "child"] {
        let (x, y) = (
            s.require(&id(&format!("x-{n}"))).unwrap(),
            s.require(&id(&format!("y-{n}"))).unwrap(),
        );
        assert_eq!(
            outcome(&Ok(x.clone())),
            outcome(&Ok(y.clone())),
            "task {n} as the single calls leave it"
        );
        assert_eq!(x.finished_at, y.finished_at, "task {n}");
        let hx: Vec<String> = s.history(&x.id).unwrap().iter().map(entry).collect();
        let hy: Vec<String> = s.history(&y.id).unwrap().iter().map(entry).collect();
        assert_eq!(hx, hy, "the history of task {n}");
    }
    assert!(
        s.blockers(&id("x-child")).unwrap().waiting_on.is_empty(),
        "a completion in a batch releases its dependents"
    );
    assert_eq!(
        s.get(&id("x-bad")).unwrap().unwrap().lease.map(|l| l.token),
        Some(xbad),
        "a refused item wrote nothing but its heartbeat"
    );

    assert!(s.complete_many(&[]).unwrap().is_empty());
    let many: Vec<(TaskId, u64)> = (0..=MAX_BATCH).map(|_| (id("x-bad"), xbad)).collect();
    assert!(matches!(
        s.heartbeat_many(&many, LEASE),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.heartbeat_many(&many[..1], Duration::ZERO),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        s.get(&id("x-bad")).unwrap().unwrap().version,
        s.get(&id("y-bad")).unwrap().unwrap().version,
        "a refused batch wrote nothing"
    );
    assert_eq!(
        s.get(&id("x-done")).unwrap().unwrap().status,
        TaskStatus::Completed
    );
}

/// Several [`BatchWorker`](crate::worker::BatchWorker)s, each on a store handle of its own
/// from `open` (one SQLite file, one PostgreSQL schema), run `tasks` tasks on threads until
/// none is ready: every task is handed out once, completed once (one `Claimed` and one
/// `Completed` in its history), and no worker reports a lease lost.
pub fn check_batch_workers(
    open: &(dyn Fn() -> Arc<dyn TaskStore> + Sync),
    workers: usize,
    tasks: usize,
) {
    use crate::worker::BatchWorker;
    use crate::{EventKind, NewTask};

    let s = open();
    let mut ids = Vec::with_capacity(tasks);
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(500) {
        let made = s
            .create_many(
                chunk
                    .iter()
                    .map(|i| NewTask::new(format!("job {i}")))
                    .collect(),
            )
            .unwrap();
        ids.extend(made.into_iter().map(|t| t.id));
    }
    let ran: Vec<Vec<TaskId>> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    let worker = BatchWorker::builder(open(), &format!("w{w}"))
                        .batch(8)
                        .flush_every(Duration::from_millis(5))
                        .start()
                        .unwrap();
                    let mut ran = Vec::new();
                    while let Some(t) = worker.next().unwrap() {
                        ran.push(t.id.clone());
                        worker.complete(&t, Some(json!({"by": w}))).unwrap();
                    }
                    let lost = worker.shutdown().unwrap();
                    assert!(lost.is_empty(), "worker {w} lost {lost:?}");
                    ran
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<TaskId> = ran.concat();
    all.sort();
    let handed = all.len();
    all.dedup();
    assert_eq!(handed, all.len(), "a task was handed out twice");
    ids.sort();
    assert_eq!(all, ids, "every task was run");
    let c = s.counts(10).unwrap();
    assert_eq!(c.count(TaskStatus::Completed), tasks as u64);
    let entered = c
        .entered
        .iter()
        .find(|(st, _)| *st == TaskStatus::Completed);
    assert_eq!(
        entered.map(|e| e.1),
        Some(tasks as u64),
        "completed once each"
    );
    for id in &ids {
        let kinds: Vec<EventKind> = s.history(id).unwrap().iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Created, EventKind::Claimed, EventKind::Completed],
            "task {id}"
        );
    }
}
