//! `oc-bench-figures`: runs the documented workloads and prints one JSON object per figure
//! (`bench`, `measured`, `unit`, plus details) per line. `cargo xtask bench-report` runs it in
//! release mode and sets the figures beside the documented ones.
//!
//! Usage: `oc-bench-figures [--runs N] [--quick] [--sqlite-only | --tasks-only | --locks-only | --jsonl-only | --hooks-only]`
//! (`--quick`: one run, no 1M-task stats).
#![allow(clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oc_benches::{hooks, jsonl, locks, metrics, peak_rss, reset_peak_rss, sqlite, tasks};
use oc_locks::{LockManager, MemoryLockManager, SqliteLockManager};
use oc_tasks::TaskStore;
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn emit(bench: &str, runs: Vec<f64>, unit: &str) {
    let m = median(runs.clone());
    println!(
        "{}",
        json!({ "bench": bench, "measured": m, "unit": unit, "runs": runs })
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = [
        "--sqlite-only",
        "--tasks-only",
        "--locks-only",
        "--jsonl-only",
        "--hooks-only",
        "--metrics-only",
        "--alerts-only",
    ]
    .into_iter()
    .find(|o| args.iter().any(|a| a == o));
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).context("--runs needs a number")?.parse()?,
        None if quick => 1,
        None => 5,
    };

    if only.is_none_or(|o| o == "--sqlite-only") {
        sqlite_figures(runs)?;
    }
    if only.is_none_or(|o| o == "--tasks-only") {
        task_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--locks-only") {
        lock_figures(runs)?;
    }
    if only.is_none_or(|o| o == "--jsonl-only") {
        jsonl_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--hooks-only") {
        hook_figures(runs)?;
    }
    if only.is_none_or(|o| o == "--metrics-only") {
        metric_figures(runs)?;
    }
    if only.is_none_or(|o| o == "--alerts-only") {
        alert_figures(runs)?;
    }
    Ok(())
}

/// One evaluation of 1,000 rules over a snapshot, in its steady state (the median of 20).
fn alert_figures(runs: usize) -> anyhow::Result<()> {
    let snap = oc_benches::alerts::snapshot();
    let mut per_run = Vec::new();
    for _ in 0..runs {
        let mut engine = oc_benches::alerts::engine(1000, &snap);
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let started = std::time::Instant::now();
                let sent = engine.evaluate(&snap, oc_time::Timestamp::EPOCH);
                let t = started.elapsed().as_secs_f64() * 1000.0;
                sent.map(|_| t)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        per_run.push(times[times.len() / 2]);
        anyhow::ensure!(
            engine.alerts().count() > 300,
            "a good share of the rules fire"
        );
    }
    emit("alerts.evaluate_1k_rules", per_run, "ms");
    Ok(())
}

/// sqlite.*: the original's sequence on one fresh database per run.
fn sqlite_figures(runs: usize) -> anyhow::Result<()> {
    let (mut ins, mut rd, mut rq, mut up, mut scan, mut main_b, mut wal_b, mut closed_b) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for _ in 0..runs {
        let mut db = sqlite::open_fresh()?;
        ins.push(per_sec(sqlite::ROWS, sqlite::batch_insert(&mut db)?));
        rd.push(per_sec(sqlite::READS, sqlite::single_read(&mut db)?));
        rq.push(per_sec(sqlite::RANGES, sqlite::range_query(&mut db)?));
        up.push(per_sec(sqlite::UPDATES, sqlite::update(&mut db)?));
        let (d, rows) = sqlite::full_scan(&mut db)?;
        scan.push(per_sec(rows, d));
        let (m, w) = sqlite::sizes(&db);
        main_b.push(m as f64);
        wal_b.push(w as f64);
        closed_b.push(sqlite::size_after_close(db) as f64);
    }
    emit("sqlite.batch_insert", ins, "rows/s");
    emit("sqlite.single_read", rd, "reads/s");
    emit("sqlite.range_query", rq, "queries/s");
    emit("sqlite.update", up, "updates/s");
    emit("sqlite.full_scan", scan, "rows/s");
    emit(
        "sqlite.db_size",
        main_b.iter().map(|b| b / 1024.0 / 1024.0).collect(),
        "MiB",
    );
    emit(
        "sqlite.db_size_wal",
        wal_b.iter().map(|b| b / 1024.0 / 1024.0).collect(),
        "MiB",
    );
    emit(
        "sqlite.db_size_closed",
        closed_b.iter().map(|b| b / 1024.0 / 1024.0).collect(),
        "MiB",
    );
    Ok(())
}

