//! The TOML alert configuration: built-in thresholds, declarative rules, the repeat interval.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::rule::{Condition, Op, Rule, Selector, Severity, Thresholds, builtin_rules};
use crate::{Error, Result};

/// Rules and evaluation settings, from [`Config::load`] or [`Config::default`] (the
/// built-in rules with the seed's thresholds).
///
/// ```
/// let cfg = oc_alerts::Config::parse(r#"
/// repeat_interval = "1h"
/// [thresholds]
/// failure_rate = 0.25
///
/// [[rule]]
/// name = "ManyPendingTasks"
/// severity = "medium"
/// for = "10m"
/// metric = "opencode_tasks"
/// match = { status = "pending" }
/// op = ">"
/// threshold = 100
/// labels = { team = "agents" }
/// summary = "{{value}} tasks wait"
/// "#, "inline")?;
/// assert_eq!(cfg.rules.len(), 7); // six built-in, one declared
/// assert_eq!(cfg.repeat_interval, std::time::Duration::from_secs(3600));
/// # Ok::<(), oc_alerts::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Every rule, built-in ones first.
    pub rules: Vec<Rule>,
    /// How often a still-firing alert is re-sent.
    pub repeat_interval: Duration,
    /// How often the background evaluator runs.
    pub interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: builtin_rules(&Thresholds::default()),
            repeat_interval: Duration::from_secs(4 * 3600),
            interval: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default = "yes")]
    builtin: bool,
    #[serde(default)]
    thresholds: Thresholds,
    repeat_interval: Option<String>,
    interval: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    severity: Severity,
    #[serde(rename = "for")]
    pending: Option<String>,
    metric: Option<String>,
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, String>,
    numerator: Option<Selector>,
    denominator: Option<Selector>,
    op: Op,
    threshold: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    summary: Option<String>,
    #[serde(default)]
    description: String,
}

fn duration(what: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| Error::Invalid {
        what: what.to_owned(),
        reason: format!("{s:?} is not a duration like 90s, 5m or 4h: {e}"),
    })
}

impl Config {
    /// Reads and checks the TOML file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks TOML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let in_file = |e: Error| Error::Config {
            origin: origin.to_owned(),
            reason: e.to_string(),
        };
        let mut cfg = Config {
            rules: if spec.builtin {
                builtin_rules(&spec.thresholds)
            } else {
                Vec::new()
            },
            ..Config::default()
        };
        if let Some(r) = &spec.repeat_interval {
            cfg.repeat_interval = duration("repeat_interval", r).map_err(in_file)?;
        }
        if let Some(i) = &spec.interval {
            cfg.interval = duration("interval", i).map_err(in_file)?;
            if cfg.interval.is_zero() {
                return Err(in_file(Error::Invalid {
                    what: "interval".into(),
                    reason: "must be above zero".into(),
                }));
            }
        }
        for r in spec.rules {
            let rule = r.into_rule().map_err(in_file)?;
            rule.validate().map_err(in_file)?;
            cfg.rules.push(rule);
        }
        Ok(cfg)
    }
}

impl RuleSpec {
    fn into_rule(self) -> Result<Rule> {
        let bad = |reason: &str| Error::Invalid {
            what: format!("rule {:?}", self.name),
            reason: reason.to_owned(),
        };
        let condition = match (self.metric, self.numerator, self.denominator) {
            (Some(metric), None, None) => Condition::metric(
                Selector {
                    metric,
                    labels: self.matches,
                },
                self.op,
                self.threshold,
            ),
            (None, Some(n), Some(d)) if self.matches.is_empty() => {
                Condition::ratio(n, d, self.op, self.threshold)
            }
            _ => {
                return Err(bad(
                    "give either `metric` (with an optional `match`) or both `numerator` and \
                     `denominator`",
                ));
            }
        };
        let mut rule = Rule::new(&self.name, self.severity, condition);
        if let Some(p) = &self.pending {
            rule.pending = duration(&format!("rule {:?}: for", self.name), p)?;
        }
        rule.labels = self.labels;
        if let Some(s) = self.summary {
            rule.summary = s;
        }
        rule.description = self.description;
        Ok(rule)
    }
}
