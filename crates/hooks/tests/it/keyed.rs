//! Keyed transitions: before-hooks, then the store's keyed call; a replay runs no after-hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_tasks::{
    EventKind, IdempotencyKey, LabelFilter, NewTask, SqliteTaskStore, TaskId, TaskStatus,
    TaskStore, Waiting,
};

const LEASE: Duration = Duration::from_secs(60);

fn setup() -> (tempfile::TempDir, Arc<Hooks>, TaskLifecycle, Arc<AtomicU64>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteTaskStore::open(dir.path().join("opencode.db")).unwrap());
    let hooks = Arc::new(Hooks::new());
    let after = Arc::new(AtomicU64::new(0));
    let c = after.clone();
    hooks.after("count", &[], 0, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let life = TaskLifecycle::new(store, hooks.clone());
    (dir, hooks, life, after)
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new("w", k).unwrap()
}

#[test]
fn a_replay_runs_no_after_hook_and_changes_nothing() {
    let (_dir, _hooks, life, after) = setup();
    let k = key("create");
    let made = life.create_keyed(&k, NewTask::new("x")).unwrap();
    assert!(!made.replayed);
    let again = life.create_keyed(&k, NewTask::new("x")).unwrap();
    assert!(again.replayed);
    assert_eq!(again.value.task(), made.value.task());
    assert_eq!(after.load(Ordering::SeqCst), 1, "one Created after-hook");

    let id = made.value.task().id.clone();
    let k = key("claim");
    let c = life
        .claim_next_keyed(&k, "w", LEASE, &LabelFilter::any())
        .unwrap();
    let c = c.value.expect("x is ready");
    let again = life
        .claim_next_keyed(&k, "w", LEASE, &LabelFilter::any())
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.value.unwrap().task(), c.task(), "the first grant");
    assert_eq!(after.load(Ordering::SeqCst), 2);

    let token = c.task().lease.unwrap().token;
    let k = key("done");
    let done = life.complete_keyed(&k, &id, Some(token), None).unwrap();
    assert!(!done.replayed);
    // The task is completed now: the retry is not refused by the state machine, it replays.
    let again = life.complete_keyed(&k, &id, Some(token), None).unwrap();
    assert!(again.replayed);
    assert_eq!(again.value.task(), done.value.task());
    assert_eq!(after.load(Ordering::SeqCst), 3, "one Completed after-hook");
    assert_eq!(life.store().history(&id).unwrap().len(), 3);
    // Another request under the key is refused, naming the key rule.
    let e = life
        .complete_keyed(&k, &id, Some(token + 1), None)
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
}

#[test]
fn before_hooks_run_first_and_may_veto() {
    let (_dir, hooks, life, after) = setup();
    let id: TaskId = "t".parse().unwrap();
    life.create(NewTask::new("x").id(id.clone())).unwrap();
    let vetoing = Arc::new(AtomicBool::new(true));
    let v = vetoing.clone();
    hooks.before("gate", &[EventKind::Claimed], 0, move |_| {
        if v.load(Ordering::SeqCst) {
            Err("not now".into())
        } else {
            Ok(())
        }
    });
    let k = key("c");
    let e = life.claim_keyed(&k, &id, "w", LEASE).unwrap_err();
    assert!(e.is_vetoed(), "{e}");
    vetoing.store(false, Ordering::SeqCst);
    let c = life.claim_keyed(&k, &id, "w", LEASE).unwrap();
    assert!(!c.replayed, "a veto records no key");
    assert!(life.claim_keyed(&k, &id, "w", LEASE).unwrap().replayed);
    assert_eq!(after.load(Ordering::SeqCst), 2, "created, claimed");
    // Before-hooks on claims would pick the next task: a keyed claim of it is refused.
    let e = life
        .claim_next_keyed(&key("n"), "w", LEASE, &LabelFilter::any())
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert!(e.to_string().contains("idempotency key"), "{e}");
}

#[test]
fn a_keyed_wait_replays_and_what_it_gives_back_forgets_its_key() {
    let (_dir, _hooks, life, _after) = setup();
    let any = LabelFilter::any();
    let k = key("wait");
    // Nothing ready in time: nothing recorded.
    let none = life
        .claim_next_watched_keyed(
            &k,
            "w",
            LEASE,
            &any,
            &Waiting::new(Duration::from_millis(30)),
        )
        .unwrap();
    assert!(!none.replayed && none.value.is_none());
    let t = life.create(NewTask::new("x")).unwrap().into_task();
    // Stopped as it claimed: given back, and the key forgotten.
    let calls = AtomicU64::new(0);
    let stop_after_claim = |_: Duration| calls.fetch_add(1, Ordering::SeqCst) < 1;
    let wait = Waiting::new(LEASE).watch(&stop_after_claim);
    let stopped = life
        .claim_next_watched_keyed(&k, "w", LEASE, &any, &wait)
        .unwrap();
    assert!(stopped.value.is_none(), "a stopped wait takes nothing");
    let now = life.store().get(&t.id).unwrap().unwrap();
    assert_eq!(now.status, TaskStatus::Pending, "given back");
    // The retry claims afresh; its retry replays at once.
    let got = life
        .claim_next_watched_keyed(&k, "w", LEASE, &any, &Waiting::new(LEASE))
        .unwrap();
    assert!(!got.replayed, "the key was forgotten");
    let first = got.value.unwrap().into_task();
    let again = life
        .claim_next_watched_keyed(&k, "w", LEASE, &any, &Waiting::new(LEASE))
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.value.unwrap().into_task(), first);
    // The keyed give-back: released once; a second finds the lease gone.
    let token = first.lease.unwrap().token;
    assert!(
        life.give_back_keyed(&k, &first.id, token)
            .unwrap()
            .is_some()
    );
    assert!(
        life.give_back_keyed(&k, &first.id, token)
            .unwrap()
            .is_none()
    );
}
