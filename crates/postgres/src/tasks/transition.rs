//! A transition written: the change computed by [`oc_tasks::transition`] from the row as
//! read, written by one conditional statement (`sql/transition.sql`) with the counters and
//! the history row; recomputed when another writer won the race.

use oc_tasks::backend::{finished_run, metadata_text, retry_columns};
use oc_tasks::{
    Change, Error, EventKind, HistoryEntry, ReapedTask, Result, RunDurations, Task, TaskId,
    TaskStatus, Timestamp, Unique, reap, transition,
};
use tokio_postgres::types::ToSql;

use super::PgTaskStore;
use super::row::{corrupt, i64_of, result_text, row_task, run_key};
use crate::errors::{Failure, classify, task_error};
use crate::keys::task_lock_key;

/// The partial unique index that refuses a second holder of a unique key.
pub(super) const UNIQUE_KEY: &str = "tasks_unique_key";

/// How often a transition is recomputed when another writer changed the task in between.
pub(super) const CAS_ATTEMPTS: usize = 32;

/// What a CAS write reports: the row moved on (`None`), or the token the write took.
pub(super) enum Cas {
    Lost,
    Written(Option<u64>),
}

/// The parameters of `sql/transition.sql`, by name: the task as it will be, the version and
/// status it must still have, and what the counters and the history row get.
pub(super) struct TransitionParams {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) status: String,
    pub(super) owner: Option<String>,
    pub(super) priority: i32,
    pub(super) metadata: String,
    pub(super) result: Option<String>,
    pub(super) error: Option<String>,
    pub(super) attempts: i64,
    pub(super) max_attempts: i64,
    pub(super) version: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) started_at: Option<i64>,
    pub(super) finished_at: Option<i64>,
    pub(super) lease_token: Option<i64>,
    pub(super) lease_expires_at: Option<i64>,
    /// The version the row must still be at.
    pub(super) prev_version: i64,
    /// The status the row must still be in.
    pub(super) prev_status: String,
    /// Whether the lease takes a new token from the counter (instead of `lease_token`).
    pub(super) take_token: bool,
    /// The counter of the status entered (`entered_<status>`), or empty.
    pub(super) entered: String,
    /// The bucket of a finished run's duration (`run_le_<ms>`), or empty.
    pub(super) run_bucket: String,
    /// A finished run's duration in milliseconds (0 when none finished).
    pub(super) run_ms: i64,
    /// The history row's kind, or empty for no history row.
    pub(super) history_kind: String,
    pub(super) history_from: Option<String>,
    pub(super) history_actor: Option<String>,
    pub(super) history_token: Option<i64>,
    pub(super) history_error: Option<String>,
    pub(super) labels: Vec<String>,
    pub(super) run_at: Option<i64>,
    pub(super) retry_base_ms: Option<i64>,
    pub(super) retry_cap_ms: Option<i64>,
    pub(super) retry_jitter: Option<i32>,
}

impl TransitionParams {
    /// The parameters for writing `next` over `prev`, with the history entry `h`.
    pub(super) fn new(
        prev: &Task,
        next: &Task,
        take_token: bool,
        h: Option<&HistoryEntry>,
    ) -> Result<Self> {
        let ts = |t: Option<oc_tasks::Timestamp>| t.map(|t| t.as_millis());
        let run = finished_run(prev, next);
        let (retry_base_ms, retry_cap_ms, jitter) = retry_columns(&next.retry);
        Ok(TransitionParams {
            id: next.id.to_string(),
            name: next.name.clone(),
            description: next.description.clone(),
            status: next.status.as_str().to_owned(),
            owner: next.owner.clone(),
            priority: next.priority,
            metadata: metadata_text(next),
            result: result_text(next)?,
            error: next.error.clone(),
            attempts: i64::from(next.attempts),
            max_attempts: i64::from(next.max_attempts),
            version: i64_of(next.version),
            created_at: next.created_at.as_millis(),
            updated_at: next.updated_at.as_millis(),
            started_at: ts(next.started_at),
            finished_at: ts(next.finished_at),
            lease_token: next.lease.map(|l| i64_of(l.token)),
            lease_expires_at: ts(next.lease.map(|l| l.expires_at)),
            prev_version: i64_of(prev.version),
            prev_status: prev.status.as_str().to_owned(),
            take_token,
            entered: if next.status != prev.status {
                format!("entered_{}", next.status)
            } else {
                String::new()
            },
            run_bucket: run.map_or_else(String::new, |d| {
                run_key(RunDurations::bucket(
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                ))
            }),
            run_ms: run.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            history_kind: h.map_or(String::new(), |h| h.kind.as_str().to_owned()),
            history_from: h.and_then(|h| h.from.map(|f| f.as_str().to_owned())),
            history_actor: h.and_then(|h| h.actor.clone()),
            history_token: h.and_then(|h| h.token.map(i64_of)),
            history_error: h.and_then(|h| h.error.clone()),
            labels: next.labels.clone(),
            run_at: ts(next.run_at),
            retry_base_ms,
            retry_cap_ms,
            retry_jitter: jitter.and_then(|j| i32::try_from(j).ok()),
        })
    }

