//! The conformance suite every [`TaskStore`] must pass (feature `testkit`).
//!
//! Each `check_*` function takes a factory that builds an empty store on the given
//! [`ManualClock`], and panics with a message naming the broken rule.
//! [`conformance_tests!`](crate::conformance_tests) turns them into one `#[test]` each
//! (`oc_tasks::conformance_tests!(|clock| ...)` in a test module); a single check runs like this:
//!
//! ```
//! use std::sync::Arc;
//! use oc_tasks::{MemoryTaskStore, TaskStore, testkit};
//! testkit::check_claims_and_leases(&|clock| {
//!     Arc::new(MemoryTaskStore::with_clock(Arc::new(clock))) as Arc<dyn TaskStore>
//! });
//! ```

// A test kit reports a broken rule by panicking, so unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{Value, json};

#[path = "testkit_model.rs"]
pub mod model;

#[path = "testkit_graph.rs"]
mod graph;

#[path = "testkit_history.rs"]
pub mod history;
pub use graph::*;

use crate::{
    Change, Error, ManualClock, NewTask, Order, Task, TaskFilter, TaskId, TaskPatch, TaskQuery,
    TaskStatus, TaskStore, Timestamp,
};

/// Builds an empty store on the given clock.
pub type Factory<'a> = &'a dyn Fn(ManualClock) -> Arc<dyn TaskStore>;

/// The time the suite's clocks start at: 2026-02-19T10:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_771_495_200_000);

const LEASE: Duration = Duration::from_secs(30);

fn setup(make: Factory<'_>) -> (Arc<dyn TaskStore>, ManualClock) {
    let clock = ManualClock::new(START);
    (make(clock.clone()), clock)
}

fn id(s: &str) -> TaskId {
    TaskId::new(s).expect("suite ids are valid")
}

fn new(s: &str) -> NewTask {
    NewTask::new(format!("task {s}")).id(id(s))
}

fn token(t: &Task) -> u64 {
    t.lease.expect("a claimed task has a lease").token
}

/// Creating stores every field as given, with version 1 and the clock's time.
pub fn check_create_and_get(make: Factory<'_>) {
    let (s, _) = setup(make);
    let t = s
        .create(
            new("a")
                .description("the description")
                .owner("agent-1")
                .priority(7)
                .meta("lang", "rust")
                .meta("nested", json!({"k": [1, 2]}))
                .max_attempts(5),
        )
        .unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.version, 1);
    assert_eq!((t.created_at, t.updated_at), (START, START));
    let got = s.get(&t.id).unwrap().expect("created task is found");
    assert_eq!(got, t, "get returns exactly what create returned");
    assert_eq!(got.description.as_deref(), Some("the description"));
    assert_eq!(got.metadata["nested"], json!({"k": [1, 2]}));
    assert_eq!(got.max_attempts, 5);
    assert_eq!(s.get(&id("missing")).unwrap(), None);
    assert!(s.require(&id("missing")).unwrap_err().is_not_found());
    let generated = s.create(NewTask::new("no id")).unwrap();
    assert!(generated.id.as_str().starts_with("task_"));
}

/// Bad input is refused with a typed error and stores nothing.
pub fn check_rejects_bad_input(make: Factory<'_>) {
    let (s, _) = setup(make);
    for bad in [
        NewTask::new(""),
        NewTask::new("x").max_attempts(0),
        NewTask::new("a\0b"),
    ] {
        let e = s.create(bad).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
    }
    let t = s.create(new("a")).unwrap();
    let e = s.claim(&t.id, "", LEASE).unwrap_err();
    assert!(e.is_invalid_input(), "empty owner: {e}");
    let e = s.claim(&t.id, "a", Duration::ZERO).unwrap_err();
    assert!(e.is_invalid_input(), "zero lease: {e}");
    let e = s.list(&TaskQuery::default().limit(0)).unwrap_err();
    assert!(e.is_invalid_input(), "zero limit: {e}");
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 1);
    assert_eq!(
        s.get(&t.id).unwrap().unwrap(),
        t,
        "a refused change leaves the task alone"
    );
}

