//! Instruction counts under callgrind, for `bench-report --instructions` (`bench.rs`) and the
//! hot paths' check (`instructions.rs`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Runs `cmd` under callgrind and returns the inclusive instruction count of each function in
/// `names` (the largest inclusive figure `callgrind_annotate` reports for it).
pub(crate) fn callgrind(
    cmd: &mut Command,
    out_file: &Path,
    names: &[&str],
) -> anyhow::Result<Vec<u64>> {
    let status = cmd
        .status()
        .context("running valgrind (is it installed?)")?;
    if !status.success() {
        bail!("callgrind run failed: {status}");
    }
    let out = Command::new("callgrind_annotate")
        .arg("--inclusive=yes")
        .arg("--threshold=100")
        .arg(out_file)
        .output()
        .context("running callgrind_annotate")?;
    let text = String::from_utf8_lossy(&out.stdout);
    names
        .iter()
        .map(|name| {
            text.lines()
                .filter(|l| l.contains(&format!(":{name}")))
                .filter_map(|l| {
                    l.split_whitespace()
                        .next()
                        .and_then(|n| n.replace(',', "").parse::<u64>().ok())
                })
                .max()
                .with_context(|| format!("no callgrind figure for {name}"))
        })
        .collect()
}
