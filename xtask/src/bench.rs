//! `cargo xtask bench-report`: our figures beside the documented ones (`benches/figures.toml`,
//! read by `documented.rs`) and a C baseline, or against a saved run (`baseline.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::baseline;
use crate::callgrind::callgrind;
use crate::documented::{self, Documented};
use crate::flags::BenchReport;
use crate::stats::median;
use crate::workspace::{build_release, root, target_dir};

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
/// before anything is timed; returns where `oc-bench-figures` is.
fn build_figures() -> anyhow::Result<PathBuf> {
    let figures = build_release("oc-benches", "oc-bench-figures")?;
    build_release("oc-cli", "oc")?;
    Ok(figures)
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
    let meta = crate::workspace::cargo_metadata(&["--locked"])?;
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
    let out_dir = target_dir().join("c-bench");
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

pub(crate) fn machine() -> String {
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

/// Instruction counts of the SQLite phases, ours and C's: repeatable whatever the machine's
/// neighbours are doing, unlike wall-clock time here.
fn instructions(json_out: bool) -> anyhow::Result<()> {
    let c_exe = build_c()?;
    let figures_exe = build_figures()?;
    let dir = target_dir().join("c-bench");
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
        .arg(&figures_exe)
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
    let figures = documented::figures()?;
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
        return print_comparison(name, saved_on, &machine, before, &ours, &figures, json_out);
    }
    if !json_out {
        println!("Machine: {machine}; medians of {runs} run(s)");
        println!(
            "{:<32} {:>12} {:>12} {:>10} {:>12} {:>9}  {:<16} {:<4} unit",
            "figure", "documented", "ours", "ours/doc", "C same run", "ours/C", "target", "met"
        );
    }
    for d in &figures {
        let Some(measured) = ours.get(&d.bench).cloned().and_then(median) else {
            continue;
        };
        let c = c_figures.get(&d.bench).cloned().and_then(median);
        let ratio_doc = d.documented.map(|v| measured / v);
        let ratio_c = c.map(|c| measured / c);
        let target = d.target;
        let met = target.and_then(|t| t.met(measured, c.or(d.c_reference)));
        if json_out {
            println!(
                "{}",
                json!({
                    "bench": d.bench, "documented": d.documented, "measured": measured, "unit": d.unit,
                    "c_same_run": c, "c_reference": d.c_reference, "ratio_to_c": ratio_c, "machine": machine,
                    "target": target.map(documented::Target::text), "target_met": met,
                })
            );
        } else {
            let f =
                |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |v| format!("{v:.prec$}"));
            let prec = if ["MiB", "ms", "x", "appends"].contains(&d.unit.as_str()) {
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
                f(d.documented, prec),
                format!("{measured:.prec$}"),
                f(ratio_doc, 2),
                f(c, prec),
                f(ratio_c, 2),
                target.map(documented::Target::text).unwrap_or_default(),
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
    figures: &[Documented],
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
        let unit = figures
            .iter()
            .find(|d| d.bench == c.bench)
            .map(|d| d.unit.as_str());
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
