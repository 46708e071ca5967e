//! Claims, leases, reaping and releases, and claims racing on threads; the linearizability check.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::{Factory, LEASE, history, id, new, setup, token};
use crate::{Error, Task, TaskFilter, TaskId, TaskStatus, TaskStore};

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
            crate::EventKind::Released,
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
