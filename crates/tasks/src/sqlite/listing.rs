//! Reads: the filter's SQL (the shared builder's, bound as SQLite values), the ready tasks'
//! index, counts, statistics and history.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::rows::{corrupt, load, to_u64};
use super::write::run_key;
use crate::backend::sql::{Dialect, SqlParam, filter_sql, ready_sql};
use crate::query::RunDurations;
use crate::{
    Capped, Error, HistoryEntry, Order, Result, TaskCounts, TaskFilter, TaskId, TaskStats,
    TaskStatus, TaskSummary, Timestamp,
};

/// The tasks table read through `tasks_ready`, for queries over ready tasks: named, so that a
/// planner without statistics never walks another index and reads every pending row, blocked
/// ones included, to find the ready ones (and so that a query fails rather than slows down if
/// the index ever stops serving them).
pub(super) const READY_TABLE: &str = "tasks INDEXED BY tasks_ready";

/// The WHERE clause and parameters of a filter (plus an optional cursor), readiness judged
/// at `now`: the shared builder's SQLite text ([`filter_sql`]), its parameters bound as SQLite
/// values.
pub(super) fn where_clause(
    filter: &TaskFilter,
    after: Option<(&crate::query::Cursor, Order)>,
    now: Timestamp,
) -> (String, Vec<SqlValue>) {
    let (sql, params) = filter_sql(Dialect::Sqlite, filter, after, Some(now));
    (sql, params.into_iter().map(sql_value).collect())
}

/// A parameter of the shared SQL as SQLite binds it (a list, which SQLite's SQL never asks
/// for, as the JSON array `json_each` would read).
fn sql_value(p: SqlParam) -> SqlValue {
    match p {
        SqlParam::BigInt(Some(v)) => SqlValue::Integer(v),
        SqlParam::BigInt(None) => SqlValue::Null,
        SqlParam::Int(v) => SqlValue::Integer(v.into()),
        SqlParam::Text(s) => SqlValue::Text(s),
        SqlParam::TextList(v) => SqlValue::Text(serde_json::Value::from(v).to_string()),
    }
}

pub(super) fn history_in(c: &Connection, id: &TaskId) -> Result<Vec<HistoryEntry>> {
    if load(c, id)?.is_none() {
        return Err(Error::NotFound { id: id.clone() });
    }
    let mut stmt = c.prepare_cached(
        "SELECT version, at, kind, from_status, to_status, actor, token, error
         FROM task_history WHERE task_id = ?1 ORDER BY version",
    )?;
    let mut rows = stmt.query([id.as_str()])?;
    let mut v = Vec::new();
    while let Some(r) = rows.next()? {
        let bad = |e: String| corrupt(id.as_str(), e);
        let kind: String = r.get(2)?;
        let from: Option<String> = r.get(3)?;
        let to: String = r.get(4)?;
        let token: Option<i64> = r.get(6)?;
        v.push(HistoryEntry {
            task: id.clone(),
            version: to_u64(r.get(0)?),
            at: Timestamp::from_millis(r.get(1)?),
            kind: kind.parse().map_err(bad)?,
            from: from
                .map(|f| f.parse())
                .transpose()
                .map_err(|e: crate::Error| bad(e.to_string()))?,
            to: to.parse().map_err(|e: crate::Error| bad(e.to_string()))?,
            actor: r.get(5)?,
            token: token.map(to_u64),
            error: r.get(7)?,
        });
    }
    Ok(v)
}

/// The counts by status and of entries into each (kept by the writes in `oc_tasks_meta`),
/// and the ready and blocked tasks counted up to `cap` by index ranges: those waiting on a
/// dependency in `tasks_ready`, those scheduled for later in `tasks_scheduled`.
pub(super) fn counts_in(c: &Connection, cap: u64, now: Timestamp) -> Result<TaskCounts> {
    let mut by_status = TaskStatus::ALL.map(|s| (s, 0u64));
    let mut entered = by_status;
    {
        let mut stmt = c.prepare_cached("SELECT key, value FROM oc_tasks_meta")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let (list, status) = match key.split_once('_') {
                Some(("count", s)) => (&mut by_status, s),
                Some(("entered", s)) => (&mut entered, s),
                _ => continue,
            };
            let status: TaskStatus = status.parse().map_err(|e| corrupt("(counts)", e))?;
            if let Some(slot) = list.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = to_u64(r.get(1)?);
            }
        }
    }
    let limit = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
    let count = |sql: &str, with_now: bool| -> Result<Capped> {
        let mut stmt = c.prepare_cached(&format!("SELECT count(*) FROM ({sql} LIMIT ?1)"))?;
        let n: i64 = if with_now {
            stmt.query_row((limit, now.as_millis()), |r| r.get(0))?
        } else {
            stmt.query_row([limit], |r| r.get(0))?
        };
        Ok(Capped::up_to(to_u64(n), cap))
    };
    let waiting = count(
        &format!("SELECT 1 FROM {READY_TABLE} WHERE status = 'pending' AND waiting > 0"),
        false,
    )?;
    let scheduled = count(
        "SELECT 1 FROM tasks INDEXED BY tasks_scheduled
         WHERE status = 'pending' AND run_at IS NOT NULL AND run_at > ?2 AND waiting = 0",
        true,
    )?;
    let (ready, blocked) = TaskCounts::split_pending(by_status[0].1, waiting, scheduled, || {
        count(
            &format!(
                "SELECT 1 FROM {READY_TABLE} WHERE {}",
                ready_sql(None, "?2")
            ),
            true,
        )
    })?;
    Ok(TaskCounts {
        by_status: by_status.to_vec(),
        ready,
        blocked,
        entered: entered.to_vec(),
    })
}

pub(super) fn stats_in(c: &Connection, recent: usize, now: Timestamp) -> Result<TaskStats> {
    let counts = counts_in(c, u64::MAX, now)?;
    let by_owner = {
        let mut stmt = c.prepare_cached(
            "SELECT owner, COUNT(*) AS n FROM tasks GROUP BY owner ORDER BY n DESC, owner",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, to_u64(r.get(1)?)))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let recent = {
        let mut stmt = c.prepare_cached(
            "SELECT id, name, status, created_at FROM tasks ORDER BY created_at DESC, id DESC LIMIT ?1",
        )?;
        let mut rows = stmt.query([i64::try_from(recent).unwrap_or(i64::MAX)])?;
        let mut v = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let status: String = r.get(2)?;
            v.push(TaskSummary {
                id: TaskId::new(id.clone()).map_err(|e| corrupt(&id, e))?,
                name: r.get(1)?,
                status: status.parse().map_err(|e| corrupt(&id, e))?,
                created_at: Timestamp::from_millis(r.get(3)?),
            });
        }
        v
    };
    let mut runs = RunDurations::default();
    {
        let mut stmt =
            c.prepare_cached("SELECT key, value FROM oc_tasks_meta WHERE key LIKE 'run_%'")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let value = to_u64(r.get(1)?);
            if key == "run_ms_sum" {
                runs.sum_ms = value;
            } else if let Some(i) = (0..runs.counts.len()).find(|i| run_key(*i) == key) {
                runs.counts[i] = value;
            }
        }
    }
    Ok(TaskStats {
        total: counts.total(),
        ready: counts.ready.n,
        blocked: counts.blocked.n,
        by_status: counts.by_status,
        by_owner,
        recent,
        entered: counts.entered,
        runs,
    })
}
