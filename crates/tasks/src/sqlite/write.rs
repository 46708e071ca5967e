//! The check-and-set every change ends in, the insert of a new task, and what every write
//! keeps beside the row: the counts by status, the run durations, the history.

use std::time::Duration;

use oc_sqlite::Fence;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Transaction};

use super::rows::{COLS, STORED_COLS, load, row_to_task, task_values, to_u64};
use crate::backend::finished_run;
use crate::model::transition;
use crate::query::{RUN_BUCKETS_MS, RunDurations};
use crate::{
    Change, Error, EventKind, HistoryEntry, Result, Task, TaskId, TaskStatus, Timestamp, Unique,
};

/// Counts `n` tasks moving from status `from` (`None`: created) into `to`: the entries into
/// `to` and the tasks in each status, beside each other (a delete counts itself, in
/// [`uncount`]).
pub(super) fn moved(
    tx: &Transaction<'_>,
    from: Option<TaskStatus>,
    to: TaskStatus,
    n: usize,
) -> Result<()> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let mut add =
        tx.prepare_cached("UPDATE oc_tasks_meta SET value = value + ?2 WHERE key = ?1")?;
    add.execute((format!("entered_{to}"), n))?;
    add.execute((format!("count_{to}"), n))?;
    if let Some(from) = from {
        add.execute((format!("count_{from}"), -n))?;
    }
    Ok(())
}

/// Deletes the task `id` from the tasks and from the counts by status.
pub(super) fn uncount(tx: &Transaction<'_>, id: &str) -> Result<()> {
    let status: Option<String> = tx
        .prepare_cached("DELETE FROM tasks WHERE id = ?1 RETURNING status")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(status) = status {
        tx.prepare_cached("UPDATE oc_tasks_meta SET value = value + ?2 WHERE key = ?1")?
            .execute((format!("count_{status}"), -1))?;
    }
    Ok(())
}

/// The meta key of run-duration bucket `i` (`RUN_BUCKETS_MS`, then `inf`).
pub(super) fn run_key(i: usize) -> String {
    RUN_BUCKETS_MS
        .get(i)
        .map_or_else(|| "run_le_inf".to_owned(), |b| format!("run_le_{b}"))
}

/// Counts a finished run of `d` into its bucket and the sum.
pub(super) fn observe_run(tx: &Transaction<'_>, d: Duration) -> Result<()> {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "UPDATE oc_tasks_meta SET value = value + CASE key WHEN 'run_ms_sum' THEN ?2 ELSE 1 END
         WHERE key IN (?1, 'run_ms_sum')",
    )?
    .execute((run_key(RunDurations::bucket(to_u64(ms))), ms))?;
    Ok(())
}

/// Records the history entry of a transition of `kind` from `prev` (`None`: created) to `next`.
pub(super) fn record_history(
    tx: &Transaction<'_>,
    kind: EventKind,
    prev: Option<&Task>,
    next: &Task,
) -> Result<()> {
    let h = HistoryEntry::new(kind, prev, next);
    tx.prepare_cached(
        "INSERT INTO task_history (task_id, version, at, kind, from_status, to_status, actor,
            token, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute((
        h.task.as_str(),
        i64::try_from(h.version).unwrap_or(i64::MAX),
        h.at.as_millis(),
        h.kind.as_str(),
        h.from.map(|s| s.as_str()),
        h.to.as_str(),
        h.actor.as_deref(),
        h.token.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        h.error.as_deref(),
    ))?;
    h.trace();
    Ok(())
}

/// The task other than `except` that holds `key` now.
pub(super) fn key_holder(
    c: &Connection,
    key: &str,
    except: Option<&TaskId>,
) -> Result<Option<Task>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLS} FROM tasks WHERE unique_key = ?1 AND id IS NOT ?2
           AND (unique_scope = 'always' OR status IN ('pending', 'running'))"
    ))?;
    let mut rows = stmt.query((key, except.map(|e| e.as_str())))?;
    rows.next()?.map(row_to_task).transpose()
}

