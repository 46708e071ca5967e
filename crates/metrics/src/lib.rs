//! Metrics for opencode-tools: the Prometheus catalogue, collectors that read the other crates'
//! statistics at scrape time, latency percentiles, SQLite and process statistics, and the seed's
//! performance goals.
//!
//! # Overview
//!
//! - [`catalogue`]: every metric name, type, unit, labels and help text (`docs/METRICS.md`).
//! - [`collect`] builds a [`Snapshot`] from the task store, the lock manager, the store of the
//!   tasks' files (an `oc_jsonl::TaskFileStore`: its [`LogVolume`], the same from every host of a
//!   shared store), the process, a [`LatencyTracker`] and the [`Hooks`]: all from durable state,
//!   so a fresh process reports the true counts.
//! - [`Exporter`] renders a snapshot as Prometheus text through `metrics-exporter-prometheus`
//!   (a local recorder: this crate never installs a global one). Task durations come from the
//!   store like the counts (every store counts finished runs into buckets as they finish), so
//!   any process exports the same histogram. Where nothing durable exists, two histograms are
//!   observed in the process where things happen: lock waits ([`Exporter::timed_locks`] wraps
//!   any lock manager) and log `fdatasync`s ([`Exporter::fsync_observer`] for a `JsonlWriter`).
//! - [`LatencyTracker`]: the last 1,000 samples per operation with p50/p95/p99;
//!   [`PerformanceGoals`]: the seed's goals checked against the measured p95.
//! - [`ProcessStats`]: resident memory, CPU time, threads (Linux `/proc`).
//! - [`PROMETHEUS_CONTENT_TYPE`]: what a server answering `/metrics` sends (`oc-web` serves it).
//! - [`publish`] and [`Publisher`]: a snapshot into the `metrics` recorder the embedding
//!   process installed (its Prometheus, OpenTelemetry or StatsD exporter), under the
//!   catalogue's names and labels, once or every so often.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use oc_metrics::{Exporter, Sources, collect};
//! use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteTaskStore::open(dir.path().join("opencode.db"))?;
//! store.create(NewTask::new("a"))?;
//! let files = oc_jsonl::DirFileStore::new(dir.path());
//! let snap = collect(&Sources::new(&store).storage(&store).files(&files))?;
//! let text = Exporter::new()?.render(&snap);
//! assert!(text.contains("opencode_tasks{status=\"pending\"} 1"));
//! assert!(text.contains("opencode_tasks_total{status=\"pending\"} 1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! [`Error`] wraps the failures of the crates it reads from.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

pub mod catalogue;

mod goals;
mod latency;
mod process;
mod publish;
mod timed;

use std::sync::Arc;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use oc_hooks::{HookStats, Hooks};
use oc_jsonl::TaskFileStore;
use oc_locks::{LockManager, LockStats};
use oc_tasks::{RunDurations, StorageSource, StorageStats, TaskStats, TaskStore};
use oc_time::Timestamp;
use serde::Serialize;

pub use crate::catalogue::{CATALOGUE, Kind, MetricDef, Scope};
pub use crate::goals::{PerformanceGoals, Violation};
pub use crate::latency::{LatencyStats, LatencyTracker, SlowCall, WINDOW};
pub use crate::process::ProcessStats;
pub use crate::publish::{Publisher, publish};
pub use crate::timed::TimedLocks;