/// Duplicate ids are refused; `create_many` inserts all or nothing.
pub fn check_duplicates_and_batches(make: Factory<'_>) {
    let (s, _) = setup(make);
    s.create(new("a")).unwrap();
    let e = s.create(new("a")).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let e = s
        .create_many(vec![new("b"), new("c"), new("a")])
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let e = s.create_many(vec![new("d"), new("d")]).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(
        s.count(&TaskFilter::new()).unwrap(),
        1,
        "failed batches insert nothing"
    );
    let made = s
        .create_many((0..50).map(|i| new(&format!("n{i:02}"))).collect())
        .unwrap();
    assert_eq!(made.len(), 50);
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 51);
}

/// Every (status, change) pair follows the state machine; refused changes alter nothing.
pub fn check_state_machine(make: Factory<'_>) {
    let (s, _) = setup(make);
    let changes = || {
        vec![
            Change::Start { agent: "ag".into() },
            Change::Claim {
                owner: "ag".into(),
                ttl: LEASE,
            },
            Change::Complete {
                token: None,
                result: Some(json!(1)),
            },
            Change::Fail {
                token: None,
                error: "boom".into(),
            },
            Change::Cancel,
            Change::Retry,
        ]
    };
    // Bring a fresh task into each status through started (lease-free) runs.
    let into = |name: &str, status: TaskStatus| -> Task {
        let t = s.create(new(name)).unwrap();
        let path: &[Change] = match status {
            TaskStatus::Pending => &[],
            TaskStatus::Running => &[Change::Start { agent: "ag".into() }],
            TaskStatus::Completed => &[
                Change::Start { agent: "ag".into() },
                Change::Complete {
                    token: None,
                    result: None,
                },
            ],
            TaskStatus::Failed => &[
                Change::Start { agent: "ag".into() },
                Change::Fail {
                    token: None,
                    error: "e".into(),
                },
            ],
            TaskStatus::Cancelled => &[Change::Cancel],
        };
        let mut t = t;
        for c in path {
            t = s.apply(&t.id, c.clone(), None).unwrap();
        }
        assert_eq!(t.status, status);
        t
    };
    let mut n = 0;
    for from in TaskStatus::ALL {
        for change in changes() {
            n += 1;
            let t = into(&format!("sm{n}"), from);
            let to = change.target().expect("status changes only");
            match s.apply(&t.id, change.clone(), None) {
                Ok(after) => {
                    assert!(
                        from.can_transition_to(to),
                        "{from} -{}-> allowed",
                        change.name()
                    );
                    assert_eq!(after.status, to);
                    assert_eq!(after.version, t.version + 1, "version bumps");
                }
                Err(e) => {
                    assert!(
                        !from.can_transition_to(to),
                        "{from} -{}-> refused: {e}",
                        change.name()
                    );
                    assert!(
                        matches!(e, Error::InvalidTransition { from: f, to: tt, .. } if f == from && tt == to),
                        "{e}"
                    );
                    assert_eq!(
                        s.get(&t.id).unwrap().unwrap(),
                        t,
                        "refused change wrote nothing"
                    );
                }
            }
        }
    }
}

