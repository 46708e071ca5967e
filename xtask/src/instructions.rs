//! `cargo xtask instructions [--check | --update]`: instruction counts of the hot paths
//! (`oc_benches::hot`) under callgrind, against the committed baseline
//! `benches/instructions.json`. Repeatable to a fraction of a percent on a shared machine where
//! wall-clock figures move by 10–30 %, so CI can fail on a 5 % growth.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::callgrind::callgrind;
use crate::workspace::{build_release, root, target_dir};

/// How much a hot path may grow before `--check` fails, in percent.
const TOLERANCE_PERCENT: u128 = 5;

/// The committed baseline.
fn baseline_path() -> std::path::PathBuf {
    root().join("benches/instructions.json")
}

/// Instructions per operation of each hot path, measured now.
fn measure() -> anyhow::Result<BTreeMap<String, u64>> {
    let exe = build_release("oc-benches", "oc-bench-instructions")?;
    // The binary says which functions to count and how many operations each ran.
    let listed = Command::new(&exe)
        .arg("--list")
        .output()
        .context("running oc-bench-instructions --list")?;
    if !listed.status.success() {
        bail!("oc-bench-instructions --list failed");
    }
    let list: Value = serde_json::from_slice(&listed.stdout).context("its list is not JSON")?;
    let iterations = list["iterations"].as_u64().context("no iterations")?;
    let paths: Vec<(String, String)> = serde_json::from_value(list["paths"].clone())
        .context("its paths are not pairs of names")?;
    let out = target_dir().join("instructions/hot.callgrind");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    eprintln!("the hot paths under callgrind (about 15 s)");
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let names: Vec<&str> = paths.iter().map(|(_, f)| f.as_str()).collect();
    let counts = callgrind(&mut cmd, &out, &names)?;
    Ok(paths
        .iter()
        .zip(counts)
        .map(|((name, _), n)| (name.clone(), n / iterations.max(1)))
        .collect())
}

/// A path's change against the baseline, and whether it grew beyond [`TOLERANCE_PERCENT`]
/// (judged in integers: 5 % of 100,000 is 5,000 exactly).
fn judge(before: u64, now: u64) -> (f64, bool) {
    let change = now as f64 / before.max(1) as f64 - 1.0;
    let over = u128::from(now) * 100 > u128::from(before) * (100 + TOLERANCE_PERCENT);
    (change, over)
}

/// Reads the committed baseline.
fn load(path: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no baseline at {} (make one with `cargo xtask instructions --update`)",
            path.display()
        )
    })?;
    let doc: Value = serde_json::from_str(&text)?;
    serde_json::from_value(doc["per_operation"].clone())
        .with_context(|| format!("{}: per_operation is not a map of counts", path.display()))
}

pub(crate) fn instructions(flags: &crate::flags::Instructions) -> anyhow::Result<()> {
    let (check, update) = (flags.check, flags.update);
    let now = measure()?;
    let path = baseline_path();
    if update {
        let doc = json!({
            "about": "Instructions per operation of each hot path (oc_benches::hot) under callgrind; \
                      `cargo xtask instructions --check` fails when one grows by more than 5 %. \
                      Update on purpose with `cargo xtask instructions --update`.",
            "per_operation": now,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    let before = load(&path)?;
    println!(
        "{:<22} {:>14} {:>14} {:>9}",
        "hot path", "baseline", "now", "change"
    );
    let mut grown = Vec::new();
    for (name, n) in &now {
        let Some(b) = before.get(name) else {
            println!("{name:<22} {:>14} {n:>14} {:>9}", "-", "new");
            grown.push(format!("{name} has no baseline"));
            continue;
        };
        let (change, over) = judge(*b, *n);
        println!(
            "{name:<22} {b:>14} {n:>14} {:>+8.1}%{}",
            change * 100.0,
            if over { "  GREW" } else { "" }
        );
        if over {
            grown.push(format!("{name} grew by {:.1} %", change * 100.0));
        }
    }
    if check && !grown.is_empty() {
        bail!(
            "{}; if that is intended, update the baseline with `cargo xtask instructions --update` and commit benches/instructions.json",
            grown.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_growth_beyond_five_percent_fails() {
        assert!(!judge(100_000, 105_000).1);
        assert!(judge(100_000, 105_001).1);
        assert!(!judge(100_000, 50_000).1, "a gain never fails");
    }

    #[test]
    fn the_committed_baseline_covers_every_hot_path() {
        let b = load(&baseline_path()).unwrap();
        for name in [
            "lock_pair",
            "batched_append",
            "claim",
            "transition_with_hook",
        ] {
            assert!(b.get(name).is_some_and(|n| *n > 0), "{name}");
        }
    }
}
