//! Retention of finished tasks on PostgreSQL (docs/decisions/0051): the tasks created at or
//! before the cutoff walked newest first along `tasks_created`, `batch` rows per transaction
//! (so no transaction holds many locks or writes much WAL at once), each transaction in four
//! statements under `sql/retention/`: read the batch, take the task locks of its retirable
//! tasks that nobody holds (never waiting), lock their rows (skipping those another transaction
//! holds) and read them again, then archive and delete those whose dependents and children go
//! too ([`oc_tasks::backend::prunable`]). The counts by status lose them through the delete's
//! rows of changes, as any delete; the counters of entries and run durations keep them.

use oc_tasks::backend::{finished_by, prunable, retirable};
use oc_tasks::{
    ArchivedTask, PruneReport, Result, RetentionPolicy, Retire, Task, TaskId, Timestamp,
};
use tokio_postgres::Row;

use super::PgTaskStore;
use super::row::{corrupt, history_of, row_task};
use super::sql::render;
use crate::keys::task_lock_key;

/// The statements of a run, rendered for one schema.
struct RetentionSql {
    scan: String,
    try_lock: String,
    lock_rows: String,
    retire: String,
}

impl RetentionSql {
    fn new(s: &str) -> Self {
        let r = |t: &str| render(t, s, &[]);
        RetentionSql {
            scan: r(include_str!("sql/retention/scan.sql")),
            try_lock: r(include_str!("sql/retention/try_lock.sql")),
            lock_rows: r(include_str!("sql/retention/lock_rows.sql")),
            retire: r(include_str!("sql/retention/retire.sql")),
        }
    }
}

/// Where a walk stands: the last task seen, by `(created_at, id)`.
type Cursor = (i64, String);

/// What one batch did.
struct Batch {
    scanned: u64,
    pruned: u64,
    old: u64,
    next: Option<Cursor>,
}

/// The ids of `rows`' tasks (read from column 0 on) that are retirable, each with what is below
/// it (column `below`).
fn candidates(rows: &[Row], below: usize, cutoff: Timestamp) -> Result<Vec<(Task, Vec<TaskId>)>> {
    let mut out = Vec::new();
    for r in rows {
        let t = row_task(r, 0)?;
        if !retirable(&t, cutoff) {
            continue;
        }
        let ids: Option<Vec<String>> = r.try_get(below).map_err(|e| corrupt(t.id.as_str(), e))?;
        let ids = ids
            .unwrap_or_default()
            .into_iter()
            .map(|s| TaskId::new(s.clone()).map_err(|e| corrupt(&s, e)))
            .collect::<Result<Vec<_>>>()?;
        out.push((t, ids));
    }
    Ok(out)
}

