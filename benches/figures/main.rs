//! `oc-bench-figures`: runs the documented workloads and prints one JSON object per figure
//! (`bench`, `measured`, `unit`, plus details) per line. `cargo xtask bench-report` runs it in
//! release mode and sets the figures beside the documented ones.
//!
//! Usage: `oc-bench-figures [--runs N] [--quick] [--sqlite-only | --tasks-only | --locks-only | --jsonl-only | --hooks-only | --metrics-only | --alerts-only | --pg-only | --mcp-only | --web-only | --files-only | --batch-only]`
//! (`--quick`: one run, no 1M-task stats, no 1M-entry log). `--files-only`: just the task-file
//! store's figures (`pg.log_*`, `pg.checkpoint_*` on a server of their own, `jsonl.store_*`),
//! which `--pg-only` and `--jsonl-only` include. `--batch-only`: just the batch figures
//! (`tasks.batch_*`, `pg.batch_*`), which `--tasks-only` and `--pg-only` include.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

mod alerts;
mod batch;
mod files;
mod hooks;
mod jsonl;
mod locks;
mod mcp;
mod metrics;
mod pg;
mod sqlite;
mod tasks;
mod web;

use std::time::Duration;

use anyhow::Context;
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
        "--files-only",
        "--batch-only",
    ]
    .into_iter()
    .find(|o| args.iter().any(|a| a == o));
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).context("--runs needs a number")?.parse()?,
        None if quick => 1,
        None => 5,
    };

    if only.is_none_or(|o| o == "--sqlite-only") {
        sqlite::figures(runs)?;
    }
    if only.is_none_or(|o| o == "--tasks-only") {
        tasks::figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--locks-only") {
        locks::figures(runs)?;
    }
    if only.is_none_or(|o| o == "--jsonl-only") {
        jsonl::figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--jsonl-only" || o == "--files-only") {
        files::disk_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--hooks-only") {
        hooks::figures(runs)?;
    }
    if only.is_none_or(|o| o == "--metrics-only") {
        metrics::figures(runs)?;
    }
    if only.is_none_or(|o| o == "--alerts-only") {
        alerts::figures(runs)?;
    }
    if only.is_none_or(|o| o == "--pg-only") {
        pg::figures(runs, quick)?;
    }
    if only == Some("--batch-only") {
        batch::sqlite_figures(runs)?;
        if oc_postgres::testkit::server_binaries().is_some() {
            batch::pg_figures(&oc_postgres::testkit::PgServer::start()?, runs)?;
        }
    }
    if only == Some("--files-only") {
        pg::files_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--mcp-only") {
        mcp::figures(runs, quick)?;
        mcp::http_figures(runs, quick)?;
    }
    if only.is_none_or(|o| o == "--web-only") {
        web::figures(runs, quick)?;
    }
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
