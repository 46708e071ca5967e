//! Metrics workloads (`metrics.*` figures).

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_hooks::{Hooks, TaskEvent, TaskLifecycle};
use oc_metrics::{LatencyTracker, Snapshot};
use oc_tasks::{EventKind, MemoryTaskStore, NewTask, TaskId, TaskStore};

/// A lifecycle on an in-memory store with `n` pending tasks, with or without in-process
/// instrumentation: an after-hook recording each finished run into a `LatencyTracker`.
/// (Run durations themselves are counted by every store, instrumented or not.)
pub fn lifecycle(
    n: usize,
    instrumented: bool,
) -> (TaskLifecycle, Vec<TaskId>, Option<Arc<LatencyTracker>>) {
    let hooks = Arc::new(Hooks::new());
    let tracker = instrumented.then(|| Arc::new(LatencyTracker::new(Duration::from_secs(1))));
    if let Some(t) = &tracker {
        let t = t.clone();
        hooks.after(
            "task-duration",
            &[EventKind::Completed, EventKind::Failed],
            0,
            move |ev| {
                if let TaskEvent::Completed {
                    duration: Some(d), ..
                }
                | TaskEvent::Failed {
                    duration: Some(d), ..
                } = ev
                {
                    t.record("task", *d);
                }
                Ok(())
            },
        );
    }
    let store = Arc::new(MemoryTaskStore::new());
    let ids = store
        .create_many((0..n).map(|i| NewTask::new(format!("t{i}"))).collect())
        .expect("create")
        .into_iter()
        .map(|t| t.id)
        .collect();
    (TaskLifecycle::new(store, hooks), ids, tracker)
}

/// Starts and completes each task: two transitions each; returns the time.
#[inline(never)]
pub fn run(life: &TaskLifecycle, ids: &[TaskId]) -> oc_hooks::Result<Duration> {
    let start = Instant::now();
    for id in ids {
        life.start(id, "a")?;
        life.complete(id, None, None)?;
    }
    Ok(start.elapsed())
}

/// A snapshot with `series` hook series (three per hook), for render timing.
pub fn big_snapshot(series: usize) -> Snapshot {
    let tasks = MemoryTaskStore::new().stats(0).expect("stats");
    let hooks = (0..series / 3)
        .map(|i| oc_hooks::HookStats {
            id: i as u64,
            name: format!("hook-{i}"),
            runs: i as u64,
            ..Default::default()
        })
        .collect();
    Snapshot {
        taken_at: oc_time::Timestamp::now(),
        tasks,
        locks: None,
        storage: None,
        logs: None,
        process: None,
        latency: Vec::new(),
        violations: Vec::new(),
        hooks,
        alerts: None,
    }
}