/// Everything that can go wrong in `oc-metrics`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the task store failed.
    #[error(transparent)]
    Tasks(#[from] oc_tasks::Error),
    /// Reading the lock manager failed.
    #[error(transparent)]
    Locks(#[from] oc_locks::Error),
    /// Reading the logs failed.
    #[error(transparent)]
    Logs(#[from] oc_jsonl::Error),
    /// The exporter could not be configured.
    #[error("metrics exporter: {0}")]
    Exporter(String),
}

/// The Prometheus text exposition content type, for the answer to a scrape.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every task's logs together, as the store of task files counts them
/// ([`TaskFileStore::volume`]).
pub use oc_jsonl::LogVolume;

/// What one scrape found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: Timestamp,
    /// Task counts.
    pub tasks: TaskStats,
    /// Lock statistics, when a lock manager was given.
    pub locks: Option<LockStats>,
    /// Database figures, when a store that reports them (SQLite, PostgreSQL) was given.
    pub storage: Option<StorageStats>,
    /// Task logs, when a store of task files was given.
    pub logs: Option<LogVolume>,
    /// This process.
    pub process: Option<ProcessStats>,
    /// Latency percentiles per operation.
    pub latency: Vec<LatencyStats>,
    /// Performance goals the measured p95 misses.
    pub violations: Vec<Violation>,
    /// Per-hook statistics.
    pub hooks: Vec<HookStats>,
    /// Alerting figures, set by whoever runs an alert evaluator (`oc-alerts`).
    pub alerts: Option<AlertFigures>,
}

/// Alerting figures: what fires and how deliveries went. `oc-metrics` does not evaluate
/// alerts; `oc-alerts` fills this in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertFigures {
    /// Alerts firing now per severity (`low` … `critical`).
    pub firing: Vec<(String, u64)>,
    /// Deliveries per receiver.
    pub receivers: Vec<ReceiverFigures>,
}

/// Deliveries of one receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiverFigures {
    /// Its name.
    pub receiver: String,
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications given up on.
    pub failed: u64,
    /// Notifications dropped (queue full).
    pub dropped: u64,
    /// Repeated attempts.
    pub retries: u64,
}

/// One series of a [`Snapshot`]: a catalogue metric, its labels and its value (in the
/// catalogue's unit: seconds, bytes or a count).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The metric.
    #[serde(rename = "name", serialize_with = "def_name")]
    pub def: &'static MetricDef,
    /// Label names and values, in the catalogue's order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

