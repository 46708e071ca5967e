//! The work-graph half of the conformance suite: dependencies, readiness, parents, labels,
//! scheduled retries, unique keys and batches of claims.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::{Factory, LEASE, START, id, new, setup, token};
use crate::{
    Blockers, Error, EventKind, LabelFilter, NewTask, OnDependents, Order, Readiness, RetryPolicy,
    TaskFilter, TaskId, TaskPatch, TaskQuery, TaskStatus, TaskStore,
};

fn ids(tasks: &[crate::Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn listed(s: &dyn TaskStore, filter: TaskFilter) -> Vec<String> {
    let page = s
        .list(&TaskQuery::new(filter).order(Order::Oldest).limit(1000))
        .unwrap();
    page.tasks.iter().map(|t| t.id.to_string()).collect()
}

/// Asserts that `counts(cap)` of `s` says exactly `by_status` (in [`TaskStatus::ALL`] order)
/// and, for `ready` and `blocked`, either the exact number or, when it stopped counting, at
/// least the cap and no more than there are.
pub(crate) fn assert_counts(
    s: &dyn TaskStore,
    cap: u64,
    by_status: [u64; 5],
    (ready, blocked): (u64, u64),
    ctx: &str,
) {
    let c = s.counts(cap).unwrap();
    assert_eq!(
        c.by_status,
        TaskStatus::ALL
            .iter()
            .copied()
            .zip(by_status)
            .collect::<Vec<_>>(),
        "{ctx}: by status"
    );
    assert_eq!(c.total(), by_status.iter().sum::<u64>(), "{ctx}: total");
    for (what, got, want) in [("ready", c.ready, ready), ("blocked", c.blocked, blocked)] {
        if got.more {
            assert!(
                got.n >= cap && got.n <= want,
                "{ctx}: {what} counted to {got} with a cap of {cap}, but there are {want}"
            );
        } else {
            assert_eq!(got.n, want, "{ctx}: {what} with a cap of {cap}");
        }
    }
}

/// `counts` agrees with the tasks after every kind of write (creations, claims, completions
/// releasing dependents, failures with backoff, cancels, retries, deletes, time passing):
/// statuses exactly, ready and blocked exactly below the cap and at least the cap above it.
pub fn check_counts(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let check = |by_status, split, ctx: &str| {
        for cap in [0, 1, 2, 3, 1_000, u64::MAX] {
            assert_counts(&*s, cap, by_status, split, &format!("{ctx}, cap {cap}"));
        }
    };
    check([0; 5], (0, 0), "empty");
    let later = START.saturating_add(Duration::from_secs(60));
    for i in 0..4 {
        s.create(new(&format!("r{i}"))).unwrap();
    }
    for i in 0..3 {
        s.create(new(&format!("w{i}")).depends_on(id("r0")))
            .unwrap();
    }
    for i in 0..2 {
        s.create(new(&format!("l{i}")).run_at(later)).unwrap();
    }
    s.create(new("past").run_at(START)).unwrap();
    s.create(new("both").run_at(later).depends_on(id("r0")))
        .unwrap();
    check([11, 0, 0, 0, 0], (5, 6), "created");
    let a = s.claim(&id("r0"), "w", LEASE).unwrap();
    let b = s.claim(&id("r1"), "w", LEASE).unwrap();
    check([9, 2, 0, 0, 0], (3, 6), "claimed");
    s.complete(&a.id, Some(token(&a)), None).unwrap();
    check([9, 1, 1, 0, 0], (6, 3), "a dependency completed");
    s.fail(&b.id, Some(token(&b)), "boom").unwrap();
    check([9, 0, 1, 1, 0], (6, 3), "failed");
    s.retry(&b.id).unwrap();
    s.cancel(&id("w0")).unwrap();
    check([9, 0, 1, 0, 1], (6, 3), "retried and cancelled");
    clock.advance(Duration::from_secs(60));
    check([9, 0, 1, 0, 1], (9, 0), "the scheduled ones came due");
    s.delete(&id("r2"), None).unwrap();
    s.delete(&id("w0"), None).unwrap();
    s.add_dependency(&id("r3"), &id("w1")).unwrap();
    check([8, 0, 1, 0, 0], (7, 1), "deleted, and a dependency added");
    let entered = |c: crate::TaskCounts| c.entered;
    assert_eq!(
        entered(s.counts(0).unwrap()),
        s.stats(0).unwrap().entered,
        "the entries into each status are the statistics'"
    );
}

fn ready(s: &dyn TaskStore) -> Vec<String> {
    listed(s, TaskFilter::new().readiness(Readiness::Ready))
}

fn blocked(s: &dyn TaskStore) -> Vec<String> {
    listed(s, TaskFilter::new().readiness(Readiness::Blocked))
}

fn finish(s: &dyn TaskStore, t: &crate::Task) {
    let t = s.claim(&t.id, "w", LEASE).unwrap();
    s.complete(&t.id, Some(token(&t)), None).unwrap();
}

/// A task is handed out only once every dependency completed; listings split ready from
/// blocked and say what blocks; a failed dependency blocks until it is retried and completes.
pub fn check_dependencies_gate_claims(make: Factory<'_>) {
    let (s, _) = setup(make);
    let a = s.create(new("a")).unwrap();
    let b = s
        .create(new("b").priority(9).depends_on(a.id.clone()))
        .unwrap();
    let c = s
        .create(
            new("c")
                .priority(9)
                .depends_on(b.id.clone())
                .depends_on(a.id.clone()),
        )
        .unwrap();
    assert_eq!(c.depends_on, vec![id("a"), id("b")], "sorted");
    assert_eq!(s.get(&c.id).unwrap().unwrap(), c);
    assert_eq!(ready(&*s), ["a"]);
    assert_eq!(blocked(&*s), ["b", "c"]);
    let stats = s.stats(0).unwrap();
    assert_eq!((stats.ready, stats.blocked), (1, 2));
    assert_eq!(
        s.blockers(&c.id).unwrap().waiting_on,
        vec![
            (id("a"), TaskStatus::Pending),
            (id("b"), TaskStatus::Pending)
        ]
    );
    let first = s.claim_next("w", LEASE).unwrap().unwrap();
    assert_eq!(first.id, a.id, "the blocked high-priority tasks wait");
    assert_eq!(
        s.claim_next("w", LEASE).unwrap(),
        None,
        "nothing else ready"
    );
    // Starting or claiming a blocked task by id is the caller's business: the state
    // machine allows it, readiness only steers claim_next.
    s.complete(&a.id, Some(token(&first)), None).unwrap();
    assert_eq!(ready(&*s), ["b"]);
    assert_eq!(
        s.get(&b.id).unwrap().unwrap().version,
        b.version,
        "a dependency completing does not write its dependents"
    );
    let bt = s.claim_next("w", LEASE).unwrap().unwrap();
    assert_eq!(bt.id, b.id);
    s.fail(&b.id, Some(token(&bt)), "broke").unwrap();
    assert_eq!(blocked(&*s), ["c"]);
    assert_eq!(
        s.blockers(&c.id).unwrap(),
        Blockers {
            task: c.id.clone(),
            waiting_on: vec![(id("b"), TaskStatus::Failed)],
            run_at: None
        },
        "a dependency failed for good is named"
    );
    assert_eq!(s.claim_next("w", LEASE).unwrap(), None);
    s.retry(&b.id).unwrap();
    finish(&*s, &b);
    assert_eq!(ready(&*s), ["c"]);
    assert!(s.blockers(&c.id).unwrap().is_empty());
    let stats = s.stats(0).unwrap();
    assert_eq!((stats.ready, stats.blocked), (1, 0));
    assert_eq!(s.claim_next("w", LEASE).unwrap().unwrap().id, c.id);
}

/// Edges added and removed later keep readiness right; an edge to a missing task, to itself,
/// or closing a cycle is refused with a typed error naming it, and changes nothing.
pub fn check_dependency_edits(make: Factory<'_>) {
    let (s, _) = setup(make);
    let made = s
        .create_many(vec![new("a"), new("b"), new("c"), new("done")])
        .unwrap();
    finish(&*s, &made[3]);
    let b = s.add_dependency(&id("b"), &id("a")).unwrap();
    assert_eq!((b.depends_on.clone(), b.version), (vec![id("a")], 2));
    assert_eq!(
        s.add_dependency(&id("b"), &id("a")).unwrap(),
        b,
        "adding an edge twice changes nothing"
    );
    s.add_dependency(&id("c"), &id("b")).unwrap();
    assert_eq!(ready(&*s), ["a"]);
    let before: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| s.get(&id(k)).unwrap().unwrap())
        .collect();
    match s.add_dependency(&id("a"), &id("c")).unwrap_err() {
        Error::Cycle { cycle } => assert_eq!(cycle, [id("a"), id("c"), id("b"), id("a")]),
        e => panic!("expected a cycle, got {e}"),
    }
    let e = s.add_dependency(&id("a"), &id("a")).unwrap_err();
    assert!(
        matches!(&e, Error::Cycle { cycle } if cycle == &[id("a"), id("a")]),
        "{e}"
    );
    assert!(e.is_conflict());
    let e = s.add_dependency(&id("a"), &id("ghost")).unwrap_err();
    assert!(
        matches!(&e, Error::MissingReference { field: "depends_on", id } if id.as_str() == "ghost"),
        "{e}"
    );
    assert!(
        s.add_dependency(&id("ghost"), &id("a"))
            .unwrap_err()
            .is_not_found()
    );
    let after: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| s.get(&id(k)).unwrap().unwrap())
        .collect();
    assert_eq!(before, after, "refused edges change nothing");
    // An edge to a completed task does not block; removing the blocking one unblocks.
    s.add_dependency(&id("a"), &id("done")).unwrap();
    assert_eq!(ready(&*s), ["a"]);
    let c = s.remove_dependency(&id("c"), &id("b")).unwrap();
    assert!(c.depends_on.is_empty());
    assert_eq!(ready(&*s), ["a", "c"]);
    assert_eq!(
        s.remove_dependency(&id("c"), &id("b")).unwrap(),
        c,
        "removing a missing edge changes nothing"
    );
    // Now the reverse edge is allowed: the cycle is gone.
    s.add_dependency(&id("b"), &id("c")).unwrap();
    assert_eq!(blocked(&*s), ["b"]);
    assert_eq!(
        listed(&*s, TaskFilter::new().dependents_of(id("a"))),
        ["b"],
        "dependents are listed"
    );
}

