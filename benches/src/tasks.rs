//! Product-path workloads through `oc-tasks`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A fresh store in its own temp directory.
pub fn fresh() -> oc_tasks::Result<(SqliteTaskStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().map_err(|e| oc_tasks::Error::Io {
        path: "tempdir".into(),
        source: e,
    })?;
    let store = SqliteTaskStore::open(dir.path().join("opencode.db"))?;
    Ok((store, dir))
}

/// `create_many` of `n` tasks in batches of 1,000 (one transaction each).
pub fn create_many(store: &SqliteTaskStore, n: usize, seed: u64) -> oc_tasks::Result<Duration> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                NewTask::new(format!("task {i}"))
                    .priority(rng.random_range(0..10))
                    .owner(format!("agent-{}", i % 8))
                    .meta("index", *i)
            })
            .collect();
        store.create_many(batch)?;
    }
    Ok(start.elapsed())
}

/// Tasks of the work-graph workloads.
pub const GRAPH_TASKS: usize = 100_000;
/// Claims timed by `claim_over_graph`.
pub const GRAPH_CLAIMS: usize = 5_000;
/// Dependents of the task `complete_fanout` completes.
pub const FANOUT: usize = 1_000;

/// Loads `GRAPH_TASKS` pending tasks in batches of 1,000; with `blocked`, nine in ten wait
/// for one gate task that is never completed (so they stay blocked), the rest are ready.
pub fn load_graph(store: &dyn TaskStore, blocked: bool) -> oc_tasks::Result<()> {
    let gate = oc_tasks::TaskId::new("gate")?;
    if blocked {
        store.create(NewTask::new("gate").id(gate.clone()).priority(-1))?;
    }
    for chunk in (0..GRAPH_TASKS).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                let t = NewTask::new(format!("task {i}")).priority((*i % 10) as i32);
                if blocked && i % 10 != 0 {
                    t.depends_on(gate.clone())
                } else {
                    t
                }
            })
            .collect();
        store.create_many(batch)?;
    }
    Ok(())
}

/// `claim_next` `GRAPH_CLAIMS` times on one thread over what `load_graph` loaded.
pub fn claim_over_graph(store: &dyn TaskStore) -> oc_tasks::Result<Duration> {
    let start = Instant::now();
    for _ in 0..GRAPH_CLAIMS {
        store.claim_next("w", Duration::from_secs(600))?;
    }
    Ok(start.elapsed())
}

/// Completing one task that `FANOUT` tasks wait for: the time of the `complete` call
/// (one transaction that makes all of them ready), checked.
pub fn complete_fanout(store: &dyn TaskStore, run: u64) -> oc_tasks::Result<Duration> {
    let hub = oc_tasks::TaskId::new(format!("hub{run}"))?;
    store.create(NewTask::new("hub").id(hub.clone()))?;
    store.create_many(
        (0..FANOUT)
            .map(|i| NewTask::new(format!("leaf {i}")).depends_on(hub.clone()))
            .collect(),
    )?;
    let t = store.claim(&hub, "w", Duration::from_secs(600))?;
    let start = Instant::now();
    store.complete(&hub, t.lease.map(|l| l.token), None)?;
    let took = start.elapsed();
    let ready = store.count(
        &oc_tasks::TaskFilter::new()
            .readiness(oc_tasks::Readiness::Ready)
            .dependents_of(hub),
    )?;
    if ready != FANOUT as u64 {
        return Err(oc_tasks::Error::InvalidInput {
            field: "fanout",
            reason: format!("{ready} of {FANOUT} dependents ready"),
        });
    }
    Ok(took)
}

/// Pages through every ready task, oldest first, 1,000 at a time; returns the tasks seen
/// and the time.
pub fn page_ready(store: &dyn TaskStore) -> oc_tasks::Result<(usize, Duration)> {
    let start = Instant::now();
    let mut after = None;
    let mut seen = 0;
    loop {
        let page = store.list(
            &oc_tasks::TaskQuery::new(
                oc_tasks::TaskFilter::new().readiness(oc_tasks::Readiness::Ready),
            )
            .order(oc_tasks::Order::Oldest)
            .limit(1000)
            .after(after),
        )?;
        seen += page.tasks.len();
        match page.next {
            Some(c) => after = Some(c),
            None => return Ok((seen, start.elapsed())),
        }
    }
}

/// Claims `n` tasks with `claim_next` from `threads` threads; returns the time.
pub fn claim_next(
    store: Arc<SqliteTaskStore>,
    n: usize,
    threads: usize,
) -> oc_tasks::Result<Duration> {
    let start = Instant::now();
    let per = n / threads;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || -> oc_tasks::Result<()> {
                    for _ in 0..per {
                        store.claim_next(&format!("w{t}"), Duration::from_secs(60))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("claim thread"))
    })?;
    Ok(start.elapsed())
}
