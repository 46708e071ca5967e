//! The hot paths whose instruction counts are kept in `benches/instructions.json` and checked
//! by CI (`cargo xtask instructions --check`): each function runs its operation `ITERATIONS`
//! times on fixtures made before it, so callgrind's inclusive count of the function divided by
//! the iterations is the cost of one, repeatable on a noisy machine where time is not.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_jsonl::JsonlWriter;
use oc_locks::{LockManager, LockRequest};
use oc_tasks::{TaskId, TaskStore};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::jsonl;

/// Operations per hot path.
pub const ITERATIONS: usize = 2_000;
/// Records per batch in [`batched_append`].
pub const APPEND_BATCH: usize = 100;

/// The functions callgrind counts, by the name of their figure.
pub const PATHS: [(&str, &str); 4] = [
    ("lock_pair", "oc_benches::hot::lock_pair"),
    ("batched_append", "oc_benches::hot::batched_append"),
    ("claim", "oc_benches::hot::claim"),
    (
        "transition_with_hook",
        "oc_benches::hot::transition_with_hook",
    ),
];

/// An uncontended acquire and release on the lock manager, [`ITERATIONS`] times, cycling
/// through `reqs`.
#[inline(never)]
pub fn lock_pair(m: &dyn LockManager, reqs: &[LockRequest]) -> oc_locks::Result<()> {
    for i in 0..ITERATIONS {
        let l = m.try_acquire(&reqs[i % reqs.len()])?;
        m.release(&l.resource, &l.owner)?;
    }
    Ok(())
}

/// [`ITERATIONS`] records appended in batches of [`APPEND_BATCH`] (one write each).
#[inline(never)]
pub fn batched_append(w: &JsonlWriter, records: &[jsonl::Record]) -> oc_jsonl::Result<()> {
    for batch in records.chunks(APPEND_BATCH) {
        w.append_batch(batch)?;
    }
    Ok(())
}

/// [`ITERATIONS`] claims of the next ready task; returns each claimed task and its token.
#[inline(never)]
pub fn claim(store: &dyn TaskStore) -> oc_tasks::Result<Vec<(TaskId, u64)>> {
    let mut out = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        if let Some(t) = store.claim_next("hot", Duration::from_secs(3600))? {
            out.push((t.id.clone(), t.lease.map_or(0, |l| l.token)));
        }
    }
    Ok(out)
}

/// Each claimed task completed through the lifecycle, whose one before-hook runs first.
#[inline(never)]
pub fn transition_with_hook(
    life: &TaskLifecycle,
    claimed: &[(TaskId, u64)],
) -> oc_hooks::Result<()> {
    for (id, token) in claimed {
        life.complete(id, Some(*token), None)?;
    }
    Ok(())
}

/// Makes the fixtures in `dir` and runs every hot path once, in [`PATHS`] order.
pub fn run_all(dir: &Path) -> anyhow::Result<()> {
    let locks = oc_locks::SqliteLockManager::open(dir.join("opencode.db"))?;
    let reqs = super::locks::requests();
    lock_pair(&locks, &reqs)?;

    let w = JsonlWriter::open(dir.join("hot.jsonl"), oc_jsonl::WriterOptions::default())?;
    let mut rng = SmallRng::seed_from_u64(7);
    let records: Vec<jsonl::Record> = (0..ITERATIONS)
        .map(|i| jsonl::record(i, &mut rng))
        .collect();
    batched_append(&w, &records)?;

    let store: Arc<dyn TaskStore> =
        Arc::new(oc_tasks::SqliteTaskStore::open(dir.join("opencode.db"))?);
    store.create_many(
        (0..ITERATIONS)
            .map(|i| oc_tasks::NewTask::new(format!("hot {i}")))
            .collect(),
    )?;
    let claimed = claim(&*store)?;
    anyhow::ensure!(claimed.len() == ITERATIONS, "claimed {}", claimed.len());
    let hooks = Arc::new(Hooks::new());
    hooks.before("policy", &[], 0, |_| Ok(()));
    let life = TaskLifecycle::new(store, hooks);
    transition_with_hook(&life, &claimed)?;
    Ok(())
}
