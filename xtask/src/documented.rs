//! The figures `bench-report` reports, as data: `benches/figures.toml` lists each figure with its
//! unit, the value `benchmarks.md` documents, the C reference and the target it is held to.

use anyhow::{Context, bail};
use serde::Deserialize;

/// The table, compiled in (a test checks it parses).
const FIGURES_TOML: &str = include_str!("../../benches/figures.toml");

/// A figure the report prints, with the value the seed documents (Apple M1) and its unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Documented {
    pub(crate) bench: String,
    pub(crate) unit: String,
    /// The value `benchmarks.md` gives.
    pub(crate) documented: Option<f64>,
    /// What a C program reaches on this machine class per `benchmarks.md` (when no C run).
    pub(crate) c_reference: Option<f64>,
    /// The goal it is held to, if any.
    pub(crate) target: Option<Target>,
}

/// A goal a figure is held to (`benchmarks.md` and the issues), written as its [`Target::text`].
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) enum Target {
    AtLeast(f64),
    Below(f64),
    /// At least this share of the C program's figure: of the same run when there is one, else of
    /// the reference `benchmarks.md` gives for this machine class.
    OfC(f64),
}

impl Target {
    /// Whether `measured` meets it (`None`: a share of C with no C figure to compare).
    pub(crate) fn met(self, measured: f64, c: Option<f64>) -> Option<bool> {
        match self {
            Target::AtLeast(v) => Some(measured >= v),
            Target::Below(v) => Some(measured < v),
            Target::OfC(share) => c.map(|c| measured >= share * c),
        }
    }

    /// As the report prints it, and as `figures.toml` writes it.
    pub(crate) fn text(self) -> String {
        match self {
            Target::AtLeast(v) => format!(">= {v}"),
            Target::Below(v) => format!("< {v}"),
            Target::OfC(share) => format!(">= {share} C"),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let number = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("{text:?}: {s:?} is not a number"))
        };
        if let Some(share) = text.strip_prefix(">= ").and_then(|s| s.strip_suffix(" C")) {
            Ok(Target::OfC(number(share)?))
        } else if let Some(v) = text.strip_prefix(">= ") {
            Ok(Target::AtLeast(number(v)?))
        } else if let Some(v) = text.strip_prefix("< ") {
            Ok(Target::Below(number(v)?))
        } else {
            Err(format!(
                "{text:?} is not a target (\">= N\", \"< N\" or \">= S C\")"
            ))
        }
    }
}

/// Every figure of `benches/figures.toml`, in its order.
pub(crate) fn figures() -> anyhow::Result<Vec<Documented>> {
    parse(FIGURES_TOML).context("benches/figures.toml")
}

fn parse(text: &str) -> anyhow::Result<Vec<Documented>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        figures: Vec<Documented>,
    }
    let file: File = toml::from_str(text)?;
    for (i, d) in file.figures.iter().enumerate() {
        if file.figures[..i].iter().any(|e| e.bench == d.bench) {
            bail!("{} is listed twice", d.bench);
        }
    }
    Ok(file.figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_names_each_figure_once() {
        let figures = figures().unwrap();
        assert_eq!(figures.len(), 135);
        let by = |b: &str| figures.iter().find(|d| d.bench == b).unwrap();
        let batch = by("sqlite.batch_insert");
        assert_eq!(
            (
                batch.unit.as_str(),
                batch.documented,
                batch.c_reference,
                batch.target
            ),
            (
                "rows/s",
                Some(212_319.0),
                Some(85_000.0),
                Some(Target::OfC(0.9))
            )
        );
        assert_eq!(by("sqlite.db_size").documented, Some(23.36));
        assert_eq!(
            by("locks.acquire_release").target,
            Some(Target::AtLeast(5_000_000.0))
        );
        assert_eq!(by("web.tasks_page_1m").target, Some(Target::Below(100.0)));
        assert_eq!(
            by("mcp.task_get_16c").target,
            Some(Target::AtLeast(5_000.0))
        );
        assert_eq!(figures.iter().filter(|d| d.target.is_some()).count(), 36);
        assert_eq!(
            figures.last().map(|d| d.bench.as_str()),
            Some("alerts.evaluate_1k_rules")
        );
    }

    #[test]
    fn every_target_is_written_as_the_report_prints_it() {
        let text =
            std::fs::read_to_string(crate::workspace::root().join("benches/figures.toml")).unwrap();
        for d in figures().unwrap() {
            if let Some(t) = d.target {
                assert!(
                    text.contains(&format!("target = \"{}\"", t.text())),
                    "{}",
                    d.bench
                );
            }
        }
    }

    #[test]
    fn a_broken_table_is_an_error() {
        let one = r#"{ bench = "a.b", unit = "ms" }"#;
        assert!(parse(&format!("figures = [{one}]")).is_ok());
        assert!(
            parse(&format!("figures = [{one}, {one}]")).is_err(),
            "twice"
        );
        for bad in [
            r#"figures = [{ bench = "a.b" }]"#,
            r#"figures = [{ bench = "a.b", unit = "ms", valeu = 1.0 }]"#,
            r#"figures = [{ bench = "a.b", unit = "ms", target = "> 1" }]"#,
            r#"figures = [{ bench = "a.b", unit = "ms", target = ">= x C" }]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_say_whether_they_are_met() {
        assert_eq!(Target::AtLeast(8.0).met(8.0, None), Some(true));
        assert_eq!(Target::AtLeast(8.0).met(7.9, None), Some(false));
        assert_eq!(Target::Below(32.0).met(32.0, None), Some(false));
        assert_eq!(Target::OfC(0.9).met(90.0, Some(100.0)), Some(true));
        assert_eq!(Target::OfC(0.9).met(89.0, Some(100.0)), Some(false));
        assert_eq!(Target::OfC(0.9).met(89.0, None), None);
        assert_eq!(Target::AtLeast(1_500_000.0).text(), ">= 1500000");
    }
}
