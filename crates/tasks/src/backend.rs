//! For implementers of [`TaskStore`](crate::TaskStore) (the PostgreSQL store, an embedder's
//! own): the pieces every backend shares, so that they agree with the SQLite and memory stores
//! by construction rather than by copy.

use std::time::Duration;

use crate::{Change, Cursor, Order, Result, Task, TaskPage, TaskQuery, Timestamp};

pub use crate::graph::{doomed, find_path, plan_submit};

/// The error for an edge `task → on` that would close a cycle, given the path from `on` back
/// to `task` ([`find_path`]).
pub fn cycle_error(task: &crate::TaskId, path: Vec<crate::TaskId>) -> crate::Error {
    crate::graph::cycle_error(task, path)
}

/// The metadata as stored: its compact JSON text (what the search matches).
pub fn metadata_text(task: &Task) -> String {
    crate::query::metadata_text(task)
}

/// The run a write from `prev` to `next` finishes, if it finishes one: counted into
/// [`RunDurations`](crate::RunDurations) in the same transaction.
pub fn finished_run(prev: &Task, next: &Task) -> Option<Duration> {
    crate::query::finished_run(prev, next)
}

/// Checks a change's own arguments, before the store is touched.
pub fn validate_change(change: &Change) -> Result<()> {
    change.validate()
}

/// Checks a query's limit and cursor, before the store is touched.
pub fn validate_query(query: &TaskQuery) -> Result<()> {
    query.validate()
}

/// A page from up to `limit + 1` tasks read in the query's order: the extra one only says
/// that there is more.
pub fn page(tasks: Vec<Task>, limit: usize) -> TaskPage {
    TaskPage::from_overfetch(tasks, limit)
}

/// A cursor's position: priority, creation time and id of the last task of the page before.
pub fn cursor_position(c: &Cursor) -> (i32, Timestamp, &crate::TaskId) {
    (c.priority, c.created_at, &c.id)
}

/// The SQL `LIKE` pattern (with `\` as the escape character) that matches `text` anywhere.
pub fn like_anywhere(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The error a task failed by the reaper records.
pub fn reap_error(attempts: u32) -> String {
    crate::model::reap_error(attempts)
}

/// The SQL `ORDER BY` of a listing in `order` (over the columns `priority`, `created_at`, `id`),
/// with a leading space.
pub fn order_by_sql(order: Order) -> &'static str {
    match order {
        Order::Newest => " ORDER BY created_at DESC, id DESC",
        Order::Oldest => " ORDER BY created_at, id",
        Order::Priority => " ORDER BY priority DESC, created_at, id",
    }
}

/// The SQL condition "after the cursor" in `order`, given the placeholders of the cursor's
/// position; `priority` is only asked for in priority order (an unused placeholder has no type).
pub fn after_sql(
    order: Order,
    created: &str,
    id: &str,
    priority: impl FnOnce() -> String,
) -> String {
    match order {
        Order::Newest => format!("(created_at, id) < ({created}, {id})"),
        Order::Oldest => format!("(created_at, id) > ({created}, {id})"),
        Order::Priority => {
            // `priority <= p` first: a range start an index in claim order can seek to.
            let p = priority();
            format!(
                "(priority <= {p} AND (priority < {p} OR (created_at, id) > ({created}, {id})))"
            )
        }
    }
}

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
