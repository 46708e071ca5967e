//! `oc alerts list|check|test|silence|unsilence|run`, and the alerting `oc serve --alerts` runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oc_alerts::{
    Alert, AlertStore, Config, Dispatcher, Engine, Evaluator, FileAlertStore, Kind, Matcher,
    Notification, Severity, State, evaluate_once,
};
use oc_jsonl::TaskFileStore;
use oc_metrics::{Snapshot, collect};
use oc_time::Timestamp;
use parking_lot::Mutex;
use serde_json::json;

use crate::Site;
use crate::args::AlertsCmd;
use crate::output::{Clean, Output};

/// The state file in the data directory, without a database.
const STATE: &str = "alerts-state.json";

/// Where the alert states, silences and outbox live: on PostgreSQL with `--database` (shared
/// by every `oc serve --alerts` on it, one evaluating at a time), else in the data directory's
/// state file. Opening the PostgreSQL store migrates its tables.
pub(crate) fn store(site: &Site) -> anyhow::Result<Arc<dyn AlertStore>> {
    if let Some(opts) = site.postgres()? {
        let target = opts.target();
        let store = oc_postgres::PgAlertStore::connect(opts)
            .with_context(|| format!("cannot open the alert store on {target}"))?;
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(FileAlertStore::new(site.data_dir.join(STATE))))
}

/// Rules, engine (with its store) and receivers, from a configuration.
pub(crate) struct Alerting {
    pub(crate) config: Config,
    pub(crate) engine: Arc<Mutex<Engine>>,
    pub(crate) dispatcher: Arc<Dispatcher>,
}

impl Alerting {
    pub(crate) fn open(site: &Site, config: Option<&Path>) -> anyhow::Result<Self> {
        let data_dir = site.data_dir.as_path();
        let config = match config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let engine = Engine::with_store(
            config.rules.clone(),
            store(site)?,
            &oc_alerts::holder_name(),
        )?
        .repeat_interval(config.repeat_interval)
        .lease_ttl(oc_alerts::lease_ttl(config.interval));
        let dispatcher = Dispatcher::new(config.build_receivers(data_dir)?, config.retry)?;
        Ok(Alerting {
            config,
            engine: Arc::new(Mutex::new(engine)),
            dispatcher: Arc::new(dispatcher),
        })
    }

    /// Starts the background evaluator over fresh snapshots of the stores, reading the task
    /// files from `files` (one store for every evaluation, so its counts carry over).
    pub(crate) fn spawn(
        &self,
        site: &Site,
        files: Arc<dyn TaskFileStore>,
    ) -> anyhow::Result<Evaluator> {
        let site = site.clone();
        Ok(Evaluator::spawn(
            self.engine.clone(),
            self.dispatcher.clone(),
            self.config.interval,
            move || snapshot(&site, &*files).map_err(|e| crate::one_line(&e)),
        )?)
    }
}

/// Everything the rules read: tasks, database, locks, logs.
pub(crate) fn snapshot(site: &Site, files: &dyn TaskFileStore) -> anyhow::Result<Snapshot> {
    let tasks = site.tasks()?;
    let locks = site.locks()?;
    Ok(collect(&tasks.sources().locks(&*locks).files(files))?)
}

