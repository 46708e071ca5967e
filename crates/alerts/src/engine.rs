//! The evaluator's state machine: alert states, notifications, silences, inhibition and the
//! state file that survives restarts.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oc_metrics::Snapshot;
use oc_time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::rule::{Rule, Severity};
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

/// The state file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    alerts: Vec<Alert>,
    silences: Vec<Silence>,
    next_silence: u64,
}

const STATE_VERSION: u32 = 1;

/// The most of a state file read back (alerts and silences; far more than a real one holds).
const MAX_STATE_BYTES: u64 = 64 << 20;

/// How long a resolved alert stays listed.
const KEEP_RESOLVED: Duration = Duration::from_secs(3600);

/// Rules, the alerts they raised, silences, and when to repeat.
///
/// [`evaluate`](Engine::evaluate) takes the time explicitly, so tests drive it with a fake
/// clock. With a state file ([`Engine::open`]) every evaluation and silence is saved
/// atomically, and a restarted engine neither re-sends a notification it sent nor forgets an
/// alert that fires.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    alerts: BTreeMap<String, Alert>,
    silences: Vec<Silence>,
    next_silence: u64,
    repeat: Duration,
    path: Option<PathBuf>,
}

impl Engine {
    /// An engine over `rules` (validated; each name and severity at most once) that keeps its
    /// state in memory. Firing alerts are re-sent every 4 hours.
    pub fn new(rules: Vec<Rule>) -> Result<Self> {
        let mut seen = HashSet::new();
        for r in &rules {
            r.validate()?;
            if !seen.insert((r.name.as_str(), r.severity)) {
                return Err(Error::Invalid {
                    what: format!("rule {:?}", r.name),
                    reason: format!("defined twice with severity {}", r.severity),
                });
            }
        }
        Ok(Engine {
            rules,
            alerts: BTreeMap::new(),
            silences: Vec::new(),
            next_silence: 1,
            repeat: Duration::from_secs(4 * 3600),
            path: None,
        })
    }

    /// An engine that loads its state from `path` (if it exists) and saves it there.
    /// Alerts of rules that no longer exist are dropped.
    pub fn open(rules: Vec<Rule>, path: impl AsRef<Path>) -> Result<Self> {
        let mut e = Engine::new(rules)?;
        let path = path.as_ref().to_owned();
        // Never through a link, a regular file only, and bounded: the data directory is
        // writable by anything that steers an agent.
        match oc_jsonl::read_file(&path, MAX_STATE_BYTES) {
            Ok(Some(bytes)) => {
                let saved: Saved = serde_json::from_slice(&bytes).map_err(|err| Error::State {
                    path: path.clone(),
                    reason: err.to_string(),
                })?;
                if saved.version != STATE_VERSION {
                    return Err(Error::State {
                        path,
                        reason: format!("version {} is not {STATE_VERSION}", saved.version),
                    });
                }
                for a in saved.alerts {
                    if e.rules
                        .iter()
                        .any(|r| r.name == a.rule && r.severity == a.severity)
                    {
                        e.alerts.insert(a.fingerprint.clone(), a);
                    }
                }
                e.silences = saved.silences;
                e.next_silence = saved.next_silence.max(1);
            }
            Ok(None) => {}
            Err(err) => {
                return Err(Error::State {
                    path,
                    reason: err.to_string(),
                });
            }
        }
        e.path = Some(path);
        Ok(e)
    }