/// A change writes only its own fields; metadata patches merge.
pub fn check_updates_keep_untouched_fields(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let t = s
        .create(
            new("a")
                .description("d")
                .owner("o")
                .priority(3)
                .meta("keep", 1),
        )
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let t = s.claim(&t.id, "agent", LEASE).unwrap();
    assert_eq!((t.description.as_deref(), t.priority), (Some("d"), 3));
    assert_eq!(t.metadata["keep"], json!(1));
    assert_eq!(
        t.owner.as_deref(),
        Some("agent"),
        "claiming makes the agent the owner"
    );
    assert_eq!(
        t.started_at,
        Some(START.saturating_add(Duration::from_secs(1)))
    );
    let t = s
        .update(
            &t.id,
            TaskPatch::new().merge_metadata(
                json!({"added": true, "keep": null})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .unwrap();
    assert_eq!(Value::Object(t.metadata.clone()), json!({"added": true}));
    assert_eq!(
        t.lease.map(|l| l.token),
        Some(token(&t)),
        "update keeps the lease"
    );
    assert_eq!(t.status, TaskStatus::Running);
    let t = s.update(&t.id, TaskPatch::new().priority(9)).unwrap();
    assert_eq!((t.priority, t.description.as_deref()), (9, Some("d")));
    clock.advance(Duration::from_secs(2));
    let done = s
        .complete(&t.id, Some(token(&t)), Some(json!({"ok": true})))
        .unwrap();
    assert_eq!(done.description.as_deref(), Some("d"));
    assert_eq!(Value::Object(done.metadata.clone()), json!({"added": true}));
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert_eq!(done.run_duration(), Some(Duration::from_secs(2)));
    assert_eq!(done.version, 5);
    assert_eq!(s.get(&t.id).unwrap().unwrap(), done);
}

/// `expect_version` makes any change a check-and-set.
pub fn check_version_check_and_set(make: Factory<'_>) {
    let (s, _) = setup(make);
    let t = s.create(new("a")).unwrap();
    let e = s
        .apply(&t.id, Change::Cancel, Some(t.version + 1))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::VersionMismatch {
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_conflict());
    let e = s.delete(&t.id, Some(9)).unwrap_err();
    assert!(matches!(e, Error::VersionMismatch { .. }), "{e}");
    assert_eq!(s.get(&t.id).unwrap().unwrap(), t);
    let t2 = s.apply(&t.id, Change::Cancel, Some(t.version)).unwrap();
    assert_eq!(t2.version, 2);
}

/// Claims: priority order, strictly increasing tokens, heartbeats, token-checked finishes.
pub fn check_claims_and_leases(make: Factory<'_>) {
    let (s, clock) = setup(make);
    s.create(new("low").priority(1)).unwrap();
    clock.advance(Duration::from_millis(1));
    s.create(new("high-old").priority(5)).unwrap();
    clock.advance(Duration::from_millis(1));
    s.create(new("high-new").priority(5)).unwrap();
    let order: Vec<Task> = (0..3)
        .map(|_| s.claim_next("w", LEASE).unwrap().expect("pending work"))
        .collect();
    let names: Vec<&str> = order.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        names,
        ["high-old", "high-new", "low"],
        "highest priority, then oldest"
    );
    assert!(s.claim_next("w", LEASE).unwrap().is_none());
    let tokens: Vec<u64> = order.iter().map(token).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens increase: {tokens:?}"
    );
    let t = &order[0];
    assert_eq!(t.lease.unwrap().expires_at, s.now().saturating_add(LEASE));
    assert_eq!(t.attempts, 1);

    let e = s.claim(&t.id, "other", LEASE).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidTransition {
                from: TaskStatus::Running,
                ..
            }
        ),
        "{e}"
    );

    clock.advance(Duration::from_secs(10));
    let hb = s
        .heartbeat(&t.id, token(t), Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        hb.lease.unwrap().expires_at,
        s.now().saturating_add(Duration::from_secs(60))
    );
    assert_eq!(token(&hb), token(t), "a heartbeat keeps the token");
    for bad in [token(t) + 100, tokens[1]] {
        assert!(matches!(
            s.heartbeat(&t.id, bad, LEASE),
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            s.complete(&t.id, Some(bad), None),
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            s.fail(&t.id, Some(bad), "x"),
            Err(Error::LeaseLost { .. })
        ));
    }
    let e = s.complete(&t.id, None, None).unwrap_err();
    assert!(
        matches!(e, Error::LeaseLost { token: None, .. }),
        "a leased task needs its token: {e}"
    );
    assert_eq!(
        s.get(&t.id).unwrap().unwrap(),
        hb,
        "refused finishes wrote nothing"
    );
    let failed = s.fail(&order[1].id, Some(tokens[1]), "it broke").unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (TaskStatus::Failed, Some("it broke"))
    );
    assert_eq!(failed.lease, None);

    // Cancelling a claimed task revokes its lease.
    s.cancel(&order[2].id).unwrap();
    assert!(matches!(
        s.complete(&order[2].id, Some(tokens[2]), None),
        Err(Error::LeaseLost { .. })
    ));

    // Tokens keep increasing after other writes and across tasks.
    let retried = s.retry(&failed.id).unwrap();
    assert_eq!(
        (retried.status, retried.error.as_deref()),
        (TaskStatus::Pending, Some("it broke"))
    );
    let again = s.claim(&failed.id, "w2", LEASE).unwrap();
    assert!(token(&again) > tokens[2]);
    assert_eq!(again.attempts, 2);
}

