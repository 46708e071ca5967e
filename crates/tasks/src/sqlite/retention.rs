//! Retention of finished tasks on SQLite (docs/decisions/0051): the tasks created at or before
//! the cutoff walked newest first along `tasks_created`, `batch` rows per `BEGIN IMMEDIATE`
//! transaction, so that other writers get in between batches; in each, the retirable tasks
//! whose dependents and children go too are deleted (or archived) with their history and
//! edges, and leave the counts by status.

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::SqliteTaskStore;
use super::graph::dependents;
use super::listing::history_in;
use super::rows::{COLS, corrupt, row_to_task};
use super::write::uncount;
use crate::backend::{finished_by, prunable, retirable};
use crate::{ArchivedTask, PruneReport, Result, RetentionPolicy, Retire, TaskId, Timestamp};

/// Where a walk stands: the last task seen, by `(created_at, id)`.
type Cursor = (i64, String);

/// What one batch did: tasks looked at, retired, kept, and where the walk stands.
struct Batch {
    scanned: u64,
    pruned: u64,
    kept: u64,
    next: Option<Cursor>,
}

impl SqliteTaskStore {
    pub(super) fn prune(&self, policy: &RetentionPolicy) -> Result<PruneReport> {
        policy.validate()?;
        let now = self.opts.clock.now();
        let cutoff = policy.cutoff(now);
        let mut report = PruneReport::new(cutoff, policy.retire);
        // Just above the cutoff: `(created_at, id) < (cutoff + 1, '')` is "created at or before
        // the cutoff", every id being longer than ''.
        let mut cursor: Cursor = (cutoff.as_millis().saturating_add(1), String::new());
        loop {
            let b = self.write(|tx| batch(tx, policy, cutoff, now, &cursor))?;
            report.scanned += b.scanned;
            report.pruned += b.pruned;
            report.kept += b.kept;
            report.batches += u64::from(b.pruned > 0);
            match b.next {
                Some(next) => cursor = next,
                None => return Ok(report),
            }
        }
    }
}

/// One transaction: up to `policy.batch` tasks below `cursor`, newest first.
fn batch(
    tx: &Transaction<'_>,
    policy: &RetentionPolicy,
    cutoff: Timestamp,
    now: Timestamp,
    cursor: &Cursor,
) -> Result<Batch> {
    let limit = i64::try_from(policy.batch).unwrap_or(i64::MAX);
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM tasks INDEXED BY tasks_created WHERE (created_at, id) < (?1, ?2)
         ORDER BY created_at DESC, id DESC LIMIT ?3"
    ))?;
    let mut rows = stmt.query((cursor.0, cursor.1.as_str(), limit))?;
    let mut seen = Vec::new();
    while let Some(r) = rows.next()? {
        seen.push(row_to_task(r)?);
    }
    drop(rows);
    let next = seen
        .last()
        .filter(|_| seen.len() == policy.batch)
        .map(|t| (t.created_at.as_millis(), t.id.to_string()));
    let mut candidates = Vec::new();
    for t in seen.iter().filter(|t| retirable(t, cutoff)) {
        candidates.push((t.id.clone(), dependents(tx, &t.id)?));
    }
    let gone = prunable(&candidates);
    for t in seen.iter().filter(|t| gone.contains(&t.id)) {
        let id = t.id.as_str();
        if policy.retire == Retire::Archive {
            let archived = ArchivedTask {
                task: t.clone(),
                history: history_in(tx, &t.id)?,
                archived_at: now,
            };
            let text = |v: serde_json::Result<String>| v.map_err(|e| corrupt(id, e));
            tx.prepare_cached(
                "INSERT OR REPLACE INTO task_archive (id, finished_at, archived_at, task, history)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute((
                id,
                t.finished_at.map(|f| f.as_millis()),
                now.as_millis(),
                text(serde_json::to_string(&archived.task))?,
                text(serde_json::to_string(&archived.history))?,
            ))?;
        }
        // Whatever depended on it goes too (`prunable`), so no task is left waiting on it.
        tx.prepare_cached("DELETE FROM task_deps WHERE task_id = ?1 OR depends_on = ?1")?
            .execute([id])?;
        tx.prepare_cached("DELETE FROM task_history WHERE task_id = ?1")?
            .execute([id])?;
        uncount(tx, id)?;
    }
    Ok(Batch {
        scanned: seen.len() as u64,
        pruned: gone.len() as u64,
        kept: seen.iter().filter(|t| finished_by(t, cutoff)).count() as u64 - gone.len() as u64,
        next,
    })
}

/// The archived task `id`, if any.
pub(super) fn archived_in(c: &Connection, id: &TaskId) -> Result<Option<ArchivedTask>> {
    let row: Option<(i64, String, String)> = c
        .prepare_cached("SELECT archived_at, task, history FROM task_archive WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((at, task, history)) = row else {
        return Ok(None);
    };
    let bad = |e: serde_json::Error| corrupt(id.as_str(), e);
    Ok(Some(ArchivedTask {
        task: serde_json::from_str(&task).map_err(bad)?,
        history: serde_json::from_str(&history).map_err(bad)?,
        archived_at: Timestamp::from_millis(at),
    }))
}
