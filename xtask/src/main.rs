//! Project automation (`cargo xtask <task>`), instead of shell scripts.
//!
//! - `ci`: the checks `.ci/run` runs (fmt, clippy, tests, doc tests, docs, examples, benches
//!   in test mode, `--no-default-features` builds, the no-tokio check).
//! - `bench-report [--quick] [--json] [--runs N] [--no-c] [--save NAME] [--compare NAME] | instructions [--check | --update]`: runs the benchmark workloads in
//!   release mode (and the same SQLite workloads as a C program linking the same amalgamation),
//!   then prints figure, documented value, our value, ratios, and the target with whether it
//!   was met.
//! - `reliability [--soak]`: runs the evidence tests (linearizability, planted bugs, fenced
//!   writes, faults, power loss, fuzz corpora) and prints the figures each published; `ci`
//!   collects the same figures from its test run and prints them too.
//! - `fuzz [--seconds N] [--soak]`: builds the cargo-fuzz targets in `fuzz/` and runs each
//!   for a bounded time (20 s; 30 min with `--soak`), adding their figures.
//! - `shuttle`: the in-memory lock manager's waiter queue and the JSONL group commit's hand-off
//!   under shuttle's random and PCT schedulers (a build with `--cfg shuttle`, in
//!   `target/shuttle`).
//! - `codegen`: regenerates `docs/METRICS.md` from the metric catalogue (a test checks it).
//! - `bench-report --instructions [--json]`: the SQLite workloads, ours and C's, under callgrind;
//!   instruction counts per phase are repeatable where wall-clock time on a shared machine is not.
//! - `bench-report --save NAME` / `--compare NAME`: keep a run's figures, and compare a later
//!   run against them, each change judged against the noise measured in both.
//! - `instructions [--check | --update]`: instructions per operation of the hot paths under
//!   callgrind, against the committed `benches/instructions.json` (`--check` fails on a growth
//!   beyond 5 %; `--update` rewrites it on purpose).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod baseline;
mod bench;
mod documented;
mod flags;
mod fuzz;
mod instructions;
mod reliability;
mod stats;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the workspace root, failing on a non-zero exit.
/// Whether `program` runs here (found on the `PATH`).
fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    run_in(&root(), program, args, envs)
}

/// Runs a command in `dir`, failing on a non-zero exit.
fn run_in(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Where the figures of a run go.
pub(crate) fn figures_path() -> std::path::PathBuf {
    root().join("target/reliability.jsonl")
}

/// Appends one line of figures to this run's figures file (for steps outside the test run).
pub(crate) fn append_figures(line: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let path = figures_path();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("cannot write {}", path.display()))
}

/// The interleaving tests built with `--cfg shuttle` (shuttle's synchronisation swapped in), in a
/// target directory of their own so the main build stays cached; their figures join this run's.
/// `soak` runs twenty times as many schedules.
fn shuttle(soak: bool) -> anyhow::Result<()> {
    let target = root().join("target/shuttle");
    let figures = figures_path();
    run(
        "cargo",
        &[
            "test", "-p", "oc-locks", "-p", "oc-jsonl", "--test", "shuttle", "--locked",
        ],
        &[
            ("RUSTFLAGS", "--cfg shuttle"),
            ("CARGO_TARGET_DIR", &target.to_string_lossy()),
            ("OC_RELIABILITY_OUT", &figures.to_string_lossy()),
            ("OC_SOAK", if soak { "1" } else { "0" }),
        ],
    )
}

/// The library crates, each checked alone without default features.
const LIBS: [&str; 12] = [
    "oc-time",
    "oc-lincheck",
    "oc-sqlite",
    "oc-postgres",
    "oc-tasks",
    "oc-locks",
    "oc-jsonl",
    "oc-hooks",
    "oc-metrics",
    "oc-alerts",
    "oc-mcp",
    "oc-web",
];

