//! For implementers of [`TaskStore`](crate::TaskStore) (the PostgreSQL store, an embedder's
//! own): the pieces every backend shares, so that they agree with the SQLite and memory stores
//! by construction rather than by copy.

use std::time::Duration;

use crate::{Change, Cursor, Order, Result, Task, TaskPage, TaskQuery, Timestamp};

pub use crate::graph::{find_path, plan_submit};

/// The error for an edge `task → on` that would close a cycle, given the path from `on` back
/// to `task` ([`find_path`]).
pub fn cycle_error(task: &crate::TaskId, path: Vec<crate::TaskId>) -> crate::Error {
    crate::graph::cycle_error(task, path)
}

/// Checks a filter's labels, before the store is touched.
pub fn validate_labels(filter: &crate::LabelFilter) -> Result<()> {
    filter.validate()
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

/// The retry policy of the stored columns ([`retry_columns`]); the reason when they are not one.
pub fn retry_policy(
    base: Option<i64>,
    cap: Option<i64>,
    jitter: Option<i64>,
) -> std::result::Result<crate::RetryPolicy, String> {
    let ms = |v: i64| u64::try_from(v).map_err(|_| format!("negative backoff {v}"));
    match (base, cap) {
        (Some(base), Some(cap)) => Ok(crate::RetryPolicy::backoff(
            Duration::from_millis(ms(base)?),
            Duration::from_millis(ms(cap)?),
        )
        .jitter(u8::try_from(jitter.unwrap_or(0)).map_err(|e| e.to_string())?)),
        _ => Ok(crate::RetryPolicy::None),
    }
}

/// The unique key of the stored key and scope columns; the reason when they are not one.
pub fn unique(
    key: Option<String>,
    scope: Option<&str>,
) -> std::result::Result<Option<crate::Unique>, String> {
    key.map(|key| {
        Ok(crate::Unique {
            key,
            scope: scope
                .unwrap_or("unfinished")
                .parse()
                .map_err(|e: crate::Error| e.to_string())?,
        })
    })
    .transpose()
}