    /// The parameters in the order of `sql/transition.sql` (`$1` … `$34`).
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 34] {
        [
            &self.id,
            &self.name,
            &self.description,
            &self.status,
            &self.owner,
            &self.priority,
            &self.metadata,
            &self.result,
            &self.error,
            &self.attempts,
            &self.max_attempts,
            &self.version,
            &self.created_at,
            &self.updated_at,
            &self.started_at,
            &self.finished_at,
            &self.lease_token,
            &self.lease_expires_at,
            &self.prev_version,
            &self.prev_status,
            &self.take_token,
            &self.entered,
            &self.run_bucket,
            &self.run_ms,
            &self.history_kind,
            &self.history_from,
            &self.history_actor,
            &self.history_token,
            &self.history_error,
            &self.labels,
            &self.run_at,
            &self.retry_base_ms,
            &self.retry_cap_ms,
            &self.retry_jitter,
        ]
    }
}

impl PgTaskStore {
    pub(super) fn apply_change(
        &self,
        id: &TaskId,
        change: Change,
        expect: Option<u64>,
    ) -> Result<Task> {
        change.validate()?;
        // The lease holder's changes are one call each, without reading the task first.
        if let Some(done) = self.by_lease(id, &change, expect)? {
            return Ok(done);
        }
        for _ in 0..CAS_ATTEMPTS {
            let (prev, now) = self.read(id)?;
            let prev = prev.ok_or_else(|| Error::NotFound { id: id.clone() })?;
            let mut took = false;
            let (mut next, kind) = transition(&prev, &change, expect, now, || {
                took = true;
                0
            })?;
            match self.cas(&prev, &next, took, kind)? {
                Cas::Written(token) => {
                    if let (Some(lease), Some(token)) = (next.lease.as_mut(), token) {
                        lease.token = token;
                    }
                    return Ok(next);
                }
                Cas::Lost if expect.is_some() => {
                    let actual = self.read(id)?.0.map_or(0, |t| t.version);
                    return Err(Error::VersionMismatch {
                        id: id.clone(),
                        expected: prev.version,
                        actual,
                    });
                }
                // Someone else wrote the task between our read and our write: recompute.
                Cas::Lost => continue,
            }
        }
        Err(Error::backend(
            "postgres",
            true,
            format!("task {id} kept changing under {CAS_ATTEMPTS} attempts to write it"),
        ))
    }

    /// Writes `next` over `prev` if the row is still at `prev`'s version and status, with the
    /// counters and the history entry of `kind` (the one [`transition`] returned, or the
    /// reaper's), if any; `take_token` replaces `next`'s lease token by a new one from the
    /// counter.
    pub(super) fn cas(
        &self,
        prev: &Task,
        next: &Task,
        take_token: bool,
        kind: Option<EventKind>,
    ) -> Result<Cas> {
        let h = kind.map(|k| HistoryEntry::new(k, Some(prev), next));
        let p = TransitionParams::new(prev, next, take_token, h.as_ref())?;
        // A completion releases its dependents in the same transaction, by a statement of its
        // own: one that starts after the task's row is locked, so it sees every edge to it
        // (an edge is only added under the task's lock, taken shared; this takes it exclusively).
        let completes =
            next.status == TaskStatus::Completed && prev.status != TaskStatus::Completed;
        let out = if completes {
            let id = next.id.to_string();
            let key = task_lock_key(&self.table_schema(), &next.id);
            self.pool
                .transaction(move |t, st| {
                    Box::pin(async move {
                        t.execute(&st.lock_task_key, &[&key]).await?;
                        let rows = t.query(&st.cas, &p.params()).await?;
                        if !rows.is_empty() {
                            t.execute(&st.release, &[&id]).await?;
                        }
                        Ok(Ok::<_, ()>(rows))
                    })
                })
                .map(|r| r.unwrap_or_default())
        } else {
            self.pool
                .call(move |c| async move { c.client.query(&c.stmts.cas, &p.params()).await })
        };
        let rows = match out {
            Ok(rows) => rows,
            Err(Failure::Pg(e)) if classify(&e).violates(UNIQUE_KEY) => {
                let key = Unique::held_by(next).unwrap_or_default().to_owned();
                let holder = self.holder(&key)?.map_or_else(|| next.id.clone(), |h| h.id);
                return Err(Error::UniqueKeyHeld { key, holder });
            }
            Err(f) => return Err(task_error(f)),
        };
        Ok(match rows.first() {
            None => Cas::Lost,
            Some(r) => {
                let token: Option<i64> = r.try_get(0).map_err(|e| corrupt("(token)", e))?;
                let token = token.and_then(|t| u64::try_from(t).ok());
                if let Some(mut h) = h {
                    // A new lease's token comes from the statement, like its history row's.
                    if take_token {
                        h.token = token;
                    }
                    h.trace();
                }
                Cas::Written(token)
            }
        })
    }

    pub(super) fn reap_leases(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
        let at = now.as_millis();
        let rows = self.call("reap_expired", move |c| async move {
            c.client.query(&c.stmts.expired, &[&at]).await
        })?;
        let mut reaped = Vec::with_capacity(rows.len());
        for r in &rows {
            let prev = row_task(r, 0)?;
            // Each reap is a check-and-set on the row as read: a heartbeat or a completion
            // that committed in between wins, and this task is left alone.
            if let Some(x) = reap(&prev, now)
                && let Cas::Written(_) =
                    self.cas(&prev, &x.task, false, Some(EventKind::LeaseExpired))?
            {
                reaped.push(x);
            }
        }
        Ok(reaped)
    }
}
