//! `cargo xtask bench-report`: our figures beside the documented ones and a C baseline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::flags::BenchReport;
use crate::{baseline, root};

/// A figure the seed documents, with the value it gives (Apple M1) and its unit.
struct Documented {
    bench: &'static str,
    value: Option<f64>,
    unit: &'static str,
    /// What a C program reaches on this machine class per `benchmarks.md` (when no C run).
    c_reference: Option<f64>,
}

const DOCUMENTED: &[Documented] = &[
    Documented {
        bench: "sqlite.batch_insert",
        value: Some(212_319.0),
        unit: "rows/s",
        c_reference: Some(85_000.0),
    },
    Documented {
        bench: "sqlite.single_read",
        value: Some(302_724.0),
        unit: "reads/s",
        c_reference: Some(125_000.0),
    },
    Documented {
        bench: "sqlite.range_query",
        value: Some(18_197.0),
        unit: "queries/s",
        c_reference: Some(5_900.0),
    },
    Documented {
        bench: "sqlite.update",
        value: Some(13_009.0),
        unit: "updates/s",
        c_reference: None,
    },
    Documented {
        bench: "sqlite.full_scan",
        value: Some(731_917.0),
        unit: "rows/s",
        c_reference: None,
    },
    Documented {
        bench: "sqlite.db_size",
        value: Some(23.36),
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "sqlite.db_size_wal",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "sqlite.db_size_closed",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "tasks.create_many",
        value: None,
        unit: "tasks/s",
        c_reference: None,
    },
    Documented {
        bench: "tasks.claim_next_1t",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "tasks.claim_next_2t",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "tasks.stats_100k",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "tasks.stats_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "tasks.stats_1m_peak_rss",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "tasks.stats_1m_rss_growth",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "tasks.claim_next_flat_100k",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "tasks.claim_next_blocked90_100k",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "tasks.claim_blocked90_over_flat",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "tasks.complete_fanout_1000",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "tasks.ready_pages_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "tasks.ready_pages_1m_rss_growth",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "locks.acquire_release",
        value: Some(742_069.0),
        unit: "pairs/s",
        c_reference: None,
    },
    Documented {
        bench: "locks.acquisition_latency_p50",
        value: Some(1_000_000.0),
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "locks.acquisition_latency_p99",
        value: Some(1_000_000.0),
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "locks.acquisition_latency_max",
        value: Some(1_000_000.0),
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "locks.conflict_detection_p50",
        value: Some(5_000_000.0),
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "locks.conflict_detection_p99",
        value: Some(5_000_000.0),
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "locks.conflict_detection_max",
        value: Some(5_000_000.0),
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "locks.contended_2t",
        value: None,
        unit: "pairs/s",
        c_reference: None,
    },
    Documented {
        bench: "locks.sqlite_acquire_release",
        value: None,
        unit: "pairs/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.simple_append",
        value: Some(10_785.0),
        unit: "records/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.batch_append",
        value: Some(377_060.0),
        unit: "records/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.file_size",
        value: Some(183.15),
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.read_parse",
        value: Some(1_101_795.0),
        unit: "lines/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.read_parse_rss_growth",
        value: Some(270.0),
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.filtered_read",
        value: None,
        unit: "lines/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.filtered_read_peak_rss",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.durable_fsync_1w",
        value: None,
        unit: "appends/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.durable_group_1w",
        value: None,
        unit: "appends/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.durable_group_4w",
        value: None,
        unit: "appends/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.durable_group_16w",
        value: None,
        unit: "appends/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.durable_group_16w_per_sync",
        value: None,
        unit: "appends",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.durable_group_16w_spin",
        value: None,
        unit: "appends/s",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.group16_over_fsync1",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.group16_spin_over_fsync1",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "jsonl.tail_large",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "hooks.transition_0",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "hooks.transition_1_inline",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "hooks.transition_10_inline",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "hooks.transition_1_background",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "hooks.transition_10_background",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "metrics.transition_plain",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "metrics.transition_instrumented",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "metrics.transition_added",
        value: None,
        unit: "ns",
        c_reference: None,
    },
    Documented {
        bench: "pg.create_many",
        value: None,
        unit: "tasks/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_next_1t",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_next_4t",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_next_16t",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_latency_16t_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_latency_16t_p99",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "pg.pgbench_claim_16c",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim16_over_pgbench",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_next_flat_100k",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_next_blocked90_100k",
        value: None,
        unit: "claims/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.claim_blocked90_over_flat",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "pg.complete_fanout_1000",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "pg.ready_pages_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "pg.ready_pages_1m_rss_growth",
        value: None,
        unit: "MiB",
        c_reference: None,
    },
    Documented {
        bench: "pg.lock_pair_1t",
        value: None,
        unit: "pairs/s",
        c_reference: None,
    },
    Documented {
        bench: "pg.lock_pair_16t",
        value: None,
        unit: "pairs/s",
        c_reference: None,
    },
    Documented {
        bench: "mcp.task_get_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.task_get_p99",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.spawn_task_get_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.task_get_speedup",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "mcp.task_claim_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.task_claim_p99",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.spawn_task_claim_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.task_claim_speedup",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "mcp.lock_acquire_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.lock_acquire_p99",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.spawn_lock_acquire_p50",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "mcp.lock_acquire_speedup",
        value: None,
        unit: "x",
        c_reference: None,
    },
    Documented {
        bench: "web.overview_100k",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.overview_shared_100k",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.tasks_page_100k",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.tasks_filtered_100k",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.task_page_100k",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.overview_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.overview_shared_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.tasks_page_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.tasks_filtered_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "web.task_page_1m",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "metrics.render_10k_series",
        value: None,
        unit: "ms",
        c_reference: None,
    },
    Documented {
        bench: "alerts.evaluate_1k_rules",
        value: None,
        unit: "ms",
        c_reference: None,
    },
];

