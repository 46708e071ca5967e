//! Claims: the next ready tasks, leased to an owner, in one statement (`sql/claim.sql`).

use std::time::Duration;

use oc_tasks::{Change, EventKind, HistoryEntry, LabelFilter, Result, Task, TaskStatus};

use super::PgTaskStore;
use super::row::{corrupt, row_task};

/// How often a claim that found nothing, while ready tasks were held locked by others, runs
/// again before it answers "nothing" (about a second of pauses in all).
pub(super) const SKIPPED_ATTEMPTS: u32 = 100;

impl PgTaskStore {
    pub(super) fn claim(
        &self,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Vec<Task>> {
        let change = Change::Claim {
            owner: owner.into(),
            ttl,
        };
        change.validate()?;
        filter.validate()?;
        let owner = owner.to_owned();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        if n == 0 {
            return Ok(Vec::new());
        }
        // `SKIP LOCKED` passes over ready tasks another transaction holds locked, even one that
        // is about to leave them as they are (a completion whose check-and-set lost to a reap
        // holds the row until it commits). Finding nothing is only an answer once a fresh
        // snapshot shows nothing ready: otherwise the claim runs again (the linearizability
        // check of the conformance suite caught a spurious "nothing ready" without this).
        for attempt in 0..SKIPPED_ATTEMPTS {
            let now = self.clock_ms();
            let (owner, all, none) = (owner.clone(), filter.all.clone(), filter.none.clone());
            let rows = if n == 1 {
                self.call("claim_next", move |c| async move {
                    c.client
                        .query(&c.stmts.claim_next, &[&owner, &ttl_ms, &now, &all, &none])
                        .await
                })?
            } else {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                let sql = self.claim_batch.clone();
                self.call("claim_many", move |c| async move {
                    c.client
                        .query(&*sql, &[&owner, &ttl_ms, &now, &all, &none, &n])
                        .await
                })?
            };
            if !rows.is_empty() {
                let claimed = rows
                    .iter()
                    .map(|r| row_task(r, 0))
                    .collect::<Result<Vec<_>>>()?;
                // The history rows the statement wrote, reported.
                let traced = if HistoryEntry::traced() {
                    &claimed[..]
                } else {
                    &[]
                };
                for t in traced {
                    HistoryEntry {
                        task: t.id.clone(),
                        version: t.version,
                        at: t.updated_at,
                        kind: EventKind::Claimed,
                        from: Some(TaskStatus::Pending),
                        to: TaskStatus::Running,
                        actor: t.owner.clone(),
                        token: t.lease.map(|l| l.token),
                        error: None,
                    }
                    .trace();
                }
                return Ok(claimed);
            }
            let (all, none) = (filter.all.clone(), filter.none.clone());
            let row = self.call("claim_skipped", move |c| async move {
                c.client
                    .query_one(&c.stmts.skipped, &[&now, &all, &none])
                    .await
            })?;
            let skipped: bool = row.try_get(0).map_err(|e| corrupt("(skipped)", e))?;
            if !skipped {
                break;
            }
            std::thread::sleep(Duration::from_micros(200 << attempt.min(5)));
        }
        Ok(Vec::new())
    }
}
