//! `cargo xtask package`: what crates.io would get, checked without uploading (decision 0054).
//!
//! 1. `cargo package --no-verify` for every published crate, in dependency order (cargo packages
//!    the workspace's inter-dependencies through a temporary registry overlay).
//! 2. Each `.crate` must hold `LICENSE-MIT`, `LICENSE-APACHE` and `README.md`, and stay under
//!    crates.io's 10 MiB limit.
//! 3. Each `.crate` is unpacked under `packaged/crates/` of cargo's target directory (only
//!    when it changed, so a warm run rebuilds nothing), and `tests/packaged/` is copied to
//!    `packaged/project/` with a `[patch.crates-io]` naming those unpacked packages, never the
//!    workspace's paths. That project depends on every library with every feature, so one build
//!    compiles each package from its `.crate` alone (what `cargo package`'s verification does
//!    one crate at a time, at a fraction of the time); its examples are the README examples of
//!    `oc-tasks` and `oc-locks`, taken from the packaged READMEs, built and run.
//! 4. `cargo install --debug --path` of the unpacked `oc-cli` (a member of the project's
//!    workspace) into `packaged/install/`, with the same patches, and the installed `oc --version` must run. (`--debug` shares the build above;
//!    a release build of the whole tree would cost minutes and checks nothing more here.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

use crate::workspace::{root, run, run_in, target_dir};

/// The published crates, in dependency order: name and directory under `crates/`.
pub(crate) const PUBLISHED: [(&str, &str); 14] = [
    ("oc-time", "time"),
    ("oc-lincheck", "lincheck"),
    ("oc-sqlite", "sqlite"),
    ("oc-auth", "auth"),
    ("oc-tasks", "tasks"),
    ("oc-locks", "locks"),
    ("oc-jsonl", "jsonl"),
    ("oc-hooks", "hooks"),
    ("oc-metrics", "metrics"),
    ("oc-alerts", "alerts"),
    ("oc-mcp", "mcp"),
    ("oc-postgres", "postgres"),
    ("oc-web", "web"),
    ("oc-cli", "cli"),
];

/// The crates whose README example the out-of-tree project runs.
const README_EXAMPLES: [&str; 2] = ["oc-tasks", "oc-locks"];

/// crates.io refuses a `.crate` larger than this.
const MAX_CRATE_BYTES: u64 = 10 * 1024 * 1024;

/// The files every package must hold.
const REQUIRED_FILES: [&str; 3] = ["LICENSE-MIT", "LICENSE-APACHE", "README.md"];