/// A goal a figure is held to (`benchmarks.md` and the issues).
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    Below(f64),
    /// At least this share of the C program's figure: of the same run when there is one, else of
    /// the reference `benchmarks.md` gives for this machine class.
    OfC(f64),
}

const TARGETS: &[(&str, Target)] = &[
    ("sqlite.batch_insert", Target::OfC(0.9)),
    ("sqlite.single_read", Target::OfC(0.9)),
    ("sqlite.range_query", Target::OfC(0.9)),
    ("locks.acquire_release", Target::AtLeast(5_000_000.0)),
    ("locks.acquisition_latency_p99", Target::Below(1_000_000.0)),
    ("locks.conflict_detection_p99", Target::Below(5_000_000.0)),
    ("jsonl.simple_append", Target::AtLeast(500_000.0)),
    ("jsonl.batch_append", Target::AtLeast(1_500_000.0)),
    ("jsonl.filtered_read_peak_rss", Target::Below(32.0)),
    ("jsonl.group16_over_fsync1", Target::AtLeast(8.0)),
    ("jsonl.group16_spin_over_fsync1", Target::AtLeast(8.0)),
    ("metrics.transition_added", Target::Below(1_000.0)),
    ("pg.claim16_over_pgbench", Target::AtLeast(0.9)),
    ("tasks.claim_blocked90_over_flat", Target::AtLeast(0.8)),
    ("pg.claim_blocked90_over_flat", Target::AtLeast(0.8)),
    ("tasks.ready_pages_1m_rss_growth", Target::Below(32.0)),
    ("pg.ready_pages_1m_rss_growth", Target::Below(32.0)),
    ("mcp.task_get_p50", Target::Below(1.0)),
    ("mcp.task_get_speedup", Target::AtLeast(10.0)),
    ("mcp.task_claim_speedup", Target::AtLeast(10.0)),
    ("mcp.lock_acquire_speedup", Target::AtLeast(10.0)),
    ("web.overview_1m", Target::Below(100.0)),
    ("web.tasks_page_1m", Target::Below(100.0)),
];

impl Target {
    fn of(bench: &str) -> Option<Target> {
        TARGETS.iter().find(|(b, _)| *b == bench).map(|&(_, t)| t)
    }