impl PgTaskStore {
    pub(super) fn prune(&self, policy: &RetentionPolicy) -> Result<PruneReport> {
        policy.validate()?;
        let now = match self.clock_ms() {
            Some(ms) => Timestamp::from_millis(ms),
            None => self.db_now()?,
        };
        let cutoff = policy.cutoff(now);
        let mut report = PruneReport::new(cutoff, policy.retire);
        let sql = std::sync::Arc::new(RetentionSql::new(&self.table_schema()));
        let schema = self.table_schema();
        let mut cursor: Cursor = (cutoff.as_millis().saturating_add(1), String::new());
        loop {
            let (sql, schema, policy, c) = (sql.clone(), schema.clone(), policy.clone(), cursor);
            let b = self.graph_tx("prune", move |t| {
                Box::pin(async move {
                    let limit = i64::try_from(policy.batch).unwrap_or(i64::MAX);
                    let rows = t.query(&sql.scan, &[&c.0, &c.1, &limit]).await?;
                    let next = rows
                        .last()
                        .filter(|_| rows.len() == policy.batch)
                        .map(|r| -> Result<Cursor> {
                            let t = row_task(r, 0)?;
                            Ok((t.created_at.as_millis(), t.id.to_string()))
                        })
                        .transpose()?;
                    let mut old = 0;
                    for r in &rows {
                        old += u64::from(finished_by(&row_task(r, 0)?, cutoff));
                    }
                    // After the task's columns and its dependencies.
                    let below = super::sql::COLS.split(", ").count() + 1;
                    let first = candidates(&rows, below, cutoff)?;
                    let mut b = Batch {
                        scanned: rows.len() as u64,
                        pruned: 0,
                        old,
                        next,
                    };
                    if first.is_empty() {
                        return Ok(b);
                    }
                    let ids: Vec<String> = first.iter().map(|(t, _)| t.id.to_string()).collect();
                    let keys: Vec<i64> = first
                        .iter()
                        .map(|(t, _)| task_lock_key(&schema, &t.id))
                        .collect();
                    let locked: Vec<String> = t
                        .query(&sql.try_lock, &[&ids, &keys])
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    let archive = policy.retire == Retire::Archive;
                    let rows = t.query(&sql.lock_rows, &[&locked, &archive]).await?;
                    let fresh = candidates(&rows, below, cutoff)?;
                    let pairs: Vec<(TaskId, Vec<TaskId>)> = fresh
                        .iter()
                        .map(|(t, b)| (t.id.clone(), b.clone()))
                        .collect();
                    let gone = prunable(&pairs);
                    if gone.is_empty() {
                        return Ok(b);
                    }
                    let (mut ids, mut fins, mut docs, mut hists) =
                        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                    for r in &rows {
                        let task = row_task(r, 0)?;
                        if !gone.contains(&task.id) {
                            continue;
                        }
                        if archive {
                            let text: Option<String> = r
                                .try_get(below + 1)
                                .map_err(|e| corrupt(task.id.as_str(), e))?;
                            let h = history_of(&task.id, text.as_deref().unwrap_or("[]"))?;
                            let json = |v: serde_json::Result<String>| {
                                v.map_err(|e| corrupt(task.id.as_str(), e))
                            };
                            docs.push(json(serde_json::to_string(&task))?);
                            hists.push(json(serde_json::to_string(&h))?);
                        } else {
                            docs.push(String::new());
                            hists.push(String::new());
                        }
                        fins.push(task.finished_at.map(|f| f.as_millis()));
                        ids.push(task.id.to_string());
                    }
                    let at = archive.then_some(now.as_millis());
                    let n = t
                        .execute(&sql.retire, &[&ids, &fins, &docs, &hists, &at])
                        .await?;
                    b.pruned = n;
                    Ok(b)
                })
            })?;
            report.scanned += b.scanned;
            report.pruned += b.pruned;
            report.kept += b.old.saturating_sub(b.pruned);
            report.batches += u64::from(b.pruned > 0);
            match b.next {
                Some(next) => cursor = next,
                None => return Ok(report),
            }
        }
    }

    pub(super) fn read_archived(&self, id: &TaskId) -> Result<Option<ArchivedTask>> {
        let sql = render(
            include_str!("sql/retention/archived.sql"),
            &self.table_schema(),
            &[],
        );
        let sid = id.to_string();
        let row = self.call("archived", move |c| async move {
            c.client.query_opt(&sql, &[&sid]).await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let bad = |e: String| corrupt(id.as_str(), e);
        let (at, task, history): (i64, String, String) = (
            row.try_get(0).map_err(|e| bad(e.to_string()))?,
            row.try_get(1).map_err(|e| bad(e.to_string()))?,
            row.try_get(2).map_err(|e| bad(e.to_string()))?,
        );
        Ok(Some(ArchivedTask {
            task: serde_json::from_str(&task).map_err(|e| bad(e.to_string()))?,
            history: serde_json::from_str(&history).map_err(|e| bad(e.to_string()))?,
            archived_at: Timestamp::from_millis(at),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let r = RetentionSql::new("\"x\"");
        let archived = render(include_str!("sql/retention/archived.sql"), "\"x\"", &[]);
        for sql in [r.scan, r.try_lock, r.lock_rows, r.retire, archived] {
            assert!(!sql.contains('{') && !sql.contains('}'), "{sql}");
        }
    }
}
