//! `oc-bench-figures`: runs the documented workloads and prints one JSON object per figure
//! (`bench`, `measured`, `unit`, plus details) per line. `cargo xtask bench-report` runs it in
//! release mode and sets the figures beside the documented ones.
//!
//! Usage: `oc-bench-figures [--runs N] [--quick] [--sqlite-only | --tasks-only | --locks-only | --jsonl-only | --hooks-only | --metrics-only | --alerts-only | --pg-only | --mcp-only | --web-only]`
//! (`--quick`: one run, no 1M-task stats).
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oc_benches::{hooks, jsonl, locks, mcp, metrics, peak_rss, reset_peak_rss, sqlite, tasks};
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

/// Samples per figure, one per run, printed in the order the figures were first recorded.
#[derive(Default)]
struct Figures(Vec<(String, &'static str, Vec<f64>)>);

impl Figures {
    fn add(&mut self, bench: impl Into<String>, unit: &'static str, value: f64) {
        let bench = bench.into();
        match self.0.iter_mut().find(|(b, ..)| *b == bench) {
            Some((.., runs)) => runs.push(value),
            None => self.0.push((bench, unit, vec![value])),
        }
    }

    /// The samples of `bench` so far.
    fn runs(&self, bench: &str) -> Vec<f64> {
        self.0
            .iter()
            .find(|(b, ..)| *b == bench)
            .map(|(.., runs)| runs.clone())
            .unwrap_or_default()
    }

    fn emit(self) {
        for (bench, unit, runs) in self.0 {
            emit(&bench, runs, unit);
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

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
        "--pg-only",
        "--mcp-only",
        "--web-only",
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
    if only.is_none_or(|o| o == "--pg-only") {
        pg_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--mcp-only") {
        mcp_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--web-only") {
        web_figures(runs, quick)?;
    }
    Ok(())
}

/// pg.*: the PostgreSQL store and lock manager against a throwaway server (Unix socket,
/// `fsync=off`, `synchronous_commit=off`), and the same claim statement driven by `pgbench`.
fn pg_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    use oc_postgres::testkit::{PgServer, claim_next_sql, server_binaries};
    use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
    use oc_tasks::NewTask;

    const CREATE: usize = 100_000;
    const CLAIMS: usize = 16_000;
    let Some(bin) = server_binaries() else {
        eprintln!("pg figures skipped: no PostgreSQL server binaries");
        return Ok(());
    };
    let pg = PgServer::start()?;
    let mut f = Figures::default();
    for run in 0..runs {
        let opts = |schema: &str, pool: usize| -> anyhow::Result<PgOptions> {
            Ok(PgOptions::new(&pg.url("postgres"))?
                .schema(schema)?
                .pool_size(pool))
        };
        let schema = format!("bench{run}");
        let store = Arc::new(PgTaskStore::connect(opts(&schema, 16)?)?);
        let started = std::time::Instant::now();
        for b in 0..CREATE / 1000 {
            store.create_many(
                (0..1000)
                    .map(|i| NewTask::new(format!("b{b}-{i}")))
                    .collect(),
            )?;
        }
        f.add(
            "pg.create_many",
            "tasks/s",
            per_sec(CREATE, started.elapsed()),
        );
        let mut latencies = Vec::new();
        for (threads, name) in [
            (1, "pg.claim_next_1t"),
            (4, "pg.claim_next_4t"),
            (16, "pg.claim_next_16t"),
        ] {
            let per = if threads == 1 {
                2_000
            } else {
                CLAIMS / threads
            };
            let started = std::time::Instant::now();
            let lat = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let store = store.clone();
                        s.spawn(move || -> anyhow::Result<Vec<f64>> {
                            let mut v = Vec::with_capacity(per);
                            for _ in 0..per {
                                let at = std::time::Instant::now();
                                store
                                    .claim_next(&format!("w{t}"), Duration::from_secs(600))?
                                    .context("ran out of pending tasks")?;
                                v.push(at.elapsed().as_secs_f64() * 1000.0);
                            }
                            Ok(v)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .map_err(|_| anyhow::anyhow!("a claim thread panicked"))?
                    })
                    .collect::<anyhow::Result<Vec<Vec<f64>>>>()
            })?;
            f.add(name, "claims/s", per_sec(per * threads, started.elapsed()));
            if threads == 16 {
                latencies = lat.concat();
            }
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        f.add("pg.claim_latency_16t_p50", "ms", pct(0.50));
        f.add("pg.claim_latency_16t_p99", "ms", pct(0.99));

        // The same statement, as fast as the engine takes it: pgbench, 16 clients, prepared.
        let sql = claim_next_sql(&schema)
            .replace("$1", "'pgbench'")
            .replace("$2::bigint", "600000::bigint")
            .replace("$3::bigint", "NULL::bigint")
            .replace("$4::text[]", "'{}'::text[]")
            .replace("$5::text[]", "'{}'::text[]");
        let script = std::env::temp_dir().join(format!("oc-claim-{}.sql", std::process::id()));
        std::fs::write(&script, format!("{};\n", sql.trim()))?;
        let out = std::process::Command::new(bin.join("pgbench"))
            .arg("-h")
            .arg(pg.socket_dir())
            .args([
                "-p", "5432", "-U", "postgres", "-n", "-M", "prepared", "-c", "16", "-j", "2",
            ])
            .args(["-t", &(CLAIMS / 16).to_string(), "-f"])
            .arg(&script)
            .arg("postgres")
            .output()?;
        std::fs::remove_file(&script)?;
        anyhow::ensure!(
            out.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let tps: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .context("no tps in pgbench's output")?
            .parse()?;
        f.add("pg.pgbench_claim_16c", "claims/s", tps);
        let ours = f.runs("pg.claim_next_16t").last().copied().unwrap_or(0.0);
        f.add("pg.claim16_over_pgbench", "x", ours / tps);

        let locks = Arc::new(PgLockManager::connect(PgLockOptions::new(opts(
            &schema, 16,
        )?))?);
        for (threads, name, per) in [(1, "pg.lock_pair_1t", 2_000), (16, "pg.lock_pair_16t", 250)] {
            let started = std::time::Instant::now();
            std::thread::scope(|s| -> anyhow::Result<()> {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let locks = locks.clone();
                        s.spawn(move || -> anyhow::Result<()> {
                            let req = oc_locks::LockRequest::exclusive(
                                &format!("repo/w{t}/file"),
                                &format!("w{t}"),
                            )?;
                            for _ in 0..per {
                                let l = locks.try_acquire(&req)?;
                                locks.release(&l.resource, &l.owner)?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in hs {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a lock thread panicked"))??;
                }
                Ok(())
            })?;
            f.add(name, "pairs/s", per_sec(per * threads, started.elapsed()));
        }
        let fresh_schema = std::sync::atomic::AtomicUsize::new(0);
        graph_figures(&mut f, "pg", run as u64, &|| {
            let n = fresh_schema.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let store = PgTaskStore::connect(opts(&format!("graph{run}_{n}"), 4)?)?;
            Ok((
                Box::new(store) as Box<dyn oc_tasks::TaskStore>,
                Box::new(()) as Box<dyn std::any::Any>,
            ))
        })?;
    }
    f.emit();
    if !quick {
        let store = PgTaskStore::connect(
            PgOptions::new(&pg.url("postgres"))?
                .schema("pages")?
                .pool_size(4),
        )?;
        for b in 0..1000 {
            store.create_many(
                (0..1000)
                    .map(|i| NewTask::new(format!("p{b}-{i}")))
                    .collect(),
            )?;
        }
        // The statistics autovacuum (off on this server) would gather after a bulk load:
        // without them the planner takes the ready tasks' index and sorts it for every page.
        pg.psql("postgres", "ANALYZE pages.tasks")?;
        ready_pages(&store, "pg")?;
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
    let mut f = Figures::default();
    for _ in 0..runs {
        let mut db = sqlite::open_fresh()?;
        let d = sqlite::batch_insert(&mut db)?;
        f.add("sqlite.batch_insert", "rows/s", per_sec(sqlite::ROWS, d));
        let d = sqlite::single_read(&mut db)?;
        f.add("sqlite.single_read", "reads/s", per_sec(sqlite::READS, d));
        let d = sqlite::range_query(&mut db)?;
        f.add(
            "sqlite.range_query",
            "queries/s",
            per_sec(sqlite::RANGES, d),
        );
        let d = sqlite::update(&mut db)?;
        f.add("sqlite.update", "updates/s", per_sec(sqlite::UPDATES, d));
        let (d, rows) = sqlite::full_scan(&mut db)?;
        f.add("sqlite.full_scan", "rows/s", per_sec(rows, d));
        let (main, wal) = sqlite::sizes(&db);
        f.add("sqlite.db_size", "MiB", main as f64 / MIB);
        f.add("sqlite.db_size_wal", "MiB", wal as f64 / MIB);
        let closed = sqlite::size_after_close(db);
        f.add("sqlite.db_size_closed", "MiB", closed as f64 / MIB);
    }
    f.emit();
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
fn ready_pages(store: &dyn oc_tasks::TaskStore, prefix: &str) -> anyhow::Result<()> {
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
type Fresh<'a> =
    &'a dyn Fn() -> anyhow::Result<(Box<dyn oc_tasks::TaskStore>, Box<dyn std::any::Any>)>;

fn graph_figures(f: &mut Figures, prefix: &str, run: u64, fresh: Fresh<'_>) -> anyhow::Result<()> {
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

/// locks.*: the documented loop on `MemoryLockManager`, latencies, contention, and SQLite.
fn lock_figures(runs: usize) -> anyhow::Result<()> {
    let reqs = locks::requests();
    let mut f = Figures::default();
    for _ in 0..runs {
        let m = MemoryLockManager::new();
        // Warm the allocator and caches the way a long-running agent would be.
        locks::acquire_release(&m, &reqs, 100_000)?;
        let d = locks::acquire_release(&m, &reqs, locks::PAIRS)?;
        f.add("locks.acquire_release", "pairs/s", per_sec(locks::PAIRS, d));
        let mut lat = locks::acquisition_latencies(&m, &reqs, locks::PAIRS)?;
        lat.sort_unstable();
        let mut con = locks::conflict_latencies(&m, locks::REFUSALS)?;
        con.sort_unstable();
        for ([p50, p99, max], sorted) in [
            (
                [
                    "locks.acquisition_latency_p50",
                    "locks.acquisition_latency_p99",
                    "locks.acquisition_latency_max",
                ],
                &lat,
            ),
            (
                [
                    "locks.conflict_detection_p50",
                    "locks.conflict_detection_p99",
                    "locks.conflict_detection_max",
                ],
                &con,
            ),
        ] {
            f.add(p50, "ns", locks::quantile(sorted, 0.5) as f64);
            f.add(p99, "ns", locks::quantile(sorted, 0.99) as f64);
            f.add(max, "ns", *sorted.last().unwrap_or(&0) as f64);
        }
        let d = locks::contended(&m, 2, 200_000)?;
        f.add("locks.contended_2t", "pairs/s", per_sec(200_000, d));
        let dir = tempfile::tempdir()?;
        let s = SqliteLockManager::open(dir.path().join("locks.db"))?;
        let d = locks::acquire_release(&s, &reqs, 5_000)?;
        f.add("locks.sqlite_acquire_release", "pairs/s", per_sec(5_000, d));
        let _ = s.stats()?;
    }
    f.emit();
    Ok(())
}

/// jsonl.*: the documented append and read workloads, durable appends, a filtered read.
fn jsonl_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let mut f = Figures::default();
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("simple.jsonl");
        let d = jsonl::simple_append(&p, jsonl::RECORDS)?;
        f.add(
            "jsonl.simple_append",
            "records/s",
            per_sec(jsonl::RECORDS, d),
        );
        let b = dir.path().join("batch.jsonl");
        let d = jsonl::batch_append(&b, jsonl::RECORDS)?;
        f.add(
            "jsonl.batch_append",
            "records/s",
            per_sec(jsonl::RECORDS, d),
        );
        std::fs::remove_file(&b)?;
        f.add(
            "jsonl.file_size",
            "MiB",
            std::fs::metadata(&p)?.len() as f64 / MIB,
        );
        let reset = reset_peak_rss();
        let base = peak_rss().unwrap_or(0);
        let (d, lines) = jsonl::read_parse(&p)?;
        f.add(
            "jsonl.read_parse",
            "lines/s",
            lines as f64 / d.as_secs_f64(),
        );
        if reset {
            let growth = peak_rss().unwrap_or(0).saturating_sub(base);
            f.add("jsonl.read_parse_rss_growth", "MiB", growth as f64 / MIB);
        }
        let reset = reset_peak_rss();
        let (d, lines, _) = jsonl::filtered_read(&p)?;
        f.add(
            "jsonl.filtered_read",
            "lines/s",
            lines as f64 / d.as_secs_f64(),
        );
        if reset {
            let peak = peak_rss().unwrap_or(0);
            f.add("jsonl.filtered_read_peak_rss", "MiB", peak as f64 / MIB);
        }
        let big = dir.path().join("big.jsonl");
        jsonl::large_log(&big, jsonl::TAIL_LOG_ENTRIES)?;
        let (d, parsed) = jsonl::tail_large(&big, jsonl::TAIL_LINES)?;
        anyhow::ensure!(
            parsed == jsonl::TAIL_LINES,
            "the tail parsed {parsed} entries"
        );
        f.add("jsonl.tail_large", "ms", d.as_secs_f64() * 1e3);
        std::fs::remove_file(&big)?;
        let run = Duration::from_millis(if quick { 300 } else { 1000 });
        use oc_jsonl::Durability::{Fsync, GroupCommit};
        let (none, spin) = (Duration::ZERO, Duration::from_micros(300));
        for (name, durability, spin, writers) in [
            ("jsonl.durable_fsync_1w", Fsync, none, 1),
            ("jsonl.durable_group_1w", GroupCommit, none, 1),
            ("jsonl.durable_group_4w", GroupCommit, none, 4),
            ("jsonl.durable_group_16w", GroupCommit, none, 16),
            ("jsonl.durable_group_16w_spin", GroupCommit, spin, 16),
        ] {
            let path = dir.path().join(format!("{name}.jsonl"));
            let (rate, per_sync) = jsonl::durable(&path, durability, spin, writers, run)?;
            f.add(name, "appends/s", rate);
            if name == "jsonl.durable_group_16w" {
                f.add("jsonl.durable_group_16w_per_sync", "appends", per_sync);
            }
        }
    }
    let fsync1 = f.runs("jsonl.durable_fsync_1w");
    for (ratio, group) in [
        ("jsonl.group16_over_fsync1", "jsonl.durable_group_16w"),
        (
            "jsonl.group16_spin_over_fsync1",
            "jsonl.durable_group_16w_spin",
        ),
    ] {
        for (g, one) in f.runs(group).iter().zip(&fsync1) {
            f.add(ratio, "x", g / one);
        }
    }
    f.emit();
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
    let mut f = Figures::default();
    for _ in 0..runs {
        let mut per_transition = [0.0; 2];
        for (on, name) in [
            (false, "metrics.transition_plain"),
            (true, "metrics.transition_instrumented"),
        ] {
            let (life, ids, _exporter) = metrics::lifecycle(N, on);
            let d = metrics::run(&life, &ids)?;
            per_transition[usize::from(on)] = d.as_nanos() as f64 / (2 * N) as f64;
            f.add(name, "ns", per_transition[usize::from(on)]);
        }
        let [plain, instrumented] = per_transition;
        f.add("metrics.transition_added", "ns", instrumented - plain);
        let exporter = oc_metrics::Exporter::new()?;
        let snap = metrics::big_snapshot(10_000);
        exporter.render(&snap);
        let started = std::time::Instant::now();
        let text = exporter.render(&snap);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        f.add("metrics.render_10k_series", "ms", ms);
        anyhow::ensure!(
            text.lines()
                .filter(|l| l.starts_with("opencode_hook"))
                .count()
                >= 9_999,
            "10,000 series rendered"
        );
    }
    f.emit();
    Ok(())
}

/// mcp.*: tool calls over stdio to one `oc mcp` on a SQLite data directory, round trip, p50 and
/// p99; beside them the same operations as one `oc` process per call, and how many times
/// faster the tool call is.
fn mcp_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let oc = mcp::oc_binary()?;
    let (calls, spawns) = if quick { (500, 20) } else { (2_000, 50) };
    let mut f = Figures::default();
    for run in 0..runs {
        let dir = tempfile::tempdir()?;
        let data = dir.path();
        let mut s = mcp::Session::start(&oc, data)?;
        let mut ids = Vec::new();
        for i in 0..calls + spawns {
            let t = s.call("task_create", json!({ "name": format!("task {i}") }))?;
            ids.push(t["task"]["id"].as_str().context("an id")?.to_owned());
        }
        let get = mcp::latencies(calls, |i| {
            s.call("task_get", json!({ "task_id": ids[i % ids.len()] }))
                .map(drop)
        })?;
        let claim = mcp::latencies(calls, |_| {
            let c = s.call("task_claim", json!({ "lease_secs": 600 }))?;
            anyhow::ensure!(c["claimed"] == true, "nothing to claim");
            Ok(())
        })?;
        let lock = mcp::latencies(calls, |i| {
            s.call(
                "lock_acquire",
                json!({ "paths": [format!("run{run}/mcp/{i}")] }),
            )
            .map(drop)
        })?;
        drop(s);
        let spawn_get = mcp::latencies(spawns, |i| {
            mcp::oc_once(&oc, data, &["task", "show", &ids[i]])
        })?;
        let spawn_claim = mcp::latencies(spawns, |_| {
            mcp::oc_once(&oc, data, &["task", "claim", "--next", "--agent", "bench"])
        })?;
        let spawn_lock = mcp::latencies(spawns, |i| {
            let path = format!("run{run}/spawn/{i}");
            mcp::oc_once(&oc, data, &["lock", "acquire", &path, "--owner", "bench"])
        })?;
        for (name, over_stdio, spawned) in [
            ("task_get", get, spawn_get),
            ("task_claim", claim, spawn_claim),
            ("lock_acquire", lock, spawn_lock),
        ] {
            let (p50, p99) = (quantile(&over_stdio, 0.50), quantile(&over_stdio, 0.99));
            let (s50, s99) = (quantile(&spawned, 0.50), quantile(&spawned, 0.99));
            f.add(format!("mcp.{name}_p50"), "ms", p50);
            f.add(format!("mcp.{name}_p99"), "ms", p99);
            f.add(format!("mcp.spawn_{name}_p50"), "ms", s50);
            f.add(format!("mcp.spawn_{name}_p99"), "ms", s99);
            f.add(format!("mcp.{name}_speedup"), "x", s50 / p50);
        }
    }
    f.emit();
    Ok(())
}

/// The `q` quantile of `samples` (nearest rank).
fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// web.*: the status pages over a SQLite store of 1,000,000 tasks (100,000 with `--quick`),
/// answered in process (`Web::respond`, no socket): the overview read afresh and shared, the
/// first page of tasks unfiltered and filtered, one task's page. Milliseconds, median of 20.
fn web_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    use oc_web::{Method, Request, Web};
    let n = if quick { 100_000 } else { 1_000_000 };
    let label = if quick { "100k" } else { "1m" };
    let (store, dir) = tasks::fresh()?;
    tasks::create_many(&store, n, 11)?;
    let store: Arc<dyn TaskStore> = Arc::new(store);
    for _ in 0..100 {
        store.claim_next("agent-3", Duration::from_secs(3600))?;
    }
    let locks: Arc<dyn LockManager> =
        Arc::new(SqliteLockManager::open(dir.path().join("opencode.db"))?);
    let web = |store: &Arc<dyn TaskStore>| {
        let life =
            oc_hooks::TaskLifecycle::new(Arc::clone(store), Arc::new(oc_hooks::Hooks::new()));
        Web::new(life, Arc::clone(&locks)).data_dir(dir.path())
    };
    let some_id = store
        .list(&oc_tasks::TaskQuery::new(oc_tasks::TaskFilter::new()).limit(1))?
        .tasks
        .first()
        .map(|t| t.id.to_string())
        .context("a task")?;
    let time = |w: &Web, target: &str| -> anyhow::Result<f64> {
        let started = std::time::Instant::now();
        let r = w.respond(&Request::new(Method::Get, target));
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(r.status == 200, "{target} answered {}", r.status);
        Ok(ms)
    };
    let mut f = Figures::default();
    for _ in 0..runs {
        let (mut cold, mut shared, mut page, mut filtered, mut task) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..20 {
            let w = web(&store);
            cold.push(time(&w, "/")?);
            shared.push(time(&w, "/")?);
            page.push(time(&w, "/ui/tasks")?);
            filtered.push(time(&w, "/ui/tasks?status=running&owner=agent-3")?);
            task.push(time(&w, &format!("/ui/tasks/{some_id}"))?);
        }
        f.add(format!("web.overview_{label}"), "ms", median(cold));
        f.add(format!("web.overview_shared_{label}"), "ms", median(shared));
        f.add(format!("web.tasks_page_{label}"), "ms", median(page));
        f.add(
            format!("web.tasks_filtered_{label}"),
            "ms",
            median(filtered),
        );
        f.add(format!("web.task_page_{label}"), "ms", median(task));
    }
    f.emit();
    Ok(())
}
