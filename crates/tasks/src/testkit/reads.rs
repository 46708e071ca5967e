//! Listings, statistics, run durations and history: what a store reports.

use std::collections::HashSet;
use std::time::Duration;

use super::{Factory, START, id, new, setup};
use crate::{Order, Task, TaskFilter, TaskId, TaskQuery, TaskStatus, TaskStore};

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
    use crate::{EventKind as K, HistoryEntry};
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