/// Product path through oc-tasks.
fn task_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
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
    }
    Ok(())
}

/// locks.*: the documented loop on `MemoryLockManager`, latencies, contention, and SQLite.
fn lock_figures(runs: usize) -> anyhow::Result<()> {
    let reqs = locks::requests();
    let (mut pairs, mut p50, mut p99, mut max, mut c50, mut c99, mut cmax, mut two, mut sql) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for _ in 0..runs {
        let m = MemoryLockManager::new();
        // Warm the allocator and caches the way a long-running agent would be.
        locks::acquire_release(&m, &reqs, 100_000)?;
        pairs.push(per_sec(
            locks::PAIRS,
            locks::acquire_release(&m, &reqs, locks::PAIRS)?,
        ));
        let mut lat = locks::acquisition_latencies(&m, &reqs, locks::PAIRS)?;
        lat.sort_unstable();
        p50.push(locks::quantile(&lat, 0.5) as f64);
        p99.push(locks::quantile(&lat, 0.99) as f64);
        max.push(*lat.last().unwrap_or(&0) as f64);
        let mut con = locks::conflict_latencies(&m, locks::REFUSALS)?;
        con.sort_unstable();
        c50.push(locks::quantile(&con, 0.5) as f64);
        c99.push(locks::quantile(&con, 0.99) as f64);
        cmax.push(*con.last().unwrap_or(&0) as f64);
        two.push(per_sec(200_000, locks::contended(&m, 2, 200_000)?));
        let dir = tempfile::tempdir()?;
        let s = SqliteLockManager::open(dir.path().join("locks.db"))?;
        sql.push(per_sec(5_000, locks::acquire_release(&s, &reqs, 5_000)?));
        let _ = s.stats()?;
    }
    emit("locks.acquire_release", pairs, "pairs/s");
    emit("locks.acquisition_latency_p50", p50, "ns");
    emit("locks.acquisition_latency_p99", p99, "ns");
    emit("locks.acquisition_latency_max", max, "ns");
    emit("locks.conflict_detection_p50", c50, "ns");
    emit("locks.conflict_detection_p99", c99, "ns");
    emit("locks.conflict_detection_max", cmax, "ns");
    emit("locks.contended_2t", two, "pairs/s");
    emit("locks.sqlite_acquire_release", sql, "pairs/s");
    Ok(())
}

