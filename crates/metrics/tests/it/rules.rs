//! The shipped Prometheus rules and Grafana dashboard: valid for Prometheus's own `promtool`,
//! and using only metric names of the catalogue.

use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// The `opencode_*`/`process_*` names a text uses, without histogram suffixes.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = (rest.starts_with("opencode_") || rest.starts_with("process_"))
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'));
        if starts {
            let len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            let mut name = rest[..len].to_owned();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    name = base.to_owned();
                }
            }
            names.push(name);
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

fn assert_known(file: &str, text: &str) {
    let names = metric_names(text);
    assert!(!names.is_empty(), "{file} uses metrics");
    for n in names {
        assert!(
            oc_metrics::CATALOGUE.iter().any(|m| m.name == n),
            "{file} uses {n}, which is not in the catalogue"
        );
    }
}

fn promtool(args: &[&str]) {
    let Ok(out) = Command::new("promtool")
        .args(args)
        .current_dir(docs().join("prometheus"))
        .output()
    else {
        assert!(
            std::env::var_os("OC_REQUIRE_PROMTOOL").is_none(),
            "promtool is required here but missing"
        );
        eprintln!(
            "promtool not installed: skipping `promtool {}`",
            args.join(" ")
        );
        return;
    };
    assert!(
        out.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "rules.yml"]);
    promtool(&["test", "rules", "rules_test.yml"]);
    assert_known(
        "rules.yml",
        &std::fs::read_to_string(docs().join("prometheus/rules.yml")).unwrap(),
    );
}

#[test]
fn the_dashboard_has_the_seed_panels_on_catalogue_metrics() {
    let text = std::fs::read_to_string(docs().join("grafana/opencode.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for seed in [
        "Task completion rate",
        "Task duration p95",
        "Lock conflict rate",
        "Database size",
    ] {
        assert!(titles.contains(&seed), "missing panel {seed}");
    }
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            assert_known("opencode.json", t["expr"].as_str().unwrap());
        }
    }
}
