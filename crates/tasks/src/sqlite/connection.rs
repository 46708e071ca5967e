//! This store's side of the SQLite plumbing `oc_sqlite` holds: its connections' settings and
//! errors, its busy retries, its fence, and the slow-statement log fed by SQLite's profile
//! callback.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oc_sqlite::{Connect, Fence};
use parking_lot::Mutex;
use rusqlite::Connection;
use rusqlite::trace::{TraceEvent, TraceEventCodes};

use super::SqliteOptions;
use crate::{Clock, Error, Result, SlowCallback, SlowStatement};

/// How many slow statements are kept for [`StorageStats::recent_slow`].
pub(super) const SLOW_KEEP: usize = 32;

pub(super) struct SlowLog {
    pub(super) threshold: Duration,
    pub(super) count: AtomicU64,
    pub(super) recent: Mutex<VecDeque<SlowStatement>>,
    pub(super) callback: Option<SlowCallback>,
    pub(super) clock: Arc<dyn Clock>,
}

impl SlowLog {
    fn record(&self, sql: &str, d: Duration) {
        if d < self.threshold {
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let s = SlowStatement {
            sql: sql.to_owned(),
            duration_us: u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            at: self.clock.now(),
        };
        s.trace("sqlite");
        if let Some(cb) = &self.callback {
            cb(&s);
        }
        let mut recent = self.recent.lock();
        if recent.len() == SLOW_KEEP {
            recent.pop_front();
        }
        recent.push_back(s);
    }
}

pub(super) fn fence(opts: &SqliteOptions) -> Fence {
    opts.durability
        .fence("oc_tasks_meta", "lease_token", "lease_token_ceiling")
}

pub(super) fn slow_log(opts: &SqliteOptions) -> Arc<SlowLog> {
    Arc::new(SlowLog {
        threshold: opts.slow_threshold,
        count: AtomicU64::new(0),
        recent: Mutex::new(VecDeque::new()),
        callback: opts.on_slow.clone(),
        clock: opts.clock.clone(),
    })
}

/// How the store's connections are opened: its busy timeout and durability.
pub(super) fn connect(opts: &SqliteOptions) -> Connect {
    Connect::new(opts.busy_timeout, opts.durability)
}

/// What this store adds to every connection [`Connect`] configured: foreign keys and the
/// slow-statement log.
pub(super) fn instrument(c: &mut Connection, slow: &Arc<SlowLog>) -> Result<()> {
    c.execute_batch("PRAGMA foreign_keys = ON")?;
    let slow = slow.clone();
    c.trace_v2(
        TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(move |ev: TraceEvent<'_>| {
            // Only a slow statement's text is read: the profile fires for every statement.
            if let TraceEvent::Profile(stmt, d) = ev
                && d >= slow.threshold
            {
                slow.record(&stmt.sql(), d);
            }
        }),
    )?;
    Ok(())
}

/// The shared plumbing's error as this crate's (a refused journal mode is invalid input).
pub(super) fn plumbing(e: oc_sqlite::Error) -> Error {
    match e {
        oc_sqlite::Error::Sqlite(e) => e.into(),
        oc_sqlite::Error::SchemaTooNew { found, supported } => {
            Error::SchemaTooNew { found, supported }
        }
        other => Error::InvalidInput {
            field: "database",
            reason: other.to_string(),
        },
    }
}

/// Whether `e` is SQLite finding the database busy or locked (the one SQLite error made
/// retryable).
pub(super) fn busy(e: &Error) -> bool {
    matches!(
        e,
        Error::Backend {
            backend: "sqlite",
            retryable: true,
            ..
        }
    )
}

/// Retries `f` while SQLite reports the database busy or locked ([`oc_sqlite::retry_busy`]).
pub(super) fn retry_busy<T>(f: impl FnMut() -> Result<T>) -> Result<T> {
    oc_sqlite::retry_busy(busy, f)
}
