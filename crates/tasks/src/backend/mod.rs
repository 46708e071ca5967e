//! For authors of a [`TaskStore`](crate::TaskStore) backend (the SQLite and PostgreSQL stores,
//! an embedder's own), not for code that only uses a store: the pieces every backend shares, so
//! that they agree with the memory and SQLite stores by construction rather than by copy.
//!
//! **No semver promise beyond the crate's minor version**: these items follow the stores'
//! internals and may change in any minor release. Embedders program against
//! [`TaskStore`](crate::TaskStore) and the types at the crate root.
//!
//! Each shared function has one name, and backends import it from here:
//!
//! - the model: [`transition`](crate::transition) and [`reap`](crate::reap) (at the crate root,
//!   since embedders use them too), [`Change::validate`](crate::Change::validate),
//!   [`TaskQuery::validate`](crate::TaskQuery::validate),
//!   [`TaskPage::from_overfetch`](crate::TaskPage::from_overfetch);
//! - the graph: [`PathSearch`] and [`cycle_error`], [`Doomed`], [`plan_submit`] (the two walks
//!   over stored edges do no I/O: a store, synchronous or not, feeds them what they ask for);
//! - rows: [`StoredTask`], [`retry_columns`], [`metadata_text`], [`finished_run`];
//! - idempotency keys: [`KeyedRequest`] (what a store compares a retry with) and
//!   [`KeyedResult`] (what it keeps and gives back), [`idempotency_conflict`];
//! - retention: [`finished_by`], [`retirable`] and [`prunable`] (which finished tasks a run may take out);
//! - SQL text both SQL stores build their listings from: [`sql`] (the filter's `WHERE` clause
//!   over a small dialect, the conditions "ready" and "blocked").

use std::time::Duration;

use crate::{Result, Task, Timestamp};

pub mod sql;

pub use crate::graph::algorithms::{Doomed, PathSearch, cycle_error, plan_submit};
pub use crate::idempotency::{
    ChangeRequest, KeyedRequest, KeyedResult, conflict as idempotency_conflict, given_back,
};
pub use crate::query::{finished_run, metadata_text};
pub use crate::retention::{finished_by, prunable, retirable};
pub use crate::store::{check_batch, complete_changes, fail_changes, heartbeat_changes};

/// A retry policy as stored: base and cap in milliseconds and the jitter in percent, all
/// `NULL` without one.
pub fn retry_columns(p: &crate::RetryPolicy) -> (Option<i64>, Option<i64>, Option<i64>) {
    match *p {
        crate::RetryPolicy::None => (None, None, None),
        crate::RetryPolicy::Backoff {
            base,
            cap,
            jitter_pct,
        } => {
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            (Some(ms(base)), Some(ms(cap)), Some(i64::from(jitter_pct)))
        }
    }
}

/// A task as its columns store it, in `COLS` order of both SQL stores: what each backend reads
/// from a row, turned into a [`Task`] in one place ([`StoredTask::into_task`]).
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)]
pub struct StoredTask {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub status: String,
    pub owner: Option<String>,
    pub priority: i32,
    /// The metadata object as JSON text.
    pub metadata: String,
    /// The result as JSON text.
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub lease_token: Option<i64>,
    pub lease_expires_at: Option<i64>,
    pub parent: Option<String>,
    pub labels: Vec<String>,
    pub run_at: Option<i64>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub retry_jitter: Option<i64>,
    pub unique_key: Option<String>,
    pub unique_scope: Option<String>,
    pub depends_on: Vec<String>,
}

impl StoredTask {
    /// The task, or `Corrupt` naming the row and what did not decode.
    pub fn into_task(self) -> Result<Task> {
        let id = self.id;
        let bad = |reason: String| crate::Error::Corrupt {
            id: id.clone(),
            reason,
        };
        let task_id = |s: String| crate::TaskId::new(s).map_err(|e| bad(e.to_string()));
        let u64_ =
            |v: i64, what: &str| u64::try_from(v).map_err(|_| bad(format!("negative {what}")));
        let u32_ = |v: i64, what: &str| u32::try_from(v).map_err(|_| bad(format!("bad {what}")));
        let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
        let ms = |v: i64| u64_(v, "backoff").map(Duration::from_millis);
        Ok(Task {
            status: self
                .status
                .parse()
                .map_err(|e: crate::Error| bad(e.to_string()))?,
            metadata: serde_json::from_str(&self.metadata).map_err(|e| bad(e.to_string()))?,
            result: self
                .result
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            name: self.name,
            description: self.description,
            owner: self.owner,
            priority: self.priority,
            error: self.error,
            attempts: u32_(self.attempts, "attempts")?,
            max_attempts: u32_(self.max_attempts, "max_attempts")?,
            version: u64_(self.version, "version")?,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            started_at: ts(self.started_at),
            finished_at: ts(self.finished_at),
            lease: match (self.lease_token, self.lease_expires_at) {
                (Some(t), Some(e)) => Some(crate::Lease {
                    token: u64_(t, "lease token")?,
                    expires_at: Timestamp::from_millis(e),
                }),
                _ => None,
            },
            depends_on: self
                .depends_on
                .into_iter()
                .map(task_id)
                .collect::<Result<_>>()?,
            parent: self.parent.map(task_id).transpose()?,
            labels: self.labels,
            run_at: ts(self.run_at),
            retry: match (self.retry_base_ms, self.retry_cap_ms) {
                (Some(base), Some(cap)) => crate::RetryPolicy::backoff(ms(base)?, ms(cap)?).jitter(
                    u8::try_from(self.retry_jitter.unwrap_or(0)).map_err(|e| bad(e.to_string()))?,
                ),
                _ => crate::RetryPolicy::None,
            },
            unique: self
                .unique_key
                .map(|key| -> Result<crate::Unique> {
                    Ok(crate::Unique {
                        key,
                        scope: self
                            .unique_scope
                            .as_deref()
                            .unwrap_or("unfinished")
                            .parse()
                            .map_err(|e: crate::Error| bad(e.to_string()))?,
                    })
                })
                .transpose()?,
            id: task_id(id.clone())?,
        })
    }
}
