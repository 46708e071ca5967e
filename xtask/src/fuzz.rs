//! `cargo xtask fuzz [--seconds N] [--soak]`: builds the cargo-fuzz targets in `fuzz/` (stable
//! toolchain, no sanitizer) and runs each for a bounded time over its committed corpus, then
//! publishes executions, corpus size and crashes to the reliability figures. CI runs it for 20 s
//! per target; `--soak` (or `OC_SOAK=1`) for 30 minutes each.

use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::{append_figures, root, run_in, target_dir};

/// The targets, as named in `fuzz/Cargo.toml` and `oc_fuzz_oracles::TARGETS`.
const TARGETS: [&str; 6] = [
    "jsonl_repair",
    "json_serializer",
    "resource",
    "alert_config",
    "corrupt_database",
    "mcp_messages",
];

fn cargo_fuzz_available() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs every target for `seconds` (CI: a quick bounded run) and publishes the figures.
pub(crate) fn fuzz(flags: &crate::flags::Fuzz) -> anyhow::Result<()> {
    let soak = flags.soak || std::env::var("OC_SOAK").is_ok_and(|v| v == "1");
    let seconds = match flags.seconds {
        Some(seconds) => seconds,
        None if soak => 1800,
        None => 20,
    };
    run_targets(seconds)
}

pub(crate) fn run_targets(seconds: u64) -> anyhow::Result<()> {
    if !cargo_fuzz_available() {
        if std::env::var_os("OC_REQUIRE_FUZZ").is_some() {
            bail!(
                "cargo fuzz is required (OC_REQUIRE_FUZZ is set): cargo install cargo-fuzz --locked"
            );
        }
        eprintln!(
            "cargo fuzz is not installed: skipping the fuzz runs (cargo install cargo-fuzz --locked)"
        );
        return Ok(());
    }
    let dir = root().join("fuzz");
    run_in(&dir, "cargo", &["fuzz", "build", "-s", "none"], &[])?;
    let mut crashed = Vec::new();
    for target in TARGETS {
        let corpus = dir.join("corpus").join(target);
        let corpus_before = count(&corpus);
        // New inputs go to a scratch directory; the committed corpus is only read.
        let scratch = target_dir().join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let out = Command::new("cargo")
            .args([
                "fuzz",
                "run",
                target,
                "-s",
                "none",
                &scratch.to_string_lossy(),
                &corpus.to_string_lossy(),
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .current_dir(&dir)
            .output()
            .with_context(|| format!("cannot run cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stat = |name: &str| -> u64 {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let execs = stat("number_of_executed_units");
        let crashes = u64::from(!out.status.success());
        eprintln!(
            "fuzz {target}: {execs} executions in {seconds} s over {corpus_before} committed inputs ({} new in {}), {crashes} crashes",
            count(&scratch),
            scratch.display()
        );
        if crashes > 0 {
            let artifact = log
                .lines()
                .find_map(|l| l.split("Test unit written to ").nth(1))
                .unwrap_or("fuzz/artifacts/")
                .to_owned();
            eprintln!("{log}");
            eprintln!(
                "replay: (cd fuzz && cargo fuzz run {target} -s none {artifact}); keep it as a regression in fuzz/regressions/{target}/"
            );
            crashed.push(target);
        }
        append_figures(&serde_json::json!({
            "test": format!("fuzz.{target}"),
            "seconds": seconds,
            "executions": execs,
            "corpus": corpus_before,
            "new_inputs": count(&scratch),
            "crashes": crashes,
        }))?;
    }
    if !crashed.is_empty() {
        bail!("fuzz targets failed their oracles: {}", crashed.join(", "));
    }
    Ok(())
}

fn count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}