/// The reaper returns lapsed tasks to pending, then fails them after `max_attempts` runs.
pub fn check_reaping(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let t = s.create(new("r").max_attempts(2)).unwrap();
    let other = s.create(new("alive")).unwrap();
    let first = s.claim(&t.id, "a1", Duration::from_secs(5)).unwrap();
    let alive = s.claim(&other.id, "a2", Duration::from_secs(60)).unwrap();
    assert!(s.reap_expired(s.now()).unwrap().is_empty());
    clock.advance(Duration::from_secs(5));
    let reaped = s.reap_expired(s.now()).unwrap();
    assert_eq!(reaped.len(), 1, "only the lapsed lease");
    assert_eq!(reaped[0].task.status, TaskStatus::Pending);
    assert_eq!(reaped[0].expired_owner.as_deref(), Some("a1"));
    assert_eq!(reaped[0].expired_lease, first.lease.unwrap());
    assert!(matches!(
        s.complete(&t.id, Some(token(&first)), None),
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(s.get(&other.id).unwrap().unwrap(), alive);

    let second = s.claim(&t.id, "a3", Duration::from_secs(5)).unwrap();
    assert!(
        token(&second) > token(&alive),
        "later claims get larger tokens"
    );
    clock.advance(Duration::from_secs(6));
    let reaped = s.reap_expired(s.now()).unwrap();
    assert_eq!(reaped.len(), 1);
    let dead = &reaped[0].task;
    assert_eq!(dead.status, TaskStatus::Failed, "attempts used up");
    assert_eq!(dead.attempts, 2);
    assert!(
        dead.error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired"))
    );
    assert_eq!(s.get(&t.id).unwrap().unwrap(), *dead);
    assert!(
        s.reap_expired(s.now())
            .unwrap()
            .iter()
            .all(|r| r.task.id != t.id)
    );
}

/// Listings filter, order and paginate without gaps or overlaps.
pub fn check_queries(make: Factory<'_>) {
    let (s, clock) = setup(make);
    for i in 0..25 {
        let mut n = new(&format!("q{i:02}"))
            .priority(i % 3)
            .owner(if i % 2 == 0 { "even" } else { "odd" });
        if i == 7 {
            n = n.description("Needle in the description");
        }
        if i == 11 {
            n = n.meta("tag", "NEEDLE-meta");
        }
        s.create(n).unwrap();
        clock.advance(Duration::from_millis(10));
    }
    for i in [1, 2, 3] {
        s.start(&id(&format!("q{i:02}")), "w").unwrap();
    }
    for order in [Order::Newest, Order::Oldest, Order::Priority] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .list(&TaskQuery::default().order(order).limit(4).after(after))
                .unwrap();
            assert!(page.tasks.len() <= 4);
            seen.extend(page.tasks.iter().map(|t| t.id.clone()));
            match page.next {
                Some(c) => {
                    let round: crate::Cursor = String::from(c.clone()).parse().unwrap();
                    after = Some(round);
                }
                None => break,
            }
        }
        let full = s
            .list(&TaskQuery::default().order(order).limit(100))
            .unwrap();
        let expected: Vec<TaskId> = full.tasks.iter().map(|t| t.id.clone()).collect();
        assert_eq!(
            seen, expected,
            "{order:?}: pages concatenate to the full listing"
        );
        assert_eq!(seen.len(), 25);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
        let check_sorted = |a: &Task, b: &Task| match order {
            Order::Newest => (a.created_at, &a.id) > (b.created_at, &b.id),
            Order::Oldest => (a.created_at, &a.id) < (b.created_at, &b.id),
            _ => {
                a.priority > b.priority || (a.priority == b.priority && a.created_at < b.created_at)
            }
        };
        assert!(
            full.tasks.windows(2).all(|w| check_sorted(&w[0], &w[1])),
            "{order:?} order"
        );
    }
    let count = |f: TaskFilter| s.count(&f).unwrap();
    assert_eq!(count(TaskFilter::new().status(TaskStatus::Running)), 3);
    assert_eq!(
        count(
            TaskFilter::new()
                .status(TaskStatus::Running)
                .status(TaskStatus::Pending)
        ),
        25
    );
    assert_eq!(
        count(TaskFilter::new().owner("even")),
        12,
        "starting by w changed three owners"
    );
    assert_eq!(
        count(TaskFilter::new().owner("w").status(TaskStatus::Running)),
        3
    );
    assert_eq!(
        count(TaskFilter::new().search("needle")),
        2,
        "case-insensitive, description and metadata"
    );
    assert_eq!(
        count(TaskFilter::new().search("TASK Q1")),
        10,
        "names q10..q19"
    );
    assert_eq!(
        count(TaskFilter::new().search("%")),
        0,
        "LIKE wildcards are literal"
    );
    assert_eq!(count(TaskFilter::new().search("_")), 0);
    let mid = START.saturating_add(Duration::from_millis(100));
    assert_eq!(
        count(TaskFilter::new().created_between(Some(mid), None)),
        15
    );
    assert_eq!(
        count(TaskFilter::new().created_between(None, Some(mid))),
        10
    );
    let page = s
        .list(&TaskQuery::new(TaskFilter::new().search("needle")).order(Order::Oldest))
        .unwrap();
    let ids: Vec<&str> = page.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["q07", "q11"]);
    assert!("not-a-cursor".parse::<crate::Cursor>().is_err());
}

