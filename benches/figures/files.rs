//! `pg.log_*`, `pg.checkpoint_*` and `jsonl.store_*`: a task's files through
//! `TaskFileStore` (decision 0036, issue 27), on PostgreSQL and on a data directory, by the
//! same workloads.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use oc_jsonl::{Append, Decision, Level, LogEntry, TaskFileStore};
use oc_time::Timestamp;
use serde_json::{Map, json};

use crate::{Figures, median, per_sec, quantile};

/// Entries per batched append.
const BATCH: usize = 100;
/// Entries appended in batches of [`BATCH`] per figure and run.
const BATCHED: usize = 100_000;
/// Threads appending one entry at a time, durably.
const THREADS: usize = 16;
/// Appends per thread, each to its own task.
const SINGLE_PER_THREAD: usize = 500;
/// Appends per thread, all to one task.
const SHARED_PER_THREAD: usize = 250;
/// Entries of the big task.
const BIG: usize = 1_000_000;
/// Entries per append while filling a task.
const FILL_BATCH: usize = 1_000;
/// Bytes of log of the checkpointed task.
const CHECKPOINT_LOG_BYTES: usize = 10 << 20;
/// Tails timed per run (the figure is their median).
const TAILS: usize = 21;

/// Opens (creating) a store by name: a schema on PostgreSQL, a data directory on disk.
pub(crate) type Open<'a> = &'a dyn Fn(&str) -> anyhow::Result<Arc<dyn TaskFileStore>>;

/// The server's count of write transactions so far (`txid_current()`), when there is a
/// server: between two readings, the group commit's calls (each one transaction) and one.
pub(crate) type Commits<'a> = &'a dyn Fn() -> anyhow::Result<Option<u64>>;

/// Names the task of an appending thread.
type TaskOf<'a> = &'a (dyn Fn(usize) -> String + Sync);

/// Entry `i` of `task`: an ordinary line of about 200 bytes (a message, two data fields), one
/// in 20 an error, two warnings, three debug, the rest info, a millisecond apart.
pub(crate) fn entry(task: &str, i: usize) -> LogEntry {
    let level = match i % 20 {
        0 => Level::Error,
        1 | 2 => Level::Warn,
        3..=5 => Level::Debug,
        _ => Level::Info,
    };
    let at = Timestamp::from_millis(1_796_000_000_000 + i as i64);
    let mut e = LogEntry::new(
        at,
        level,
        task,
        format!("step {i}: applied the edit to the working tree and ran the checks"),
    );
    let mut data = Map::new();
    data.insert("i".to_owned(), json!(i));
    data.insert("file".to_owned(), json!("crates/postgres/src/files.rs"));
    e.data = data;
    e
}

/// `n` entries of `task` from `from` on.
fn entries(task: &str, from: usize, n: usize) -> Vec<LogEntry> {
    (from..from + n).map(|i| entry(task, i)).collect()
}

/// Appends `n` entries to `task` in batches of [`FILL_BATCH`], `Written`.
fn fill(s: &dyn TaskFileStore, task: &str, n: usize) -> anyhow::Result<()> {
    let mut at = 0;
    while at < n {
        let k = FILL_BATCH.min(n - at);
        s.append_logs(task, &entries(task, at, k), &Append::written())?;
        at += k;
    }
    Ok(())
}

