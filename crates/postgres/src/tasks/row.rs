//! Tasks to and from rows: the columns of [`super::sql::COLS`] read into a [`Task`], and the
//! values written for them.

use oc_tasks::backend::StoredTask;
use oc_tasks::{Error, HistoryEntry, RUN_BUCKETS_MS, Result, Task, TaskId, TaskStatus, Timestamp};
use tokio_postgres::Row;

pub(super) fn corrupt(id: &str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

pub(super) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A task from the columns of [`super::sql::COLS`] and its dependencies, starting at column `at`.
pub(super) fn row_task(r: &Row, at: usize) -> Result<Task> {
    let get_err = |e: tokio_postgres::Error| corrupt("(row)", e);
    macro_rules! col {
        ($i:expr) => {
            r.try_get(at + $i).map_err(get_err)?
        };
    }
    let jitter: Option<i32> = col!(23);
    StoredTask {
        id: col!(0),
        name: col!(1),
        description: col!(2),
        status: col!(3),
        owner: col!(4),
        priority: col!(5),
        metadata: col!(6),
        result: col!(7),
        error: col!(8),
        attempts: col!(9),
        max_attempts: col!(10),
        version: col!(11),
        created_at: col!(12),
        updated_at: col!(13),
        started_at: col!(14),
        finished_at: col!(15),
        lease_token: col!(16),
        lease_expires_at: col!(17),
        parent: col!(18),
        labels: col!(19),
        run_at: col!(20),
        retry_base_ms: col!(21),
        retry_cap_ms: col!(22),
        retry_jitter: jitter.map(i64::from),
        unique_key: col!(24),
        unique_scope: col!(25),
        depends_on: col!(26),
    }
    .into_task()
}

pub(super) fn result_text(t: &Task) -> Result<Option<String>> {
    t.result
        .as_ref()
        .map(|v| {
            serde_json::to_string(v).map_err(|e| Error::InvalidInput {
                field: "result",
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The text column `i` of `row`, parsed as JSON (`null` when SQL NULL).
pub(super) fn json_column(row: &Row, i: usize) -> Result<serde_json::Value> {
    let text: Option<String> = row.try_get(i).map_err(|e| corrupt("(counts)", e))?;
    serde_json::from_str(text.as_deref().unwrap_or("null")).map_err(|e| corrupt("(counts)", e))
}

/// The meta key of run-duration bucket `i`.
pub(super) fn run_key(i: usize) -> String {
    RUN_BUCKETS_MS
        .get(i)
        .map_or_else(|| "run_le_inf".to_owned(), |b| format!("run_le_{b}"))
}

/// A task's history as `history.sql` reads it (and `retention/lock_rows.sql` archives it): a
/// JSON array of rows, each `[version, at, kind, from, to, actor, token, error]`.
pub(super) fn history_of(id: &TaskId, text: &str) -> Result<Vec<HistoryEntry>> {
    let bad = |e: String| corrupt(id.as_str(), e);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    rows.iter()
        .map(|r| {
            let text = |i: usize| r[i].as_str().map(str::to_owned);
            let status = |t: String| t.parse::<TaskStatus>().map_err(|e| bad(e.to_string()));
            Ok(HistoryEntry {
                task: id.clone(),
                version: r[0].as_u64().unwrap_or(0),
                at: Timestamp::from_millis(r[1].as_i64().unwrap_or(0)),
                kind: text(2).unwrap_or_default().parse().map_err(bad)?,
                from: text(3).map(status).transpose()?,
                to: status(text(4).unwrap_or_default())?,
                actor: text(5),
                token: r[6].as_u64(),
                error: text(7),
            })
        })
        .collect()
}
