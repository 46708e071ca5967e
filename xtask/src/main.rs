//! Project automation (`cargo xtask <task>`), instead of shell scripts. Every task's flags are
//! declared in `flags.rs` (`cargo xtask <task> --help`); each task lives in a file of its own.
//!
//! - `ci`: the checks `.ci/run` runs (fmt, clippy, tests, doc tests, docs, examples, benches
//!   in test mode, `--no-default-features` builds, the no-tokio and no-SQLite checks).
//! - `bench-report [--quick] [--json] [--runs N] [--no-c] [--save NAME] [--compare NAME]`: runs
//!   the benchmark workloads in release mode (and the same SQLite workloads as a C program
//!   linking the same amalgamation), then prints figure, documented value (`benches/figures.toml`),
//!   our value, ratios, and the target with whether it was met.
//! - `reliability [--soak]`: runs the evidence tests (linearizability, planted bugs, fenced
//!   writes, faults, power loss, fuzz corpora) and prints the figures each published; `ci`
//!   collects the same figures from its test run and prints them too.
//! - `fuzz [--seconds N] [--soak]`: builds the cargo-fuzz targets in `fuzz/` and runs each
//!   for a bounded time (20 s; 30 min with `--soak`), adding their figures.
//! - `shuttle`: the in-memory lock manager's waiter queue and the JSONL group commit's hand-off
//!   under shuttle's random and PCT schedulers (a build with `--cfg shuttle`, in `shuttle/` of
//!   cargo's target directory).
//! - `package`: packages every published crate, checks each package's files, builds them from
//!   their `.crate` files in an out-of-tree project that runs the README examples, and installs
//!   the packaged `oc` (decision 0054).
//! - `codegen`: regenerates `docs/METRICS.md` from the metric catalogue (a test checks it).
//! - `bench-report --instructions [--json]`: the SQLite workloads, ours and C's, under callgrind;
//!   instruction counts per phase are repeatable where wall-clock time on a shared machine is not.
//! - `bench-report --save NAME` / `--compare NAME`: keep a run's figures, and compare a later
//!   run against them, each change judged against the noise measured in both.
//! - `peers [--short] [--jobs N] [--rounds N] [--tcp] [--only LIST]`: oc-postgres against
//!   graphile-worker, pg-boss and pgqueuer, installed at the pins in `benches/peers/` under the
//!   target directory, on one throwaway server in interleaved rounds; prints the table, each
//!   peer's ratio to ours within each round and issue 29's targets, and writes
//!   `peers/results.json` in the target directory (decision 0050).
//! - `instructions [--check | --update]`: instructions per operation of the hot paths under
//!   callgrind, against the committed `benches/instructions.json` (`--check` fails on a growth
//!   beyond 5 %; `--update` rewrites it on purpose).
//! - `supply`: cargo-deny, cargo-semver-checks against `release/baseline.toml`, the MSRV
//!   (decision 0055); `release <patch|minor|major> [--dry-run]`: versions, changelog, SBOM.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod baseline;
mod bench;
mod callgrind;
mod ci;
mod documented;
mod flags;
mod fuzz;
mod instructions;
mod package;
mod peers;
mod release;
mod reliability;
mod shuttle;
mod stats;
mod supply;
#[cfg(test)]
mod tidy;
mod workspace;

use anyhow::Context;

/// Regenerates the files made from code: `docs/METRICS.md` from the metric catalogue.
fn codegen() -> anyhow::Result<()> {
    let path = workspace::root().join("docs/METRICS.md");
    std::fs::write(&path, oc_metrics::catalogue::markdown())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `--help`, an unknown flag or a missing value end here (help: exit 0; errors: exit 2).
    let flags::Xtask { command } = clap::Parser::parse();
    match command {
        flags::Cmd::Ci => ci::ci(),
        flags::Cmd::Reliability { soak } => reliability::reliability(soak),
        flags::Cmd::Fuzz(f) => fuzz::fuzz(&f),
        flags::Cmd::Shuttle { soak } => shuttle::shuttle(soak),
        flags::Cmd::BenchReport(b) => bench::report(&b),
        flags::Cmd::Instructions(i) => instructions::instructions(&i),
        flags::Cmd::Peers(p) => peers::peers(&p).map(drop),
        flags::Cmd::Codegen => codegen(),
        flags::Cmd::Package => package::package(),
        flags::Cmd::Supply => supply::supply(),
        flags::Cmd::Release(r) => release::release(&r),
    }
}
