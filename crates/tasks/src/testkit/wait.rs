//! Waiting for work: a waiting claim is woken by a write, filters by labels, stops at its
//! deadline and when cancelled, and a stopped wait takes nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Factory, LEASE, id, new, setup};
use crate::{LabelFilter, Task, TaskStatus, TaskStore, Waiting};

/// A poll bound no test waits for: a claim that comes sooner was woken.
pub const LONG_POLL: Duration = Duration::from_secs(30);

/// What a wake must beat: far below [`LONG_POLL`], far above a loaded machine's scheduling.
pub const WAKE_WITHIN: Duration = Duration::from_secs(5);

/// Runs a waiting claim on `waiter` (labels `labels`, [`LONG_POLL`], up to `timeout`) on a
/// thread; once it has waited `before`, calls `write`; returns what it claimed and how long
/// after the write it answered.
pub fn wake_after(
    waiter: &dyn TaskStore,
    labels: &[&str],
    timeout: Duration,
    before: Duration,
    write: &(dyn Fn() + Sync),
) -> (Option<Task>, Duration) {
    let mut filter = LabelFilter::any();
    for l in labels {
        filter = filter.require(*l);
    }
    let (tx, rx) = mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(Some(tx));
    let watcher = |waited: Duration| {
        if waited >= before
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
        true
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let w = Waiting::new(timeout).poll(LONG_POLL).watch(&watcher);
            let got = waiter
                .claim_next_watched("waiter", LEASE, &filter, &w)
                .unwrap();
            (got, Instant::now())
        });
        rx.recv().expect("the waiter waits");
        let written = Instant::now();
        write();
        let (got, at) = h.join().expect("the waiter does not panic");
        (got, at.saturating_duration_since(written))
    })
}

/// A waiting claim is woken by a create on the same store, long before its poll bound, and
/// claims only what passes its labels.
pub fn check_wait_wakes_on_create(make: Factory<'_>) {
    let (s, _clock) = setup(make);
    let (got, after) = wake_after(
        &*s,
        &["gpu"],
        Duration::from_secs(60),
        Duration::from_millis(200),
        &|| {
            s.create(new("plain")).unwrap();
            s.create(new("gpu").label("gpu")).unwrap();
        },
    );
    let got = got.expect("the waiter claims the labelled task");
    assert_eq!(got.id, id("gpu"), "only a task with the labels is claimed");
    assert!(
        after < WAKE_WITHIN,
        "woken by the write, not by the {LONG_POLL:?} poll: answered {after:?} after it"
    );
    let plain = s.get(&id("plain")).unwrap().unwrap();
    assert_eq!(
        plain.status,
        TaskStatus::Pending,
        "the unlabelled task is left"
    );
}

/// A wait whose deadline passes answers nothing ready and takes nothing; a zero timeout is
/// one attempt.
pub fn check_wait_deadline(make: Factory<'_>) {
    let (s, _clock) = setup(make);
    s.create(new("other").label("cpu")).unwrap();
    let gpu = LabelFilter::any().require("gpu");
    let w = Waiting::new(Duration::from_millis(300));
    assert!(
        s.claim_next_watched("w", LEASE, &gpu, &w)
            .unwrap()
            .is_none(),
        "nothing with the labels within the wait"
    );
    let w = Waiting::new(Duration::ZERO);
    assert!(
        s.claim_next_watched("w", LEASE, &gpu, &w)
            .unwrap()
            .is_none()
    );
    let got = s
        .claim_next_watched("w", LEASE, &LabelFilter::any(), &w)
        .unwrap();
    assert_eq!(
        got.map(|t| t.id),
        Some(id("other")),
        "a ready task is claimed at once"
    );
}

/// A cancelled wait takes nothing: stopped while waiting it claims nothing written after,
/// and a task claimed as it was stopped is released (pending again, no lease, no attempt).
pub fn check_wait_cancel_takes_nothing(make: Factory<'_>) {
    let (s, _clock) = setup(make);
    // Stopped while waiting.
    let cancelled = AtomicBool::new(false);
    let watcher = |_: Duration| !cancelled.load(Ordering::SeqCst);
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let w = Waiting::new(Duration::from_secs(60))
                .poll(LONG_POLL)
                .watch(&watcher);
            s.claim_next_watched("w", LEASE, &LabelFilter::any(), &w)
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(100));
        cancelled.store(true, Ordering::SeqCst);
        assert!(h.join().unwrap().is_none(), "a cancelled wait answers none");
    });
    s.create(new("later")).unwrap();
    let later = s.get(&id("later")).unwrap().unwrap();
    assert_eq!(later.status, TaskStatus::Pending);
    assert_eq!(later.lease, None);

    // Stopped as it claimed: the watcher says go before the attempt, stop after it.
    let calls = AtomicUsize::new(0);
    let stop_after_first = |_: Duration| calls.fetch_add(1, Ordering::SeqCst) == 0;
    let w = Waiting::new(Duration::from_secs(60)).watch(&stop_after_first);
    let got = s
        .claim_next_watched("w", LEASE, &LabelFilter::any(), &w)
        .unwrap();
    assert!(got.is_none(), "a wait stopped as it claimed answers none");
    let t = s.get(&id("later")).unwrap().unwrap();
    assert_eq!(
        (t.status, t.lease, t.attempts),
        (TaskStatus::Pending, None, 0),
        "the task claimed as the wait stopped is given back, its attempt refunded"
    );
    assert!(
        s.claim_next("other", LEASE).unwrap().is_some(),
        "another agent can claim it at once"
    );
}
