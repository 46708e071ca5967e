//! The built-in rules over real stores: the seed's conditions fire on the stores' truth.

use std::time::Duration;

use oc_alerts::{Config, Engine, Kind, Thresholds, builtin_rules};
use oc_locks::{LockManager, LockRequest, MemoryLockManager};
use oc_metrics::{Sources, collect};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
use oc_time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn names(sent: &[oc_alerts::Notification]) -> Vec<&str> {
    let mut v: Vec<&str> = sent.iter().map(|n| n.alert.rule.as_str()).collect();
    v.sort();
    v
}

#[test]
fn the_seeds_conditions_fire_on_real_stores() {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    for i in 0..10 {
        let t = store.create(NewTask::new(format!("t{i}"))).unwrap();
        if i < 2 {
            store.start(&t.id, "agent").unwrap();
            store.fail(&t.id, None, "boom").unwrap();
        }
    }
    let locks = MemoryLockManager::new();
    locks
        .acquire(
            &LockRequest::exclusive("repo/a", "one").unwrap(),
            Duration::ZERO,
        )
        .unwrap();
    for _ in 0..2 {
        assert!(
            locks
                .try_acquire(&LockRequest::exclusive("repo/a", "two").unwrap())
                .is_err()
        );
    }
    let snap = collect(&Sources::new(&store).locks(&locks)).unwrap();

    let mut e = Engine::new(builtin_rules(&Thresholds::default())).unwrap();
    assert!(e.evaluate(&snap, T0).unwrap().is_empty(), "pending first");
    let sent = e
        .evaluate(&snap, T0.saturating_add(Duration::from_secs(300)))
        .unwrap();
    assert_eq!(
        names(&sent),
        [
            "OpencodeHighLockConflictRate",
            "OpencodeHighTaskFailureRate"
        ]
    );
    let failure = sent
        .iter()
        .find(|n| n.alert.rule == "OpencodeHighTaskFailureRate")
        .unwrap();
    assert_eq!(failure.kind, Kind::Firing);
    assert_eq!(failure.alert.severity, oc_alerts::Severity::High);
    assert_eq!(failure.alert.value, 0.2);
    assert_eq!(
        failure.alert.description,
        "Task failure rate is 20.00% (above 0.1)."
    );
    let conflicts = sent
        .iter()
        .find(|n| n.alert.rule == "OpencodeHighLockConflictRate")
        .unwrap();
    assert_eq!(conflicts.alert.value, 2.0, "two conflicts over one grant");

    // Thresholds are configurable: at 25 % the failure rate no longer alerts, and more than one
    // conflict is "many".
    let cfg = Config::parse("[thresholds]\nfailure_rate = 0.25\nconflicts = 1\n", "test").unwrap();
    let mut e = Engine::new(cfg.rules).unwrap();
    e.evaluate(&snap, T0).unwrap();
    let sent = e
        .evaluate(&snap, T0.saturating_add(Duration::from_secs(300)))
        .unwrap();
    assert_eq!(
        names(&sent),
        ["OpencodeHighLockConflictRate", "OpencodeManyLockConflicts"]
    );
}

#[test]
fn nothing_fires_on_an_empty_database() {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    let locks = MemoryLockManager::new();
    let snap = collect(&Sources::new(&store).storage(&store).locks(&locks)).unwrap();
    let mut e = Engine::new(Config::default().rules).unwrap();
    for h in [0, 3600, 7200] {
        let sent = e
            .evaluate(&snap, T0.saturating_add(Duration::from_secs(h)))
            .unwrap();
        assert!(sent.is_empty(), "{sent:?}");
    }
}