/// `stats` counts by status and owner and lists the newest tasks.
pub fn check_stats(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let empty = s.stats(5).unwrap();
    assert_eq!(empty.total, 0);
    assert_eq!(empty.by_status.len(), 5, "every status is present");
    for i in 0..10 {
        let mut n = new(&format!("s{i}"));
        if i < 6 {
            n = n.owner(if i < 4 { "a" } else { "b" });
        }
        s.create(n).unwrap();
        clock.advance(Duration::from_millis(1));
    }
    s.cancel(&id("s0")).unwrap();
    s.start(&id("s9"), "b").unwrap();
    let st = s.stats(3).unwrap();
    assert_eq!(st.total, 10);
    let statuses: Vec<TaskStatus> = st.by_status.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, TaskStatus::ALL);
    assert_eq!(
        (
            st.count(TaskStatus::Pending),
            st.count(TaskStatus::Running),
            st.count(TaskStatus::Cancelled)
        ),
        (8, 1, 1)
    );
    assert_eq!(
        st.by_owner,
        vec![(Some("a".into()), 4), (None, 3), (Some("b".into()), 3)],
        "most first, then by owner with none first"
    );
    let recent: Vec<&str> = st.recent.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(recent, ["s9", "s8", "s7"]);
    assert_eq!(st.recent[0].status, TaskStatus::Running);
    let entered = |status: TaskStatus| {
        st.entered
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        TaskStatus::ALL.map(entered),
        [10, 1, 0, 0, 1],
        "creations enter pending; the start and the cancel count once each"
    );
    s.delete(&id("s9"), None).unwrap();
    let after = s.stats(0).unwrap();
    assert_eq!(after.entered, st.entered, "deleting does not undo history");
}