pub(crate) fn run(
    site: &Site,
    config: Option<&Path>,
    cmd: AlertsCmd,
    out: &mut Output,
) -> anyhow::Result<()> {
    let a = Alerting::open(site, config)?;
    let now = Timestamp::now();
    match cmd {
        AlertsCmd::List => {
            let engine = a.engine.lock();
            let rows: Vec<_> = engine
                .rules()
                .iter()
                .map(|r| {
                    let alerts: Vec<&Alert> = engine
                        .alerts()
                        .filter(|x| x.rule == r.name && x.severity == r.severity)
                        .collect();
                    json!({
                        "rule": r.name, "severity": r.severity,
                        "for_seconds": r.pending.as_secs(), "summary": r.summary,
                        "alerts": alerts,
                    })
                })
                .collect();
            // Ended silences stay in the store until a new one is added: not shown.
            let silences: Vec<_> = engine
                .silences()
                .iter()
                .filter(|s| s.ends_at > now)
                .cloned()
                .collect();
            out.emit(
                "alerts.list",
                &json!({"rules": rows, "silences": silences}),
                |w, _| {
                    writeln!(w, "{:<32} {:<9} {:>6}  state", "rule", "severity", "for")?;
                    for r in engine.rules() {
                        let states: Vec<String> = engine
                            .alerts()
                            .filter(|x| x.rule == r.name && x.severity == r.severity)
                            .map(describe)
                            .collect();
                        let state = if states.is_empty() {
                            "inactive".to_owned()
                        } else {
                            states.join("; ")
                        };
                        let pending = humantime::format_duration(r.pending).to_string();
                        writeln!(
                            w,
                            "{:<32} {:<9} {:>6}  {state}",
                            Clean(&r.name).to_string(),
                            r.severity.as_str(),
                            pending
                        )?;
                    }
                    for s in &silences {
                        // Anyone who can reach the page may post a silence: its matchers and
                        // comment are shown escaped.
                        let m: Vec<String> = s.matchers.iter().map(ToString::to_string).collect();
                        writeln!(
                            w,
                            "silence {}: {} until {} {}",
                            s.id,
                            Clean(&m.join(" ")),
                            s.ends_at,
                            Clean(&s.comment)
                        )?;
                    }
                    Ok(())
                },
            )
        }
        AlertsCmd::Check => {
            let snap = snapshot(site, &*site.files()?)?;
            let sent = evaluate_once(&a.engine, &a.dispatcher, &snap, now)?;
            let delivered = a.dispatcher.flush(Duration::from_secs(60));
            let mut engine = a.engine.lock();
            // A one-off evaluation: the next evaluator need not wait for the lease to lapse.
            engine.release()?;
            let active: Vec<Alert> = engine
                .alerts()
                .filter(|x| x.state != State::Resolved)
                .cloned()
                .collect();
            let firing = active.iter().filter(|x| x.state == State::Firing).count();
            let deliveries = a.dispatcher.stats();
            let doc = json!({
                "firing": firing, "alerts": active, "sent": sent, "deliveries": deliveries,
                "delivered": delivered,
            });
            out.emit("alerts.check", &doc, |w, _| {
                if active.is_empty() {
                    writeln!(w, "No alerts firing or pending.")?;
                }
                for x in &active {
                    writeln!(w, "{}", describe(x))?;
                }
                if firing > 0 {
                    writeln!(w, "{firing} alert(s) firing.")?;
                }
                writeln!(w, "Sent {} notification(s).", sent.len())?;
                for d in deliveries.iter().filter(|d| d.failed > 0) {
                    writeln!(
                        w,
                        "Receiver {} failed {} time(s): {}",
                        Clean(&d.receiver),
                        d.failed,
                        // Redacted where it was made (oc_alerts::redact); it may still
                        // quote what a remote server said.
                        Clean(d.last_error.as_deref().unwrap_or(""))
                    )?;
                }
                Ok(())
            })
        }
        AlertsCmd::Test { receiver } => {
            let note = test_notification(now);
            let names: Vec<String> = a.dispatcher.receivers().map(str::to_owned).collect();
            let res = a.dispatcher.send_now(&receiver, &note).ok_or_else(|| {
                crate::NotFoundError(format!(
                    "no receiver {receiver:?} (receivers: {})",
                    names.join(", ")
                ))
            })?;
            res.map_err(|e| anyhow::anyhow!("receiver {receiver:?}: {e}"))?;
            out.emit(
                "alerts.test",
                &json!({"receiver": receiver, "sent": true}),
                |w, _| writeln!(w, "Sent a test notification to {receiver}."),
            )
        }
        AlertsCmd::Silence {
            matchers,
            duration,
            comment,
        } => {
            let matchers = matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<Vec<_>, _>>()?;
            let s = a.engine.lock().silence(matchers, now, duration, &comment)?;
            out.emit("alerts.silence", &s, |w, _| {
                writeln!(w, "Silence {} until {}.", s.id, s.ends_at)
            })
        }
        AlertsCmd::Unsilence { id } => {
            if !a.engine.lock().expire_silence(id, now)? {
                return Err(crate::NotFoundError(format!("no silence {id}")).into());
            }
            out.emit("alerts.unsilence", &json!({"id": id}), |w, _| {
                writeln!(w, "Silence {id} ended.")
            })
        }
        AlertsCmd::Run => {
            let _evaluator = a.spawn(site, site.files()?)?;
            out.emit(
                "alerts.run",
                &json!({"interval_seconds": a.config.interval.as_secs()}),
                |w, _| {
                    writeln!(
                        w,
                        "Evaluating {} rules every {} (Ctrl-C to stop)",
                        a.config.rules.len(),
                        humantime::format_duration(a.config.interval)
                    )
                },
            )?;
            // Runs until the process is stopped; every evaluation has saved its state.
            loop {
                std::thread::park();
            }
        }
    }
}

fn describe(a: &Alert) -> String {
    let state = match a.state {
        State::Pending => "pending",
        State::Firing => "FIRING",
        State::Resolved => "resolved",
    };
    // Summaries interpolate labels, which may carry what agents wrote.
    format!(
        "{state} [{}] {}: {} (since {})",
        a.severity,
        Clean(&a.rule),
        Clean(&a.summary),
        a.since
    )
}

fn test_notification(now: Timestamp) -> Notification {
    Notification {
        kind: Kind::Firing,
        repeat: false,
        alert: Alert {
            rule: "OcTestNotification".into(),
            severity: Severity::Critical,
            labels: Default::default(),
            state: State::Firing,
            value: 1.0,
            summary: "Test notification from oc".into(),
            description: "Sent by `oc alerts test`; nothing is wrong.".into(),
            active_since: now,
            since: now,
            notified_at: None,
            fingerprint: "0000000000000000".into(),
        },
    }
}

/// The alerts a demo's final snapshot fires: the built-in rules without their pending
/// durations, evaluated in memory (nothing sent, no state kept).
pub(crate) fn would_fire(snap: &Snapshot) -> anyhow::Result<Vec<Alert>> {
    let rules = Config::default()
        .rules
        .into_iter()
        .map(|r| r.pending(Duration::ZERO))
        .collect();
    let mut engine = Engine::new(rules)?;
    Ok(engine
        .evaluate(snap, Timestamp::now())?
        .into_iter()
        .map(|n| n.alert)
        .collect())
}
