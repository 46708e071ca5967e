//! Rows and columns: a task read from its row, the values written to it.

use std::fmt;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};

use crate::{Error, Result, Task, TaskId, Timestamp};

/// The stored columns of a task, in [`task_values`] order.
macro_rules! stored_cols {
    () => {
        "id, name, description, status, owner, priority, metadata, result, error, attempts, \
         max_attempts, version, created_at, updated_at, started_at, finished_at, lease_token, \
         lease_expires_at, parent, labels, run_at, retry_base_ms, retry_cap_ms, retry_jitter, \
         unique_key, unique_scope"
    };
}

pub(super) const STORED_COLS: &str = stored_cols!();

/// What a task is read from: the stored columns and its dependencies (as a JSON array).
pub(super) const COLS: &str = concat!(
    stored_cols!(),
    ", (SELECT json_group_array(depends_on) FROM task_deps WHERE task_deps.task_id = tasks.id)"
);

pub(super) fn corrupt(id: &str, reason: impl fmt::Display) -> Error {
    Error::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

pub(super) fn row_to_task(r: &Row<'_>) -> Result<Task> {
    let id: String = r.get(0)?;
    // Labels and dependencies are JSON arrays here (PostgreSQL has arrays).
    let list = |text: Option<String>| -> Result<Vec<String>> {
        serde_json::from_str(text.as_deref().unwrap_or("[]")).map_err(|e| corrupt(&id, e))
    };
    crate::backend::StoredTask {
        labels: list(r.get(19)?)?,
        depends_on: list(r.get(26)?)?,
        name: r.get(1)?,
        description: r.get(2)?,
        status: r.get(3)?,
        owner: r.get(4)?,
        priority: r.get(5)?,
        metadata: r.get(6)?,
        result: r.get(7)?,
        error: r.get(8)?,
        attempts: r.get(9)?,
        max_attempts: r.get(10)?,
        version: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        started_at: r.get(14)?,
        finished_at: r.get(15)?,
        lease_token: r.get(16)?,
        lease_expires_at: r.get(17)?,
        parent: r.get(18)?,
        run_at: r.get(20)?,
        retry_base_ms: r.get(21)?,
        retry_cap_ms: r.get(22)?,
        retry_jitter: r.get(23)?,
        unique_key: r.get(24)?,
        unique_scope: r.get(25)?,
        id,
    }
    .into_task()
}

/// The column values of `t`, in `STORED_COLS` order.
pub(super) fn task_values(t: &Task) -> Result<Vec<SqlValue>> {
    let i = |v: u64| SqlValue::Integer(i64::try_from(v).unwrap_or(i64::MAX));
    let text = |s: &Option<String>| s.clone().map_or(SqlValue::Null, SqlValue::Text);
    let ts = |t: Option<Timestamp>| t.map_or(SqlValue::Null, |t| SqlValue::Integer(t.as_millis()));
    let int = |v: Option<i64>| v.map_or(SqlValue::Null, SqlValue::Integer);
    let retry = crate::backend::retry_columns(&t.retry);
    let json = |v: &serde_json::Value| {
        serde_json::to_string(v).map_err(|e| Error::InvalidInput {
            field: "result",
            reason: e.to_string(),
        })
    };
    Ok(vec![
        SqlValue::Text(t.id.to_string()),
        SqlValue::Text(t.name.clone()),
        text(&t.description),
        SqlValue::Text(t.status.as_str().to_owned()),
        text(&t.owner),
        SqlValue::Integer(t.priority.into()),
        SqlValue::Text(crate::backend::metadata_text(t)),
        t.result
            .as_ref()
            .map(json)
            .transpose()?
            .map_or(SqlValue::Null, SqlValue::Text),
        text(&t.error),
        SqlValue::Integer(t.attempts.into()),
        SqlValue::Integer(t.max_attempts.into()),
        i(t.version),
        ts(Some(t.created_at)),
        ts(Some(t.updated_at)),
        ts(t.started_at),
        ts(t.finished_at),
        t.lease.map_or(SqlValue::Null, |l| i(l.token)),
        ts(t.lease.map(|l| l.expires_at)),
        t.parent
            .as_ref()
            .map_or(SqlValue::Null, |p| SqlValue::Text(p.to_string())),
        SqlValue::Text(labels_json(&t.labels)),
        ts(t.run_at),
        int(retry.0),
        int(retry.1),
        int(retry.2),
        text(&t.unique.as_ref().map(|u| u.key.clone())),
        text(&t.unique.as_ref().map(|u| u.scope.as_str().to_owned())),
    ])
}

pub(super) fn labels_json(labels: &[String]) -> String {
    serde_json::Value::from(labels.to_vec()).to_string()
}

pub(super) fn load(tx: &Connection, id: &TaskId) -> Result<Option<Task>> {
    let mut stmt = tx.prepare_cached(&format!("SELECT {COLS} FROM tasks WHERE id = ?1"))?;
    let mut rows = stmt.query([id.as_str()])?;
    match rows.next()? {
        Some(r) => Ok(Some(row_to_task(r)?)),
        None => Ok(None),
    }
}

pub(super) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
