//! Vetoes, isolation of failing hooks, ordering, races, logs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use oc_hooks::{Hooks, TaskEvent, TaskLifecycle};
use oc_jsonl::{DirFileStore, LogEntry, TaskFileStore, TaskFiles};
use oc_tasks::{EventKind, LabelFilter, NewTask, SqliteTaskStore, TaskId, TaskStatus, TaskStore};

fn setup() -> (
    tempfile::TempDir,
    Arc<SqliteTaskStore>,
    Arc<Hooks>,
    TaskLifecycle,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteTaskStore::open(dir.path().join("opencode.db")).unwrap());
    let hooks = Arc::new(Hooks::new());
    let life = TaskLifecycle::new(store.clone(), hooks.clone());
    (dir, store, hooks, life)
}

fn log_lines(dir: &std::path::Path, id: &str) -> Vec<LogEntry> {
    TaskFiles::new(dir, id).unwrap().logs().records().unwrap().0
}

#[test]
fn a_veto_writes_nothing() {
    let (dir, store, hooks, life) = setup();
    let t = life
        .create(NewTask::new("x").id("t1".parse().unwrap()))
        .unwrap()
        .into_task();
    life.start(&t.id, "a").unwrap();
    let before = store.get(&t.id).unwrap().unwrap();
    let recorded = store.history(&t.id).unwrap();
    let after_ran = Arc::new(AtomicU64::new(0));
    let c = after_ran.clone();
    hooks.after("count", &[], 0, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    hooks.before("no-completion", &[EventKind::Completed], 0, |ev| {
        Err(format!("not yet: {}", ev.task().id))
    });
    let e = life.complete(&t.id, None, None).unwrap_err();
    assert!(e.is_vetoed(), "{e}");
    assert_eq!(e.to_string(), "vetoed by hook no-completion: not yet: t1");
    assert_eq!(
        store.get(&t.id).unwrap().unwrap(),
        before,
        "byte-for-byte unchanged"
    );
    assert_eq!(
        store.history(&t.id).unwrap(),
        recorded,
        "nothing in the history"
    );
    assert_eq!(after_ran.load(Ordering::SeqCst), 0);
    // A transition the state machine refuses never reaches the hooks.
    let vetoes = hooks.stats().iter().map(|s| s.vetoes).sum::<u64>();
    let e = life.retry(&t.id).unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(hooks.stats().iter().map(|s| s.vetoes).sum::<u64>(), vetoes);
    // Creation can be vetoed too, and leaves no task.
    hooks.before("no-forbidden", &[EventKind::Created], 0, |ev| {
        if ev.task().name.starts_with("forbidden-") {
            Err("forbidden".into())
        } else {
            Ok(())
        }
    });
    assert!(
        life.create(NewTask::new("forbidden-x").id("f1".parse().unwrap()))
            .unwrap_err()
            .is_vetoed()
    );
    assert!(store.get(&"f1".parse().unwrap()).unwrap().is_none());
    assert!(!dir.path().join("tasks").join("f1").exists());
}

#[test]
fn failing_and_panicking_after_hooks_are_isolated() {
    let (_dir, store, hooks, life) = setup();
    let order = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    hooks.on_failure(move |fail| f.lock().unwrap().push(fail.hook.clone()));
    for (name, prio) in [("third", 5), ("first", -1), ("second", 0), ("second-b", 0)] {
        let o = order.clone();
        hooks.after(name, &[EventKind::Completed], prio, move |_| {
            o.lock().unwrap().push(name);
            Ok(())
        });
    }
    hooks.after("errs", &[EventKind::Completed], 1, |_| {
        Err("webhook down".into())
    });
    hooks.after("panics", &[EventKind::Completed], 2, |_| panic!("boom"));
    let t = life.create(NewTask::new("x")).unwrap().into_task();
    life.start(&t.id, "a").unwrap();
    let c = life.complete(&t.id, None, None).unwrap();
    assert_eq!(c.task().status, TaskStatus::Completed);
    assert_eq!(
        store.get(&t.id).unwrap().unwrap().status,
        TaskStatus::Completed,
        "the change stands"
    );
    assert_eq!(
        *order.lock().unwrap(),
        ["first", "second", "second-b", "third"],
        "priority order, ties by registration"
    );
    let failed: Vec<&str> = c.hooks.failures.iter().map(|f| f.hook.as_str()).collect();
    assert_eq!(failed, ["errs", "panics"]);
    assert!(c.hooks.failures[1].error.contains("boom"));
    assert_eq!(
        *failures.lock().unwrap(),
        ["errs", "panics"],
        "reported through the callback too"
    );
    let stats: HashMap<String, u64> = hooks
        .stats()
        .into_iter()
        .map(|s| (s.name, s.failures))
        .collect();
    assert_eq!((stats["errs"], stats["panics"], stats["first"]), (1, 1, 0));
    let listed: Vec<String> = hooks.list().into_iter().map(|h| h.name).collect();
    assert_eq!(
        listed,
        ["first", "second", "second-b", "errs", "panics", "third"]
    );
    let id = hooks.list()[3].id;
    assert!(hooks.unregister(id));
    assert!(!hooks.unregister(id));
    assert_eq!(hooks.list().len(), 5);
}

#[test]
fn every_transition_is_in_the_store_history_and_none_in_the_agents_log() {
    let (dir, store, _hooks, life) = setup();
    let t = life
        .create(NewTask::new("x").id("t1".parse().unwrap()))
        .unwrap()
        .into_task();
    let claimed = life
        .claim(&t.id, "agent-1", Duration::from_secs(30))
        .unwrap()
        .into_task();
    life.fail(&t.id, claimed.lease.map(|l| l.token), "broke")
        .unwrap();
    life.retry(&t.id).unwrap();
    life.cancel(&t.id).unwrap();
    let token = claimed.lease.unwrap().token;
    let lines: Vec<String> = store
        .history(&t.id)
        .unwrap()
        .iter()
        .map(|e| e.describe())
        .collect();
    assert_eq!(
        lines,
        [
            "created: none -> pending".to_owned(),
            format!("claimed: pending -> running by agent-1 (token {token})"),
            format!("failed: running -> failed by agent-1 (token {token}): broke"),
            "retried: failed -> pending".to_owned(),
            "cancelled: pending -> cancelled".to_owned(),
        ]
    );
    assert!(
        !TaskFiles::new(dir.path(), "t1")
            .unwrap()
            .log_path()
            .exists(),
        "logs.jsonl is the agent's own"
    );
}

#[test]
fn slow_hooks_are_reported() {
    let hooks = Arc::new(Hooks::with_slow_threshold(Duration::ZERO));
    hooks.after("any", &[], 0, |_| Ok(()));
    let life = TaskLifecycle::new(Arc::new(oc_tasks::MemoryTaskStore::new()), hooks.clone());
    let c = life.create(NewTask::new("x")).unwrap();
    assert_eq!(c.hooks.slow.len(), 1);
    assert_eq!(hooks.stats()[0].slow, 1);
}

#[test]
fn claim_next_passes_over_vetoed_tasks() {
    let (_dir, _store, hooks, life) = setup();
    for (id, prio) in [("hot-forbidden", 9), ("ok", 1)] {
        life.create(NewTask::new(id).id(id.parse().unwrap()).priority(prio))
            .unwrap();
    }
    hooks.before("skip", &[EventKind::Claimed], 0, |ev| {
        if ev.task().name.contains("forbidden") {
            Err("not for agents".into())
        } else {
            Ok(())
        }
    });
    let got = life
        .claim_next("a", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!(got.task().id.as_str(), "ok");
    assert!(got.task().lease.is_some());
    assert!(
        life.claim_next("a", Duration::from_secs(30))
            .unwrap()
            .is_none()
    );
}

#[test]
fn racing_transitions_fire_after_hooks_exactly_once() {
    let (_dir, _store, hooks, life) = setup();
    let fired: Arc<Mutex<Vec<(TaskId, EventKind)>>> = Arc::new(Mutex::new(Vec::new()));
    let f = fired.clone();
    hooks.after(
        "record",
        &[
            EventKind::Completed,
            EventKind::Failed,
            EventKind::Cancelled,
        ],
        0,
        move |ev| {
            f.lock().unwrap().push((ev.task().id.clone(), ev.kind()));
            Ok(())
        },
    );
    // A before-hook widens the window between reading the task and writing it.
    hooks.before(
        "dawdle",
        &[
            EventKind::Completed,
            EventKind::Failed,
            EventKind::Cancelled,
        ],
        0,
        |_| {
            std::thread::yield_now();
            Ok(())
        },
    );
    let ids: Vec<TaskId> = (0..30)
        .map(|i| {
            let t = life
                .create(NewTask::new("r").id(format!("r{i}").parse().unwrap()))
                .unwrap()
                .into_task();
            life.start(&t.id, "a").unwrap();
            t.id
        })
        .collect();
    let wins = AtomicU64::new(0);
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for th in 0..8 {
            let (life, ids, wins, barrier) = (&life, &ids, &wins, &barrier);
            s.spawn(move || {
                barrier.wait();
                for id in ids {
                    let r = match th % 3 {
                        0 => life.complete(id, None, None),
                        1 => life.fail(id, None, "x"),
                        _ => life.cancel(id),
                    };
                    match r {
                        Ok(_) => {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => assert!(e.is_conflict(), "losers lose cleanly: {e}"),
                    }
                }
            });
        }
    });
    let fired = fired.lock().unwrap();
    assert_eq!(
        wins.load(Ordering::SeqCst),
        30,
        "exactly one transition per task wins"
    );
    assert_eq!(
        fired.len(),
        30,
        "after-hooks fired once per committed transition"
    );
    let mut per_task: HashMap<&TaskId, usize> = HashMap::new();
    for (id, _) in fired.iter() {
        *per_task.entry(id).or_default() += 1;
    }
    assert!(per_task.values().all(|&n| n == 1));
    let _ = TaskEvent::Cancelled {
        task: life.store().require(&ids[0]).unwrap(),
    }
    .kind();
}

#[test]
fn builtin_checkpoint_before_completion() {
    let (dir, _store, hooks, life) = setup();
    let files: Arc<dyn TaskFileStore> = Arc::new(DirFileStore::new(dir.path()));
    hooks.before(
        "checkpoint",
        &[EventKind::Completed],
        0,
        oc_hooks::builtin::checkpoint_before_completion(Arc::clone(&files)),
    );
    let t = life
        .create(NewTask::new("x").id("c1".parse().unwrap()))
        .unwrap()
        .into_task();
    life.start(&t.id, "a").unwrap();
    files
        .append_log(
            "c1",
            &LogEntry::new(
                oc_tasks::Timestamp::now(),
                oc_jsonl::Level::Info,
                "c1",
                "tests pass",
            ),
        )
        .unwrap();
    life.complete(&t.id, None, None).unwrap();
    let cps = files.checkpoints("c1").unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].description, "Checkpoint before completion");
    // The checkpoint holds the agent's log as it was when the completion was asked for.
    files
        .append_log(
            "c1",
            &LogEntry::new(
                oc_tasks::Timestamp::now(),
                oc_jsonl::Level::Info,
                "c1",
                "after",
            ),
        )
        .unwrap();
    files.restore_checkpoint("c1", &cps[0].id).unwrap();
    let events: Vec<String> = log_lines(dir.path(), "c1")
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(events, ["tests pass"]);
}