/// Finished runs are counted into the run-duration histogram as they finish: completed and
/// failed runs (the reaper's failures included), timed from start or claim; never a cancel, a
/// reap back to pending, or anything undone by a delete.
pub fn check_run_durations(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let ttl = Duration::from_secs(10);
    for name in ["a", "b", "c", "d", "e"] {
        s.create(new(name)).unwrap();
    }
    s.create(new("f").max_attempts(1)).unwrap();
    s.start(&id("a"), "w").unwrap();
    clock.advance(Duration::from_millis(2_500));
    s.complete(&id("a"), None, None).unwrap(); // 2.5 s
    let b = s.claim(&id("b"), "w", Duration::from_secs(900)).unwrap();
    clock.advance(Duration::from_secs(400));
    s.fail(&id("b"), b.lease.map(|l| l.token), "boom").unwrap(); // 400 s
    s.start(&id("c"), "w").unwrap();
    s.cancel(&id("c")).unwrap(); // not a finished run
    s.claim(&id("d"), "w", ttl).unwrap();
    s.claim(&id("f"), "w", ttl).unwrap();
    s.start(&id("e"), "w").unwrap();
    clock.advance(Duration::from_secs(11));
    // d goes back to pending (not finished); f is out of attempts and fails after 11 s.
    assert_eq!(s.reap_expired(s.now()).unwrap().len(), 2);
    s.complete(&id("e"), None, None).unwrap(); // 11 s, counted once
    let runs = s.stats(0).unwrap().runs;
    assert_eq!(
        runs.counts,
        [0, 1, 0, 2, 0, 0, 1],
        "2.5 s, 11 s twice, 400 s"
    );
    assert_eq!(runs.count(), 4);
    assert_eq!(runs.sum_ms, 2_500 + 400_000 + 11_000 + 11_000);
    let cumulative: Vec<u64> = runs.cumulative().iter().map(|(_, n)| *n).collect();
    assert_eq!(cumulative, [0, 1, 1, 3, 3, 3, 4]);
    s.delete(&id("a"), None).unwrap();
    s.retry(&id("b")).unwrap();
    assert_eq!(s.stats(0).unwrap().runs, runs, "history is not undone");
}

/// Every status transition is in the task's history, in order, with who, when, token and
/// error; heartbeats and updates are not; deleting a task deletes its history.
pub fn check_history(make: Factory<'_>) {
    use crate::{HistoryEntry, HistoryKind as K};
    let (s, clock) = setup(make);
    let ttl = Duration::from_secs(10);
    s.create(new("a").owner("planner")).unwrap();
    clock.advance(Duration::from_secs(1));
    let t = s.claim(&id("a"), "w1", ttl).unwrap();
    let token = t.lease.unwrap().token;
    s.heartbeat(&id("a"), token, ttl).unwrap();
    s.update(&id("a"), crate::TaskPatch::new().priority(3))
        .unwrap();
    clock.advance(Duration::from_secs(2));
    s.complete(&id("a"), Some(token), None).unwrap();
    let h = s.history(&id("a")).unwrap();
    let brief = |h: &[HistoryEntry]| {
        h.iter()
            .map(|e| (e.kind, e.from, e.to, e.actor.clone(), e.token))
            .collect::<Vec<_>>()
    };
    use TaskStatus::*;
    assert_eq!(
        brief(&h),
        [
            (K::Created, None, Pending, Some("planner".into()), None),
            (
                K::Claimed,
                Some(Pending),
                Running,
                Some("w1".into()),
                Some(token)
            ),
            (
                K::Completed,
                Some(Running),
                Completed,
                Some("w1".into()),
                Some(token)
            ),
        ],
        "heartbeats and updates are not transitions"
    );
    assert_eq!(h[0].at, START);
    assert_eq!(h[2].at, START.saturating_add(Duration::from_secs(3)));
    assert_eq!(h.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 5]);
    assert!(
        h[2].describe()
            .starts_with("completed: running -> completed by w1")
    );

    s.create(new("b")).unwrap();
    s.start(&id("b"), "w2").unwrap();
    s.fail(&id("b"), None, "disk full").unwrap();
    s.retry(&id("b")).unwrap();
    s.cancel(&id("b")).unwrap();
    let h = s.history(&id("b")).unwrap();
    assert_eq!(
        brief(&h),
        [
            (K::Created, None, Pending, None, None),
            (K::Started, Some(Pending), Running, Some("w2".into()), None),
            (K::Failed, Some(Running), Failed, Some("w2".into()), None),
            (K::Retried, Some(Failed), Pending, None, None),
            (K::Cancelled, Some(Pending), Cancelled, None, None),
        ]
    );
    assert_eq!(h[2].error.as_deref(), Some("disk full"));

    s.create(new("c").max_attempts(1)).unwrap();
    let c = s.claim(&id("c"), "w3", ttl).unwrap();
    clock.advance(Duration::from_secs(11));
    s.reap_expired(s.now()).unwrap();
    let h = s.history(&id("c")).unwrap();
    let last = h.last().unwrap();
    assert_eq!(
        (
            last.kind,
            last.from,
            last.to,
            last.actor.as_deref(),
            last.token
        ),
        (
            K::LeaseExpired,
            Some(Running),
            Failed,
            Some("w3"),
            c.lease.map(|l| l.token)
        )
    );
    assert!(last.error.is_some(), "a reaped failure says why");

    assert!(s.history(&id("nope")).unwrap_err().is_not_found());
    s.delete(&id("b"), None).unwrap();
    assert!(s.history(&id("b")).unwrap_err().is_not_found());
    s.create(new("b")).unwrap();
    assert_eq!(
        s.history(&id("b")).unwrap().len(),
        1,
        "a new task of the same id starts afresh"
    );
}

