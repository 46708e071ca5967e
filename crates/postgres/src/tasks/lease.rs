//! The lease holder's transitions, one call each without reading the task first (decision
//! 0047): a completion or a final failure (`sql/finish.sql`, the function `task_finish`), a
//! heartbeat (`sql/heartbeat.sql`) and a release (`sql/release_lease.sql`). Each writes only a
//! task in the state the change needs (running under the token given, at the version given);
//! otherwise it writes nothing, and the general path of `transition.rs` reads the task,
//! computes the change with [`oc_tasks::transition`] and reports why it is refused, or writes
//! what it computes (a failure that the task's retry policy reschedules).

use oc_tasks::{Change, EventKind, HistoryEntry, Result, Task, TaskId, TaskStatus};

use super::PgTaskStore;
use super::row::{i64_of, row_task};
use crate::keys::task_lock_key;

impl PgTaskStore {
    /// `change` to task `id` written by its one call, or `None` when the task is not as that
    /// call needs (or the change has none).
    pub(super) fn by_lease(
        &self,
        id: &TaskId,
        change: &Change,
        expect: Option<u64>,
    ) -> Result<Option<Task>> {
        let (sid, now, expect) = (id.to_string(), self.clock_ms(), expect.map(i64_of));
        let rows = match change {
            Change::Complete { token, result } => {
                let result = result
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| oc_tasks::Error::InvalidInput {
                        field: "result",
                        reason: e.to_string(),
                    })?;
                self.finish(
                    sid,
                    id,
                    token.map(i64_of),
                    expect,
                    "completed",
                    result,
                    None,
                    now,
                )?
            }
            Change::Fail { token, error } => self.finish(
                sid,
                id,
                token.map(i64_of),
                expect,
                "failed",
                None,
                Some(error.clone()),
                now,
            )?,
            Change::Heartbeat { token, ttl } => {
                let (token, ttl) = (i64_of(*token), ttl_ms(*ttl));
                self.call("heartbeat", move |c| async move {
                    c.client
                        .query(&c.stmts.heartbeat, &[&sid, &token, &ttl, &now, &expect])
                        .await
                })?
            }
            Change::Release { token } => {
                let token = i64_of(*token);
                self.call("release", move |c| async move {
                    c.client
                        .query(&c.stmts.release_lease, &[&sid, &token, &now, &expect])
                        .await
                })?
            }
            _ => return Ok(None),
        };
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let task = row_task(row, 0)?;
        if let Some(kind) = change.kind(&task).filter(|_| HistoryEntry::traced()) {
            // The history row the call wrote, reported (a final failure's kind is `Failed`).
            let kind = if kind == EventKind::RetryScheduled {
                EventKind::Failed
            } else {
                kind
            };
            HistoryEntry {
                task: task.id.clone(),
                version: task.version,
                at: task.updated_at,
                kind,
                from: Some(TaskStatus::Running),
                to: task.status,
                actor: task.owner.clone(),
                token: change.token_held(),
                error: match change {
                    Change::Fail { .. } => task.error.clone(),
                    _ => None,
                },
            }
            .trace();
        }
        Ok(Some(task))
    }

    /// One call to `task_finish`: the rows it returns (none or the task).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        sid: String,
        id: &TaskId,
        token: Option<i64>,
        expect: Option<i64>,
        status: &'static str,
        result: Option<String>,
        error: Option<String>,
        now: Option<i64>,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let lock = task_lock_key(&self.table_schema(), id);
        self.call(status, move |c| async move {
            c.client
                .query(
                    &c.stmts.finish,
                    &[&sid, &token, &expect, &status, &result, &error, &now, &lock],
                )
                .await
        })
    }
}

/// A lease's length in milliseconds, for the statements.
fn ttl_ms(ttl: std::time::Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// The token a lease holder's change presents, for its history row.
trait TokenHeld {
    fn token_held(&self) -> Option<u64>;
}

impl TokenHeld for Change {
    fn token_held(&self) -> Option<u64> {
        match self {
            Change::Heartbeat { token, .. } | Change::Release { token } => Some(*token),
            Change::Complete { token, .. } | Change::Fail { token, .. } => *token,
            _ => None,
        }
    }
}