    /// Re-sends a still-firing alert after `d` (default 4 h).
    #[must_use]
    pub fn repeat_interval(mut self, d: Duration) -> Self {
        self.repeat = d;
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Pending, firing and recently resolved alerts, by fingerprint.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// Silences, ended ones included until the next evaluation drops them.
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// Adds a silence from `now` for `duration`; returns it.
    pub fn silence(
        &mut self,
        matchers: Vec<Matcher>,
        now: Timestamp,
        duration: Duration,
        comment: &str,
    ) -> Result<Silence> {
        if matchers.is_empty() {
            return Err(Error::Invalid {
                what: "silence".into(),
                reason: "needs at least one matcher (a silence of everything is too easy to \
                         leave behind)"
                    .into(),
            });
        }
        let s = Silence {
            id: self.next_silence,
            matchers,
            starts_at: now,
            ends_at: now.saturating_add(duration),
            comment: comment.to_owned(),
        };
        self.next_silence += 1;
        self.silences.push(s.clone());
        self.save()?;
        Ok(s)
    }

    /// Ends silence `id` now; false if there is none.
    pub fn expire_silence(&mut self, id: u64, now: Timestamp) -> Result<bool> {
        let Some(s) = self.silences.iter_mut().find(|s| s.id == id) else {
            return Ok(false);
        };
        s.ends_at = s.ends_at.min(now);
        self.save()?;
        Ok(true)
    }

    /// Evaluates every rule over `snap` at `now` and returns the notifications to send:
    /// one per change of state (firing, resolved), and a repeat for an alert still firing
    /// once the repeat interval has passed since the last. Silenced and inhibited alerts
    /// change state but send nothing; a resolution is sent only for an alert whose firing was.
    pub fn evaluate(&mut self, snap: &Snapshot, now: Timestamp) -> Result<Vec<Notification>> {
        let samples = snap.samples();
        let mut seen = HashSet::new();
        for rule in &self.rules {
            for hit in rule.condition.hits(snap, &samples) {
                let mut labels = rule.labels.clone();
                labels.extend(hit.labels);
                let fp = fingerprint(&rule.name, rule.severity, &labels);
                let summary = rule.render(&rule.summary, &labels, hit.value);
                let description = rule.render(&rule.description, &labels, hit.value);
                let a = self.alerts.entry(fp.clone()).or_insert_with(|| Alert {
                    rule: rule.name.clone(),
                    severity: rule.severity,
                    labels: labels.clone(),
                    state: State::Pending,
                    value: hit.value,
                    summary: String::new(),
                    description: String::new(),
                    active_since: now,
                    since: now,
                    notified_at: None,
                    fingerprint: fp.clone(),
                });
                if a.state == State::Resolved {
                    *a = Alert {
                        state: State::Pending,
                        active_since: now,
                        since: now,
                        notified_at: None,
                        ..a.clone()
                    };
                }
                if a.state == State::Pending && now.since(a.active_since) >= rule.pending {
                    a.state = State::Firing;
                    a.since = now;
                }
                a.value = hit.value;
                a.summary = summary;
                a.description = description;
                seen.insert(fp);
            }
        }

        let mut out = Vec::new();
        self.alerts.retain(|fp, a| {
            if seen.contains(fp) {
                return true;
            }
            match a.state {
                State::Pending => false,
                State::Firing => {
                    a.state = State::Resolved;
                    a.since = now;
                    if a.notified_at.is_some() {
                        out.push(Notification {
                            kind: Kind::Resolved,
                            repeat: false,
                            alert: a.clone(),
                        });
                    }
                    true
                }
                State::Resolved => now.since(a.since) < KEEP_RESOLVED,
            }
        });

        let inhibitors: HashSet<(&str, &BTreeMap<String, String>)> = self
            .alerts
            .values()
            .filter(|a| a.state == State::Firing && a.severity == Severity::Critical)
            .map(|a| (a.rule.as_str(), &a.labels))
            .collect();
        let mut send = Vec::new();
        for (fp, a) in &self.alerts {
            if a.state != State::Firing {
                continue;
            }
            let due = a.notified_at.is_none_or(|t| now.since(t) >= self.repeat);
            let inhibited = a.severity < Severity::Critical
                && inhibitors.contains(&(a.rule.as_str(), &a.labels));
            let labels = a.match_labels();
            let silenced = self.silences.iter().any(|s| s.mutes(&labels, now));
            if due && !inhibited && !silenced {
                send.push((fp.clone(), a.notified_at.is_some()));
            }
        }
        for (fp, repeat) in send {
            if let Some(a) = self.alerts.get_mut(&fp) {
                a.notified_at = Some(now);
                out.push(Notification {
                    kind: Kind::Firing,
                    repeat,
                    alert: a.clone(),
                });
            }
        }
        self.silences.retain(|s| s.ends_at > now);
        self.save()?;
        Ok(out)
    }

    /// Whether an alert with these labels would be muted by a silence at `now`.
    pub fn is_silenced(&self, alert: &Alert, now: Timestamp) -> bool {
        let labels = alert.match_labels();
        self.silences.iter().any(|s| s.mutes(&labels, now))
    }

    fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let saved = Saved {
            version: STATE_VERSION,
            alerts: self.alerts.values().cloned().collect(),
            silences: self.silences.clone(),
            next_silence: self.next_silence,
        };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        oc_jsonl::write_atomic(path, &bytes).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })
    }
}

/// FNV-1a over rule, severity and labels: stable across runs, machines and versions.
fn fingerprint(rule: &str, severity: Severity, labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(rule);
    eat(severity.as_str());
    for (k, v) in labels {
        eat(k);
        eat(v);
    }
    format!("{h:016x}")
}
