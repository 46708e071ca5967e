//! Batches (decision 0049): claim-and-complete throughput with `BatchWorker` (claims of up to
//! 16, completions acknowledged 16 at a time) beside one `claim_next` and one `complete` per
//! task, on SQLite (`tasks.*`) and PostgreSQL (`pg.*`, 16 threads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use oc_tasks::worker::BatchWorker;
use oc_tasks::{NewTask, TaskStore};

use crate::{Figures, per_sec};

/// Tasks per measurement.
const TASKS: usize = 4_000;
const LEASE: Duration = Duration::from_secs(600);

fn load(store: &dyn TaskStore) -> anyhow::Result<()> {
    for b in 0..TASKS / 1000 {
        store.create_many(
            (0..1000)
                .map(|i| NewTask::new(format!("b{b}-{i}")))
                .collect(),
        )?;
    }
    Ok(())
}

/// Runs `threads` loops of one `claim_next` and one `complete` until nothing is ready;
/// answers the tasks completed.
fn one_at_a_time(store: &Arc<dyn TaskStore>, threads: usize) -> anyhow::Result<usize> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || -> anyhow::Result<usize> {
                    let mut n = 0;
                    while let Some(task) = store.claim_next(&format!("w{t}"), LEASE)? {
                        store.complete(&task.id, task.lease.map(|l| l.token), None)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a thread panicked"))?)
            .sum()
    })
}

/// Runs `threads` `BatchWorker`s of 16 until nothing is ready; answers the tasks completed.
fn batched(store: &Arc<dyn TaskStore>, threads: usize) -> anyhow::Result<usize> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || -> anyhow::Result<usize> {
                    let w = BatchWorker::builder(store, &format!("w{t}"))
                        .batch(16)
                        .ttl(LEASE)
                        .start()?;
                    let mut n = 0;
                    while let Some(task) = w.next()? {
                        w.complete(&task, None)?;
                        n += 1;
                    }
                    let lost = w.shutdown()?;
                    anyhow::ensure!(lost.is_empty(), "lost leases: {lost:?}");
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a thread panicked"))?)
            .sum()
    })
}

/// One measurement: `TASKS` tasks loaded into a fresh store, then run by `run`.
fn measure(
    fresh: &dyn Fn() -> anyhow::Result<Arc<dyn TaskStore>>,
    run: &dyn Fn(&Arc<dyn TaskStore>) -> anyhow::Result<usize>,
) -> anyhow::Result<f64> {
    let store = fresh()?;
    load(&*store)?;
    let started = Instant::now();
    let n = run(&store)?;
    anyhow::ensure!(n == TASKS, "ran {n} of {TASKS} tasks");
    Ok(per_sec(n, started.elapsed()))
}

/// `tasks.claim_complete_1t` (one at a time, one thread), `tasks.batch_claim_complete` (one
/// `BatchWorker` of 16) and their ratio, on a SQLite file.
pub(crate) fn sqlite_figures(runs: usize) -> anyhow::Result<()> {
    let mut f = Figures::default();
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let n = std::sync::atomic::AtomicUsize::new(0);
        let fresh = || -> anyhow::Result<Arc<dyn TaskStore>> {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("batch{i}.db"));
            Ok(Arc::new(oc_tasks::SqliteTaskStore::open(path)?))
        };
        let single = measure(&fresh, &|s| one_at_a_time(s, 1))?;
        let batch = measure(&fresh, &|s| batched(s, 1))?;
        f.add("tasks.claim_complete_1t", "tasks/s", single);
        f.add("tasks.batch_claim_complete", "tasks/s", batch);
        f.add("tasks.batch_over_single", "x", batch / single);
    }
    f.emit();
    Ok(())
}

/// `pg.claim_complete_16` (16 threads, one at a time), `pg.batch_claim_complete_16` (16
/// `BatchWorker`s of 16) and their ratio, on `pg` (pool of 16).
pub(crate) fn pg_figures(pg: &oc_postgres::testkit::PgServer, runs: usize) -> anyhow::Result<()> {
    use oc_postgres::{PgOptions, PgTaskStore};
    let mut f = Figures::default();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || -> anyhow::Result<Arc<dyn TaskStore>> {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let opts = PgOptions::new(&pg.url("postgres"))?
            .schema(&format!("batch{i}"))?
            .pool_size(16);
        Ok(Arc::new(PgTaskStore::connect(opts).context("connect")?))
    };
    for _ in 0..runs {
        let single = measure(&fresh, &|s| one_at_a_time(s, 16))?;
        let batch = measure(&fresh, &|s| batched(s, 16))?;
        f.add("pg.claim_complete_16", "tasks/s", single);
        f.add("pg.batch_claim_complete_16", "tasks/s", batch);
        f.add("pg.batch_over_single_16", "x", batch / single);
    }
    f.emit();
    Ok(())
}
