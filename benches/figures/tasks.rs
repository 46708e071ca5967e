//! `tasks.*`: the product path through oc-tasks, and the work-graph and paging figures the
//! PostgreSQL store reports too.

use std::sync::Arc;

use oc_benches::{peak_rss, reset_peak_rss, tasks};
use oc_tasks::TaskStore;

use crate::{Figures, emit, per_sec};

/// Product path through oc-tasks.
pub(crate) fn figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let (mut create, mut c1, mut c2, mut st) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs as u64 {
        let (store, _dir) = tasks::fresh()?;
        create.push(per_sec(100_000, tasks::create_many(&store, 100_000, run)?));
        let started = std::time::Instant::now();
        store.stats(5)?;
        st.push(started.elapsed().as_secs_f64() * 1000.0);
        for (threads, out) in [(1, &mut c1), (2, &mut c2)] {
            let (store, _dir) = tasks::fresh()?;
            tasks::create_many(&store, 5_000, run)?;
            out.push(per_sec(
                5_000,
                tasks::claim_next(Arc::new(store), 5_000, threads)?,
            ));
        }
    }
    emit("tasks.create_many", create, "tasks/s");
    emit("tasks.claim_next_1t", c1, "claims/s");
    emit("tasks.claim_next_2t", c2, "claims/s");
    emit("tasks.stats_100k", st, "ms");
    crate::batch::sqlite_figures(runs)?;
    let mut f = Figures::default();
    for run in 0..runs as u64 {
        graph_figures(&mut f, "tasks", run, &|| {
            let (store, dir) = tasks::fresh()?;
            Ok((
                Box::new(store) as Box<dyn oc_tasks::TaskStore>,
                Box::new(dir) as Box<dyn std::any::Any>,
            ))
        })?;
    }
    f.emit();

    if !quick {
        let (store, dir) = tasks::fresh()?;
        tasks::create_many(&store, 1_000_000, 7)?;
        drop(store);
        // Measure the stats call alone: a fresh handle, and the peak-RSS mark reset.
        let reset = reset_peak_rss();
        let before = peak_rss().unwrap_or(0);
        let store = oc_tasks::SqliteTaskStore::open(dir.path().join("opencode.db"))?;
        let mut times = vec![];
        for _ in 0..runs {
            let started = std::time::Instant::now();
            let s = store.stats(5)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(s.total == 1_000_000, "stats saw {} tasks", s.total);
        }
        emit("tasks.stats_1m", times, "ms");
        if reset {
            let peak = peak_rss().unwrap_or(0);
            emit(
                "tasks.stats_1m_peak_rss",
                vec![peak as f64 / 1024.0 / 1024.0],
                "MiB",
            );
            emit(
                "tasks.stats_1m_rss_growth",
                vec![peak.saturating_sub(before) as f64 / 1024.0 / 1024.0],
                "MiB",
            );
        }
        ready_pages(&store, "tasks")?;
    }
    Ok(())
}

/// `<prefix>.ready_pages_1m` (all 1,000,000 ready tasks of `store`, 1,000 a page) and the
/// peak RSS growth while paging.
pub(crate) fn ready_pages(store: &dyn oc_tasks::TaskStore, prefix: &str) -> anyhow::Result<()> {
    let reset = reset_peak_rss();
    let before = peak_rss().unwrap_or(0);
    let (seen, took) = tasks::page_ready(store)?;
    anyhow::ensure!(seen == 1_000_000, "paged {seen} ready tasks");
    emit(
        &format!("{prefix}.ready_pages_1m"),
        vec![took.as_secs_f64() * 1000.0],
        "ms",
    );
    if reset {
        let peak = peak_rss().unwrap_or(0);
        emit(
            &format!("{prefix}.ready_pages_1m_rss_growth"),
            vec![peak.saturating_sub(before) as f64 / 1024.0 / 1024.0],
            "MiB",
        );
    }
    Ok(())
}

/// The work-graph figures of one run on fresh stores from `fresh` (each kept with what it
/// needs alive): claims over 100,000 tasks with nine in ten blocked, against 100,000 without
/// dependencies; completing a task with 1,000 dependents.
pub(crate) type Fresh<'a> =
    &'a dyn Fn() -> anyhow::Result<(Box<dyn oc_tasks::TaskStore>, Box<dyn std::any::Any>)>;

pub(crate) fn graph_figures(
    f: &mut Figures,
    prefix: &str,
    run: u64,
    fresh: Fresh<'_>,
) -> anyhow::Result<()> {
    let (flat, _keep) = fresh()?;
    tasks::load_graph(&*flat, false)?;
    let flat_rate = per_sec(tasks::GRAPH_CLAIMS, tasks::claim_over_graph(&*flat)?);
    drop(flat);
    let (graph, _keep2) = fresh()?;
    tasks::load_graph(&*graph, true)?;
    let graph_rate = per_sec(tasks::GRAPH_CLAIMS, tasks::claim_over_graph(&*graph)?);
    let fanout = tasks::complete_fanout(&*graph, run)?;
    let name = |s: &str| format!("{prefix}.{s}");
    f.add(name("claim_next_flat_100k"), "claims/s", flat_rate);
    f.add(name("claim_next_blocked90_100k"), "claims/s", graph_rate);
    f.add(
        name("claim_blocked90_over_flat"),
        "x",
        graph_rate / flat_rate,
    );
    f.add(
        name("complete_fanout_1000"),
        "ms",
        fanout.as_secs_f64() * 1000.0,
    );
    Ok(())
}
