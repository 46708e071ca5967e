//! The metric catalogue: every name `oc-metrics` exports, its type, unit, labels and help.
//! The names are a contract (dashboards and alert rules use them); `docs/METRICS.md` is
//! generated from this table by `cargo xtask codegen` and a test keeps it in step.

use serde::Serialize;

/// How a metric behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

impl Kind {
    /// The Prometheus type name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Where a metric's value comes from, which says how to add up several `oc serve` replicas of
/// one store (`docs/METRICS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read from the shared store at scrape time: every replica of one database exports the
    /// same value, so dashboards take `max without (instance)`.
    Store,
    /// Counted by the process that exports it: replicas' values add up,
    /// `sum without (instance)`.
    Process,
}

impl Scope {
    /// `store` or `process`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Store => "store",
            Scope::Process => "process",
        }
    }
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MetricDef {
    /// The Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Unit (`seconds`, `bytes`, or `1` for counts).
    pub unit: &'static str,
    /// Label names.
    pub labels: &'static [&'static str],
    /// Shared by every replica of a store, or counted per process.
    pub scope: Scope,
    /// Help text.
    pub help: &'static str,
}

macro_rules! catalogue {
    ($($konst:ident = $name:literal, $kind:ident, $scope:ident, $unit:literal, [$($l:literal),*], $help:literal;)*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $help)]
            pub const $konst: &str = $name;
        )*
        /// Every metric, in the order `docs/METRICS.md` lists them.
        pub const CATALOGUE: &[MetricDef] = &[$(MetricDef { name: $name, kind: Kind::$kind, unit: $unit, labels: &[$($l),*], scope: Scope::$scope, help: $help }),*];
    };
}

catalogue! {
    TASKS_TOTAL = "opencode_tasks_total", Counter, Store, "1", ["status"], "Transitions of tasks into each status since the database was created (created counts as pending).";
    TASKS = "opencode_tasks", Gauge, Store, "1", ["status"], "Tasks in each status now.";
    TASKS_READY = "opencode_tasks_ready", Gauge, Store, "1", [], "Pending tasks ready to be claimed now: every dependency completed, `run_at` passed.";
    TASKS_BLOCKED = "opencode_tasks_blocked", Gauge, Store, "1", [], "Pending tasks waiting for a dependency or their `run_at`.";
    TASK_DURATION = "opencode_task_duration_seconds", Histogram, Store, "seconds", [], "Run time of finished tasks (start or claim to completion or failure; buckets 1, 5, 10, 30, 60, 300 s), counted by the store as they finish, so every process exports the same.";
    LOCK_ACQUISITIONS_TOTAL = "opencode_lock_acquisitions_total", Counter, Store, "1", ["mode"], "Locks granted (re-entrant holds excluded).";
    LOCK_CONFLICTS_TOTAL = "opencode_lock_conflicts_total", Counter, Store, "1", [], "Lock requests that found a conflicting holder or waiter.";
    LOCKS_ACTIVE = "opencode_locks_active", Gauge, Store, "1", [], "Locks held now.";
    LOCK_HOLD = "opencode_lock_hold_seconds", Gauge, Store, "seconds", ["stat"], "Time locks were held, from grant to final release: average and max.";
    LOCK_WAIT = "opencode_lock_wait_seconds", Histogram, Process, "seconds", [], "Time lock requests allowed to wait took, observed as they are granted or time out (through `Exporter::timed_locks`).";
    DB_SIZE = "opencode_db_size_bytes", Gauge, Store, "bytes", [], "Database size: page count times page size.";
    DB_WAL = "opencode_db_wal_bytes", Gauge, Store, "bytes", [], "Size of the database's write-ahead log.";
    DB_CACHE = "opencode_db_cache_total", Counter, Process, "1", ["result"], "Page-cache hits and misses of this process's connections.";
    SLOW_QUERIES_TOTAL = "opencode_slow_queries_total", Counter, Process, "1", [], "Statements slower than the slow-query threshold in this process.";
    LOG_APPENDS_TOTAL = "opencode_log_appends_total", Counter, Store, "1", [], "Task log entries stored (all tasks), in the data directory or the database.";
    LOG_BYTES = "opencode_log_bytes", Gauge, Store, "bytes", [], "Bytes of task logs stored (all tasks; on disk, rotated files included).";
    LOG_FSYNC = "opencode_log_fsync_seconds", Histogram, Process, "seconds", [], "Time of log `fdatasync`s, observed as they happen (through `Exporter::fsync_observer`).";
    HOOK_DURATION = "opencode_hook_duration_seconds", Gauge, Process, "seconds", ["hook", "stat"], "Hook run time: total and max, per hook.";
    HOOK_FAILURES_TOTAL = "opencode_hook_failures_total", Counter, Process, "1", ["hook"], "Hook runs that failed (error or panic).";
    OPERATION_DURATION = "opencode_operation_duration_seconds", Gauge, Process, "seconds", ["operation", "percentile"], "Latency percentiles (p50, p95, p99) over the last 1,000 calls of each tracked operation.";
    GOAL_VIOLATIONS = "opencode_performance_goal_violations", Gauge, Process, "1", ["metric"], "1 when the measured p95 of an operation exceeds its performance goal.";
    ALERTS_FIRING = "opencode_alerts_firing", Gauge, Store, "1", ["severity"], "Alerts firing now, by severity (where an oc-alerts evaluator runs).";
    ALERT_NOTIFICATIONS_TOTAL = "opencode_alert_notifications_total", Counter, Process, "1", ["receiver", "result"], "Notifications per receiver: sent, failed (after the last retry) or dropped (queue full).";
    ALERT_RETRIES_TOTAL = "opencode_alert_delivery_retries_total", Counter, Process, "1", ["receiver"], "Delivery attempts repeated after a transient failure.";
    PROCESS_RSS = "process_resident_memory_bytes", Gauge, Process, "bytes", [], "Resident memory of this process.";
    PROCESS_CPU = "process_cpu_seconds_total", Counter, Process, "seconds", ["mode"], "CPU time of this process, user and system.";
    PROCESS_THREADS = "process_threads", Gauge, Process, "1", [], "Threads of this process.";
    PROCESS_START = "process_start_time_seconds", Gauge, Process, "seconds", [], "Start time of this process since the Unix epoch.";
}

