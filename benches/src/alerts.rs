//! `oc-alerts`: evaluating many rules over one snapshot.

use std::time::Duration;

use oc_alerts::{Condition, Engine, Op, Rule, Selector, Severity};
use oc_locks::{LockManager, LockRequest, MemoryLockManager};
use oc_metrics::{Snapshot, Sources, collect};
use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};

/// A snapshot of 1,000 tasks (100 failed) and a lock manager with conflicts.
pub fn snapshot() -> Snapshot {
    let store = MemoryTaskStore::new();
    for (i, t) in store
        .create_many((0..1000).map(|i| NewTask::new(format!("t{i}"))).collect())
        .expect("create")
        .into_iter()
        .enumerate()
    {
        if i % 10 == 0 {
            store.start(&t.id, "a").expect("start");
            store.fail(&t.id, None, "boom").expect("fail");
        }
    }
    let locks = MemoryLockManager::new();
    let req = |o: &str| LockRequest::exclusive("repo/a", o).expect("request");
    locks.acquire(&req("one"), Duration::ZERO).expect("lock");
    for _ in 0..3 {
        let _ = locks.try_acquire(&req("two"));
    }
    collect(&Sources::new(&store).locks(&locks)).expect("collect")
}

/// `n` rules: a third thresholds over a labelled metric, a third ratios, a third closures;
/// about half of them fire.
pub fn rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| {
            let t = (i % 200) as f64;
            let condition = match i % 3 {
                0 => Condition::metric(
                    Selector::new("opencode_tasks").label("status", "pending"),
                    Op::Gt,
                    t * 9.0,
                ),
                1 => Condition::ratio(
                    Selector::new("opencode_tasks").label("status", "failed"),
                    Selector::new("opencode_tasks"),
                    Op::Gt,
                    t / 1000.0,
                ),
                _ => Condition::when(move |s| {
                    let v = s.tasks.total as f64;
                    (v > t * 10.0).then_some(v)
                }),
            };
            Rule::new(&format!("rule-{i}"), Severity::Medium, condition)
                .summary("{{name}} at {{value}}")
        })
        .collect()
}

/// An engine over `rules(n)`, evaluated once so that it is in its steady state.
pub fn engine(n: usize, snap: &Snapshot) -> Engine {
    let mut e = Engine::new(rules(n)).expect("rules");
    e.evaluate(snap, oc_time::Timestamp::EPOCH)
        .expect("evaluate");
    e
}
