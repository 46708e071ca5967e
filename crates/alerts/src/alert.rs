//! What the engine keeps and says: alerts and their states, notifications, silences and their
//! matchers. The engine changes them; a store keeps them.

use std::collections::BTreeMap;

use oc_time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::rule::Severity;
use crate::{Error, Result};

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds, not yet for the rule's pending duration.
    Pending,
    /// The condition has held for the pending duration.
    Firing,
    /// It fired and the condition no longer holds.
    Resolved,
}

/// One instance of a rule: the rule's name and severity, and its labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's name (`alertname`).
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's labels and the instance's.
    pub labels: BTreeMap<String, String>,
    /// Where it is now.
    pub state: State,
    /// The last measured value.
    pub value: f64,
    /// The rule's summary, filled in.
    pub summary: String,
    /// The rule's description, filled in.
    pub description: String,
    /// When the condition started to hold.
    pub active_since: Timestamp,
    /// When it entered its current state.
    pub since: Timestamp,
    /// When a firing notification was last sent (`None`: never, e.g. while silenced).
    pub notified_at: Option<Timestamp>,
    /// A stable identifier of rule, severity and labels (PagerDuty's dedup key).
    pub fingerprint: String,
}

impl Alert {
    /// The label set silences match: the labels plus `alertname` and `severity`.
    pub fn match_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("alertname".into(), self.rule.clone());
        l.insert("severity".into(), self.severity.as_str().into());
        l
    }
}

/// Whether a notification says an alert fires or that it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The alert fires (for the first time, or again after the repeat interval).
    Firing,
    /// The alert stopped firing.
    Resolved,
}

/// What the evaluator asks the receivers to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Firing or resolved.
    pub kind: Kind,
    /// True when this repeats a firing notification already sent.
    pub repeat: bool,
    /// The alert as it is now.
    pub alert: Alert,
}

/// `label=value` (equal) or `label!=value` (not equal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    /// Label name (`alertname` and `severity` included).
    pub name: String,
    /// The value compared with.
    pub value: String,
    /// True for `!=`.
    #[serde(default)]
    pub negated: bool,
}

impl Matcher {
    /// Parses `name=value` or `name!=value`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Invalid {
            what: format!("matcher {s:?}"),
            reason: reason.into(),
        };
        let (name, value, negated) = match s.split_once("!=") {
            Some((n, v)) => (n, v, true),
            None => match s.split_once('=') {
                Some((n, v)) => (n, v, false),
                None => return Err(bad("expected name=value or name!=value")),
            },
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("the label name must be [A-Za-z0-9_]+"));
        }
        Ok(Matcher {
            name: name.to_owned(),
            value: value.trim().trim_matches('"').to_owned(),
            negated,
        })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        (v == self.value) != self.negated
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.name, self.value)
    }
}

/// Mutes the notifications of the alerts all its matchers match, until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Its number.
    pub id: u64,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// When it was made.
    pub starts_at: Timestamp,
    /// When it ends.
    pub ends_at: Timestamp,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it mutes an alert with `labels` at `now`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: Timestamp) -> bool {
        now < self.ends_at && self.matchers.iter().all(|m| m.matches(labels))
    }
}