/// The catalogue as Markdown (what `docs/METRICS.md` holds).
pub fn markdown() -> String {
    let mut s = String::from(
        "# Metrics\n\nGenerated from `crates/metrics/src/catalogue.rs` by `cargo xtask codegen`; a test fails when this file is stale.\nThe names are a contract: the Grafana dashboard and the Prometheus rules in `docs/` use them.\n\n| Name | Type | Scope | Unit | Labels | Help |\n|---|---|---|---|---|---|\n",
    );
    for m in CATALOGUE {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            m.name,
            m.kind.as_str(),
            m.scope.as_str(),
            m.unit,
            m.labels.join(", "),
            m.help
        ));
    }
    s.push_str(REPLICAS);
    s.push_str(HISTOGRAMS);
    s
}

/// How to scrape several replicas of one store, for `docs/METRICS.md`.
const REPLICAS: &str = "
## Several `oc serve` replicas of one database

On PostgreSQL, every host's `oc serve` reads the same store, so a `store` series is the same on every replica (up to when each was scraped) and adding them up would count the fleet once per replica.
Scrape every replica (so a dead one costs nothing), and aggregate by scope:

- `store` series: `max without (instance) (...)`, before any `sum` or `rate`-based ratio: `sum(max without (instance) (rate(opencode_tasks_total{status=\"completed\"}[5m])))`.
- `process` series: `sum without (instance) (...)` for totals of the fleet, or per `instance` to see one process.

`docs/prometheus/rules.yml` and the Grafana dashboard follow this rule; `docs/prometheus/rules_test.yml` feeds two replicas' series and expects the values of one, and a test checks that every `store` series they use is under `max without (instance)`.
On SQLite (one host), `max` over one replica is the series itself.
";

/// Where each histogram comes from, for `docs/METRICS.md`.
const HISTOGRAMS: &str = "
## Where the histograms come from

Counters and gauges are read from durable state at scrape time, so a fresh `oc metrics` or `oc serve` reports what every process did.
Histograms differ in where their observations live:

| Histogram | Source | Seen by |
|---|---|---|
| `opencode_task_duration_seconds` | durable: the task store counts each finished run into its bucket in the transaction that finishes it (`TaskStats::runs`; SQLite, PostgreSQL and memory alike) | every process, the same numbers |
| `opencode_lock_wait_seconds` | in-process: `Exporter::timed_locks` observes the waits of the lock manager it wraps | the process that waited |
| `opencode_log_fsync_seconds` | in-process: `Exporter::fsync_observer` observes a `JsonlWriter`'s syncs | the process that synced |

Lock hold times are kept durably as a total and a maximum, not per bucket, so `opencode_lock_hold_seconds` is a gauge of the average and the maximum.
Hook durations (`opencode_hook_duration_seconds`) are gauges of the total and maximum per hook, kept by the registry of the process that runs the hooks.
";