fn def_name<S: serde::Serializer>(
    d: &&'static MetricDef,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(d.name)
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Snapshot {
    /// Every series this snapshot exports, exactly as `/metrics` shows them (histograms
    /// excepted). Alert rules read these.
    pub fn samples(&self) -> Vec<Sample> {
        use catalogue::*;
        let mut out = Vec::new();
        let mut push = |name: &str, labels: Vec<(&'static str, String)>, value: f64| {
            let def = CATALOGUE
                .iter()
                .find(|d| d.name == name)
                .expect("every sample names a catalogue metric");
            out.push(Sample { def, labels, value });
        };
        let l = |k: &'static str, v: &str| vec![(k, v.to_owned())];
        for (status, n) in &self.tasks.by_status {
            push(TASKS, l("status", status.as_str()), *n as f64);
        }
        push(TASKS_READY, vec![], self.tasks.ready as f64);
        push(TASKS_BLOCKED, vec![], self.tasks.blocked as f64);
        for (status, n) in &self.tasks.entered {
            push(TASKS_TOTAL, l("status", status.as_str()), *n as f64);
        }
        if let Some(k) = &self.locks {
            // The managers count grants, not grants per mode, so the total carries mode="all".
            push(
                LOCK_ACQUISITIONS_TOTAL,
                l("mode", "all"),
                k.total_locks as f64,
            );
            push(LOCK_CONFLICTS_TOTAL, vec![], k.conflicts_detected as f64);
            push(LOCKS_ACTIVE, vec![], k.active_locks as f64);
            push(LOCK_HOLD, l("stat", "avg"), k.average_hold_time / 1000.0);
            push(LOCK_HOLD, l("stat", "max"), k.max_hold_time as f64 / 1000.0);
        }
        if let Some(st) = &self.storage {
            push(DB_SIZE, vec![], st.database_bytes() as f64);
            push(DB_WAL, vec![], st.wal_bytes as f64);
            push(DB_CACHE, l("result", "hit"), st.cache_hits as f64);
            push(DB_CACHE, l("result", "miss"), st.cache_misses as f64);
            push(SLOW_QUERIES_TOTAL, vec![], st.slow_statements as f64);
        }
        if let Some(v) = &self.logs {
            push(LOG_APPENDS_TOTAL, vec![], v.entries as f64);
            push(LOG_BYTES, vec![], v.bytes as f64);
        }
        for h in &self.hooks {
            let hook = |stat: &str| vec![("hook", h.name.clone()), ("stat", stat.to_owned())];
            push(HOOK_DURATION, hook("total"), h.total_us as f64 / 1e6);
            push(HOOK_DURATION, hook("max"), h.max_us as f64 / 1e6);
            push(HOOK_FAILURES_TOTAL, l("hook", &h.name), h.failures as f64);
        }
        for t in &self.latency {
            // A `quantile` label is reserved for summaries (promtool rejects it on a gauge).
            for (q, v) in [("p50", t.p50_ms), ("p95", t.p95_ms), ("p99", t.p99_ms)] {
                let labels = vec![
                    ("operation", t.operation.clone()),
                    ("percentile", q.to_owned()),
                ];
                push(OPERATION_DURATION, labels, v / 1000.0);
            }
        }
        for (_, metric) in PerformanceGoals::OPERATIONS {
            let violated = self.violations.iter().any(|v| v.metric == metric);
            push(
                GOAL_VIOLATIONS,
                l("metric", metric),
                if violated { 1.0 } else { 0.0 },
            );
        }
        if let Some(a) = &self.alerts {
            for (severity, n) in &a.firing {
                push(ALERTS_FIRING, l("severity", severity), *n as f64);
            }
            for r in &a.receivers {
                let result =
                    |res: &str| vec![("receiver", r.receiver.clone()), ("result", res.to_owned())];
                push(ALERT_NOTIFICATIONS_TOTAL, result("sent"), r.sent as f64);
                push(ALERT_NOTIFICATIONS_TOTAL, result("failed"), r.failed as f64);
                push(
                    ALERT_NOTIFICATIONS_TOTAL,
                    result("dropped"),
                    r.dropped as f64,
                );
                push(
                    ALERT_RETRIES_TOTAL,
                    l("receiver", &r.receiver),
                    r.retries as f64,
                );
            }
        }
        if let Some(p) = &self.process {
            push(PROCESS_RSS, vec![], p.resident_bytes as f64);
            push(PROCESS_CPU, l("mode", "user"), p.cpu_user_seconds.trunc());
            push(
                PROCESS_CPU,
                l("mode", "system"),
                p.cpu_system_seconds.trunc(),
            );
            push(PROCESS_THREADS, vec![], p.threads as f64);
            push(PROCESS_START, vec![], p.start_time_seconds);
        }
        out
    }

    /// The value of the series `name` whose labels include every pair of `labels`, summed
    /// when several match (`value("opencode_tasks", &[])` is all tasks); `None` when none does.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples()
            .iter()
            .filter(|s| s.def.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }
}

/// Where [`collect`] reads from; everything but the task store is optional.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    store: &'a dyn TaskStore,
    storage: Option<&'a dyn StorageSource>,
    locks: Option<&'a dyn LockManager>,
    files: Option<&'a dyn TaskFileStore>,
    latency: Option<&'a LatencyTracker>,
    goals: PerformanceGoals,
    hooks: Option<&'a Hooks>,
}

impl std::fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("files", &self.files.map(|f| f.location()))
            .field("goals", &self.goals)
            .finish_non_exhaustive()
    }
}

impl<'a> Sources<'a> {
    /// Reads tasks from `store`.
    pub fn new(store: &'a dyn TaskStore) -> Self {
        Sources {
            store,
            storage: None,
            locks: None,
            files: None,
            latency: None,
            goals: PerformanceGoals::default(),
            hooks: None,
        }
    }
    /// Database figures from this store (SQLite or PostgreSQL).
    pub fn storage(mut self, s: &'a dyn StorageSource) -> Self {
        self.storage = Some(s);
        self
    }
    /// Lock statistics from this manager.
    pub fn locks(mut self, l: &'a dyn LockManager) -> Self {
        self.locks = Some(l);
        self
    }
    /// Task logs from this store of task files (a data directory's, or PostgreSQL's).
    pub fn files(mut self, f: &'a dyn TaskFileStore) -> Self {
        self.files = Some(f);
        self
    }
    /// Latency percentiles (and goal checks) from this tracker.
    pub fn latency(mut self, t: &'a LatencyTracker, goals: PerformanceGoals) -> Self {
        self.latency = Some(t);
        self.goals = goals;
        self
    }
    /// Hook statistics from this registry.
    pub fn hooks(mut self, h: &'a Hooks) -> Self {
        self.hooks = Some(h);
        self
    }
}