/// A batch may depend on its own tasks in any order; a cycle, a self-dependency, a duplicate
/// or missing dependency or parent refuses the whole batch.
pub fn check_batch_graph(make: Factory<'_>) {
    let (s, _) = setup(make);
    s.create(new("old")).unwrap();
    let made = s
        .create_many(vec![
            new("late").depends_on(id("early")).depends_on(id("old")),
            new("early").parent(id("old")),
        ])
        .unwrap();
    assert_eq!(made[0].depends_on, [id("early"), id("old")]);
    assert_eq!(blocked(&*s), ["late"]);
    let bad: Vec<(Vec<NewTask>, &str)> = vec![
        (
            vec![
                new("x").depends_on(id("y")),
                new("y").depends_on(id("z")),
                new("z").depends_on(id("x")),
            ],
            "cycle",
        ),
        (vec![new("x").depends_on(id("x"))], "self"),
        (
            vec![new("x").depends_on(id("old")).depends_on(id("old"))],
            "duplicate",
        ),
        (vec![new("x"), new("y").depends_on(id("ghost"))], "missing"),
        (vec![new("x").parent(id("ghost"))], "missing parent"),
        (vec![new("x").parent(id("x"))], "own parent"),
    ];
    for (batch, what) in bad {
        let e = s.create_many(batch).unwrap_err();
        match what {
            "cycle" => assert!(
                matches!(&e, Error::Cycle { cycle } if cycle.len() == 4 && cycle[0] == cycle[3]),
                "{what}: {e}"
            ),
            "self" => assert!(matches!(e, Error::Cycle { .. }), "{what}: {e}"),
            "missing" | "missing parent" => assert!(e.is_not_found(), "{what}: {e}"),
            _ => assert!(e.is_invalid_input(), "{what}: {e}"),
        }
    }
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 3, "nothing stored");
}

