//! Retention: finished tasks pruned by age in batches, the graph and the counts kept right.

use std::time::Duration;

use super::{Factory, LEASE, id, new, setup};
use crate::{OnDependents, RetentionPolicy, Retire, TaskCounts, TaskStatus, TaskStore, Timestamp};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The counts by status as a map-like list, for comparing.
fn by_status(c: &TaskCounts) -> Vec<(TaskStatus, u64)> {
    c.by_status.clone()
}

fn status_count(c: &TaskCounts, s: TaskStatus) -> u64 {
    c.by_status
        .iter()
        .find(|(x, _)| *x == s)
        .map_or(0, |(_, n)| *n)
}

/// Finishes `name` as completed, through a claim.
fn done(s: &dyn TaskStore, name: &str) {
    let t = s.claim(&id(name), "agent", LEASE).unwrap();
    s.complete(&t.id, t.lease.map(|l| l.token), None).unwrap();
}

/// Tasks finished before the cutoff leave the store in batches, with their history and from the
/// counts by status; what a remaining task depends on, a remaining task's parent, a task
/// holding a key for ever and anything unfinished or recent stay; the counters of entries and
/// run durations keep what they counted; a second run finds nothing, and finishing the last
/// dependent lets the next run take the rest.
pub fn check_prune_finished(make: Factory<'_>) {
    let (s, clock) = setup(make);
    let policy = RetentionPolicy::delete_older_than(5 * DAY).batch(2);
    for name in [
        "done",
        "failed",
        "cancelled",
        "dep",
        "c1",
        "parent",
        "keyed",
        "waits",
    ] {
        let mut n = new(name);
        if name == "keyed" {
            n = n.unique_key_always("once");
        }
        if name == "failed" {
            n = n.max_attempts(1);
        }
        s.create(n).unwrap();
    }
    // Created after what they point at, as usual: a run walks from the newest down.
    s.create(new("waiter").depends_on(id("dep"))).unwrap();
    s.create(new("c2").depends_on(id("c1"))).unwrap();
    s.create(new("kid").parent(id("parent"))).unwrap();
    for name in ["done", "dep", "c1", "c2", "parent", "keyed"] {
        clock.advance(Duration::from_millis(10));
        done(&*s, name);
    }
    let t = s.claim(&id("failed"), "agent", LEASE).unwrap();
    s.fail(&t.id, t.lease.map(|l| l.token), "boom").unwrap();
    s.cancel(&id("cancelled")).unwrap();
    clock.advance(10 * DAY);
    s.create(new("recent")).unwrap();
    done(&*s, "recent");
    let waiter = s.require(&id("waiter")).unwrap();
    let before = s.stats(0).unwrap();
    let counts = s.counts(100).unwrap();

    let report = s.prune_finished(&policy).unwrap();
    assert_eq!(report.retire, Retire::Delete);
    assert_eq!(
        report.cutoff,
        Timestamp::from_millis(s.now().as_millis() - 5 * 86_400_000)
    );
    let gone = ["done", "failed", "cancelled", "c1", "c2"];
    assert_eq!(report.pruned, gone.len() as u64, "{report:?}");
    assert_eq!(report.kept, 3, "dep, parent and keyed stay: {report:?}");
    assert!(report.batches >= 3, "at most 2 a batch: {report:?}");
    assert!(report.scanned >= 11, "every old task looked at: {report:?}");
    for name in gone {
        assert_eq!(s.get(&id(name)).unwrap(), None, "{name} pruned");
        assert!(
            s.history(&id(name)).unwrap_err().is_not_found(),
            "{name}'s history"
        );
        assert_eq!(
            s.archived(&id(name)).unwrap(),
            None,
            "deleted, not archived"
        );
    }
    for name in ["dep", "parent", "keyed", "waits", "kid", "recent"] {
        assert!(s.get(&id(name)).unwrap().is_some(), "{name} stays");
    }
    assert_eq!(
        s.require(&id("waiter")).unwrap(),
        waiter,
        "a dependent is untouched"
    );
    assert_eq!(
        s.history(&id("dep")).unwrap().len(),
        3,
        "a kept task keeps its history"
    );

    let after = s.counts(100).unwrap();
    let lost = |st: TaskStatus, n: u64| {
        assert_eq!(
            status_count(&after, st),
            status_count(&counts, st) - n,
            "{st:?}: {:?} then {:?}",
            by_status(&counts),
            by_status(&after)
        );
    };
    lost(TaskStatus::Completed, 3);
    lost(TaskStatus::Failed, 1);
    lost(TaskStatus::Cancelled, 1);
    lost(TaskStatus::Pending, 0);
    assert_eq!(after.entered, counts.entered, "entries stay counted");
    let stats = s.stats(0).unwrap();
    assert_eq!(stats.total, before.total - 5);
    assert_eq!(stats.runs, before.runs, "run durations stay counted");
    assert_eq!(stats.entered, before.entered);

    let again = s.prune_finished(&policy).unwrap();
    assert_eq!((again.pruned, again.kept), (0, 3), "{again:?}");

    // The waiter finishes: a later run takes it and its dependency, not yet the parent.
    s.delete_with(&id("kid"), None, OnDependents::Refuse)
        .unwrap();
    done(&*s, "waiter");
    clock.advance(6 * DAY);
    let last = s.prune_finished(&policy).unwrap();
    assert_eq!(
        (last.pruned, last.kept),
        (4, 1),
        "waiter, dep, parent, recent: {last:?}"
    );
    assert!(s.get(&id("dep")).unwrap().is_none());
    assert!(
        s.get(&id("keyed")).unwrap().is_some(),
        "a key held for ever stays"
    );
    let c = s.counts(100).unwrap();
    assert_eq!(
        status_count(&c, TaskStatus::Completed),
        1,
        "{:?}",
        by_status(&c)
    );
    assert_eq!(
        status_count(&c, TaskStatus::Pending),
        1,
        "{:?}",
        by_status(&c)
    );

    for bad in [policy.clone().batch(0), policy.batch(1_000_000)] {
        assert!(s.prune_finished(&bad).unwrap_err().is_invalid_input());
    }
}

/// Archiving moves a task and its history out of the hot tables, readable by id; what is
/// recent stays; a task created again with an archived id lives beside its archived self.
pub fn check_prune_archives(make: Factory<'_>) {
    let (s, clock) = setup(make);
    s.create(new("old")).unwrap();
    done(&*s, "old");
    let old = s.require(&id("old")).unwrap();
    let history = s.history(&id("old")).unwrap();
    clock.advance(2 * DAY);
    s.create(new("young")).unwrap();
    done(&*s, "young");
    let report = s
        .prune_finished(&RetentionPolicy::archive_older_than(DAY))
        .unwrap();
    assert_eq!(
        (report.pruned, report.retire),
        (1, Retire::Archive),
        "{report:?}"
    );
    assert_eq!(s.get(&id("old")).unwrap(), None);
    let a = s.archived(&id("old")).unwrap().expect("archived");
    assert_eq!(a.task, old);
    assert_eq!(a.history, history);
    assert_eq!(a.archived_at, s.now());
    assert_eq!(s.archived(&id("young")).unwrap(), None);
    assert!(s.get(&id("young")).unwrap().is_some());
    let c = s.counts(10).unwrap();
    assert_eq!(status_count(&c, TaskStatus::Completed), 1);
    // The id is free again; the archive keeps the old one.
    s.create(new("old")).unwrap();
    assert_eq!(s.require(&id("old")).unwrap().status, TaskStatus::Pending);
    assert_eq!(s.archived(&id("old")).unwrap().unwrap().task, old);
}
