//! Background after-hooks: they never slow a transition; overflow as chosen; shutdown drains.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::bounded;
use oc_hooks::{Hooks, Overflow, TaskLifecycle};
use oc_tasks::{EventKind, MemoryTaskStore, NewTask};

fn life(hooks: &Arc<Hooks>) -> TaskLifecycle {
    TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), hooks.clone())
}

/// Runs `f` on a thread and fails the test if it has not returned within 30 s (it would hang
/// forever if a transition waited for a blocked background hook).
fn must_return<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the transition did not wait for the hook")
}

#[test]
fn a_blocked_background_hook_does_not_hold_up_transitions() {
    let hooks = Arc::new(Hooks::new());
    let (started_tx, started_rx) = bounded::<()>(16);
    let (release_tx, release_rx) = bounded::<()>(16);
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    hooks
        .after_background(
            "webhook",
            &[EventKind::Completed],
            0,
            16,
            Overflow::Block,
            move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                s.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
    let life = life(&hooks);
    let t = life.create(NewTask::new("x")).unwrap().into_task();
    life.start(&t.id, "a").unwrap();
    let l2 = life.clone();
    let id = t.id.clone();
    let done = must_return(move || l2.complete(&id, None, None).unwrap());
    assert_eq!(done.task().status, oc_tasks::TaskStatus::Completed);
    started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the hook is still blocked, the transition is done"
    );
    release_tx.send(()).unwrap();
    assert_eq!(hooks.shutdown(Duration::from_secs(30)), 0);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn drop_overflow_counts_and_never_waits() {
    let hooks = Arc::new(Hooks::new());
    let (release_tx, release_rx) = bounded::<()>(64);
    hooks
        .after_background(
            "slow",
            &[EventKind::Created],
            0,
            1,
            Overflow::Drop,
            move |_| {
                let _ = release_rx.recv();
                Ok(())
            },
        )
        .unwrap();
    let life = life(&hooks);
    let dropped = must_return(move || {
        (0..10)
            .map(|_| life.create(NewTask::new("x")).unwrap().hooks.dropped)
            .sum::<u64>()
    });
    // One event is being handled, one waits in the queue; the rest are dropped.
    assert!(dropped >= 8, "dropped {dropped}");
    assert_eq!(hooks.stats()[0].dropped, dropped);
    for _ in 0..10 {
        release_tx.send(()).unwrap();
    }
    hooks.shutdown(Duration::from_secs(30));
    assert_eq!(hooks.stats()[0].runs + dropped, 10);
}

#[test]
fn shutdown_drains_the_queue() {
    let hooks = Arc::new(Hooks::new());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    hooks
        .after_background("collect", &[], 0, 100, Overflow::Block, move |ev| {
            std::thread::yield_now();
            g.lock().unwrap().push(ev.task().name.clone());
            Ok(())
        })
        .unwrap();
    let life = life(&hooks);
    for i in 0..50 {
        life.create(NewTask::new(format!("t{i}"))).unwrap();
    }
    assert_eq!(
        hooks.shutdown(Duration::from_secs(30)),
        0,
        "every worker finished in time"
    );
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 50, "nothing queued was lost");
    assert_eq!(got[49], "t49", "in order");
    assert!(
        hooks.list().is_empty(),
        "background hooks are gone after shutdown"
    );
}