    /// Whether `measured` meets it (`None`: a share of C with no C figure to compare).
    fn met(self, measured: f64, c: Option<f64>) -> Option<bool> {
        match self {
            Target::AtLeast(v) => Some(measured >= v),
            Target::Below(v) => Some(measured < v),
            Target::OfC(share) => c.map(|c| measured >= share * c),
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtLeast(v) => format!(">= {v}"),
            Target::Below(v) => format!("< {v}"),
            Target::OfC(share) => format!(">= {share} C"),
        }
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn parse_lines(text: &str) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(b), Some(m)) = (v["bench"].as_str(), v["measured"].as_f64()) else {
            continue;
        };
        // Every run the figure was measured in, for the noise `--compare` needs.
        let runs: Vec<f64> = v["runs"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        out.entry(b.to_owned())
            .or_default()
            .extend(if runs.is_empty() { vec![m] } else { runs });
    }
    out
}

fn merge(into: &mut BTreeMap<String, Vec<f64>>, from: BTreeMap<String, Vec<f64>>) {
    for (k, v) in from {
        into.entry(k).or_default().extend(v);
    }
}

/// Builds `oc-bench-figures` in release mode, and `oc` beside it for the `mcp.*` figures,
/// before anything is timed.
fn build_figures() -> anyhow::Result<()> {
    build_release("oc-benches", "oc-bench-figures")?;
    build_release("oc-cli", "oc").map(drop)
}

/// Builds the binary `bin` of `package` in release mode; returns where it is.
pub(crate) fn build_release(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let args = [
        "build",
        "--release",
        "--locked",
        "-q",
        "-p",
        package,
        "--bin",
        bin,
    ];
    crate::run("cargo", &args, &[])?;
    Ok(root().join("target/release").join(bin))
}

/// Runs the release build of `oc-bench-figures` with `args` and parses its lines.
fn cargo_figures(args: &[&str]) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    let out = Command::new("cargo")
        .args([
            "run",
            "--release",
            "--locked",
            "-q",
            "-p",
            "oc-benches",
            "--bin",
            "oc-bench-figures",
            "--",
        ])
        .args(args)
        .current_dir(root())
        .output()
        .context("running oc-bench-figures")?;
    if !out.status.success() {
        bail!(
            "oc-bench-figures failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_lines(&String::from_utf8_lossy(&out.stdout)))
}

/// Finds the SQLite amalgamation that rusqlite bundles, through `cargo metadata`.
fn amalgamation() -> anyhow::Result<PathBuf> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .context("cargo metadata")?;
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    let pkgs = meta["packages"].as_array().context("packages")?;
    let sys = pkgs
        .iter()
        .find(|p| p["name"] == "libsqlite3-sys")
        .context("libsqlite3-sys is not in the dependency graph")?;
    let manifest = sys["manifest_path"].as_str().context("manifest_path")?;
    let dir = Path::new(manifest)
        .parent()
        .context("manifest dir")?
        .join("sqlite3");
    if !dir.join("sqlite3.c").exists() {
        bail!("no sqlite3.c in {}", dir.display());
    }
    Ok(dir)
}