/// Children list under their parent, which rolls up their progress; deleting a task others
/// depend on, or with children, is refused unless asked to cascade or to drop the edges.
pub fn check_parents_and_deletes(make: Factory<'_>) {
    let (s, _) = setup(make);
    s.create(new("epic")).unwrap();
    let kids = s
        .create_many(
            (0..3)
                .map(|i| new(&format!("k{i}")).parent(id("epic")))
                .collect(),
        )
        .unwrap();
    finish(&*s, &kids[0]);
    s.start(&kids[1].id, "w").unwrap();
    assert_eq!(
        listed(&*s, TaskFilter::new().parent(id("epic"))),
        ["k0", "k1", "k2"]
    );
    let r = s.rollup(&id("epic")).unwrap();
    assert_eq!((r.total, r.completed()), (3, 1));
    assert_eq!(
        r.by_status,
        [
            (TaskStatus::Pending, 1),
            (TaskStatus::Running, 1),
            (TaskStatus::Completed, 1),
            (TaskStatus::Failed, 0),
            (TaskStatus::Cancelled, 0)
        ]
    );
    let e = s.delete(&id("epic"), None).unwrap_err();
    assert!(
        matches!(&e, Error::HasDependents { dependents, .. } if dependents.len() == 3),
        "{e}"
    );
    assert!(s.get(&id("epic")).unwrap().is_some(), "refused: kept");
    let gone = s
        .delete_with(&id("epic"), None, OnDependents::DropEdges)
        .unwrap();
    assert_eq!(ids(&gone), ["epic"]);
    let k2 = s.get(&id("k2")).unwrap().unwrap();
    assert_eq!(
        (k2.parent, k2.version),
        (None, 2),
        "orphaned, version bumped"
    );

    // a <- b <- c, and d depends on a too.
    s.create_many(vec![
        new("a"),
        new("b").depends_on(id("a")),
        new("c").depends_on(id("b")),
        new("d").depends_on(id("a")),
    ])
    .unwrap();
    let e = s.delete(&id("a"), None).unwrap_err();
    assert!(
        matches!(&e, Error::HasDependents { dependents, .. } if dependents == &[id("b"), id("d")]),
        "{e}"
    );
    let gone = s
        .delete_with(&id("b"), None, OnDependents::Cascade)
        .unwrap();
    assert_eq!(
        ids(&gone),
        ["b", "c"],
        "the task first, then what hung on it"
    );
    let gone = s
        .delete_with(&id("a"), None, OnDependents::DropEdges)
        .unwrap();
    assert_eq!(ids(&gone), ["a"]);
    let d = s.get(&id("d")).unwrap().unwrap();
    assert!(d.depends_on.is_empty());
    assert!(ready(&*s).contains(&"d".to_owned()), "d no longer waits");
}