/// jsonl.*: the documented append and read workloads, durable appends, a filtered read.
fn jsonl_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let (mut simple, mut batch, mut size, mut read, mut read_rss) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut filt, mut filt_rss) = (vec![], vec![]);
    let (mut fsync1, mut g1, mut g4, mut g16, mut g16s) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("simple.jsonl");
        simple.push(per_sec(
            jsonl::RECORDS,
            jsonl::simple_append(&p, jsonl::RECORDS)?,
        ));
        size.push(std::fs::metadata(&p)?.len() as f64 / 1024.0 / 1024.0);
        let b = dir.path().join("batch.jsonl");
        batch.push(per_sec(
            jsonl::RECORDS,
            jsonl::batch_append(&b, jsonl::RECORDS)?,
        ));
        std::fs::remove_file(&b)?;
        let reset = reset_peak_rss();
        let base = peak_rss().unwrap_or(0);
        let (d, lines) = jsonl::read_parse(&p)?;
        read.push(lines as f64 / d.as_secs_f64());
        if reset {
            read_rss.push(peak_rss().unwrap_or(0).saturating_sub(base) as f64 / 1024.0 / 1024.0);
        }
        let reset = reset_peak_rss();
        let (d, lines, _) = jsonl::filtered_read(&p)?;
        filt.push(lines as f64 / d.as_secs_f64());
        if reset {
            filt_rss.push(peak_rss().unwrap_or(0) as f64 / 1024.0 / 1024.0);
        }
        let run = Duration::from_millis(if quick { 300 } else { 1000 });
        let d = |name: &str| dir.path().join(name);
        use oc_jsonl::Durability::{Fsync, GroupCommit};
        let (none, spin) = (Duration::ZERO, Duration::from_micros(300));
        for (name, durability, spin, writers, out) in [
            ("f1", Fsync, none, 1, &mut fsync1),
            ("g1", GroupCommit, none, 1, &mut g1),
            ("g4", GroupCommit, none, 4, &mut g4),
            ("g16", GroupCommit, none, 16, &mut g16),
            ("g16s", GroupCommit, spin, 16, &mut g16s),
        ] {
            out.push(jsonl::durable(
                &d(&format!("{name}.jsonl")),
                durability,
                spin,
                writers,
                run,
            )?);
        }
    }
    let over_fsync1 =
        |g: &[f64]| -> Vec<f64> { g.iter().zip(&fsync1).map(|(g, f)| g / f).collect() };
    let (ratio, ratio_spin) = (over_fsync1(&g16), over_fsync1(&g16s));
    emit("jsonl.simple_append", simple, "records/s");
    emit("jsonl.batch_append", batch, "records/s");
    emit("jsonl.file_size", size, "MiB");
    emit("jsonl.read_parse", read, "lines/s");
    emit("jsonl.read_parse_rss_growth", read_rss, "MiB");
    emit("jsonl.filtered_read", filt, "lines/s");
    emit("jsonl.filtered_read_peak_rss", filt_rss, "MiB");
    emit("jsonl.durable_fsync_1w", fsync1, "appends/s");
    emit("jsonl.durable_group_1w", g1, "appends/s");
    emit("jsonl.durable_group_4w", g4, "appends/s");
    emit("jsonl.durable_group_16w", g16, "appends/s");
    emit("jsonl.durable_group_16w_spin", g16s, "appends/s");
    emit("jsonl.group16_over_fsync1", ratio, "x");
    emit("jsonl.group16_spin_over_fsync1", ratio_spin, "x");
    Ok(())
}

/// hooks.*: one lifecycle transition (a creation) with 0, 1 and 10 hooks, inline and background.
fn hook_figures(runs: usize) -> anyhow::Result<()> {
    const N: usize = 100_000;
    for (name, n, background) in [
        ("hooks.transition_0", 0, false),
        ("hooks.transition_1_inline", 1, false),
        ("hooks.transition_10_inline", 10, false),
        ("hooks.transition_1_background", 1, true),
        ("hooks.transition_10_background", 10, true),
    ] {
        let mut ns = Vec::new();
        for _ in 0..runs {
            let life = hooks::lifecycle(n, background);
            hooks::creates(&life, 10_000)?;
            let d = hooks::creates(&life, N)?;
            ns.push(d.as_nanos() as f64 / N as f64);
        }
        emit(name, ns, "ns");
    }
    Ok(())
}

/// metrics.*: what instrumentation adds to a transition, and rendering 10,000 series.
fn metric_figures(runs: usize) -> anyhow::Result<()> {
    const N: usize = 50_000;
    let (mut plain, mut instrumented, mut render) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        for (on, out) in [(false, &mut plain), (true, &mut instrumented)] {
            let (life, ids, _exporter) = metrics::lifecycle(N, on);
            let d = metrics::run(&life, &ids)?;
            out.push(d.as_nanos() as f64 / (2 * N) as f64);
        }
        let exporter = oc_metrics::Exporter::new()?;
        let snap = metrics::big_snapshot(10_000);
        exporter.render(&snap);
        let started = std::time::Instant::now();
        let text = exporter.render(&snap);
        render.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            text.lines()
                .filter(|l| l.starts_with("opencode_hook"))
                .count()
                >= 9_999,
            "10,000 series rendered"
        );
    }
    let added: Vec<f64> = instrumented
        .iter()
        .zip(&plain)
        .map(|(i, p)| i - p)
        .collect();
    emit("metrics.transition_plain", plain, "ns");
    emit("metrics.transition_instrumented", instrumented, "ns");
    emit("metrics.transition_added", added, "ns");
    emit("metrics.render_10k_series", render, "ms");
    Ok(())
}
