//! `cargo xtask release <patch|minor|major> [--dry-run]`: prepares a release (decision 0055).
//!
//! It bumps the one version the published crates share (`[workspace.package] version` and the
//! `version = ` of our own crates in `[workspace.dependencies]`, together), moves `CHANGELOG.md`'s
//! Unreleased section into a section of the new version dated today, updates `Cargo.lock`, and
//! writes the SBOM of `oc` (CycloneDX, by cargo-cyclonedx) into `release-artifacts/` of cargo's
//! target directory. `--dry-run` prints what would change and writes nothing.
//!
//! After it: review, commit, tag the commit `v<version>`, and record the commit in
//! `release/baseline.toml` so semver-checks compares later changes against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::{root, run, target_dir};

/// How much a release changes the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Level {
    /// Compatible fixes: 0.1.0 → 0.1.1.
    Patch,
    /// New features (and, before 1.0, breaking changes): 0.1.3 → 0.2.0, 1.2.3 → 1.3.0.
    Minor,
    /// Breaking changes: 0.1.3 → 1.0.0, 1.2.3 → 2.0.0.
    Major,
}

/// A version `major.minor.patch` (no pre-release or build metadata: we publish none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(pub(crate) u64, pub(crate) u64, pub(crate) u64);

impl Version {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = s.split('.').collect();
        let [major, minor, patch] = parts[..] else {
            bail!("version {s:?} is not major.minor.patch");
        };
        let num = |p: &str| {
            p.parse::<u64>()
                .with_context(|| format!("version {s:?}: {p:?} is not a number"))
        };
        Ok(Self(num(major)?, num(minor)?, num(patch)?))
    }

    pub(crate) fn bump(self, level: Level) -> Self {
        let Self(major, minor, patch) = self;
        match level {
            Level::Patch => Self(major, minor, patch + 1),
            Level::Minor => Self(major, minor + 1, 0),
            Level::Major => Self(major + 1, 0, 0),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One file's change: its path relative to the root, and the lines before and after.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Edit {
    pub(crate) file: &'static str,
    pub(crate) before: String,
    pub(crate) after: String,
}

/// The text of the section header line `[name]`, without comments or spaces.
fn section_of(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.split(']').next()
}

/// The root manifest with the workspace version and our crates' `version = ` in
/// `[workspace.dependencies]` bumped; returns the new text, the old version and the new one.
/// Refuses a manifest where an internal entry's version is not the workspace's (they move
/// together, so a mismatch is a mistake to fix by hand first).
pub(crate) fn bump_manifest(
    text: &str,
    level: Level,
) -> anyhow::Result<(String, Version, Version)> {
    let mut section = "";
    let mut old: Option<Version> = None;
    for line in text.lines() {
        if let Some(s) = section_of(line) {
            section = s;
        } else if section == "workspace.package"
            && let Some(v) = line
                .trim()
                .strip_prefix("version")
                .map(str::trim_start)
                .and_then(|r| r.strip_prefix('='))
        {
            let v = v.trim().trim_matches('"');
            old = Some(Version::parse(v).context("[workspace.package] version")?);
        }
    }
    let old = old.context("Cargo.toml: no version in [workspace.package]")?;
    let new = old.bump(level);
    let (old_s, new_s) = (format!("\"{old}\""), format!("\"{new}\""));

    let mut out = String::with_capacity(text.len());
    let mut section = String::new();
    let mut internal = 0;
    for line in text.split_inclusive('\n') {
        if let Some(s) = section_of(line) {
            section = s.to_owned();
        }
        let trimmed = line.trim_start();
        let is_version_line = trimmed.starts_with("version")
            && trimmed["version".len()..].trim_start().starts_with('=');
        if section == "workspace.package" && is_version_line {
            out.push_str(&line.replacen(&old_s, &new_s, 1));
        } else if section == "workspace.dependencies"
            && trimmed.contains("path = ")
            && !trimmed.starts_with('#')
        {
            let name = trimmed.split('=').next().unwrap_or("").trim();
            let Some(at) = line.find("version = \"") else {
                bail!("Cargo.toml: our crate {name} in [workspace.dependencies] has no version");
            };
            let rest = &line[at + "version = ".len()..];
            let declared = rest.split('"').nth(1).unwrap_or("");
            if declared != old.to_string() {
                bail!(
                    "Cargo.toml: {name} is at version {declared} in [workspace.dependencies], \
                     not the workspace's {old}"
                );
            }
            internal += 1;
            out.push_str(&line.replacen(
                &format!("version = {old_s}"),
                &format!("version = {new_s}"),
                1,
            ));
        } else {
            out.push_str(line);
        }
    }
    if internal == 0 {
        bail!("Cargo.toml: no crate of ours (`path = `) in [workspace.dependencies]");
    }
    Ok((out, old, new))
}

/// The changelog with its Unreleased section's entries moved under `## [<new>] - <date>`, an
/// empty Unreleased above it, and the compare links at the bottom updated.
pub(crate) fn bump_changelog(text: &str, new: Version, date: &str) -> anyhow::Result<String> {
    const HEADER: &str = "## [Unreleased]";
    let at = text
        .find(HEADER)
        .context("CHANGELOG.md: no `## [Unreleased]` section")?;
    let after = at + HEADER.len();
    let next = text[after..]
        .find("\n## [")
        .map_or(text.len(), |i| after + i);
    let entries = text[after..next].trim();
    if entries.is_empty() {
        bail!("CHANGELOG.md: the Unreleased section is empty: write what changed first");
    }
    let previous = text[next..]
        .strip_prefix("\n## [")
        .and_then(|r| r.split(']').next())
        .map(str::to_owned);
    let mut out = String::new();
    out.push_str(&text[..at]);
    out.push_str(&format!("{HEADER}\n\n## [{new}] - {date}\n\n{entries}\n"));
    out.push_str(&text[next..]);

    // Links: `[Unreleased]: …/compare/v<new>...HEAD` and `[<new>]: …/compare/v<prev>...v<new>`.
    let link = "[Unreleased]: ";
    if let Some(l) = out.find(&format!("\n{link}")) {
        let start = l + 1;
        let end = out[start..].find('\n').map_or(out.len(), |i| start + i);
        let url = &out[start + link.len()..end];
        if let Some(base) = url
            .split("/compare/")
            .next()
            .filter(|_| url.contains("/compare/"))
        {
            let mut lines = format!("{link}{base}/compare/v{new}...HEAD");
            if let Some(prev) = &previous {
                lines.push_str(&format!("\n[{new}]: {base}/compare/v{prev}...v{new}"));
            }
            out.replace_range(start..end, &lines);
        }
    }
    Ok(out)
}

/// The date today in UTC, `YYYY-MM-DD` (days since the epoch to the civil calendar).
pub(crate) fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// `YYYY-MM-DD` of the day `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The edits a release makes to `Cargo.toml` and `CHANGELOG.md` in `dir`; written unless
/// `dry_run`. Returns the new version and the edits (changed lines only).
pub(crate) fn prepare(
    dir: &Path,
    level: Level,
    date: &str,
    dry_run: bool,
) -> anyhow::Result<(Version, Vec<Edit>)> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let manifest = read("Cargo.toml")?;
    let changelog = read("CHANGELOG.md")?;
    let (new_manifest, _, new) = bump_manifest(&manifest, level)?;
    let new_changelog = bump_changelog(&changelog, new, date)?;
    let mut edits = diff("Cargo.toml", &manifest, &new_manifest);
    edits.extend(diff("CHANGELOG.md", &changelog, &new_changelog));
    if !dry_run {
        // Both or neither: each file is written whole to a temporary and renamed over.
        write_atomically(&dir.join("Cargo.toml"), &new_manifest)?;
        write_atomically(&dir.join("CHANGELOG.md"), &new_changelog)?;
    }
    Ok((new, edits))
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("release-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// The lines that differ (a longest-common-subsequence line diff; the files are small): each
/// run of removed and added lines between unchanged ones is one edit, either side possibly
/// empty.
fn diff(file: &'static str, before: &str, after: &str) -> Vec<Edit> {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    // lcs[i][j]: the longest common subsequence of b[i..] and a[j..].
    let mut lcs = vec![vec![0usize; a.len() + 1]; b.len() + 1];
    for i in (0..b.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if b[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut edits = Vec::new();
    let (mut removed, mut added): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let mut flush = |removed: &mut Vec<&str>, added: &mut Vec<&str>| {
        if !removed.is_empty() || !added.is_empty() {
            edits.push(Edit {
                file,
                before: removed.join("\n"),
                after: added.join("\n"),
            });
            removed.clear();
            added.clear();
        }
    };
    while i < b.len() || j < a.len() {
        if i < b.len() && j < a.len() && b[i] == a[j] {
            flush(&mut removed, &mut added);
            i += 1;
            j += 1;
        } else if j < a.len() && (i == b.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(a[j]);
            j += 1;
        } else {
            removed.push(b[i]);
            i += 1;
        }
    }
    flush(&mut removed, &mut added);
    edits
}

/// Where the release's artifacts go.
pub(crate) fn artifacts_dir() -> PathBuf {
    target_dir().join("release-artifacts")
}

/// `cargo xtask release`.
pub(crate) fn release(flags: &crate::flags::Release) -> anyhow::Result<()> {
    let root = root();
    let (new, edits) = prepare(&root, flags.level, &today(), flags.dry_run)?;
    for e in &edits {
        let lines = |prefix: &str, text: &str| {
            text.lines()
                .map(|l| format!("  {prefix} {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut shown = vec![format!("{}:", e.file)];
        shown.extend([lines("-", &e.before), lines("+", &e.after)]);
        shown.retain(|l| !l.is_empty());
        println!("{}", shown.join("\n"));
    }
    if flags.dry_run {
        println!(
            "dry run: would release {new}, update Cargo.lock and write the SBOM of oc to {}",
            artifacts_dir().display()
        );
        return Ok(());
    }
    // Cargo.lock follows the new versions of our own crates (nothing else moves).
    run("cargo", &["update", "--workspace", "--offline"], &[])?;
    sbom(&new)?;
    println!(
        "prepared {new}: review, commit, tag the commit v{new}, then record it in {}",
        crate::supply::BASELINE_FILE
    );
    Ok(())
}

/// Whether cargo-cyclonedx is installed.
pub(crate) fn cyclonedx_installed() -> bool {
    Command::new("cargo")
        .args(["cyclonedx", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The CycloneDX SBOM of `oc` (the dependencies it is built from on Linux x86-64, build
/// scripts' own dependencies left out) in `release-artifacts/oc-<version>.cdx.json`.
pub(crate) fn sbom(version: &Version) -> anyhow::Result<PathBuf> {
    if !cyclonedx_installed() {
        bail!("cargo-cyclonedx is required for the SBOM: cargo install cargo-cyclonedx --locked");
    }
    let root = root();
    // cargo-cyclonedx writes one file beside each workspace member's manifest, under the name
    // given; oc-cli's is kept, the others are removed.
    let name = format!("xtask-sbom-{}.cdx", std::process::id());
    let manifest = root
        .join("crates/cli/Cargo.toml")
        .to_string_lossy()
        .into_owned();
    let result = run(
        "cargo",
        &[
            "cyclonedx",
            "--manifest-path",
            &manifest,
            "--format",
            "json",
            "--spec-version",
            "1.5",
            "--no-build-deps",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--override-filename",
            &name,
        ],
        &[],
    );
    let file = format!("{name}.json");
    let written = root.join("crates/cli").join(&file);
    let dir = artifacts_dir();
    let dest = dir.join(format!("oc-{version}.cdx.json"));
    let moved = result.and_then(|()| {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::copy(&written, &dest)
            .with_context(|| format!("cannot copy {} to {}", written.display(), dest.display()))
    });
    for member in member_dirs()? {
        let _ = std::fs::remove_file(member.join(&file));
    }
    moved?;
    let bom: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&dest)
            .with_context(|| format!("cannot read {}", dest.display()))?,
    )
    .with_context(|| format!("{} is not JSON", dest.display()))?;
    let components = bom["components"].as_array().map_or(0, Vec::len);
    if bom["bomFormat"] != "CycloneDX"
        || bom["metadata"]["component"]["name"] != "oc-cli"
        || components == 0
    {
        bail!(
            "{}: not a CycloneDX SBOM of oc-cli with its components",
            dest.display()
        );
    }
    eprintln!("sbom: wrote {} ({components} components)", dest.display());
    Ok(dest)
}

/// The SBOM of `oc` at the workspace's current version (what CI checks is produced).
pub(crate) fn sbom_current() -> anyhow::Result<PathBuf> {
    let path = root().join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).context("Cargo.toml is not TOML")?;
    let version = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(toml::Value::as_str)
        .context("Cargo.toml: no version in [workspace.package]")?;
    sbom(&Version::parse(version)?)
}

/// The directories of the workspace members.
fn member_dirs() -> anyhow::Result<Vec<PathBuf>> {
    let meta = crate::workspace::cargo_metadata(&["--no-deps"])?;
    Ok(meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(
                Path::new(p["manifest_path"].as_str()?)
                    .parent()?
                    .to_path_buf(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed when dropped (no tempfile in xtask's dependencies).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("xtask-release-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A copy of the repository's Cargo.toml and CHANGELOG.md in a scratch directory, with
    /// one entry in the changelog's Unreleased section.
    fn scratch_copy(name: &str) -> Scratch {
        let s = Scratch::new(name);
        std::fs::copy(root().join("Cargo.toml"), s.0.join("Cargo.toml")).unwrap();
        let log = std::fs::read_to_string(root().join("CHANGELOG.md")).unwrap();
        let log = log.replacen(
            "## [Unreleased]\n",
            "## [Unreleased]\n\n### Fixed\n\n- `oc-tasks`: a scratch entry.\n",
            1,
        );
        std::fs::write(s.0.join("CHANGELOG.md"), log).unwrap();
        s
    }

    fn versions_in(manifest: &str) -> (String, Vec<String>) {
        let doc: toml::Table = toml::from_str(manifest).unwrap();
        let ws = doc["workspace"].as_table().unwrap();
        let v = ws["package"]["version"].as_str().unwrap().to_owned();
        let ours = ws["dependencies"]
            .as_table()
            .unwrap()
            .values()
            .filter(|d| d.get("path").is_some())
            .map(|d| d["version"].as_str().unwrap().to_owned())
            .collect();
        (v, ours)
    }

    #[test]
    fn levels_bump_the_right_part() {
        let v = Version::parse("0.1.3").unwrap();
        assert_eq!(v.bump(Level::Patch), Version(0, 1, 4));
        assert_eq!(v.bump(Level::Minor), Version(0, 2, 0));
        assert_eq!(v.bump(Level::Major), Version(1, 0, 0));
        assert_eq!(Version(1, 2, 3).bump(Level::Minor).to_string(), "1.3.0");
        assert!(Version::parse("0.1").is_err());
        assert!(Version::parse("0.1.x").is_err());
        assert!(Version::parse("0.1.0-rc.1").is_err());
    }

    #[test]
    fn a_release_bumps_the_workspace_and_our_crates_together_and_dates_the_changelog() {
        let s = scratch_copy("minor");
        let before = std::fs::read_to_string(s.0.join("Cargo.toml")).unwrap();
        let (old, ours_before) = versions_in(&before);
        assert!(ours_before.len() >= 13 && ours_before.iter().all(|v| *v == old));
        let old = Version::parse(&old).unwrap();

        let (new, edits) = prepare(&s.0, Level::Minor, "2027-01-02", false).unwrap();
        assert_eq!(new, old.bump(Level::Minor));

        let after = std::fs::read_to_string(s.0.join("Cargo.toml")).unwrap();
        let (v, ours) = versions_in(&after);
        assert_eq!(v, new.to_string());
        assert_eq!(ours.len(), ours_before.len());
        assert!(ours.iter().all(|o| *o == new.to_string()), "{ours:?}");
        // Nothing else in the manifest moved: upstream crates keep their versions.
        assert_eq!(after.lines().count(), before.lines().count());
        let changed = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 1 + ours.len());
        let shown: usize = edits
            .iter()
            .filter(|e| e.file == "Cargo.toml")
            .map(|e| e.after.lines().count())
            .sum();
        assert_eq!(shown, changed);

        let log = std::fs::read_to_string(s.0.join("CHANGELOG.md")).unwrap();
        let unreleased = log.find("## [Unreleased]").unwrap();
        let dated = log.find(&format!("## [{new}] - 2027-01-02")).unwrap();
        let previous = log.find(&format!("## [{old}]")).unwrap();
        assert!(unreleased < dated && dated < previous, "{log}");
        assert!(log.contains(&format!("compare/v{new}...HEAD")), "{log}");
        assert!(log.contains(&format!("[{new}]: ")), "{log}");
    }

    #[test]
    fn a_dry_run_writes_nothing_and_names_the_changes() {
        let s = scratch_copy("dry");
        let manifest = std::fs::read_to_string(s.0.join("Cargo.toml")).unwrap();
        let log = std::fs::read_to_string(s.0.join("CHANGELOG.md")).unwrap();
        let (new, edits) = prepare(&s.0, Level::Patch, "2027-01-02", true).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.0.join("Cargo.toml")).unwrap(),
            manifest
        );
        assert_eq!(
            std::fs::read_to_string(s.0.join("CHANGELOG.md")).unwrap(),
            log
        );
        assert!(
            edits
                .iter()
                .any(|e| e.file == "Cargo.toml" && e.after.contains(&new.to_string()))
        );
        assert!(
            edits
                .iter()
                .any(|e| e.file == "CHANGELOG.md" && e.after.contains("2027-01-02"))
        );
    }

    #[test]
    fn the_unreleased_entries_move_under_the_new_version() {
        let log = "# Changelog\n\n## [Unreleased]\n\n### Fixed\n\n- a bug\n\n## [0.1.0] - 2026-12-08\n\n- first\n\n\
                   [Unreleased]: https://x/y/compare/v0.1.0...HEAD\n[0.1.0]: https://x/y/releases/tag/v0.1.0\n";
        let out = bump_changelog(log, Version(0, 1, 1), "2027-01-02").unwrap();
        assert_eq!(
            out,
            "# Changelog\n\n## [Unreleased]\n\n## [0.1.1] - 2027-01-02\n\n### Fixed\n\n- a bug\n\n## [0.1.0] - 2026-12-08\n\n- first\n\n\
             [Unreleased]: https://x/y/compare/v0.1.1...HEAD\n[0.1.1]: https://x/y/compare/v0.1.0...v0.1.1\n\
             [0.1.0]: https://x/y/releases/tag/v0.1.0\n"
        );
    }

    #[test]
    fn an_empty_unreleased_section_or_none_is_refused() {
        let empty = "## [Unreleased]\n\n## [0.1.0] - 2026-12-08\n\n- first\n";
        let err = bump_changelog(empty, Version(0, 1, 1), "2027-01-02").unwrap_err();
        assert!(
            err.to_string().contains("Unreleased section is empty"),
            "{err}"
        );
        assert!(bump_changelog("# nothing\n", Version(0, 1, 1), "x").is_err());
    }

    #[test]
    fn an_internal_crate_at_another_version_is_refused() {
        let m = "[workspace.package]\nversion = \"0.1.0\"\n\n[workspace.dependencies]\n\
                 oc-a = { path = \"crates/a\", version = \"0.1.0\" }\n\
                 oc-b = { path = \"crates/b\", version = \"0.0.9\" }\nserde = { version = \"1\" }\n";
        let err = bump_manifest(m, Level::Patch).unwrap_err().to_string();
        assert!(err.contains("oc-b is at version 0.0.9"), "{err}");
        let ok = m.replace("0.0.9", "0.1.0");
        let (out, _, new) = bump_manifest(&ok, Level::Patch).unwrap();
        assert_eq!(new, Version(0, 1, 1));
        assert!(out.contains("oc-b = { path = \"crates/b\", version = \"0.1.1\" }"));
        assert!(out.contains("serde = { version = \"1\" }"));
        assert!(out.contains("[workspace.package]\nversion = \"0.1.1\""));
    }

    #[test]
    fn the_sbom_of_oc_lists_its_components() {
        if !cyclonedx_installed() {
            let required = std::env::var_os("OC_REQUIRE_CYCLONEDX").is_some()
                || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !required,
                "cargo-cyclonedx is required (OC_REQUIRE_CYCLONEDX or CI)"
            );
            eprintln!("skipped: cargo-cyclonedx is not installed");
            return;
        }
        let path = sbom(&Version(0, 0, 0)).unwrap();
        let bom: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let names: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        for dep in ["oc-tasks", "rusqlite", "tokio", "rustls"] {
            assert!(names.contains(&dep), "{dep} in the SBOM: {names:?}");
        }
        // Nothing is left beside the members' manifests.
        for dir in member_dirs().unwrap() {
            let left: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("xtask-sbom-"))
                .collect();
            assert!(left.is_empty(), "{left:?} left in {}", dir.display());
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_diff_names_changed_added_and_removed_lines() {
        let d = diff("f", "a\nb\nc\nd\n", "a\nB\nc\nnew\nd\n");
        assert_eq!(
            d,
            [
                Edit {
                    file: "f",
                    before: "b".into(),
                    after: "B".into()
                },
                Edit {
                    file: "f",
                    before: String::new(),
                    after: "new".into()
                },
            ]
        );
        assert_eq!(
            diff("f", "x\ny\n", "y\n"),
            [Edit {
                file: "f",
                before: "x".into(),
                after: String::new()
            }]
        );
        assert!(diff("f", "same\n", "same\n").is_empty());
    }

    #[test]
    fn the_calendar_date_of_a_day() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_430), "2025-12-08");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(-1), "1969-12-31");
    }
}
