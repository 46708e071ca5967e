//! The workspace as xtask's tasks see it: its root, cargo's target directory (every path xtask
//! writes under is taken from [`target_dir`]), running commands in it, release builds, and the
//! file this run's reliability figures go to.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory for the workspace, where its builds go: `target/` in the root unless
/// `CARGO_TARGET_DIR` or `build.target-dir` in a `.cargo/config.toml` moves it. Asked of
/// `cargo metadata`, which knows all of them; if that fails, `CARGO_TARGET_DIR`, else `target/`.
pub(crate) fn target_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = root();
        Command::new("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(&root)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| from_metadata(&out.stdout))
            .unwrap_or_else(|| from_env(&root, std::env::var_os("CARGO_TARGET_DIR").as_deref()))
    })
    .clone()
}

/// The `target_directory` of `cargo metadata`'s output.
fn from_metadata(json: &[u8]) -> Option<PathBuf> {
    let metadata: serde_json::Value = serde_json::from_slice(json).ok()?;
    metadata["target_directory"].as_str().map(PathBuf::from)
}

/// The target directory cargo run in `root` uses when `CARGO_TARGET_DIR` is `env` and no
/// configuration file sets one: a relative one is relative to `root`.
fn from_env(root: &Path, env: Option<&OsStr>) -> PathBuf {
    match env {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
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

/// `cargo metadata --format-version 1` with `args` (e.g. `--no-deps`, `--locked`), parsed.
pub(crate) fn cargo_metadata(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .current_dir(root())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("cargo metadata's output is not JSON")
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
    Ok(target_dir().join("release").join(bin))
}

/// Where the figures of a run go.
pub(crate) fn figures_path() -> PathBuf {
    target_dir().join("reliability.jsonl")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_directory_is_where_this_test_was_built() {
        // This test binary is `<target>/debug/deps/xtask-…`, wherever cargo was told to build.
        let exe = std::env::current_exe().unwrap();
        let target = target_dir();
        assert!(
            exe.starts_with(&target),
            "{} is not under {}",
            exe.display(),
            target.display()
        );
    }

    #[test]
    fn metadata_names_the_target_directory() {
        let json = br#"{"packages":[],"target_directory":"/build/here","workspace_root":"/w"}"#;
        assert_eq!(from_metadata(json), Some(PathBuf::from("/build/here")));
        assert_eq!(from_metadata(b"{}"), None);
        assert_eq!(from_metadata(b"not json"), None);
    }

    #[test]
    fn without_metadata_cargo_target_dir_else_target_in_the_root() {
        let root = Path::new("/w");
        assert_eq!(from_env(root, None), PathBuf::from("/w/target"));
        assert_eq!(
            from_env(root, Some(OsStr::new(""))),
            PathBuf::from("/w/target")
        );
        assert_eq!(
            from_env(root, Some(OsStr::new("/elsewhere"))),
            PathBuf::from("/elsewhere")
        );
        assert_eq!(
            from_env(root, Some(OsStr::new("out"))),
            PathBuf::from("/w/out")
        );
    }
}