/// Labels route claims: a filter takes only the tasks with (or without) some labels, in
/// priority order among them; listings filter by label too.
pub fn check_labels_route_claims(make: Factory<'_>) {
    let (s, _) = setup(make);
    s.create_many(vec![
        new("f1").label("frontend").priority(1),
        new("f2").label("frontend").label("urgent").priority(5),
        new("b1").label("backend").priority(9),
        new("plain").priority(3),
    ])
    .unwrap();
    assert_eq!(
        s.get(&id("f2")).unwrap().unwrap().labels,
        ["frontend", "urgent"]
    );
    let front = LabelFilter::any().require("frontend");
    let got = s.claim_next_matching("fe", LEASE, &front).unwrap().unwrap();
    assert_eq!(got.id, id("f2"), "highest priority among frontend");
    let got = s.claim_next_matching("fe", LEASE, &front).unwrap().unwrap();
    assert_eq!(got.id, id("f1"));
    assert_eq!(s.claim_next_matching("fe", LEASE, &front).unwrap(), None);
    let no_back = LabelFilter::any().exclude("backend");
    let got = s
        .claim_next_matching("gen", LEASE, &no_back)
        .unwrap()
        .unwrap();
    assert_eq!(got.id, id("plain"));
    assert_eq!(
        listed(&*s, TaskFilter::new().label("frontend")),
        ["f1", "f2"]
    );
    assert_eq!(
        listed(&*s, TaskFilter::new().without_label("frontend")),
        ["b1", "plain"]
    );
    let e = s
        .claim_next_matching("x", LEASE, &LabelFilter::any().require("bad label"))
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    let t = s
        .update(
            &id("b1"),
            TaskPatch::new().labels(vec!["z".into(), "backend".into()]),
        )
        .unwrap();
    assert_eq!(t.labels, ["backend", "z"]);
}