/// Each of `threads` threads appends `per` single entries durably, to `task(t)`; returns
/// the rate and every append's latency in ms.
fn single_appends(
    s: &Arc<dyn TaskFileStore>,
    threads: usize,
    per: usize,
    task: TaskOf<'_>,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let started = Instant::now();
    let lat = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let s = s.clone();
                sc.spawn(move || -> anyhow::Result<Vec<f64>> {
                    let task = task(t);
                    let mut v = Vec::with_capacity(per);
                    for i in 0..per {
                        let e = [entry(&task, t * per + i)];
                        let at = Instant::now();
                        s.append_logs(&task, &e, &Append::durable())?;
                        v.push(at.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(v)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("an append thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<Vec<f64>>>>()
    })?;
    Ok((per_sec(threads * per, started.elapsed()), lat.concat()))
}

/// The figures, named `<prefix><name>`: per run, appends in batches of 100 (durable and
/// written), single durable appends from 16 threads (a task each, and one task), a checkpoint
/// of a task with 10 MB of log created and restored; unless `quick`, the last 20 entries and
/// the analysis of a task of 1,000,000 (filled once; `after_fill` runs then, for the
/// statistics a server would gather). With a server (`commits`), also the appends per call of
/// the group commit in the 16-thread figures (`_per_call`).
pub(crate) fn figures(
    f: &mut Figures,
    prefix: &str,
    runs: usize,
    quick: bool,
    open: Open<'_>,
    after_fill: &dyn Fn() -> anyhow::Result<()>,
    commits: Commits<'_>,
) -> anyhow::Result<()> {
    let name = |n: &str| format!("{prefix}{n}");
    let big = if quick {
        None
    } else {
        let s = open("big")?;
        let started = Instant::now();
        fill(&*s, "big", BIG)?;
        eprintln!(
            "{prefix}: filled a task with {BIG} entries in {:.1} s ({:.0} entries/s, batches of {FILL_BATCH}, written)",
            started.elapsed().as_secs_f64(),
            per_sec(BIG, started.elapsed())
        );
        after_fill()?;
        Some(s)
    };
    for run in 0..runs {
        let s = open(&format!("run{run}"))?;
        for (figure, how, task) in [
            ("log_append_batch100", Append::durable(), "batch-durable"),
            (
                "log_append_batch100_written",
                Append::written(),
                "batch-written",
            ),
        ] {
            let batches: Vec<Vec<LogEntry>> = (0..BATCHED / BATCH)
                .map(|b| entries(task, b * BATCH, BATCH))
                .collect();
            let started = Instant::now();
            for b in &batches {
                s.append_logs(task, b, &how)?;
            }
            f.add(
                name(figure),
                "entries/s",
                per_sec(BATCHED, started.elapsed()),
            );
            let n = s.counts(task)?.log_entries;
            anyhow::ensure!(n == BATCHED as u64, "{task} holds {n} entries");
        }

        let own = |t: usize| format!("single-{t}");
        let shared = |_: usize| "single-shared".to_owned();
        let variants: [(&str, usize, TaskOf<'_>); 2] = [
            ("log_append_durable_16t", SINGLE_PER_THREAD, &own),
            (
                "log_append_durable_16t_one_task",
                SHARED_PER_THREAD,
                &shared,
            ),
        ];
        for (figure, per, task) in variants {
            let before = commits()?;
            let (rate, lat) = single_appends(&s, THREADS, per, task)?;
            let after = commits()?;
            f.add(name(figure), "entries/s", rate);
            f.add(name(&format!("{figure}_p50")), "ms", quantile(&lat, 0.50));
            f.add(name(&format!("{figure}_p99")), "ms", quantile(&lat, 0.99));
            if let (Some(a), Some(b)) = (before, after) {
                // Each call of the group commit is one transaction, and so is each reading.
                let calls = b.saturating_sub(a).saturating_sub(1).max(1);
                f.add(
                    name(&format!("{figure}_per_call")),
                    "appends",
                    (THREADS * per) as f64 / calls as f64,
                );
            }
        }
        let n = s.counts("single-shared")?.log_entries;
        anyhow::ensure!(
            n == (THREADS * SHARED_PER_THREAD) as u64,
            "the shared task holds {n} entries"
        );

        if let Some(big) = &big {
            // Untimed first: each of the pool's connections prepares its statements once.
            for _ in 0..2 * TAILS {
                big.log_tail("big", 0, 20)?;
            }
            let mut tails = Vec::with_capacity(TAILS);
            for _ in 0..TAILS {
                let started = Instant::now();
                let page = big.log_tail("big", 0, 20)?;
                tails.push(started.elapsed().as_secs_f64() * 1e3);
                let last = page.entries.last().and_then(|e| e.record.data.get("i"));
                anyhow::ensure!(
                    page.entries.len() == 20 && last == Some(&json!(BIG - 1)) && page.more,
                    "the tail read {} entries, the last {last:?}",
                    page.entries.len()
                );
            }
            f.add(name("log_tail20_of_1m"), "ms", median(tails));
            let started = Instant::now();
            let a = big.analyze("big")?;
            f.add(
                name("log_analyze_1m"),
                "ms",
                started.elapsed().as_secs_f64() * 1e3,
            );
            anyhow::ensure!(
                a.total_logs == BIG as u64 && a.error_count == (BIG / 20) as u64,
                "the analysis counted {} entries, {} errors",
                a.total_logs,
                a.error_count
            );
        }

        // A task with 10 MB of log, 100 decisions and a state: checkpointed, then 1,000
        // entries more, then restored.
        let task = "checkpointed";
        let line = serde_json::to_string(&entry(task, 0))?.len() + 1;
        let n = CHECKPOINT_LOG_BYTES.div_ceil(line);
        fill(&*s, task, n)?;
        for i in 0..100 {
            let d = Decision {
                timestamp: Timestamp::from_millis(1_796_000_000_000 + i),
                agent: format!("agent-{}", i % 4),
                decision: format!("decision {i}: keep the group commit"),
                reasoning: "batching amortises the commit over the callers waiting".to_owned(),
                metadata: Map::new(),
            };
            s.append_decision(task, &d, &Append::written())?;
        }
        let state = json!({ "step": 42, "files": (0..100).map(|i| format!("src/f{i}.rs")).collect::<Vec<_>>() });
        s.save_state(task, &state)?;
        let started = Instant::now();
        let cp = s.create_checkpoint(task, "bench", Timestamp::now())?;
        f.add(
            name("checkpoint_10mb_create"),
            "ms",
            started.elapsed().as_secs_f64() * 1e3,
        );
        s.append_logs(task, &entries(task, n, 1_000), &Append::written())?;
        // Made in the log's present generation, which the restore below ends.
        let later = s.create_checkpoint(task, "bench, later", Timestamp::now())?;
        let started = Instant::now();
        s.restore_checkpoint(task, &cp.id)?;
        f.add(
            name("checkpoint_10mb_restore"),
            "ms",
            started.elapsed().as_secs_f64() * 1e3,
        );
        let restored = |s: &dyn TaskFileStore, entries: usize| -> anyhow::Result<()> {
            let c = s.counts(task)?;
            anyhow::ensure!(
                c.log_entries == entries as u64
                    && c.decisions == 100
                    && s.load_state(task)?.as_ref() == Some(&state),
                "restored {} entries, {} decisions",
                c.log_entries,
                c.decisions
            );
            Ok(())
        };
        restored(&*s, n)?;
        // A checkpoint of another generation: on PostgreSQL, every line is written again
        // (decision 0038).
        let started = Instant::now();
        s.restore_checkpoint(task, &later.id)?;
        f.add(
            name("checkpoint_10mb_restore_rewrite"),
            "ms",
            started.elapsed().as_secs_f64() * 1e3,
        );
        restored(&*s, n + 1_000)?;
    }
    Ok(())
}

/// The file-store figures on PostgreSQL, on `pg` (a schema per store), as `pg.*`.
pub(crate) fn pg_figures(
    pg: &oc_postgres::testkit::PgServer,
    runs: usize,
    quick: bool,
) -> anyhow::Result<()> {
    use oc_postgres::{PgFileStore, PgOptions};
    let mut f = Figures::default();
    let open = |name: &str| -> anyhow::Result<Arc<dyn TaskFileStore>> {
        let opts = PgOptions::new(&pg.url("postgres"))?
            .schema(&format!("files_{name}"))?
            .pool_size(16);
        Ok(Arc::new(PgFileStore::connect(opts)?))
    };
    // What autovacuum (off on this server) would do after the bulk load: the statistics, and
    // the visibility map that lets the analysis read its index alone.
    let analyze = || -> anyhow::Result<()> {
        pg.psql("postgres", "VACUUM (ANALYZE) files_big.log_entries")
            .context("VACUUM")?;
        Ok(())
    };
    let commits = || -> anyhow::Result<Option<u64>> {
        let out = pg
            .psql("postgres", "SELECT txid_current()")
            .context("txid_current")?;
        Ok(Some(out.trim().parse().context("txid_current")?))
    };
    figures(&mut f, "pg.", runs, quick, &open, &analyze, &commits)?;
    f.emit();
    Ok(())
}

/// The file-store figures on a data directory (`DirFileStore` under `TMPDIR`), as
/// `jsonl.store_*`.
pub(crate) fn disk_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut f = Figures::default();
    let open = |name: &str| -> anyhow::Result<Arc<dyn TaskFileStore>> {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data)?;
        Ok(Arc::new(oc_jsonl::DirFileStore::new(data)))
    };
    figures(
        &mut f,
        "jsonl.store_",
        runs,
        quick,
        &open,
        &|| Ok(()),
        &|| Ok(None),
    )?;
    f.emit();
    Ok(())
}
