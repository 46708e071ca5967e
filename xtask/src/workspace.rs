//! The workspace as xtask's tasks see it: its root, running commands in it, release builds, and
//! the file this run's reliability figures go to.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Whether `program` runs here (found on the `PATH`).
pub(crate) fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub(crate) fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    run_in(&root(), program, args, envs)
}

/// Runs a command in `dir`, failing on a non-zero exit.
pub(crate) fn run_in(
    dir: &Path,
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> anyhow::Result<()> {
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
    run("cargo", &args, &[])?;
    Ok(root().join("target/release").join(bin))
}

/// Where the figures of a run go.
pub(crate) fn figures_path() -> PathBuf {
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