/// `run_at` delays a task; a retry policy sends a failed run (or a lapsed lease) back to
/// pending after its backoff until the attempts are spent.
pub fn check_scheduling_and_backoff(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let later = START.saturating_add(Duration::from_secs(60));
    s.create(new("later").run_at(later)).unwrap();
    assert_eq!(blocked(&*s), ["later"]);
    assert_eq!(s.blockers(&id("later")).unwrap().run_at, Some(later));
    assert_eq!(s.claim_next("w", LEASE).unwrap(), None);
    clock.advance(Duration::from_secs(60));
    assert_eq!(ready(&*s), ["later"]);
    s.delete(&id("later"), None).unwrap();

    let policy = RetryPolicy::backoff(Duration::from_secs(10), Duration::from_secs(15));
    s.create(new("flaky").retry(policy).max_attempts(3))
        .unwrap();
    let t = s.claim_next("w", LEASE).unwrap().unwrap();
    let now = s.now();
    let t = s.fail(&t.id, Some(token(&t)), "timeout").unwrap();
    assert_eq!(t.status, TaskStatus::Pending, "back to pending");
    assert_eq!(t.error.as_deref(), Some("timeout"));
    assert_eq!(t.run_at, Some(now.saturating_add(Duration::from_secs(10))));
    assert_eq!(t.lease, None);
    let h = s.history(&t.id).unwrap();
    let last = h.last().unwrap();
    assert_eq!(
        (last.kind, last.from, last.to, last.error.as_deref()),
        (
            EventKind::RetryScheduled,
            Some(TaskStatus::Running),
            TaskStatus::Pending,
            Some("timeout")
        )
    );
    assert_eq!(
        s.claim_next("w", LEASE).unwrap(),
        None,
        "waits out its backoff"
    );
    clock.advance(Duration::from_secs(10));
    // The second run's lease lapses: the reaper follows the same policy (capped at 15 s).
    let t = s.claim_next("w", Duration::from_secs(1)).unwrap().unwrap();
    clock.advance(Duration::from_secs(1));
    let reaped = s.reap_expired(s.now()).unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].task.status, TaskStatus::Pending);
    assert_eq!(
        reaped[0].task.run_at,
        Some(s.now().saturating_add(Duration::from_secs(15)))
    );
    assert_eq!(s.get(&t.id).unwrap().unwrap(), reaped[0].task);
    clock.advance(Duration::from_secs(15));
    let t = s.claim_next("w", LEASE).unwrap().unwrap();
    assert_eq!(t.attempts, 3);
    let t = s.fail(&t.id, Some(token(&t)), "again").unwrap();
    assert_eq!(t.status, TaskStatus::Failed, "attempts spent: final");
    // A manual retry stays.
    assert_eq!(s.retry(&t.id).unwrap().status, TaskStatus::Pending);

    let jittered = policy.jitter(50);
    let j = s
        .create(new("jitter").retry(jittered).max_attempts(5))
        .unwrap();
    let t = s.claim(&j.id, "w", LEASE).unwrap();
    let now = s.now();
    let t = s.fail(&t.id, Some(token(&t)), "x").unwrap();
    assert_eq!(
        t.run_at,
        Some(now.saturating_add(jittered.delay(&j.id, 1).unwrap())),
        "jitter is the policy's, the same on every backend"
    );
}