/// Whether a task with this id exists.
pub(super) fn exists(c: &Connection, id: &TaskId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
        .exists([id.as_str()])?)
}

/// Bumps the version of `id` as a write at `now` that is not a transition.
pub(super) fn touch(tx: &Transaction<'_>, id: &str, now: Timestamp) -> Result<()> {
    tx.prepare_cached("UPDATE tasks SET version = version + 1, updated_at = ?2 WHERE id = ?1")?
        .execute((id, now.as_millis()))?;
    Ok(())
}

/// Writes `next` over the row only if it is still at `prev`'s version and status: the
/// check-and-set every change ends in; records the history entry of `kind` (the one
/// [`transition`] returned, or the reaper's), if any.
pub(super) fn store_cas(
    tx: &Transaction<'_>,
    prev: &Task,
    next: &Task,
    kind: Option<EventKind>,
) -> Result<()> {
    if let Some(key) = Unique::held_by(next)
        && Unique::held_by(prev).is_none()
        && let Some(h) = key_holder(tx, key, Some(&next.id))?
    {
        return Err(Error::UniqueKeyHeld {
            key: key.to_owned(),
            holder: h.id,
        });
    }
    let mut stmt = tx.prepare_cached(
        "UPDATE tasks SET id = ?1, name = ?2, description = ?3, status = ?4, owner = ?5,
            priority = ?6, metadata = ?7, result = ?8, error = ?9, attempts = ?10,
            max_attempts = ?11, version = ?12, created_at = ?13, updated_at = ?14,
            started_at = ?15, finished_at = ?16, lease_token = ?17, lease_expires_at = ?18,
            parent = ?19, labels = ?20, run_at = ?21, retry_base_ms = ?22, retry_cap_ms = ?23,
            retry_jitter = ?24, unique_key = ?25, unique_scope = ?26
         WHERE id = ?1 AND version = ?27 AND status = ?28",
    )?;
    let mut params = task_values(next)?;
    params.push(SqlValue::Integer(
        i64::try_from(prev.version).unwrap_or(i64::MAX),
    ));
    params.push(SqlValue::Text(prev.status.as_str().to_owned()));
    let n = stmt.execute(rusqlite::params_from_iter(params))?;
    if n == 1 {
        if next.status != prev.status {
            moved(tx, Some(prev.status), next.status, 1)?;
        }
        if let Some(d) = finished_run(prev, next) {
            observe_run(tx, d)?;
        }
        if next.status == TaskStatus::Completed && prev.status != TaskStatus::Completed {
            // Its dependents wait for one dependency fewer, in this transaction.
            tx.prepare_cached(
                "UPDATE tasks SET waiting = waiting - 1
                 WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = ?1)",
            )?
            .execute([next.id.as_str()])?;
        }
        match kind {
            Some(kind) => record_history(tx, kind, Some(prev), next),
            None => Ok(()),
        }
    } else {
        Err(Error::VersionMismatch {
            id: prev.id.clone(),
            expected: prev.version,
            actual: load(tx, &prev.id)?.map_or(0, |t| t.version),
        })
    }
}

pub(super) fn apply_in(
    tx: &Transaction<'_>,
    fence: &Fence,
    id: &TaskId,
    change: &Change,
    expect: Option<u64>,
    now: Timestamp,
) -> Result<Task> {
    let prev = load(tx, id)?.ok_or_else(|| Error::NotFound { id: id.clone() })?;
    let mut tokens = fence.issue(tx)?;
    let (next, kind) = transition(&prev, change, expect, now, || tokens.take())?;
    store_cas(tx, &prev, &next, kind)?;
    tokens.save(tx)?;
    Ok(next)
}

pub(super) fn insert(tx: &Transaction<'_>, t: &Task) -> Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO tasks ({STORED_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
         ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
    ))?;
    match stmt.execute(rusqlite::params_from_iter(task_values(t)?)) {
        Ok(_) => record_history(tx, EventKind::Created, None, t),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(Error::AlreadyExists { id: t.id.clone() })
        }
        Err(e) => Err(e.into()),
    }
}
