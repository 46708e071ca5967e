//! Rules: what to watch, how bad it is, and what to say.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use oc_metrics::{CATALOGUE, Sample, Snapshot};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How bad an alert is; routing and inhibition use the order `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Needs attention soon.
    Medium,
    /// Needs attention now.
    High,
    /// Wakes someone up.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::Invalid {
                what: "severity".into(),
                reason: format!("{s:?} is not one of low, medium, high, critical"),
            })
    }
}

/// A comparison of a measured value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

/// Series of one catalogue metric whose labels include `labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// A metric of `oc_metrics::CATALOGUE` (not a histogram).
    pub metric: String,
    /// Labels the series must carry (a subset of the metric's labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    /// Every series of `metric`.
    pub fn new(metric: &str) -> Self {
        Selector {
            metric: metric.to_owned(),
            labels: BTreeMap::new(),
        }
    }

    /// Only series with label `name` equal to `value`.
    #[must_use]
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.insert(name.to_owned(), value.to_owned());
        self
    }

    fn matches(&self, s: &Sample) -> bool {
        s.def.name == self.metric && self.labels.iter().all(|(k, v)| s.label(k) == Some(v))
    }

    fn sum(&self, samples: &[Sample]) -> Option<f64> {
        samples
            .iter()
            .filter(|s| self.matches(s))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let def = CATALOGUE
            .iter()
            .find(|d| d.name == self.metric)
            .ok_or_else(|| format!("unknown metric {:?} (see docs/METRICS.md)", self.metric))?;
        if def.kind == oc_metrics::Kind::Histogram {
            return Err(format!(
                "{} is a histogram; rules read counters and gauges",
                def.name
            ));
        }
        match self
            .labels
            .keys()
            .find(|k| !def.labels.contains(&k.as_str()))
        {
            Some(k) => Err(format!(
                "{} has no label {k:?} (its labels: {})",
                def.name,
                def.labels.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// What a threshold compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Each matching series on its own: one alert per series, carrying its labels.
    Metric(Selector),
    /// The sum of the numerator's series over the sum of the denominator's; no alert while the
    /// denominator is zero or absent.
    Ratio {
        /// Summed above the line.
        numerator: Selector,
        /// Summed below the line.
        denominator: Selector,
    },
}

/// The alert-worthy instances one evaluation found: labels and the measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Labels of the instance (added to the rule's own).
    pub labels: BTreeMap<String, String>,
    /// The measured value (`{{value}}` in templates).
    pub value: f64,
}

type Check = dyn Fn(&Snapshot) -> Option<f64> + Send + Sync;

/// When a rule's alert is active.
#[derive(Clone)]
pub enum Condition {
    /// `measure op threshold`.
    Threshold {
        /// The measured value.
        measure: Measure,
        /// The comparison.
        op: Op,
        /// The threshold (`{{threshold}}` in templates).
        threshold: f64,
    },
    /// A closure over the snapshot: `Some(value)` while the alert condition holds.
    Custom(Arc<Check>),
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Threshold {
                measure,
                op,
                threshold,
            } => f
                .debug_struct("Threshold")
                .field("measure", measure)
                .field("op", op)
                .field("threshold", threshold)
                .finish(),
            Condition::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Condition {
    /// Active while `check` returns `Some(value)`.
    pub fn when(check: impl Fn(&Snapshot) -> Option<f64> + Send + Sync + 'static) -> Self {
        Condition::Custom(Arc::new(check))
    }

    /// Active for each series of `selector` whose value compares with `threshold` by `op`.
    pub fn metric(selector: Selector, op: Op, threshold: f64) -> Self {
        Condition::Threshold {
            measure: Measure::Metric(selector),
            op,
            threshold,
        }
    }

    /// Active while `numerator / denominator` compares with `threshold` by `op`.
    pub fn ratio(numerator: Selector, denominator: Selector, op: Op, threshold: f64) -> Self {
        Condition::Threshold {
            measure: Measure::Ratio {
                numerator,
                denominator,
            },
            op,
            threshold,
        }
    }

    /// The instances active in `snap` (`samples` is `snap.samples()`, computed once per
    /// evaluation).
    pub(crate) fn hits(&self, snap: &Snapshot, samples: &[Sample]) -> Vec<Hit> {
        match self {
            Condition::Custom(check) => check(snap)
                .map(|value| Hit {
                    labels: BTreeMap::new(),
                    value,
                })
                .into_iter()
                .collect(),
            Condition::Threshold {
                measure: Measure::Metric(sel),
                op,
                threshold,
            } => samples
                .iter()
                .filter(|s| sel.matches(s) && op.holds(s.value, *threshold))
                .map(|s| Hit {
                    labels: s
                        .labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect(),
                    value: s.value,
                })
                .collect(),
            Condition::Threshold {
                measure:
                    Measure::Ratio {
                        numerator,
                        denominator,
                    },
                op,
                threshold,
            } => {
                let num = numerator.sum(samples).unwrap_or(0.0);
                match denominator.sum(samples) {
                    Some(den) if den > 0.0 && op.holds(num / den, *threshold) => vec![Hit {
                        labels: BTreeMap::new(),
                        value: num / den,
                    }],
                    _ => vec![],
                }
            }
        }
    }

    fn threshold(&self) -> Option<f64> {
        match self {
            Condition::Threshold { threshold, .. } => Some(*threshold),
            Condition::Custom(_) => None,
        }
    }
}

/// A named condition with a severity, a pending duration, labels and the texts its
/// notifications carry.
///
/// Summary and description are templates: `{{value}}` (the measured value), `{{percent}}`
/// (value × 100, two decimals), `{{mib}}` (value in MiB, two decimals), `{{threshold}}`,
/// `{{name}}`, `{{severity}}` and `{{labels.NAME}}`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique together with the severity; the `alertname` label.
    pub name: String,
    /// How bad it is.
    pub severity: Severity,
    /// When it is active.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires (`for`); zero: at once.
    pub pending: Duration,
    /// Labels every alert of this rule carries.
    pub labels: BTreeMap<String, String>,
    /// One line (`title` of the notification).
    pub summary: String,
    /// Longer text (the notification's message).
    pub description: String,
}

const PLACEHOLDERS: &[&str] = &["value", "percent", "mib", "threshold", "name", "severity"];

impl Rule {
    /// A rule firing at once, with the name as summary and no description.
    pub fn new(name: &str, severity: Severity, condition: Condition) -> Self {
        Rule {
            name: name.to_owned(),
            severity,
            condition,
            pending: Duration::ZERO,
            labels: BTreeMap::new(),
            summary: name.to_owned(),
            description: String::new(),
        }
    }

    /// Fires only once the condition has held this long.
    #[must_use]
    pub fn pending(mut self, d: Duration) -> Self {
        self.pending = d;
        self
    }

    /// Adds a label to every alert of this rule.
    #[must_use]
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Sets the summary template.
    #[must_use]
    pub fn summary(mut self, template: &str) -> Self {
        self.summary = template.to_owned();
        self
    }

    /// Sets the description template.
    #[must_use]
    pub fn description(mut self, template: &str) -> Self {
        self.description = template.to_owned();
        self
    }

    /// Checks the name, labels, selectors and templates.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::Invalid {
            what: format!("rule {:?}", self.name),
            reason,
        };
        if self.name.is_empty() || self.name.len() > 200 {
            return Err(bad("a name needs 1 to 200 characters".into()));
        }
        if let Some(k) = self
            .labels
            .keys()
            .find(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(bad(format!("label name {k:?} is not [A-Za-z0-9_]+")));
        }
        if let Condition::Threshold {
            measure, threshold, ..
        } = &self.condition
        {
            if !threshold.is_finite() {
                return Err(bad(format!("threshold {threshold} is not a finite number")));
            }
            match measure {
                Measure::Metric(s) => s.check(),
                Measure::Ratio {
                    numerator,
                    denominator,
                } => numerator.check().and_then(|()| denominator.check()),
            }
            .map_err(bad)?;
        }
        for t in [&self.summary, &self.description] {
            for p in placeholders(t) {
                let known = PLACEHOLDERS.contains(&p)
                    || p.strip_prefix("labels.").is_some_and(|l| !l.is_empty());
                if !known {
                    return Err(bad(format!(
                        "unknown placeholder {{{{{p}}}}} (known: {}, labels.NAME)",
                        PLACEHOLDERS.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// `template` with its placeholders filled for an instance with `labels` and `value`.
    pub(crate) fn render(
        &self,
        template: &str,
        labels: &BTreeMap<String, String>,
        value: f64,
    ) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                out.push_str(&rest[i..]);
                return out;
            };
            let p = after[..j].trim();
            match p {
                "value" => out.push_str(&number(value)),
                "percent" => out.push_str(&format!("{:.2}", value * 100.0)),
                "mib" => out.push_str(&format!("{:.2}", value / (1024.0 * 1024.0))),
                "threshold" => {
                    out.push_str(&self.condition.threshold().map(number).unwrap_or_default())
                }
                "name" => out.push_str(&self.name),
                "severity" => out.push_str(self.severity.as_str()),
                _ => {
                    let l = p.strip_prefix("labels.").unwrap_or(p);
                    out.push_str(labels.get(l).map(String::as_str).unwrap_or(""));
                }
            }
            rest = &after[j + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// The placeholders of `template`, trimmed.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}").map(|(p, _)| p.trim()))
}

/// Integers without decimals, others with up to three.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// The thresholds of the built-in rules; the defaults are the seed's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Failed tasks over all tasks (0.10).
    pub failure_rate: f64,
    /// Database bytes (100 MiB).
    pub database_bytes: f64,
    /// Lock conflicts over lock grants (0.20).
    pub conflict_rate: f64,
    /// Lock conflicts since the database was created (100).
    pub conflicts: f64,
    /// Average lock hold, in seconds (30).
    pub average_hold_seconds: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failure_rate: 0.10,
            database_bytes: 100.0 * 1024.0 * 1024.0,
            conflict_rate: 0.20,
            conflicts: 100.0,
            average_hold_seconds: 30.0,
        }
    }
}

/// The seed's alert conditions, with the names, severities and pending durations of
/// `docs/prometheus/rules.yml`.
pub fn builtin_rules(t: &Thresholds) -> Vec<Rule> {
    use oc_metrics::catalogue::*;
    let min = |m: u64| Duration::from_secs(60 * m);
    vec![
        Rule::new(
            "OpencodeHighTaskFailureRate",
            Severity::High,
            Condition::ratio(
                Selector::new(TASKS).label("status", "failed"),
                Selector::new(TASKS),
                Op::Gt,
                t.failure_rate,
            ),
        )
        .pending(min(5))
        .summary("High task failure rate")
        .description("Task failure rate is {{percent}}% (above {{threshold}})."),
        Rule::new(
            "OpencodeDatabaseSize",
            Severity::Medium,
            Condition::metric(Selector::new(DB_SIZE), Op::Gt, t.database_bytes),
        )
        .pending(min(15))
        .summary("Database size warning")
        .description("Database size is {{mib}} MiB (above {{threshold}} bytes)."),
        Rule::new(
            "OpencodeHighLockConflictRate",
            Severity::Medium,
            Condition::ratio(
                Selector::new(LOCK_CONFLICTS_TOTAL),
                Selector::new(LOCK_ACQUISITIONS_TOTAL),
                Op::Gt,
                t.conflict_rate,
            ),
        )
        .pending(min(5))
        .summary("High lock conflict rate")
        .description("Lock conflict rate is {{percent}}% (above {{threshold}})."),
        Rule::new(
            "OpencodeManyLockConflicts",
            Severity::Medium,
            Condition::metric(Selector::new(LOCK_CONFLICTS_TOTAL), Op::Gt, t.conflicts),
        )
        .pending(min(1))
        .summary("Many lock conflicts")
        .description("{{value}} lock conflicts detected (more than {{threshold}})."),
        Rule::new(
            "OpencodeLocksHeldTooLong",
            Severity::Medium,
            Condition::metric(
                Selector::new(LOCK_HOLD).label("stat", "avg"),
                Op::Gt,
                t.average_hold_seconds,
            ),
        )
        .pending(min(5))
        .summary("Locks held too long")
        .description("Locks are held {{value}} s on average (more than {{threshold}} s)."),
        Rule::new(
            "OpencodePerformanceGoalMissed",
            Severity::Low,
            Condition::metric(Selector::new(GOAL_VIOLATIONS), Op::Ge, 1.0),
        )
        .pending(min(5))
        .summary("Performance goal {{labels.metric}} missed")
        .description("The measured p95 of {{labels.metric}} exceeds its goal."),
    ]
}
