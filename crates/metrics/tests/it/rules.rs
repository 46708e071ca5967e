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

/// The `store` series (docs/METRICS.md) `expr` uses outside `max without (instance) (...)`:
/// each would be counted once per `oc serve` replica of the database.
fn store_series_outside_max(expr: &str) -> Vec<String> {
    const MAX: &str = "max without (instance) (";
    // Where each `max without (instance) (` opens and, by its parentheses, closes.
    let mut spans = Vec::new();
    for (at, _) in expr.match_indices(MAX) {
        let open = at + MAX.len();
        let mut depth = 1usize;
        let mut end = expr.len();
        for (i, c) in expr[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        spans.push(open..end);
    }
    let mut outside = Vec::new();
    for m in oc_metrics::CATALOGUE
        .iter()
        .filter(|m| m.scope == oc_metrics::Scope::Store)
    {
        for (at, _) in expr.match_indices(m.name) {
            let whole = expr[at + m.name.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_lowercase() || c == '_'))
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| expr[at + m.name.len()..].starts_with(s));
            if whole && !spans.iter().any(|s| s.contains(&at)) {
                outside.push(m.name.to_owned());
            }
        }
    }
    outside
}

/// Every expression of the rules and the dashboard.
fn shipped_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let rules = std::fs::read_to_string(docs().join("prometheus/rules.yml")).unwrap();
    for line in rules.lines() {
        if let Some(e) = line.trim().strip_prefix("expr: ") {
            exprs.push(("rules.yml".to_owned(), e.to_owned()));
        }
    }
    let text = std::fs::read_to_string(docs().join("grafana/opencode.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap().to_owned();
            exprs.push((format!("panel {}", p["title"]), e));
        }
    }
    exprs
}

#[test]
fn store_series_count_one_replica_in_rules_and_dashboard() {
    // The check itself: a bare store series is found, one under `max` is not.
    assert_eq!(
        store_series_outside_max("sum(opencode_tasks) + max without (instance) (opencode_tasks)"),
        ["opencode_tasks"]
    );
    assert!(
        store_series_outside_max(
            "sum by (le) (max without (instance) (rate(opencode_task_duration_seconds_bucket[5m])))"
        )
        .is_empty()
    );
    let exprs = shipped_exprs();
    assert!(exprs.len() > 20, "found {} expressions", exprs.len());
    for (place, e) in exprs {
        let bare = store_series_outside_max(&e);
        assert!(
            bare.is_empty(),
            "{place}: {bare:?} taken without `max without (instance)` in {e}"
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
