//! The evaluator's state machine over the alerts of `alert.rs`: states, notifications, silences,
//! inhibition, and the store that keeps them across restarts and replicas.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_metrics::Snapshot;
use oc_time::Timestamp;

use crate::alert::{Alert, Kind, Matcher, Notification, Silence, State};
use crate::rule::{Rule, Severity};
use crate::store::{AlertStore, FileAlertStore, Lease, Outgoing};
use crate::{Error, Result};

/// How long a resolved alert stays listed.
const KEEP_RESOLVED: Duration = Duration::from_secs(3600);

/// The lease this engine holds, and when (by the monotonic clock) it was last renewed.
#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    renewed: Instant,
}

/// The committed outbox of an engine holding the lease, for its dispatcher: rows are sent only
/// until [`send_until`](Outbox::send_until), a third of the lease's duration before the lease
/// would lapse if not renewed.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// The store.
    pub store: Arc<dyn AlertStore>,
    /// The lease it was committed under.
    pub lease: Lease,
    /// The last moment to start a delivery, by the monotonic clock.
    pub send_until: Instant,
}

/// Rules, the alerts they raised, silences, and when to repeat.
///
/// [`evaluate`](Engine::evaluate) takes the time explicitly, so tests drive it with a fake
/// clock. With a store ([`Engine::with_store`], [`Engine::open`]) every evaluation and silence
/// is saved, and a restarted engine neither re-sends a notification it sent nor forgets an
/// alert that fires. Replicas sharing a store evaluate one at a time: the holder of the
/// store's lease; the others reload what it committed.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    alerts: BTreeMap<String, Alert>,
    silences: Vec<Silence>,
    next_silence: u64,
    repeat: Duration,
    store: Option<Arc<dyn AlertStore>>,
    holder: String,
    ttl: Duration,
    held: Option<Held>,
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
            store: None,
            holder: String::new(),
            ttl: crate::store::lease_ttl(Duration::ZERO),
            held: None,
        })
    }

    /// An engine whose states, silences and notifications live in `store`, evaluating as
    /// `holder` when it holds the store's lease (for 15 seconds by default:
    /// [`lease_ttl`](Engine::lease_ttl)). The state is loaded now; alerts of rules that no
    /// longer exist are dropped.
    pub fn with_store(rules: Vec<Rule>, store: Arc<dyn AlertStore>, holder: &str) -> Result<Self> {
        let mut e = Engine::new(rules)?;
        e.store = Some(store);
        e.holder = holder.to_owned();
        e.reload()?;
        Ok(e)
    }

    /// An engine that keeps its state in the file `path` ([`FileAlertStore`]), as the only
    /// evaluator of this process.
    pub fn open(rules: Vec<Rule>, path: impl AsRef<Path>) -> Result<Self> {
        Engine::with_store(rules, Arc::new(FileAlertStore::new(path)), "local")
    }

    /// Holds the store's lease for `ttl` from each evaluation (see
    /// [`lease_ttl`](crate::lease_ttl) for the usual value).
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        // A year at most: deadlines stay far from any clock's end.
        self.ttl = ttl.min(Duration::from_secs(365 * 86_400));
        self
    }

    /// Reads the states and silences from the store (nothing without one).
    pub fn reload(&mut self) -> Result<()> {
        self.load().map(drop)
    }

    /// [`reload`](Engine::reload), returning the fingerprints of every stored state (those of
    /// rules no longer known included).
    fn load(&mut self) -> Result<Vec<String>> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let alerts = store.load()?;
        let silences = store.silences()?;
        let stored = alerts.iter().map(|a| a.fingerprint.clone()).collect();
        self.alerts = alerts
            .into_iter()
            .filter(|a| self.knows(a))
            .map(|a| (a.fingerprint.clone(), a))
            .collect();
        self.silences = silences;
        Ok(stored)
    }

    fn knows(&self, a: &Alert) -> bool {
        self.rules
            .iter()
            .any(|r| r.name == a.rule && r.severity == a.severity)
    }

    /// Whether the last evaluation held the store's lease (always true without a store).
    pub fn is_evaluating(&self) -> bool {
        self.store.is_none() || self.held.is_some()
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&Arc<dyn AlertStore>> {
        self.store.as_ref()
    }

    /// The committed outbox, while this engine holds the lease.
    pub fn outbox(&self) -> Option<Outbox> {
        let (store, held) = (self.store.as_ref()?, self.held.as_ref()?);
        Some(Outbox {
            store: store.clone(),
            lease: held.lease.clone(),
            send_until: held.renewed + self.ttl - self.ttl / 3,
        })
    }

    /// Gives the store's lease up, if held, so that another replica may evaluate at once.
    pub fn release(&mut self) -> Result<()> {
        if let (Some(store), Some(held)) = (&self.store, self.held.take()) {
            store.release(&held.lease)?;
        }
        Ok(())
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
        let mut s = Silence {
            id: self.next_silence,
            matchers,
            starts_at: now,
            ends_at: now.saturating_add(duration),
            comment: comment.to_owned(),
        };
        if let Some(store) = &self.store {
            s = store.add_silence(&s)?;
        }
        self.next_silence = s.id + 1;
        self.silences.push(s.clone());
        Ok(s)
    }

    /// Ends silence `id` now; false if there is none.
    pub fn expire_silence(&mut self, id: u64, now: Timestamp) -> Result<bool> {
        if let Some(store) = &self.store
            && !store.expire_silence(id, now)?
        {
            return Ok(false);
        }
        let Some(s) = self.silences.iter_mut().find(|s| s.id == id) else {
            // Another replica's silence, not yet read here.
            return Ok(self.store.is_some());
        };
        s.ends_at = s.ends_at.min(now);
        Ok(true)
    }

    /// Evaluates every rule over `snap` at `now` and returns the notifications to send:
    /// one per change of state (firing, resolved), and a repeat for an alert still firing
    /// once the repeat interval has passed since the last. Silenced and inhibited alerts
    /// change state but send nothing; a resolution is sent only for an alert whose firing was.
    ///
    /// With a store, the engine first takes or renews the store's lease: without it, it only
    /// reloads the state and returns nothing; with it, the changed states are committed under
    /// the lease (nothing, and nothing returned, if it was lost meanwhile).
    pub fn evaluate(&mut self, snap: &Snapshot, now: Timestamp) -> Result<Vec<Notification>> {
        self.evaluate_routed(snap, now, &|_| Vec::new())
    }

    /// As [`evaluate`](Engine::evaluate), and with a store, each notification is committed to
    /// the outbox once for every receiver `route` names, together with the state change that
    /// made it, for [`Dispatcher::send_outbox`](crate::Dispatcher::send_outbox).
    pub fn evaluate_routed(
        &mut self,
        snap: &Snapshot,
        now: Timestamp,
        route: &dyn Fn(&Notification) -> Vec<String>,
    ) -> Result<Vec<Notification>> {
        let Some(store) = self.store.clone() else {
            return Ok(self.step(snap, now));
        };
        // Taken before asking: the lease lasts at least this long from here.
        let asked = Instant::now();
        let lease = store.lease(&self.holder, self.ttl);
        let lease = match lease {
            Ok(l) => l,
            Err(e) => {
                self.held = None;
                return Err(e);
            }
        };
        let stored = self.load()?;
        let Some(lease) = lease else {
            self.held = None;
            return Ok(Vec::new());
        };
        let before = self.alerts.clone();
        let notes = self.step(snap, now);
        let changed: Vec<Alert> = self
            .alerts
            .values()
            .filter(|a| before.get(&a.fingerprint) != Some(*a))
            .cloned()
            .collect();
        let gone: Vec<String> = stored
            .into_iter()
            .filter(|fp| !self.alerts.contains_key(fp))
            .collect();
        let outbox: Vec<Outgoing> = notes
            .iter()
            .flat_map(|n| {
                route(n).into_iter().map(|receiver| Outgoing {
                    receiver,
                    notification: n.clone(),
                })
            })
            .collect();
        let committed = store.commit(&lease, &changed, &gone, &outbox)?;
        if !committed {
            self.held = None;
            self.reload()?;
            return Ok(Vec::new());
        }
        self.held = Some(Held {
            lease,
            renewed: asked,
        });
        Ok(notes)
    }

    fn step(&mut self, snap: &Snapshot, now: Timestamp) -> Vec<Notification> {
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
        out
    }

    /// Whether an alert with these labels would be muted by a silence at `now`.
    pub fn is_silenced(&self, alert: &Alert, now: Timestamp) -> bool {
        let labels = alert.match_labels();
        self.silences.iter().any(|s| s.mutes(&labels, now))
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