pub(crate) fn package() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let version = workspace_version()?;
    let mut args = vec!["package", "--no-verify", "--locked", "--allow-dirty"];
    for (name, _) in PUBLISHED {
        args.extend(["-p", name]);
    }
    run("cargo", &args, &[])?;

    let target = target_dir();
    let packaged = target.join("packaged");
    let project = packaged.join("project");
    let mut unpacked = Vec::new();
    for (name, _) in PUBLISHED {
        let file = target
            .join("package")
            .join(format!("{name}-{version}.crate"));
        let size = fs::metadata(&file)
            .with_context(|| format!("cargo package wrote no {}", file.display()))?
            .len();
        ensure!(
            size <= MAX_CRATE_BYTES,
            "{name}: the package is {size} bytes, over crates.io's limit of {MAX_CRATE_BYTES}"
        );
        check_files(name, &version, &file)?;
        eprintln!(
            "{name}: {:.1} KiB, with licences and README",
            size as f64 / 1024.0
        );
        // oc-cli goes inside the project, as a member of its workspace: `cargo install --path`
        // of a package outside any workspace, but under the workspace's `target/`, would find
        // the workspace's root above it and refuse.
        let into = if name == "oc-cli" {
            project.clone()
        } else {
            packaged.join("crates")
        };
        unpacked.push((name, unpack(&file, &into)?));
    }

    write_project(&project, &unpacked)?;
    // oc-cli is a binary: nothing depends on it, so the patches name the libraries only.
    let ((last, cli_dir), lib_dirs) = unpacked.split_last().context("nothing was packaged")?;
    ensure!(*last == "oc-cli", "oc-cli is packaged last, not {last}");
    let libs = patch_args(lib_dirs);
    let lib_refs: Vec<&str> = libs.iter().map(String::as_str).collect();
    let mut build = vec!["build", "--examples", "--bins"];
    build.extend(&lib_refs);
    let target_s = target.to_string_lossy().into_owned();
    let envs = [("CARGO_TARGET_DIR", target_s.as_str())];
    run_in(&project, "cargo", &build, &envs)?;
    for name in README_EXAMPLES {
        let example = name.replace('-', "_");
        run_in(
            &project,
            "cargo",
            &[&["run", "-q", "--example", &example][..], &lib_refs].concat(),
            &envs,
        )?;
    }

    let cli = cli_dir.to_string_lossy().into_owned();
    let install_root = packaged.join("install");
    let install_s = install_root.to_string_lossy().into_owned();
    let mut install = vec![
        "install", "--locked", "--debug", "--force", "--root", &install_s, "--path", &cli,
    ];
    install.extend(&lib_refs);
    run_in(&project, "cargo", &install, &envs)?;
    let oc = install_root.join("bin").join("oc");
    let out = Command::new(&oc)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", oc.display()))?;
    let printed = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && printed.contains(&version),
        "the installed `oc --version` printed {printed:?} ({})",
        out.status
    );
    eprintln!(
        "packaged {} crates, built them from their packages, ran the README examples of {}, installed `{}` ({:.0} s)",
        PUBLISHED.len(),
        README_EXAMPLES.join(" and "),
        printed.trim(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The workspace's version (`[workspace.package]`), which every published crate inherits.
fn workspace_version() -> anyhow::Result<String> {
    let path = root().join("Cargo.toml");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .context("no [workspace.package] version in Cargo.toml")
}

/// Fails unless the package's file list has every file of [`REQUIRED_FILES`] at its top.
fn check_files(name: &str, version: &str, file: &Path) -> anyhow::Result<()> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(file)
        .output()
        .context("cannot run tar")?;
    ensure!(out.status.success(), "tar cannot list {}", file.display());
    let list = String::from_utf8_lossy(&out.stdout);
    let missing = missing_files(&list, &format!("{name}-{version}"));
    if !missing.is_empty() {
        bail!("{name}: the package lacks {}", missing.join(", "));
    }
    Ok(())
}

/// The files of [`REQUIRED_FILES`] absent from `list` (one path a line, under `prefix/`).
fn missing_files(list: &str, prefix: &str) -> Vec<&'static str> {
    REQUIRED_FILES
        .into_iter()
        .filter(|f| {
            let path = format!("{prefix}/{f}");
            !list.lines().any(|l| l == path)
        })
        .collect()
}

/// Unpacks `file` under `dir` (as `<name>-<version>/`), unless the same `.crate` was unpacked
/// there last time: a new one replaces the whole directory, its files stamped now (the archive's
/// fixed dates would hide the change from cargo).
fn unpack(file: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let bytes = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.file_name().context("a .crate file without a name")?;
    let stem = file
        .file_stem()
        .context("a .crate file without a name")?
        .to_string_lossy()
        .into_owned();
    let out = dir.join(&stem);
    // The copy of the `.crate` unpacked last time (hidden: the project's members are `oc-cli-*`).
    let last = dir.join(format!(".{}", name.to_string_lossy()));
    if fs::read(&last).is_ok_and(|old| old == bytes) && out.is_dir() {
        return Ok(out);
    }
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(file)
        .arg("--touch")
        .arg("-C")
        .arg(dir)
        .status()
        .context("cannot run tar")?;
    ensure!(status.success(), "tar cannot unpack {}", file.display());
    fs::write(&last, bytes).with_context(|| format!("cannot write {}", last.display()))?;
    Ok(out)
}