#[test]
fn a_checkpoint_that_cannot_be_written_vetoes_the_completion() {
    let (dir, _store, hooks, life) = setup();
    let files: Arc<dyn TaskFileStore> = Arc::new(DirFileStore::new(dir.path()));
    hooks.before(
        "checkpoint",
        &[EventKind::Completed],
        0,
        oc_hooks::builtin::checkpoint_before_completion(Arc::clone(&files)),
    );
    let t = life
        .create(NewTask::new("x").id("c2".parse().unwrap()))
        .unwrap()
        .into_task();
    life.start(&t.id, "a").unwrap();
    // The task's directory is a link: the store refuses it, and the completion with it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("tasks/c2")).unwrap();
    let e = life.complete(&t.id, None, None).unwrap_err();
    assert!(e.is_vetoed(), "{e}");
    assert!(e.to_string().contains("checkpoint failed"), "{e}");
    assert_eq!(
        life.store().require(&t.id).unwrap().status,
        TaskStatus::Running
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written there"
    );
}

#[test]
fn claims_through_hooks_take_ready_tasks_that_pass_the_filter() {
    let (_dir, _store, hooks, life) = setup();
    let first = TaskId::new("first").unwrap();
    life.create(NewTask::new("first").id(first.clone()).label("backend"))
        .unwrap();
    for (id, prio, label) in [("after", 9, "frontend"), ("css", 1, "frontend")] {
        let mut t = NewTask::new(id)
            .id(id.parse().unwrap())
            .priority(prio)
            .label(label);
        if id == "after" {
            t = t.depends_on(first.clone());
        }
        life.create(t).unwrap();
    }
    // A before-hook takes the careful path: candidates listed, then claimed one by one.
    hooks.before("allow", &[EventKind::Claimed], 0, |_| Ok(()));
    let front = LabelFilter::any().require("frontend");
    let ttl = Duration::from_secs(30);
    let got = life
        .claim_next_matching("fe", ttl, &front)
        .unwrap()
        .unwrap();
    assert_eq!(
        got.task().id.as_str(),
        "css",
        "the blocked one is passed over"
    );
    assert!(
        life.claim_next_matching("fe", ttl, &front)
            .unwrap()
            .is_none()
    );
}