fn ci() -> anyhow::Result<()> {
    let deny = [("RUSTDOCFLAGS", "-D warnings"), ("CARGO_INCREMENTAL", "0")];
    run("cargo", &["fmt", "--all", "--check"], &[])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &deny,
    )?;
    // The whole suite includes the evidence tests: their figures are collected on the way.
    let figures = figures_path();
    let _ = std::fs::remove_file(&figures);
    let figures_s = figures.to_string_lossy().into_owned();
    run(
        "cargo",
        &[
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--locked",
            "--no-fail-fast",
        ],
        &[
            ("RUSTDOCFLAGS", "-D warnings"),
            ("CARGO_INCREMENTAL", "0"),
            ("OC_RELIABILITY_OUT", figures_s.as_str()),
        ],
    )?;
    shuttle(false)?;
    fuzz::run_targets(20)?;
    reliability::print_figures(&figures)?;
    run(
        "cargo",
        &["test", "--workspace", "--doc", "--all-features", "--locked"],
        &deny,
    )?;
    run(
        "cargo",
        &[
            "doc",
            "--workspace",
            "--no-deps",
            "--all-features",
            "--locked",
        ],
        &deny,
    )?;
    run(
        "cargo",
        &["build", "--workspace", "--examples", "--locked"],
        &deny,
    )?;
    for example in [
        "task_queue",
        "file_locks",
        "monitoring_hooks",
        "tracing",
        "tokio_agent",
    ] {
        let args = [
            "run",
            "--locked",
            "-q",
            "-p",
            "oc-examples",
            "--example",
            example,
        ];
        run("cargo", &args, &deny)?;
    }
    run(
        "cargo",
        &["test", "-p", "oc-benches", "--benches", "--locked"],
        &deny,
    )?;
    // The hot paths' instruction counts against the committed baseline (needs valgrind).
    if which("valgrind") || std::env::var_os("OC_REQUIRE_VALGRIND").is_some() {
        instructions::instructions(&flags::Instructions {
            check: true,
            update: false,
        })?;
    } else {
        eprintln!("skipped: the hot paths' instruction counts (no valgrind)");
    }
    for lib in LIBS {
        run(
            "cargo",
            &["check", "-p", lib, "--no-default-features", "--locked"],
            &deny,
        )?;
    }
    no_tokio()
}

/// The library crates' default builds must not contain tokio (design rule); only
/// `oc-postgres`, whose client needs a runtime inside, and the `oc` binary that ships it may.
/// `cargo tree -i` cannot tell "absent" from other failures, so read each whole tree instead.
fn no_tokio() -> anyhow::Result<()> {
    for lib in LIBS.iter().filter(|l| **l != "oc-postgres") {
        let out = Command::new("cargo")
            .args([
                "tree", "-p", lib, "-e", "normal", "--prefix", "none", "--locked",
            ])
            .current_dir(root())
            .output()
            .context("cannot run cargo tree")?;
        if !out.status.success() {
            bail!(
                "cargo tree failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = tree.lines().find(|l| l.starts_with("tokio ")) {
            bail!("tokio is in the default build of {lib}: {line}");
        }
    }
    eprintln!("no tokio in the default build of any library crate but oc-postgres");
    Ok(())
}

/// Regenerates the files made from code: `docs/METRICS.md` from the metric catalogue.
fn codegen() -> anyhow::Result<()> {
    let path = root().join("docs/METRICS.md");
    std::fs::write(&path, oc_metrics::catalogue::markdown())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `--help`, an unknown flag or a missing value end here (help: exit 0; errors: exit 2).
    let flags::Xtask { command } = clap::Parser::parse();
    match command {
        flags::Cmd::Ci => ci(),
        flags::Cmd::Reliability { soak } => reliability::reliability(soak),
        flags::Cmd::Fuzz(f) => fuzz::fuzz(&f),
        flags::Cmd::Shuttle { soak } => shuttle(soak),
        flags::Cmd::BenchReport(b) => bench::report(&b),
        flags::Cmd::Instructions(i) => instructions::instructions(&i),
        flags::Cmd::Codegen => codegen(),
    }
}