/// `tests/packaged/` copied to `project`, with the README examples as its `examples/` and the
/// workspace's lock file (so the upstream crates are the versions CI tests). Files are written
/// only when they change, so that a warm run rebuilds nothing.
fn write_project(project: &Path, unpacked: &[(&str, PathBuf)]) -> anyhow::Result<()> {
    let template = root().join("tests/packaged");
    write_if_changed(
        &project.join("Cargo.toml"),
        &fs::read_to_string(template.join("Cargo.toml")).context("tests/packaged/Cargo.toml")?,
    )?;
    write_if_changed(
        &project.join("src/main.rs"),
        &fs::read_to_string(template.join("src/main.rs")).context("tests/packaged/src/main.rs")?,
    )?;
    // Every run starts from the workspace's lock file, which cargo then prunes to the project.
    fs::copy(root().join("Cargo.lock"), project.join("Cargo.lock"))
        .context("cannot copy Cargo.lock")?;
    for name in README_EXAMPLES {
        let dir = unpacked
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d)
            .with_context(|| format!("{name} was not packaged"))?;
        let readme = fs::read_to_string(dir.join("README.md"))
            .with_context(|| format!("{name}: no README.md in the package"))?;
        let code = first_rust_block(&readme)
            .with_context(|| format!("{name}: its README opens with no ```rust example"))?;
        let file = project
            .join("examples")
            .join(format!("{}.rs", name.replace('-', "_")));
        write_if_changed(&file, &code)?;
    }
    Ok(())
}

/// The first fenced ```rust block of a Markdown text, without rustdoc's hidden-line markers.
fn first_rust_block(markdown: &str) -> Option<String> {
    let mut lines = markdown.lines();
    lines.find(|l| {
        l.strip_prefix("```rust")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(','))
    })?;
    let mut code = String::new();
    for line in lines {
        if line.starts_with("```") {
            return Some(code);
        }
        let line = match line.strip_prefix('#') {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest.trim_start(),
            _ => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    None
}

/// `--config` arguments patching crates.io with every unpacked package.
fn patch_args(unpacked: &[(&str, PathBuf)]) -> Vec<String> {
    unpacked
        .iter()
        .flat_map(|(name, dir)| {
            [
                "--config".to_owned(),
                format!("patch.crates-io.{name}.path={:?}", dir.to_string_lossy()),
            ]
        })
        .collect()
}

fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_without_a_licence_is_named() {
        let list = "oc-x-0.1.0/Cargo.toml\noc-x-0.1.0/README.md\noc-x-0.1.0/LICENSE-MIT\n\
                    oc-x-0.1.0/src/LICENSE-APACHE\n";
        assert_eq!(missing_files(list, "oc-x-0.1.0"), ["LICENSE-APACHE"]);
        let full = format!("{list}oc-x-0.1.0/LICENSE-APACHE\n");
        assert!(missing_files(&full, "oc-x-0.1.0").is_empty());
    }

    #[test]
    fn the_first_rust_block_is_the_example() {
        let md = "# x\n\n```sh\nls\n```\n\n```rust,no_run\n# use a;\nfn main() {}\n#[derive(Debug)]\nstruct S;\n```\n```rust\nlater\n```\n";
        assert_eq!(
            first_rust_block(md).as_deref(),
            Some("use a;\nfn main() {}\n#[derive(Debug)]\nstruct S;\n")
        );
        assert_eq!(first_rust_block("```rust\nunterminated\n"), None);
        assert_eq!(first_rust_block("```rustc\nx\n```\n"), None);
    }

    #[test]
    fn every_published_crate_is_a_workspace_member_in_dependency_order() -> anyhow::Result<()> {
        let text = fs::read_to_string(root().join("Cargo.toml"))?;
        let manifest: toml::Table = toml::from_str(&text)?;
        let deps = manifest["workspace"]["dependencies"]
            .as_table()
            .context("no [workspace.dependencies]")?;
        for (i, (name, dir)) in PUBLISHED.iter().enumerate() {
            let path = root().join("crates").join(dir).join("Cargo.toml");
            let member: toml::Table = toml::from_str(&fs::read_to_string(&path)?)?;
            assert_eq!(member["package"]["name"].as_str(), Some(*name));
            assert!(
                member["package"].get("publish").is_none(),
                "{name} is published"
            );
            // Every crate it depends on (normally) comes before it.
            for dep in member
                .get("dependencies")
                .and_then(toml::Value::as_table)
                .into_iter()
                .flat_map(|t| t.keys())
                .filter(|d| deps.get(*d).and_then(|v| v.get("path")).is_some())
            {
                let at = PUBLISHED.iter().position(|(n, _)| n == dep);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{name} depends on {dep}, listed after it"
                );
            }
        }
        Ok(())
    }
}