#[test]
fn creating_a_duplicate_by_unique_key_fires_no_after_hook() {
    let (_dir, store, hooks, life) = setup();
    let created = Arc::new(AtomicU64::new(0));
    let c = created.clone();
    hooks.after("count", &[EventKind::Created], 0, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let a = life
        .create(NewTask::new("plan").unique_key("plan"))
        .unwrap();
    let b = life
        .create(NewTask::new("plan").unique_key("plan"))
        .unwrap();
    assert!(!a.duplicate && b.duplicate);
    assert_eq!(a.task(), b.task());
    assert_eq!(created.load(Ordering::SeqCst), 1);
    assert_eq!(store.count(&oc_tasks::TaskFilter::new()).unwrap(), 1);
}

#[test]
fn a_cascading_delete_fires_one_event_per_task() {
    let (_dir, store, hooks, life) = setup();
    let deleted: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let d = deleted.clone();
    hooks.after("record", &[EventKind::Deleted], 0, move |ev| {
        d.lock().unwrap().push(ev.task().id.to_string());
        Ok(())
    });
    let root = TaskId::new("root").unwrap();
    life.create(NewTask::new("root").id(root.clone())).unwrap();
    life.create(
        NewTask::new("leaf")
            .id("leaf".parse().unwrap())
            .depends_on(root.clone()),
    )
    .unwrap();
    let e = life.delete(&root).unwrap_err();
    assert!(e.to_string().contains("leaf"), "{e}");
    let gone = life
        .delete_with(&root, oc_tasks::OnDependents::Cascade)
        .unwrap();
    assert_eq!(gone.len(), 2);
    assert_eq!(*deleted.lock().unwrap(), ["root", "leaf"]);
    assert_eq!(store.count(&oc_tasks::TaskFilter::new()).unwrap(), 0);
}

#[test]
fn a_failure_put_back_by_its_retry_policy_fires_the_failure_hooks() {
    // One list of kinds: the history records `retry_scheduled`, and the hooks on failures see
    // the run that failed (a `Failed` event, the task pending again); no event is of kind
    // `RetryScheduled`.
    let (_dir, store, hooks, life) = setup();
    let seen: Arc<Mutex<Vec<(EventKind, TaskStatus, String)>>> = Arc::default();
    let s = seen.clone();
    hooks.before("failures", &[EventKind::Failed], 0, move |ev| {
        if let TaskEvent::Failed { task, error, .. } = ev {
            s.lock()
                .unwrap()
                .push((ev.kind(), task.status, error.clone()));
        }
        Ok(())
    });
    let never = Arc::new(AtomicU64::new(0));
    let n = never.clone();
    hooks.after(
        "retry-scheduled",
        &[EventKind::RetryScheduled],
        0,
        move |_| {
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
    );
    let t = life
        .create(
            NewTask::new("x")
                .id("t1".parse().unwrap())
                .max_attempts(2)
                .retry(oc_tasks::RetryPolicy::backoff(
                    Duration::from_millis(1),
                    Duration::from_millis(1),
                )),
        )
        .unwrap()
        .into_task();
    life.start(&t.id, "a").unwrap();
    let c = life.fail(&t.id, None, "broke").unwrap();
    assert!(matches!(c.event, TaskEvent::Failed { .. }));
    assert_eq!(c.event.kind(), EventKind::Failed);
    assert_eq!(c.task().status, TaskStatus::Pending);
    assert_eq!(
        store.history(&t.id).unwrap().last().map(|h| h.kind),
        Some(EventKind::RetryScheduled)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [(EventKind::Failed, TaskStatus::Pending, "broke".to_owned())]
    );
    assert_eq!(never.load(Ordering::Relaxed), 0);
}