/// A unique key held by an unfinished task returns that task instead of a duplicate; once it
/// finishes the key is free (unless held always); a retry cannot take a key back.
pub fn check_unique_keys(make: Factory<'_>) {
    let (s, _) = setup(make);
    let first = s.submit(new("u1").unique_key("deploy")).unwrap();
    assert!(!first.duplicate);
    let again = s.submit(new("u2").unique_key("deploy")).unwrap();
    assert!(again.duplicate, "says so");
    assert_eq!(again.task, first.task, "returns the holder");
    assert_eq!(s.get(&id("u2")).unwrap(), None, "creates nothing");
    // In a batch: a later task with the same key is the earlier one, and edges follow it.
    let batch = s
        .submit_many(vec![
            new("p1").unique_key("plan"),
            new("p2").unique_key("plan"),
            new("after").depends_on(id("p2")),
        ])
        .unwrap();
    assert_eq!(
        batch.iter().map(|c| c.duplicate).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(batch[1].task.id, id("p1"));
    assert_eq!(batch[2].task.depends_on, [id("p1")]);
    // Finished: the key is free again.
    let t = s.claim(&id("u1"), "w", LEASE).unwrap();
    s.fail(&t.id, Some(token(&t)), "x").unwrap();
    let next = s.submit(new("u3").unique_key("deploy")).unwrap();
    assert!(!next.duplicate);
    let e = s.retry(&id("u1")).unwrap_err();
    assert!(
        matches!(&e, Error::UniqueKeyHeld { key, holder } if key == "deploy" && holder.as_str() == "u3"),
        "{e}"
    );
    assert_eq!(
        s.get(&id("u1")).unwrap().unwrap().status,
        TaskStatus::Failed
    );
    // Held always: even completed.
    let a = s.submit(new("a1").unique_key_always("once")).unwrap();
    finish(&*s, &a.task);
    let dup = s.submit(new("a2").unique_key_always("once")).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.task.id, id("a1"));
    let e = s.create(new("k").unique_key("")).unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
}

/// `claim_many` claims up to n ready tasks in one call, in claim order, each with its own
/// increasing token.
pub fn check_claim_many(make: Factory<'_>) {
    let (s, _) = setup(make);
    s.create_many(
        (0..5)
            .map(|i| new(&format!("m{i}")).priority(i))
            .chain([new("blocked").priority(99).depends_on(id("m0"))])
            .collect(),
    )
    .unwrap();
    let got = s.claim_many("w", LEASE, 3, &LabelFilter::any()).unwrap();
    assert_eq!(ids(&got), ["m4", "m3", "m2"]);
    let tokens: Vec<u64> = got.iter().map(token).collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    let rest = s.claim_many("w", LEASE, 10, &LabelFilter::any()).unwrap();
    assert_eq!(ids(&rest), ["m1", "m0"], "the blocked one stays");
    assert!(
        s.claim_many("w", LEASE, 10, &LabelFilter::any())
            .unwrap()
            .is_empty()
    );
}

