//! `cargo xtask supply`: the compatibility and supply-chain checks `cargo xtask ci` runs
//! (decision 0055).
//!
//! - **deny**: cargo-deny's licences (an allow-list), bans (duplicate versions warned, each one
//!   that stays skipped with its reason) and sources (crates.io only), from `deny.toml`; then
//!   the RustSec advisories when their database can be fetched, else the notice
//!   `advisories: skipped, database unreachable`.
//! - **semver**: cargo-semver-checks of every published crate against the release commit
//!   recorded in `release/baseline.toml` (not the tag: CI's clone may lack tags).
//! - **sbom**: the CycloneDX SBOM of `oc` that `cargo xtask release` writes, produced (into
//!   `release-artifacts/` of the target directory) and read back.
//! - **msrv**: the workspace resolves with `resolver = "3"`, no package in `Cargo.lock` declares
//!   a `rust-version` newer than ours, every path dependency is a workspace member, and the
//!   toolchain building everything is the MSRV (else `cargo +<msrv>` checks the workspace).
//!
//! A missing cargo-deny, cargo-semver-checks or cargo-cyclonedx is a notice locally and a failure under
//! `CI=true` (or `OC_REQUIRE_CARGO_DENY`, `OC_REQUIRE_SEMVER_CHECKS`, `OC_REQUIRE_CYCLONEDX`); so is a baseline commit
//! missing from the history.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::{root, run};

/// The file naming the release commits semver-checks compares against.
pub(crate) const BASELINE_FILE: &str = "release/baseline.toml";

/// Runs the three checks, each timed.
pub(crate) fn supply() -> anyhow::Result<()> {
    timed("msrv", msrv)?;
    timed("deny", deny)?;
    timed("sbom", sbom)?;
    timed("semver", semver)
}

/// The SBOM `cargo xtask release` writes, produced at the current version.
fn sbom() -> anyhow::Result<()> {
    if !crate::release::cyclonedx_installed() {
        if required("OC_REQUIRE_CYCLONEDX") {
            bail!(
                "cargo-cyclonedx is required (OC_REQUIRE_CYCLONEDX or CI is set): cargo install cargo-cyclonedx --locked"
            );
        }
        eprintln!("sbom: skipped, cargo-cyclonedx is not installed");
        return Ok(());
    }
    crate::release::sbom_current().map(drop)
}

fn timed(name: &str, check: fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let result = check();
    eprintln!(
        "supply: {name} {} in {:.1} s",
        if result.is_ok() { "done" } else { "failed" },
        start.elapsed().as_secs_f64()
    );
    result
}

