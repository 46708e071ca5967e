//! Lifecycle workloads (`hooks.*` figures): the cost of a transition with hooks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_hooks::{Hooks, Overflow, TaskLifecycle};
use oc_tasks::{MemoryTaskStore, NewTask};

/// A lifecycle on an in-memory store with `n` trivial after-hooks, inline or background
/// (no task logs: this measures the hook machinery, not the disk).
pub fn lifecycle(n: usize, background: bool) -> TaskLifecycle {
    let hooks = Arc::new(Hooks::new());
    for i in 0..n {
        let name = format!("h{i}");
        if background {
            // Drop on overflow: a benchmark must never wait for a worker.
            let _ = hooks.after_background(&name, &[], 0, 65_536, Overflow::Drop, |_| Ok(()));
        } else {
            hooks.after(&name, &[], 0, |_| Ok(()));
        }
    }
    TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), hooks)
}

/// `n` creations through `life`; returns the time.
#[inline(never)]
pub fn creates(life: &TaskLifecycle, n: usize) -> oc_hooks::Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        life.create(NewTask::new("t").priority((i % 7) as i32))?;
    }
    Ok(start.elapsed())
}
