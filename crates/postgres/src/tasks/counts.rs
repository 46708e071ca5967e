//! The counts by status, kept as rows of changes (by the statement triggers of inserts and
//! deletes, and since tasks migration 9 by the statements that move a task), and the tallies
//! (tasks that entered each status, finished runs by duration), appended as rows of changes by
//! the statements that change them: read as sums, folded now and then in bounded batches; and the
//! statistics read with them.

use oc_tasks::{
    Capped, Error, Result, RunDurations, TaskCounts, TaskId, TaskStats, TaskStatus, TaskSummary,
    Timestamp,
};
use tokio_postgres::Row;

use super::PgTaskStore;
use super::row::{corrupt, json_column, run_key, to_u64};
use crate::errors::task_error;
use crate::keys::task_lock_key_str;

/// How many rows of changes `task_counts` and `task_tallies` may gather before a reader folds
/// them.
const FOLD_AT: i64 = 1_000;

/// How many rows of changes of each table one fold takes at most.
const FOLD_BATCH: i64 = 10_000;

/// How many calls a store makes between folds of its own (so that the rows of changes stay
/// few when nobody reads the counts).
pub(super) const CALLS_PER_FOLD: u64 = 4_096;

/// The first three columns of `counts_sql`.
struct CountsRow {
    /// The counts by status.
    by_status: [(TaskStatus, u64); 5],
    /// The pending tasks waiting on a dependency, counted up to the cap.
    waiting: Capped,
    /// The pending tasks scheduled for later, counted up to the cap.
    scheduled: Capped,
}

/// Reads the first three columns of `counts_sql`, counted up to `cap`.
fn read_counts(row: &Row, cap: u64) -> Result<CountsRow> {
    let mut by_status = TaskStatus::ALL.map(|s| (s, 0u64));
    for p in json_column(row, 0)?.as_array().into_iter().flatten() {
        let s: TaskStatus = p[0]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| corrupt("(status count)", e))?;
        if let Some(slot) = by_status.iter_mut().find(|(x, _)| *x == s) {
            slot.1 = p[1].as_i64().map_or(0, to_u64);
        }
    }
    let capped = |i: usize| -> Result<Capped> {
        let n: i64 = row.try_get(i).map_err(|e| corrupt("(counts)", e))?;
        Ok(Capped::up_to(to_u64(n), cap))
    };
    Ok(CountsRow {
        by_status,
        waiting: capped(1)?,
        scheduled: capped(2)?,
    })
}

impl PgTaskStore {
    pub(super) fn read_stats(&self, recent: usize) -> Result<TaskStats> {
        let n = i64::try_from(recent).unwrap_or(i64::MAX);
        let now = self.clock_ms();
        let row = self.call("stats", move |c| async move {
            c.client.query_one(&c.stmts.stats, &[&n, &now]).await
        })?;
        let CountsRow {
            by_status,
            waiting,
            scheduled,
        } = read_counts(&row, u64::MAX)?;
        let json = |i: usize| json_column(&row, i);
        let (owners, recent, meta) = (json(3)?, json(4)?, json(5)?);
        let pairs = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        let (ready, blocked) =
            TaskCounts::split_pending(by_status[0].1, waiting, scheduled, || {
                Err(corrupt("(stats)", "a count without a cap stopped"))
            })?;
        let by_owner = pairs(&owners)
            .iter()
            .map(|p| (p[0].as_str().map(str::to_owned), p[1].as_u64().unwrap_or(0)))
            .collect();
        let recent = pairs(&recent)
            .iter()
            .map(|p| {
                let id = p[0].as_str().unwrap_or_default().to_owned();
                Ok(TaskSummary {
                    id: TaskId::new(id.clone()).map_err(|e| corrupt(&id, e))?,
                    name: p[1].as_str().unwrap_or_default().to_owned(),
                    status: p[2]
                        .as_str()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| corrupt(&id, e))?,
                    created_at: Timestamp::from_millis(p[3].as_i64().unwrap_or(0)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = |k: &str| {
            meta.get(k)
                .and_then(serde_json::Value::as_i64)
                .map_or(0, to_u64)
        };
        let mut runs = RunDurations::default();
        for (i, slot) in runs.counts.iter_mut().enumerate() {
            *slot = meta(&run_key(i));
        }
        runs.sum_ms = meta("run_ms_sum");
        Ok(TaskStats {
            total: by_status.iter().map(|(_, n)| n).sum(),
            by_status: by_status.to_vec(),
            by_owner,
            recent,
            entered: TaskStatus::ALL
                .iter()
                .map(|s| (*s, meta(&format!("entered_{s}"))))
                .collect(),
            runs,
            ready: ready.n,
            blocked: blocked.n,
        })
    }

    pub(super) fn read_counts(&self, cap: u64) -> Result<TaskCounts> {
        let lim = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
        let now = self.clock_ms();
        let row = self.call("counts", move |c| async move {
            c.client.query_one(&c.stmts.counts, &[&lim, &now]).await
        })?;
        let CountsRow {
            by_status,
            waiting,
            scheduled,
        } = read_counts(&row, cap)?;
        let entered = json_column(&row, 3)?;
        let changes: i64 = row.try_get(4).map_err(|e| corrupt("(counts)", e))?;
        if changes > FOLD_AT {
            self.fold()?;
        }
        let (ready, blocked) =
            TaskCounts::split_pending(by_status[0].1, waiting, scheduled, || {
                let row = self.call("counts", move |c| async move {
                    c.client
                        .query_one(&c.stmts.ready_up_to, &[&lim, &now])
                        .await
                })?;
                let n: i64 = row.try_get(0).map_err(|e| corrupt("(counts)", e))?;
                Ok::<_, Error>(Capped::up_to(to_u64(n), cap))
            })?;
        Ok(TaskCounts {
            by_status: by_status.to_vec(),
            ready,
            blocked,
            entered: TaskStatus::ALL
                .iter()
                .map(|s| {
                    let n = entered.get(format!("entered_{s}")).and_then(|v| v.as_i64());
                    (*s, n.map_or(0, to_u64))
                })
                .collect(),
        })
    }

    /// Folds up to [`FOLD_BATCH`] rows of changes to the counts by status into one row per
    /// status, and as many to the tallies into one per key (unless another call is folding
    /// them at this moment).
    pub(super) fn fold(&self) -> Result<()> {
        let key = task_lock_key_str(&self.table_schema(), "");
        self.pool
            .call(
                move |c| async move { c.client.execute(&c.stmts.fold, &[&key, &FOLD_BATCH]).await },
            )
            .map(drop)
            .map_err(task_error)
    }
}