/// Whether a missing tool or baseline must fail: under CI, or when asked by name.
fn required(var: &str) -> bool {
    std::env::var_os(var).is_some() || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `cargo <sub> --version` runs.
fn cargo_has(sub: &str) -> bool {
    Command::new("cargo")
        .args([sub, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fails (or returns `false` with a notice) when `cargo <sub>` is not installed.
fn tool(sub: &str, krate: &str, var: &str) -> anyhow::Result<bool> {
    if cargo_has(sub) {
        return Ok(true);
    }
    if required(var) {
        bail!("{krate} is required ({var} or CI is set): cargo install {krate} --locked");
    }
    eprintln!("{sub}: skipped, {krate} is not installed (cargo install {krate} --locked)");
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// deny

/// cargo-deny: licences, bans and sources always; advisories when the database can be fetched.
pub(crate) fn deny() -> anyhow::Result<()> {
    if !tool("deny", "cargo-deny", "OC_REQUIRE_CARGO_DENY")? {
        return Ok(());
    }
    run(
        "cargo",
        &["deny", "--locked", "check", "bans", "licenses", "sources"],
        &[],
    )?;
    // `cargo deny fetch db` clones or updates the RustSec database from github.com; when that
    // fails the check below would fail for a reason that is not ours.
    // A dropped packet would hang the clone until git gives up: two minutes at most.
    let fetch = Command::new("timeout")
        .args(["120", "cargo", "deny", "fetch", "db"])
        .current_dir(root())
        .output()
        .context("cannot run timeout 120 cargo deny fetch db")?;
    if !fetch.status.success() {
        let why = String::from_utf8_lossy(&fetch.stderr);
        let why = why
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("cargo deny fetch db failed");
        eprintln!(
            "advisories: skipped, database unreachable ({}); yanked crates unchecked too",
            why.trim()
        );
        return Ok(());
    }
    run("cargo", &["deny", "--locked", "check", "advisories"], &[])
}

// ---------------------------------------------------------------------------------------------
// semver

/// The latest release and its commit, as `release/baseline.toml` records them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Baseline {
    pub(crate) release: String,
    pub(crate) commit: String,
}

/// Reads `release/baseline.toml`: `baseline = "<release>"` and `[releases]` mapping each
/// release to its full commit id.
pub(crate) fn parse_baseline(text: &str) -> anyhow::Result<Baseline> {
    let doc: toml::Table = toml::from_str(text).context("release/baseline.toml is not TOML")?;
    let release = doc
        .get("baseline")
        .and_then(toml::Value::as_str)
        .context("release/baseline.toml: no `baseline = \"<release>\"`")?;
    let commit = doc
        .get("releases")
        .and_then(toml::Value::as_table)
        .and_then(|r| r.get(release))
        .and_then(toml::Value::as_str)
        .with_context(|| format!("release/baseline.toml: no commit for {release} in [releases]"))?;
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("release/baseline.toml: the commit of {release} is not 40 hex digits: {commit:?}");
    }
    Ok(Baseline {
        release: release.to_owned(),
        commit: commit.to_ascii_lowercase(),
    })
}

fn has_commit(dir: &Path, commit: &str) -> bool {
    Command::new("git")
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The workspace packages semver-checks leaves out: not published (`publish = false`), or
/// without a library.
fn unpublished() -> anyhow::Result<Vec<String>> {
    let meta = crate::workspace::cargo_metadata(&["--no-deps", "--locked"])?;
    Ok(meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["publish"].as_array().is_some_and(Vec::is_empty) || !has_lib(p))
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect())
}

/// Whether a package of `cargo metadata` has a library target (semver-checks checks only
/// libraries: `oc-cli` is a binary, its interface is its command line).
fn has_lib(package: &serde_json::Value) -> bool {
    package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            t["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| matches!(k.as_str(), Some("lib" | "rlib" | "dylib" | "proc-macro")))
        })
}

/// cargo-semver-checks of the published crates against the recorded release commit.
pub(crate) fn semver() -> anyhow::Result<()> {
    if !tool(
        "semver-checks",
        "cargo-semver-checks",
        "OC_REQUIRE_SEMVER_CHECKS",
    )? {
        return Ok(());
    }
    let root = root();
    let path = root.join(BASELINE_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let baseline = parse_baseline(&text)?;
    if !has_commit(&root, &baseline.commit) {
        // A shallow clone: ask the remote for that one commit before giving up.
        let _ = Command::new("git")
            .args(["fetch", "-q", "--depth=1", "origin", &baseline.commit])
            .current_dir(&root)
            .status();
    }
    if !has_commit(&root, &baseline.commit) {
        let msg = format!(
            "semver: the baseline {} ({}) is not in this clone's history",
            baseline.release, baseline.commit
        );
        if required("OC_REQUIRE_SEMVER_CHECKS") {
            bail!("{msg} (CI is set: fetch the full history)");
        }
        eprintln!("{msg}: skipped");
        return Ok(());
    }
    eprintln!("semver: against {} ({})", baseline.release, baseline.commit);
    let mut args = vec![
        "semver-checks".to_owned(),
        "--workspace".to_owned(),
        "--baseline-rev".to_owned(),
        baseline.commit.clone(),
    ];
    for name in unpublished()? {
        args.push("--exclude".to_owned());
        args.push(name);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // semver-checks resolves both sides afresh, ignoring our Cargo.lock: prefer the versions
    // our MSRV can build, so an upstream release needing a newer compiler does not fail us.
    run(
        "cargo",
        &args,
        &[("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")],
    )
}

// ---------------------------------------------------------------------------------------------
// msrv

/// A `rust-version` as (major, minor, patch); a missing patch is 0.
pub(crate) fn parse_rust_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// The packages of `cargo metadata` (with dependencies) whose `rust-version` is newer than
/// `msrv`, as `name version (rust-version)`; an unreadable `rust-version` counts as newer.
pub(crate) fn newer_than(metadata: &serde_json::Value, msrv: (u64, u64, u64)) -> Vec<String> {
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let declared = p["rust_version"].as_str()?;
            let newer = parse_rust_version(declared).is_none_or(|v| v > msrv);
            newer.then(|| {
                format!(
                    "{} {} (rust-version {declared})",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?")
                )
            })
        })
        .collect()
}

/// Path dependencies that are not workspace members, as `package -> dependency (path)`.
pub(crate) fn foreign_paths(metadata: &serde_json::Value) -> Vec<String> {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let member_dirs: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .filter_map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str()?);
            Some(manifest.parent()?.to_string_lossy().into_owned())
        })
        .collect();
    let mut found = Vec::new();
    for p in metadata["packages"].as_array().into_iter().flatten() {
        for d in p["dependencies"].as_array().into_iter().flatten() {
            if let Some(path) = d["path"].as_str()
                && !member_dirs.iter().any(|m| m == path)
            {
                found.push(format!(
                    "{} -> {} ({path})",
                    p["name"].as_str().unwrap_or("?"),
                    d["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    found
}

/// The MSRV: `resolver = "3"`, every locked package's `rust-version` at most ours, path
/// dependencies only on members, and the workspace built by the MSRV toolchain.
pub(crate) fn msrv() -> anyhow::Result<()> {
    let msrv = msrv_resolution()?;
    msrv_toolchain(msrv)
}

/// `resolver = "3"`, the locked packages' `rust-version`s and the path dependencies; returns
/// the MSRV.
fn msrv_resolution() -> anyhow::Result<(u64, u64, u64)> {
    let root = root();
    let manifest_path = root.join("Cargo.toml");
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .context("Cargo.toml is not TOML")?;
    let workspace = manifest.get("workspace").and_then(toml::Value::as_table);
    let resolver = workspace
        .and_then(|w| w.get("resolver"))
        .and_then(toml::Value::as_str);
    if resolver != Some("3") {
        bail!(
            "msrv: the workspace must say resolver = \"3\" (MSRV-aware resolution), not {resolver:?}"
        );
    }
    let declared = workspace
        .and_then(|w| w.get("package"))
        .and_then(toml::Value::as_table)
        .and_then(|p| p.get("rust-version"))
        .and_then(toml::Value::as_str)
        .context("msrv: no rust-version in [workspace.package]")?;
    let msrv = parse_rust_version(declared)
        .with_context(|| format!("msrv: rust-version {declared:?} is not a version"))?;

    let metadata = crate::workspace::cargo_metadata(&["--locked", "--all-features"])?;
    let newer = newer_than(&metadata, msrv);
    if !newer.is_empty() {
        bail!(
            "msrv: these locked packages need a compiler newer than our rust-version {declared}:\n  {}",
            newer.join("\n  ")
        );
    }
    let foreign = foreign_paths(&metadata);
    if !foreign.is_empty() {
        bail!(
            "sources: path dependencies outside the workspace:\n  {}",
            foreign.join("\n  ")
        );
    }
    let count = metadata["packages"].as_array().map_or(0, Vec::len);
    eprintln!("msrv: all {count} locked packages declare a rust-version of at most {declared}");
    Ok(msrv)
}

/// The toolchain: the rest of CI builds everything with the default one; if that is not the
/// MSRV, the MSRV's own compiler checks the workspace (when it is installed).
fn msrv_toolchain(msrv: (u64, u64, u64)) -> anyhow::Result<()> {
    let default = rustc_version(None);
    let toolchain = format!("{}.{}.{}", msrv.0, msrv.1, msrv.2);
    if default == Some(msrv) {
        eprintln!("msrv: the default toolchain is {toolchain}, the MSRV: the CI build checks it");
        return Ok(());
    }
    if rustc_version(Some(&toolchain)) == Some(msrv) {
        let plus = format!("+{toolchain}");
        return run(
            "cargo",
            &[
                &plus,
                "check",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--locked",
            ],
            &[],
        );
    }
    eprintln!(
        "msrv: toolchain {toolchain} is not installed; only the declared rust-versions were checked"
    );
    Ok(())
}

/// `rustc [+toolchain] --version` as (major, minor, patch).
fn rustc_version(toolchain: Option<&str>) -> Option<(u64, u64, u64)> {
    let mut cmd = Command::new("rustc");
    if let Some(t) = toolchain {
        cmd.arg(format!("+{t}"));
    }
    let out = cmd.arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1)?;
    // "1.95.0" or "1.96.0-nightly".
    parse_rust_version(version.split('-').next()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "53775b2a498e35c3ba983e69bc7bd01e569b8369";

    #[test]
    fn the_baseline_names_a_release_and_its_full_commit() {
        let text = format!("baseline = \"v0.1.0\"\n[releases]\n\"v0.1.0\" = \"{SHA}\"\n");
        assert_eq!(
            parse_baseline(&text).unwrap(),
            Baseline {
                release: "v0.1.0".into(),
                commit: SHA.into()
            }
        );
    }

    #[test]
    fn a_baseline_without_its_commit_or_with_a_short_one_is_refused() {
        let missing = "baseline = \"v0.2.0\"\n[releases]\n\"v0.1.0\" = \"53775b2\"\n";
        let err = parse_baseline(missing).unwrap_err().to_string();
        assert!(err.contains("no commit for v0.2.0"), "{err}");
        let short = "baseline = \"v0.1.0\"\n[releases]\n\"v0.1.0\" = \"53775b2\"\n";
        let err = parse_baseline(short).unwrap_err().to_string();
        assert!(err.contains("not 40 hex digits"), "{err}");
        assert!(parse_baseline("[releases]\n").is_err());
    }

    #[test]
    fn the_recorded_baseline_is_the_v0_1_0_commit() {
        let text = std::fs::read_to_string(root().join(BASELINE_FILE)).unwrap();
        let baseline = parse_baseline(&text).unwrap();
        assert_eq!(baseline.release, "v0.1.0");
        assert_eq!(baseline.commit, SHA);
    }

    #[test]
    fn rust_versions_compare_with_a_missing_patch_as_zero() {
        assert_eq!(parse_rust_version("1.95"), Some((1, 95, 0)));
        assert_eq!(parse_rust_version("1.70.1"), Some((1, 70, 1)));
        assert_eq!(parse_rust_version("1"), Some((1, 0, 0)));
        assert_eq!(parse_rust_version("1.x"), None);
        assert_eq!(parse_rust_version("1.2.3.4"), None);
        assert!(parse_rust_version("1.95.1") > parse_rust_version("1.95"));
    }

    #[test]
    fn a_dependency_needing_a_newer_compiler_is_named() {
        let metadata = serde_json::json!({"packages": [
            {"name": "old", "version": "1.0.0", "rust_version": "1.70"},
            {"name": "same", "version": "1.0.0", "rust_version": "1.95.0"},
            {"name": "none", "version": "1.0.0", "rust_version": null},
            {"name": "newer", "version": "2.0.0", "rust_version": "1.96"},
            {"name": "patch", "version": "0.1.0", "rust_version": "1.95.1"},
            {"name": "garbage", "version": "0.1.0", "rust_version": "soon"},
        ]});
        assert_eq!(
            newer_than(&metadata, (1, 95, 0)),
            [
                "newer 2.0.0 (rust-version 1.96)",
                "patch 0.1.0 (rust-version 1.95.1)",
                "garbage 0.1.0 (rust-version soon)"
            ]
        );
    }

    #[test]
    fn a_path_dependency_outside_the_workspace_is_named() {
        let metadata = serde_json::json!({
            "workspace_members": ["a-id", "b-id"],
            "packages": [
                {"id": "a-id", "name": "a", "manifest_path": "/w/crates/a/Cargo.toml",
                 "dependencies": [{"name": "b", "path": "/w/crates/b"}, {"name": "serde"}]},
                {"id": "b-id", "name": "b", "manifest_path": "/w/crates/b/Cargo.toml",
                 "dependencies": [{"name": "evil", "path": "/home/me/evil"}]},
            ]
        });
        assert_eq!(foreign_paths(&metadata), ["b -> evil (/home/me/evil)"]);
    }

    #[test]
    fn a_binary_only_package_has_no_library_to_check() {
        let bin = serde_json::json!({"targets": [{"kind": ["bin"]}, {"kind": ["test"]}]});
        let lib = serde_json::json!({"targets": [{"kind": ["bin"]}, {"kind": ["lib"]}]});
        assert!(!has_lib(&bin));
        assert!(has_lib(&lib));
    }

    #[test]
    fn the_locked_tree_fits_our_msrv() {
        // The same check CI runs, on this checkout (cargo metadata reads, builds nothing).
        assert_eq!(msrv_resolution().unwrap(), (1, 95, 0));
    }
}