/// Bad graph input (labels, run_at, backoff, unique key) is a typed error and stores nothing.
pub fn check_graph_rejects_bad_input(make: Factory<'_>) {
    let (s, _) = setup(make);
    let far = START.saturating_add(Duration::from_secs(11 * 366 * 24 * 3600));
    for bad in [
        new("x").label("a").label("a"),
        new("x").label("white space"),
        new("x").label(""),
        new("x").run_at(far),
        new("x").run_at(crate::Timestamp::from_millis(-5)),
        new("x").retry(RetryPolicy::backoff(
            Duration::from_secs(10),
            Duration::from_secs(1),
        )),
        new("x").retry(RetryPolicy::backoff(Duration::ZERO, Duration::from_secs(1))),
        new("x").retry(
            RetryPolicy::backoff(Duration::from_secs(1), Duration::from_secs(2)).jitter(101),
        ),
    ] {
        let e = s.create(bad.clone()).unwrap_err();
        assert!(e.is_invalid_input(), "{bad:?}: {e}");
    }
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 0);
    let t = s.create(new("ok")).unwrap();
    let e = s
        .update(&t.id, TaskPatch::new().run_at(Some(far)))
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert_eq!(s.get(&t.id).unwrap().unwrap(), t);
}

/// Claimers never get a task with an unfinished dependency while other threads complete and
/// fail (and retry) those dependencies.
pub fn check_ready_claim_race(make: Factory<'_>) {
    const LAYERS: usize = 6;
    const WIDTH: usize = 12;
    let (s, _) = setup(make);
    // Layer n depends on two tasks of layer n - 1.
    let mut batch = Vec::new();
    for l in 0..LAYERS {
        for w in 0..WIDTH {
            let mut t = new(&format!("l{l}w{w:02}")).max_attempts(100);
            if l > 0 {
                t = t
                    .depends_on(id(&format!("l{}w{w:02}", l - 1)))
                    .depends_on(id(&format!("l{}w{:02}", l - 1, (w + 1) % WIDTH)));
            }
            batch.push(t);
        }
    }
    s.create_many(batch).unwrap();
    let violations: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                sc.spawn(move || {
                    let mut bad = Vec::new();
                    let mut n = 0u32;
                    loop {
                        let Some(t) = s.claim_next(&format!("w{w}"), LEASE).unwrap() else {
                            if s.count(&TaskFilter::new().status(TaskStatus::Completed))
                                .unwrap()
                                == (LAYERS * WIDTH) as u64
                            {
                                return bad;
                            }
                            std::thread::yield_now();
                            continue;
                        };
                        // Completed is final, so a dependency not completed now was not
                        // completed at the claim either.
                        for d in &t.depends_on {
                            let dep = s.require(d).unwrap();
                            if dep.status != TaskStatus::Completed {
                                bad.push(format!("{} claimed while {d} was {}", t.id, dep.status));
                            }
                        }
                        n += 1;
                        if n.is_multiple_of(3) {
                            s.fail(&t.id, Some(token(&t)), "flaky").unwrap();
                            s.retry(&t.id).unwrap();
                        } else {
                            s.complete(&t.id, Some(token(&t)), None).unwrap();
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    assert!(violations.is_empty(), "{violations:?}");
}

/// Eight threads create a task with the same unique key: one task is created, every thread
/// gets it.
pub fn check_unique_key_race(make: Factory<'_>) {
    let (s, _) = setup(make);
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(8));
        let got: Vec<(TaskId, bool)> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|w| {
                    let (s, barrier) = (s.clone(), barrier.clone());
                    sc.spawn(move || {
                        barrier.wait();
                        let c = s
                            .submit(NewTask::new(format!("w{w}")).unique_key(format!("key{round}")))
                            .unwrap();
                        (c.task.id, c.duplicate)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let distinct: HashSet<&TaskId> = got.iter().map(|g| &g.0).collect();
        assert_eq!(distinct.len(), 1, "round {round}: one task");
        assert_eq!(got.iter().filter(|g| !g.1).count(), 1, "one creation");
    }
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 10);
}