/// Builds the C baseline with the same compile-time options rusqlite's bundled build uses.
fn build_c() -> anyhow::Result<PathBuf> {
    let src = amalgamation()?;
    let out_dir = root().join("target").join("c-bench");
    std::fs::create_dir_all(&out_dir)?;
    let exe = out_dir.join("sqlite_bench");
    let bench_c = root().join("benches/c/sqlite_bench.c");
    let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if fresh(&exe).is_some() && fresh(&exe) >= fresh(&bench_c) {
        return Ok(exe);
    }
    eprintln!("building the C baseline against {}", src.display());
    let status = Command::new("cc")
        .args([
            "-O3",
            "-DSQLITE_CORE",
            "-DSQLITE_DEFAULT_FOREIGN_KEYS=1",
            "-DSQLITE_ENABLE_API_ARMOR",
            "-DSQLITE_ENABLE_COLUMN_METADATA",
            "-DSQLITE_ENABLE_DBSTAT_VTAB",
            "-DSQLITE_ENABLE_FTS3",
            "-DSQLITE_ENABLE_FTS3_PARENTHESIS",
            "-DSQLITE_ENABLE_FTS5",
            "-DSQLITE_ENABLE_JSON1",
            "-DSQLITE_ENABLE_LOAD_EXTENSION=1",
            "-DSQLITE_ENABLE_RTREE",
            "-DSQLITE_ENABLE_STAT4",
            "-DSQLITE_SOUNDEX",
            "-DSQLITE_THREADSAFE=1",
            "-DSQLITE_USE_URI",
        ])
        .arg(format!("-I{}", src.display()))
        .arg(&bench_c)
        .arg(src.join("sqlite3.c"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .context("cannot run cc")?;
    if !status.success() {
        bail!("building the C baseline failed: {status}");
    }
    Ok(exe)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// The SQLite phases, by figure name, C function and Rust function.
const PHASES: [(&str, &str, &str); 5] = [
    (
        "sqlite.batch_insert",
        "phase_batch_insert",
        "oc_benches::sqlite::batch_insert",
    ),
    (
        "sqlite.single_read",
        "phase_single_read",
        "oc_benches::sqlite::single_read",
    ),
    (
        "sqlite.range_query",
        "phase_range_query",
        "oc_benches::sqlite::range_query",
    ),
    (
        "sqlite.update",
        "phase_update",
        "oc_benches::sqlite::update",
    ),
    (
        "sqlite.full_scan",
        "phase_full_scan",
        "oc_benches::sqlite::full_scan",
    ),
];

/// Runs `cmd` under callgrind and returns the inclusive instruction count of each function in
/// `names` (the largest inclusive figure `callgrind_annotate` reports for it).
pub(crate) fn callgrind(
    cmd: &mut Command,
    out_file: &Path,
    names: &[&str],
) -> anyhow::Result<Vec<u64>> {
    let status = cmd
        .status()
        .context("running valgrind (is it installed?)")?;
    if !status.success() {
        bail!("callgrind run failed: {status}");
    }
    let out = Command::new("callgrind_annotate")
        .arg("--inclusive=yes")
        .arg("--threshold=100")
        .arg(out_file)
        .output()
        .context("running callgrind_annotate")?;
    let text = String::from_utf8_lossy(&out.stdout);
    names
        .iter()
        .map(|name| {
            text.lines()
                .filter(|l| l.contains(&format!(":{name}")))
                .filter_map(|l| {
                    l.split_whitespace()
                        .next()
                        .and_then(|n| n.replace(',', "").parse::<u64>().ok())
                })
                .max()
                .with_context(|| format!("no callgrind figure for {name}"))
        })
        .collect()
}

/// Instruction counts of the SQLite phases, ours and C's: repeatable whatever the machine's
/// neighbours are doing, unlike wall-clock time here.
fn instructions(json_out: bool) -> anyhow::Result<()> {
    let c_exe = build_c()?;
    build_figures()?;
    let dir = root().join("target").join("c-bench");
    let (c_out, r_out) = (dir.join("c.callgrind"), dir.join("rust.callgrind"));
    let quiet = |c: &mut Command| {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    };
    eprintln!("C baseline under callgrind (about a minute)");
    let mut c = Command::new("valgrind");
    c.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", c_out.display()))
        .arg(&c_exe)
        .arg("1")
        .arg(std::env::temp_dir());
    quiet(&mut c);
    let c_ir = callgrind(&mut c, &c_out, &PHASES.map(|p| p.1))?;
    eprintln!("oc-benches under callgrind (about a minute)");
    let mut r = Command::new("valgrind");
    r.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", r_out.display()))
        .arg(root().join("target/release/oc-bench-figures"))
        .args(["--runs", "1", "--sqlite-only"]);
    quiet(&mut r);
    let r_ir = callgrind(&mut r, &r_out, &PHASES.map(|p| p.2))?;
    if !json_out {
        println!(
            "{:<22} {:>16} {:>16} {:>12}",
            "figure", "C instructions", "our instructions", "speed vs C"
        );
    }
    for (i, (bench, _, _)) in PHASES.iter().enumerate() {
        // Fewer instructions for the same work is faster: C's count over ours.
        let ratio = c_ir[i] as f64 / r_ir[i] as f64;
        if json_out {
            println!(
                "{}",
                json!({ "bench": format!("{bench}.instructions"), "c": c_ir[i], "measured": r_ir[i], "unit": "instructions", "ratio_to_c": ratio })
            );
        } else {
            println!(
                "{bench:<22} {:>16} {:>16} {:>11.2}x",
                c_ir[i], r_ir[i], ratio
            );
        }
    }
    Ok(())
}

pub(crate) fn report(flags: &BenchReport) -> anyhow::Result<()> {
    if flags.instructions {
        return instructions(flags.json);
    }
    let quick = flags.quick;
    let json_out = flags.json;
    let with_c = !flags.no_c;
    let runs_n = flags.runs.unwrap_or(if quick { 1 } else { 5 });
    let runs = runs_n.to_string();
    let (save, compare) = (flags.save.clone(), flags.compare.clone());
    // A missing or broken saved run is known before minutes of measuring.
    let before = compare.as_deref().map(baseline::load).transpose()?;
    let c_exe = if with_c {
        build_c()
            .map_err(|e| eprintln!("no C baseline this run: {e:#}"))
            .ok()
    } else {
        None
    };
    // Build first, so the timed runs below do not share the machine with the compiler.
    build_figures()?;

    // The machine is shared and noisy: alternate C and Rust runs of the SQLite workloads so
    // that each pair sees the same conditions, and report medians.
    let mut c_figures: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut ours: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..runs_n {
        eprintln!("sqlite round {} of {runs_n}", round + 1);
        // Alternate which side goes first, so neither always gets the quieter slot.
        if round % 2 == 1 {
            merge(&mut ours, cargo_figures(&["--runs", "1", "--sqlite-only"])?);
        }
        if let Some(exe) = &c_exe {
            let out = Command::new(exe)
                .arg("1")
                .arg(std::env::temp_dir())
                .output()
                .context("running the C baseline")?;
            if !out.status.success() {
                bail!(
                    "the C baseline failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            merge(
                &mut c_figures,
                parse_lines(&String::from_utf8_lossy(&out.stdout)),
            );
        }
        if round % 2 == 0 {
            merge(&mut ours, cargo_figures(&["--runs", "1", "--sqlite-only"])?);
        }
    }
    for (label, flag) in [
        ("lock", "--locks-only"),
        ("jsonl", "--jsonl-only"),
        ("hook", "--hooks-only"),
        ("metrics", "--metrics-only"),
        ("alerts", "--alerts-only"),
        ("product-path", "--tasks-only"),
        ("postgres", "--pg-only"),
        ("MCP", "--mcp-only"),
        ("web", "--web-only"),
    ] {
        eprintln!("{label} figures");
        let mut args = vec!["--runs", runs.as_str(), flag];
        if quick {
            args.push("--quick");
        }
        merge(&mut ours, cargo_figures(&args)?);
    }

    let machine = machine();
    if let Some(name) = &save {
        let path = baseline::save(name, &machine, &ours)?;
        eprintln!("saved as {name} ({})", path.display());
    }
    if let (Some(name), Some((saved_on, before))) = (&compare, &before) {
        return print_comparison(name, saved_on, &machine, before, &ours, json_out);
    }
    if !json_out {
        println!("Machine: {machine}; medians of {runs} run(s)");
        println!(
            "{:<32} {:>12} {:>12} {:>10} {:>12} {:>9}  {:<16} {:<4} unit",
            "figure", "documented", "ours", "ours/doc", "C same run", "ours/C", "target", "met"
        );
    }
    for d in DOCUMENTED {
        let Some(measured) = ours.get(d.bench).cloned().and_then(median) else {
            continue;
        };
        let c = c_figures.get(d.bench).cloned().and_then(median);
        let ratio_doc = d.value.map(|v| measured / v);
        let ratio_c = c.map(|c| measured / c);
        let target = Target::of(d.bench);
        let met = target.and_then(|t| t.met(measured, c.or(d.c_reference)));
        if json_out {
            println!(
                "{}",
                json!({
                    "bench": d.bench, "documented": d.value, "measured": measured, "unit": d.unit,
                    "c_same_run": c, "c_reference": d.c_reference, "ratio_to_c": ratio_c, "machine": machine,
                    "target": target.map(Target::text), "target_met": met,
                })
            );
        } else {
            let f =
                |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |v| format!("{v:.prec$}"));
            let prec = if ["MiB", "ms", "x", "appends"].contains(&d.unit) {
                2
            } else {
                0
            };
            let met = match met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!(
                "{:<32} {:>12} {:>12} {:>10} {:>12} {:>9}  {:<16} {:<4} {}",
                d.bench,
                f(d.value, prec),
                format!("{measured:.prec$}"),
                f(ratio_doc, 2),
                f(c, prec),
                f(ratio_c, 2),
                target.map(Target::text).unwrap_or_default(),
                met,
                d.unit
            );
        }
    }
    Ok(())
}

/// This run against the one saved as `name`: per figure, both medians, the change, the noise
/// and whether the change is beyond it.
fn print_comparison(
    name: &str,
    saved_on: &str,
    machine: &str,
    before: &BTreeMap<String, Vec<f64>>,
    now: &BTreeMap<String, Vec<f64>>,
    json_out: bool,
) -> anyhow::Result<()> {
    let changes = baseline::compare(before, now);
    if !json_out {
        println!("Against {name} (saved on {saved_on}); this run on {machine}");
        if saved_on != machine {
            println!("note: another machine; expect differences beyond noise");
        }
        println!(
            "{:<34} {:>12} {:>12} {:>9} {:>8}  verdict",
            "figure", name, "now", "change", "noise"
        );
    }
    for c in &changes {
        let unit = DOCUMENTED
            .iter()
            .find(|d| d.bench == c.bench)
            .map(|d| d.unit);
        let better = unit.map(|u| (c.change > 0.0) == baseline::higher_is_better(u));
        let verdict = match (c.flagged, c.noise, better) {
            (true, _, Some(true)) => "BETTER",
            (true, _, Some(false)) => "WORSE",
            (true, _, None) => "CHANGED",
            (false, Some(_), _) => "within noise",
            (false, None, _) => "noise unknown (3+ runs each)",
        };
        if json_out {
            println!(
                "{}",
                json!({
                    "bench": c.bench, "saved": c.before, "measured": c.now, "change": c.change,
                    "noise": c.noise, "flagged": c.flagged, "verdict": verdict, "unit": unit,
                })
            );
        } else {
            let noise = c
                .noise
                .map_or("?".to_owned(), |n| format!("±{:.1}%", n * 100.0));
            println!(
                "{:<34} {:>12.3} {:>12.3} {:>+8.1}% {:>8}  {verdict}",
                c.bench,
                c.before,
                c.now,
                c.change * 100.0,
                noise
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_a_documented_figure() {
        for (bench, _) in TARGETS {
            assert!(
                DOCUMENTED.iter().any(|d| d.bench == *bench),
                "{bench} has a target but is not reported"
            );
        }
    }

    #[test]
    fn targets_say_whether_they_are_met() {
        assert_eq!(Target::AtLeast(8.0).met(8.0, None), Some(true));
        assert_eq!(Target::AtLeast(8.0).met(7.9, None), Some(false));
        assert_eq!(Target::Below(32.0).met(32.0, None), Some(false));
        assert_eq!(Target::OfC(0.9).met(90.0, Some(100.0)), Some(true));
        assert_eq!(Target::OfC(0.9).met(89.0, Some(100.0)), Some(false));
        assert_eq!(Target::OfC(0.9).met(89.0, None), None);
        assert_eq!(
            Target::of("jsonl.batch_append")
                .map(Target::text)
                .as_deref(),
            Some(">= 1500000")
        );
    }
}