/// Releasing: the lease holder gives a claimed task back (pending, attempt refunded, claimable
/// at once, recorded); any other token, or a task not running, is refused and nothing changes.
pub fn check_release(make: Factory<'_>) {
    let (s, clock) = setup(make);
    s.create(new("r").max_attempts(1)).unwrap();
    let t = s.claim(&id("r"), "w1", LEASE).unwrap();
    let held = token(&t);
    for bad in [held + 1, held.saturating_sub(1)] {
        assert!(
            matches!(s.release(&t.id, bad), Err(Error::LeaseLost { .. })),
            "token {bad} is not the lease"
        );
    }
    assert_eq!(
        s.get(&t.id).unwrap().unwrap(),
        t,
        "refused releases wrote nothing"
    );
    clock.advance(Duration::from_secs(1));
    let r = s.release(&t.id, held).unwrap();
    assert_eq!(
        (r.status, r.lease, r.attempts, r.owner.as_deref(), r.version),
        (TaskStatus::Pending, None, 0, Some("w1"), t.version + 1)
    );
    assert!(
        matches!(s.release(&t.id, held), Err(Error::LeaseLost { .. })),
        "a released lease is gone"
    );
    assert!(matches!(
        s.complete(&t.id, Some(held), None),
        Err(Error::LeaseLost { .. })
    ));
    let h = s.history(&t.id).unwrap();
    let last = h.last().unwrap();
    assert_eq!(
        (
            last.kind,
            last.from,
            last.to,
            last.actor.as_deref(),
            last.token
        ),
        (
            crate::HistoryKind::Released,
            Some(TaskStatus::Running),
            TaskStatus::Pending,
            Some("w1"),
            Some(held)
        )
    );
    // The refunded attempt: a task with one attempt can be claimed, and reaped, once more.
    let again = s
        .claim_next("w2", LEASE)
        .unwrap()
        .expect("released work is ready");
    assert_eq!((again.id.as_str(), again.attempts), ("r", 1));
    assert!(token(&again) > held, "a new claim gets a new token");
    s.complete(&again.id, Some(token(&again)), None).unwrap();
    assert!(matches!(
        s.release(&again.id, token(&again)),
        Err(Error::LeaseLost { .. })
    ));
}

/// Deleting returns the task and removes it.
pub fn check_delete(make: Factory<'_>) {
    let (s, _) = setup(make);
    let t = s.create(new("d")).unwrap();
    let t = s.start(&t.id, "w").unwrap();
    assert_eq!(s.delete(&t.id, None).unwrap(), t);
    assert_eq!(s.get(&t.id).unwrap(), None);
    assert!(s.delete(&t.id, None).unwrap_err().is_not_found());
    assert!(s.cancel(&t.id).unwrap_err().is_not_found());
}

