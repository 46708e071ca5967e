//! `cargo xtask ci`: the checks `.ci/run` runs (fmt, clippy, tests collecting the reliability
//! figures, shuttle, fuzz, doc tests, docs, examples, benches in test mode, the hot paths'
//! instruction counts, `--no-default-features` builds, the no-tokio and no-SQLite checks).

use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::{figures_path, root, run, which};
use crate::{flags, fuzz, instructions, reliability, shuttle};

/// The library crates, each checked alone without default features.
const LIBS: [&str; 13] = [
    "oc-time",
    "oc-auth",
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

pub(crate) fn ci() -> anyhow::Result<()> {
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
    shuttle::shuttle(false)?;
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
    // The task store without SQLite, with what a PostgreSQL-only embedder adds.
    run(
        "cargo",
        &[
            "check",
            "-p",
            "oc-tasks",
            "--no-default-features",
            "--features",
            "testkit,tokio",
            "--locked",
        ],
        &deny,
    )?;
    no_tokio()?;
    no_sqlite()?;
    crate::package::package()?;
    crate::supply::supply()
}

/// The library crates' default builds must not contain tokio (design rule); only
/// `oc-postgres`, whose client needs a runtime inside, and the `oc` binary that ships it may.
pub(crate) fn no_tokio() -> anyhow::Result<()> {
    for lib in LIBS.iter().filter(|l| **l != "oc-postgres") {
        if let Some(line) = found_in(lib, "tokio")? {
            bail!("tokio is in the default build of {lib}: {line}");
        }
    }
    eprintln!("no tokio in the default build of any library crate but oc-postgres");
    Ok(())
}

/// A PostgreSQL-only embedder builds no SQLite: `oc-postgres` takes `oc-tasks` and `oc-locks`
/// without their `sqlite` features.
pub(crate) fn no_sqlite() -> anyhow::Result<()> {
    for krate in ["rusqlite", "libsqlite3-sys"] {
        if let Some(line) = found_in("oc-postgres", krate)? {
            bail!("{krate} is in the build of oc-postgres: {line}");
        }
    }
    eprintln!("no SQLite in the build of oc-postgres");
    Ok(())
}

/// The line naming `krate` in the normal dependency tree of `lib`'s default build, if any.
/// `cargo tree -i` cannot tell "absent" from other failures, so read the whole tree instead.
fn found_in(lib: &str, krate: &str) -> anyhow::Result<Option<String>> {
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
    let prefix = format!("{krate} ");
    Ok(tree
        .lines()
        .find(|l| l.starts_with(&prefix))
        .map(str::to_owned))
}
