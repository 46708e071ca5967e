//! Alerting for opencode-tools: rules over the metrics snapshot, alert states with pending
//! durations, repeats, silences and inhibition, a store that survives restarts (a state file,
//! or a database shared by replicas that evaluate one at a time and notify once), and
//! notification channels with routing and retries.
//!
//! # Overview
//!
//! - [`Rule`]: a name, a [`Severity`], a [`Condition`] (a closure over the
//!   [`Snapshot`](oc_metrics::Snapshot), or a threshold over a catalogue metric or a ratio of
//!   two), a pending duration (`for`), labels, and summary and description templates.
//! - [`builtin_rules`]: the seed's conditions (failure rate above 10 %, database above 100 MB,
//!   lock conflict rate above 20 %, more than 100 conflicts, average hold above 30 s,
//!   performance goals missed), with configurable [`Thresholds`].
//! - [`Config`]: the same from a TOML file, plus declarative rules.
//! - [`Engine`]: evaluates the rules at an explicit `now`; alerts go pending → firing →
//!   resolved; it returns one [`Notification`] per change of state, repeats a firing alert
//!   only after the repeat interval, mutes [`Silence`]d alerts, lets a critical alert inhibit
//!   lower-severity alerts of the same rule and labels, and keeps its state in an
//!   [`AlertStore`]: [`FileAlertStore`] on one host, `oc_postgres::PgAlertStore` for replicas
//!   on one database, where the holder of the store's [`Lease`] evaluates and commits state
//!   changes with their notifications (the outbox), and the others reload.
//! - [`notify`]: the [`Notifier`] trait and the channels: log, generic webhook, Slack,
//!   PagerDuty Events v2, email over SMTP, Prometheus Alertmanager.
//! - [`Dispatcher`]: routing by severity, one worker per [`Receiver`], timeouts, retries with
//!   backoff, counted failures; [`Evaluator`]: evaluation on a background thread at an
//!   interval; [`figures`]: what fires and how deliveries went, for `oc-metrics`.
//! - [`guide`]: the monitoring guide, whose samples run as this crate's doc tests.
//!
//! # Example
//!
//! ```
//! use oc_alerts::{Condition, Engine, Kind, Rule, Severity};
//! use oc_metrics::{Sources, collect};
//! use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
//!
//! let store = SqliteTaskStore::open_in_memory()?;
//! let rule = Rule::new("TooManyTasks", Severity::Medium, Condition::when(|snap| {
//!     let n = snap.tasks.total as f64;
//!     (n > 2.0).then_some(n)
//! }))
//! .summary("{{value}} tasks");
//! let mut engine = Engine::new(vec![rule])?;
//! for _ in 0..3 {
//!     store.create(NewTask::new("t"))?;
//! }
//! let sent = engine.evaluate(&collect(&Sources::new(&store))?, oc_time::Timestamp::now())?;
//! assert_eq!(sent.len(), 1);
//! assert_eq!(sent[0].kind, Kind::Firing);
//! assert_eq!(sent[0].alert.summary, "3 tasks");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! [`Error`] names what was wrong: the rule, the matcher, the config file and line, or the
//! state file; [`Error::is_invalid_input`] tells the caller's mistakes from the state file's
//! failures. Nothing is saved from a failed call.
//!
//! # Secrets
//!
//! A receiver's URL is often its credential (`user:password@`, a token in the path or the
//! query). No message of this crate shows one: errors, delivery failures
//! ([`DeliveryStats::last_error`]), the evaluator's last error and configuration errors pass
//! through [`redact`] and [`redact_url`] where they are made, so whatever shows them (today
//! `oc alerts check`; the metrics carry counts only, the alerts page no error text) shows them
//! redacted; a TOML error names the line and key, never the text there. Both functions take
//! any text (a remote server's reply in any script) without panicking.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

/// The monitoring guide (`docs/MONITORING.md`, linked into this crate so that its package has
/// it); its Rust samples run as doc tests here, in the one library crate that can use all the
/// others.
#[doc = include_str!("../MONITORING.md")]
pub mod guide {}

mod alert;
mod config;
mod deliver;
mod engine;
mod evaluator;
pub mod notify;
mod redact;
mod rule;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::path::PathBuf;

pub use crate::alert::{Alert, Kind, Matcher, Notification, Silence, State};
pub use crate::config::{Config, ReceiverSpec};
pub use crate::deliver::{DeliveryStats, Dispatcher, Receiver, RetryPolicy};
pub use crate::engine::{Engine, Outbox};
pub use crate::evaluator::{Evaluator, EvaluatorStats, evaluate_once, figures};
pub use crate::notify::{Notifier, SendError};
pub use crate::redact::{redact, redact_url};
pub use crate::rule::{
    Condition, Hit, Measure, Op, Rule, Selector, Severity, Thresholds, builtin_rules,
};
pub use crate::store::{
    AlertStore, FileAlertStore, Lease, OutboxEntry, Outgoing, holder_name, lease_ttl,
};

/// Everything that can go wrong in `oc-alerts`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rule, matcher, severity or setting is not valid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
    /// The configuration could not be read or parsed.
    #[error("alert config {origin}: {reason}")]
    Config {
        /// The file (or another origin) read.
        origin: String,
        /// What was wrong, with the line when the parser knows it.
        reason: String,
    },
    /// The state file could not be read or written.
    #[error("alert state {}: {reason}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A shared [`AlertStore`] (a database) failed.
    #[error("alert store ({backend}): {message}")]
    Backend {
        /// Which backend (`postgres`).
        backend: &'static str,
        /// What failed, never including a password.
        message: String,
        /// Whether trying again may succeed (a lost connection, a server restarting).
        retryable: bool,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// What the caller gave was rejected: a rule, matcher, severity or setting that is not
    /// valid, or a configuration that could not be read or parsed. The state file failing is
    /// not (`oc` exits 2 for the first, 1 for the second).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::Invalid { .. } | Error::Config { .. })
    }

    /// Trying again may succeed: a shared store's connection was lost, its server restarting.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