/// Eight threads race to claim one task: exactly one wins, the rest get `InvalidTransition`.
pub fn check_claim_race(make: Factory<'_>) {
    let (s, _) = setup(make);
    for round in 0..20 {
        let t = s.create(new(&format!("race{round}"))).unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let results: Vec<_> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|w| {
                    let (s, barrier, id) = (s.clone(), barrier.clone(), t.id.clone());
                    sc.spawn(move || {
                        barrier.wait();
                        s.claim(&id, &format!("w{w}"), LEASE)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: exactly one claim wins");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(r.is_conflict(), "losers see a conflict: {r}");
        }
    }
}

/// Eight threads drain 1,000 tasks with `claim_next`: every task is claimed exactly once.
pub fn check_claim_next_race(make: Factory<'_>) {
    const N: usize = 1000;
    let (s, _) = setup(make);
    s.create_many(
        (0..N)
            .map(|i| new(&format!("n{i:04}")).priority((i % 4) as i32))
            .collect(),
    )
    .unwrap();
    let claimed: Vec<(TaskId, u64)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let s = s.clone();
                sc.spawn(move || {
                    let mut mine = Vec::new();
                    while let Some(t) = s.claim_next(&format!("w{w}"), LEASE).expect("claim works")
                    {
                        mine.push((t.id.clone(), token(&t)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    assert_eq!(claimed.len(), N);
    assert_eq!(
        claimed.iter().map(|c| &c.0).collect::<HashSet<_>>().len(),
        N,
        "no task twice"
    );
    assert_eq!(
        claimed.iter().map(|c| c.1).collect::<HashSet<_>>().len(),
        N,
        "no token twice"
    );
    assert_eq!(
        s.count(&TaskFilter::new().status(TaskStatus::Running))
            .unwrap(),
        N as u64
    );
}

/// Histories of concurrent calls are linearizable: [`history::record`] runs the random
/// workload on 6 threads over 6 pairs of dependent tasks (100 ms of the store's clock pass per
/// real millisecond, so leases lapse and reaps find them), and [`history::check`] checks each
/// against the model and for fencing tokens; 8 histories, 80 with `OC_SOAK=1`. Publishes its
/// figures (`oc_lincheck::publish`) under `tasks.linearizable.` and the test's name.
pub fn check_linearizable(make: Factory<'_>) {
    let mut summary = oc_lincheck::Summary::default();
    for seed in 0..oc_lincheck::runs(8, 80) as u64 {
        let (store, clock) = setup(make);
        let w = history::Workload {
            seed,
            ..history::Workload::default()
        };
        let h = history::record(&*store, &w, Some(&clock));
        let checked = history::check(&h);
        if !checked.is_ok() {
            oc_lincheck::fail(
                &h,
                &format!(
                    "seed {seed} (history::Workload {{ seed: {seed}, ..Default::default() }} makes the same calls)"
                ),
                "OC_REPLAY_HISTORY={} cargo test -p oc-tasks --all-features --test it replay_saved_history",
                &checked,
            );
        }
        summary.add(&checked, history::tally(&h));
    }
    oc_lincheck::publish(
        &format!("tasks.linearizable.{}", oc_lincheck::test_name()),
        summary.figures(history::Workload::default().threads, serde_json::json!({})),
    );
}

/// Generates one `#[test]` per conformance check for the store built by `$make`,
/// a closure from [`ManualClock`](crate::ManualClock) to `Arc<dyn TaskStore>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            check_create_and_get, check_rejects_bad_input, check_duplicates_and_batches,
            check_state_machine, check_updates_keep_untouched_fields, check_version_check_and_set,
            check_claims_and_leases, check_reaping, check_queries, check_stats, check_run_durations,
            check_history, check_release, check_delete,
            check_claim_race, check_claim_next_race,
            check_dependencies_gate_claims, check_dependency_edits, check_batch_graph,
            check_parents_and_deletes, check_labels_route_claims, check_scheduling_and_backoff,
            check_unique_keys, check_claim_many, check_graph_rejects_bad_input, check_counts,
            check_ready_claim_race, check_unique_key_race, check_linearizable);
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let make = $make;
            $crate::testkit::$check(&make);
        }
    )*};
}
