//! `cargo xtask reliability [--soak]`: runs the evidence tests (linearizability checks, planted
//! bugs, fenced writes, injected faults, power loss, fuzz corpora, `oc serve` under hostile
//! clients) and a bounded run of each fuzz target, and prints the figures each published
//! (`oc_lincheck::publish`), the table `docs/RELIABILITY.md` reports.

use std::path::Path;

use anyhow::Context;

use crate::workspace::{figures_path, run};

/// The tests that publish figures, as a nextest filter.
pub(crate) const FILTER: &str = "test(/check_linearizable|planted_bug|fenced_writes|late_grants|processes_sharing_a_file_are_linearizable|two_hosts_histories|power_loss|io_fault|corpus|serve_hostile/)";

/// Figures that count anomalies: any non-zero one fails the run (the unfenced baseline's
/// losses are the evidence that the fault bit, not an anomaly).
const ANOMALIES: [&str; 10] = [
    "not_linearizable",
    "tokens_repeated",
    "stale_accepted",
    "lost",
    "missing",
    "crashes",
    "panics",
    "mismatches",
    "integrity_failures",
    "acknowledged_lost",
];

/// Runs the evidence tests (the quick tier, or the soak tier with `--soak`) and prints their
/// figures.
pub(crate) fn reliability(soak: bool) -> anyhow::Result<()> {
    let out = figures_path();
    let _ = std::fs::remove_file(&out);
    let out_s = out.to_string_lossy().into_owned();
    let mut envs = vec![("OC_RELIABILITY_OUT", out_s.as_str())];
    if soak {
        envs.push(("OC_SOAK", "1"));
    }
    run(
        "cargo",
        &[
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--locked",
            "--no-fail-fast",
            "-E",
            FILTER,
        ],
        &envs,
    )?;
    crate::shuttle::shuttle(soak)?;
    crate::fuzz::run_targets(if soak { 1800 } else { 20 })?;
    print_figures(&out)
}

/// Prints the figures in `path`, one block per check, and a closing line with the anomalies.
pub(crate) fn print_figures(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("no figures at {}", path.display()))?;
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    lines.sort_by(|a, b| a["test"].as_str().cmp(&b["test"].as_str()));
    println!("{:<58} figures", "check");
    let mut anomalies = 0u64;
    for line in &lines {
        let Some(obj) = line.as_object() else {
            continue;
        };
        let name = obj.get("test").and_then(|t| t.as_str()).unwrap_or("?");
        let mut figures = Vec::new();
        flatten("", line, &mut figures);
        for (k, v) in &figures {
            let last = k.rsplit('.').next().unwrap_or(k);
            if ANOMALIES.contains(&last) && !k.starts_with("unfenced") {
                anomalies += v.as_u64().unwrap_or(0);
            }
        }
        let shown: Vec<String> = figures
            .iter()
            .filter(|(k, _)| k != "test")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("{name:<58} {}", shown.join(" "));
    }
    println!(
        "reliability: {} checks published figures, {anomalies} anomalies",
        lines.len()
    );
    if anomalies > 0 {
        anyhow::bail!("{anomalies} anomalies in the figures");
    }
    Ok(())
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}