/// Reads every source into a snapshot.
pub fn collect(src: &Sources<'_>) -> Result<Snapshot> {
    Ok(Snapshot {
        taken_at: Timestamp::now(),
        tasks: src.store.stats(0)?,
        locks: src.locks.map(|l| l.stats()).transpose()?,
        storage: src.storage.map(|s| s.storage_stats()).transpose()?,
        logs: src.files.map(|f| f.volume()).transpose()?,
        process: ProcessStats::read(),
        latency: src.latency.map(|t| t.all()).unwrap_or_default(),
        violations: src.latency.map(|t| src.goals.check(t)).unwrap_or_default(),
        hooks: src.hooks.map(|h| h.stats()).unwrap_or_default(),
        alerts: None,
    })
}

/// Renders snapshots as Prometheus text, with a local `metrics` recorder.
pub struct Exporter {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter whose `*_seconds` histograms use the catalogue's buckets.
    pub fn new() -> Result<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
            )
            .map_err(|e| Error::Exporter(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        let e = Exporter {
            recorder: Arc::new(recorder),
            handle,
        };
        metrics::with_local_recorder(&*e.recorder, describe_all);
        Ok(e)
    }

    /// Wraps `locks` so that requests allowed to wait are observed into
    /// `opencode_lock_wait_seconds`; see [`TimedLocks`].
    pub fn timed_locks<M: LockManager>(&self, locks: M) -> TimedLocks<M> {
        TimedLocks::new(locks, self.recorder.clone())
    }

    /// An observer for [`JsonlWriter::observe_fsync`](oc_jsonl::JsonlWriter::observe_fsync)
    /// recording each `fdatasync` into `opencode_log_fsync_seconds`.
    pub fn fsync_observer(&self) -> impl Fn(std::time::Duration) + Send + Sync + 'static {
        let recorder = self.recorder.clone();
        move |took| {
            metrics::with_local_recorder(&*recorder, || {
                histogram!(catalogue::LOG_FSYNC).record(took.as_secs_f64())
            })
        }
    }

    /// Sets every metric from `snap` and renders the exposition text.
    pub fn render(&self, snap: &Snapshot) -> String {
        metrics::with_local_recorder(&*self.recorder, || record(snap));
        let mut text = self.handle.render();
        render_runs(&mut text, &snap.tasks.runs);
        text
    }
}

/// `opencode_task_duration_seconds` from the store's durable counts, in exposition format (a
/// recorder only takes observations, and these were observed by whichever process finished
/// the run).
fn render_runs(text: &mut String, runs: &RunDurations) {
    use std::fmt::Write;
    let name = catalogue::TASK_DURATION;
    let help = CATALOGUE
        .iter()
        .find(|d| d.name == name)
        .map_or("", |d| d.help);
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push('\n');
    }
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} histogram");
    for (bound, n) in runs.cumulative() {
        match bound {
            Some(ms) => {
                let _ = writeln!(text, "{name}_bucket{{le=\"{}\"}} {n}", ms as f64 / 1000.0);
            }
            None => {
                let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {n}");
            }
        }
    }
    let _ = writeln!(text, "{name}_sum {}", runs.sum_ms as f64 / 1000.0);
    let _ = writeln!(text, "{name}_count {}", runs.count());
}

fn unit(m: &MetricDef) -> Unit {
    match m.unit {
        "seconds" => Unit::Seconds,
        "bytes" => Unit::Bytes,
        _ => Unit::Count,
    }
}

fn describe_all() {
    for m in CATALOGUE {
        match m.kind {
            Kind::Counter => describe_counter!(m.name, unit(m), m.help),
            Kind::Gauge => describe_gauge!(m.name, unit(m), m.help),
            Kind::Histogram => describe_histogram!(m.name, unit(m), m.help),
        }
    }
}

fn record(s: &Snapshot) {
    for sample in s.samples() {
        let labels: Vec<metrics::Label> = sample
            .labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        match sample.def.kind {
            // `metrics` counters are integers (process CPU: whole seconds).
            Kind::Counter => counter!(sample.def.name, labels).absolute(sample.value as u64),
            Kind::Gauge => gauge!(sample.def.name, labels).set(sample.value),
            // Task durations are rendered from the store's counts, the others observed.
            Kind::Histogram => {}
        }
    }
}
