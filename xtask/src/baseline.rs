//! `cargo xtask bench-report --save NAME` and `--compare NAME`: a run's figures kept as
//! `bench-report/NAME.json` in cargo's target directory, and a later run's change against them, flagged only when it
//! exceeds the noise measured in the runs of both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::stats::centre_and_noise;
use crate::workspace::target_dir;

/// Where a saved run lives; `name` is letters, digits, `.`, `_` and `-`.
fn path_of(name: &str) -> anyhow::Result<PathBuf> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("a saved run's name is 1 to 64 letters, digits, '.', '_' or '-' (got {name:?})");
    }
    Ok(target_dir()
        .join("bench-report")
        .join(format!("{name}.json")))
}

/// Saves every run of every figure of this report as `name`.
pub(crate) fn save(
    name: &str,
    machine: &str,
    figures: &BTreeMap<String, Vec<f64>>,
) -> anyhow::Result<PathBuf> {
    let path = path_of(name)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let doc = json!({ "version": 1, "machine": machine, "figures": figures });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The runs saved as `name`, and the machine they ran on.
pub(crate) fn load(name: &str) -> anyhow::Result<(String, BTreeMap<String, Vec<f64>>)> {
    let path = path_of(name)?;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no saved run {name:?} at {} (save one with --save {name})",
            path.display()
        )
    })?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a saved run", path.display()))?;
    if doc["version"] != 1 {
        bail!("{} is a saved run of another version", path.display());
    }
    let figures = serde_json::from_value(doc["figures"].clone())
        .with_context(|| format!("{}: figures are not lists of numbers", path.display()))?;
    Ok((doc["machine"].as_str().unwrap_or("").to_owned(), figures))
}

/// What a comparison says of one figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) bench: String,
    pub(crate) before: f64,
    pub(crate) now: f64,
    /// `now / before − 1`.
    pub(crate) change: f64,
    /// The larger of the two runs' noise, when both had enough runs to measure it.
    pub(crate) noise: Option<f64>,
    /// Whether the change exceeds twice the noise.
    pub(crate) flagged: bool,
}

/// Every figure both runs have, compared: a change is flagged when it is more than twice the
/// noise measured in the runs of either (so a figure whose runs spread by ±10 % needs to move
/// by more than 20 %); without three runs on each side nothing is flagged.
pub(crate) fn compare(
    before: &BTreeMap<String, Vec<f64>>,
    now: &BTreeMap<String, Vec<f64>>,
) -> Vec<Change> {
    now.iter()
        .filter_map(|(bench, runs)| {
            let (b, b_noise) = centre_and_noise(before.get(bench)?)?;
            let (n, n_noise) = centre_and_noise(runs)?;
            let change = if b == 0.0 { 0.0 } else { n / b - 1.0 };
            let noise = b_noise.zip(n_noise).map(|(x, y)| x.max(y));
            Some(Change {
                bench: bench.clone(),
                before: b,
                now: n,
                change,
                noise,
                flagged: noise.is_some_and(|e| change.abs() > 2.0 * e),
            })
        })
        .collect()
}

/// Whether a larger value of a figure in `unit` is better (rates and ratios) or worse
/// (times, sizes, counts of instructions).
pub(crate) fn higher_is_better(unit: &str) -> bool {
    unit.contains("/s") || unit == "x"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(pairs: &[(&str, &[f64])]) -> BTreeMap<String, Vec<f64>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn a_change_is_flagged_only_beyond_twice_the_measured_noise() {
        let before = runs(&[
            ("steady", &[100.0, 101.0, 99.0]),
            ("noisy", &[100.0, 130.0, 70.0]),
            ("single", &[100.0]),
            ("gone", &[1.0, 1.0, 1.0]),
        ]);
        let now = runs(&[
            ("steady", &[110.0, 111.0, 109.0]),
            ("noisy", &[125.0, 140.0, 110.0]),
            ("single", &[200.0]),
            ("new", &[1.0, 1.0, 1.0]),
        ]);
        let c = compare(&before, &now);
        let by = |b: &str| c.iter().find(|x| x.bench == b).cloned();
        let steady = by("steady").unwrap();
        assert!(steady.flagged, "+10 % against ±1 %: {steady:?}");
        assert!((steady.change - 0.10).abs() < 1e-9);
        let noisy = by("noisy").unwrap();
        assert!(!noisy.flagged, "+25 % against ±30 %: {noisy:?}");
        let single = by("single").unwrap();
        assert_eq!(single.noise, None, "one run measures no noise");
        assert!(!single.flagged);
        assert!(
            by("gone").is_none() && by("new").is_none(),
            "only figures in both"
        );
    }

    #[test]
    fn a_saved_run_loads_back_as_it_was() {
        let figures = runs(&[
            ("sqlite.update", &[1.5, 2.5, 3.5]),
            ("web.overview_1m", &[0.3]),
        ]);
        let name = format!("xtask-test-{}", std::process::id());
        let path = save(&name, "test machine", &figures).unwrap();
        let (machine, loaded) = load(&name).unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!((machine.as_str(), loaded), ("test machine", figures));
        assert!(load(&name).is_err(), "a missing run is an error naming it");
    }

    #[test]
    fn a_run_saved_before_loads() {
        // As `--save` has written it since version 1.
        let name = format!("xtask-test-old-{}", std::process::id());
        let path = path_of(&name).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let old = r#"{
  "figures": {
    "locks.acquire_release": [
      812000.5,
      790100.0,
      805000.25
    ],
    "sqlite.db_size": [
      23.4
    ]
  },
  "machine": "AMD EPYC 7B13, 2 cores",
  "version": 1
}"#;
        std::fs::write(&path, old).unwrap();
        let loaded = load(&name);
        std::fs::remove_file(&path).unwrap();
        let (machine, figures) = loaded.unwrap();
        assert_eq!(machine, "AMD EPYC 7B13, 2 cores");
        assert_eq!(
            figures,
            runs(&[
                ("locks.acquire_release", &[812000.5, 790100.0, 805000.25]),
                ("sqlite.db_size", &[23.4]),
            ])
        );
    }

    #[test]
    fn names_are_checked_before_any_file_is_touched() {
        for bad in ["", "../x", ".hidden", "a/b", "x y"] {
            assert!(path_of(bad).is_err(), "{bad:?}");
        }
        assert!(path_of("before-pr_12.3").is_ok());
    }

    #[test]
    fn direction_follows_the_unit() {
        assert!(higher_is_better("claims/s"));
        assert!(higher_is_better("x"));
        assert!(!higher_is_better("ms"));
        assert!(!higher_is_better("instructions"));
    }
}
