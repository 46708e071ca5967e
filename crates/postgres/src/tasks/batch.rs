//! Batches of finishes and heartbeats (`complete_many`, `fail_many`, `heartbeat_many`):
//! the tasks read in one statement, each change computed by [`oc_tasks::transition`] as a
//! single call computes it, and every change written by ONE conditional statement
//! ([`WRITE`]) with the counters, the history rows and the release of completed tasks'
//! dependents (`docs/decisions/0049-batches.md`).
//!
//! What a batch writes beside the rows (the counters of statuses entered and of run
//! durations, and the history) is in one place, [`RECORD`]: it follows `sql/transition.sql`
//! and must follow it when that changes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::task::Poll;

use oc_tasks::{Change, Error, HistoryEntry, Result, Task, TaskId, TaskStatus, transition};
use tokio_postgres::types::{ToSql, Type};

use super::PgTaskStore;
use super::row::{corrupt, row_task};
use super::sql::render;
use super::transition::{CAS_ATTEMPTS, TransitionParams};
use crate::errors::task_error;
use crate::keys::task_lock_key;

/// The tasks `$1` and the time (`$2`, or the database's), in one statement: one row per task
/// found, or one row with the task's columns NULL when none is.
const READ: &str = "SELECT n.ms, {task_columns}
FROM (SELECT coalesce($2::bigint, {db_now}) AS ms) n
LEFT JOIN {s}.tasks t ON t.id = ANY($1::text[])";

/// The task locks of the completed tasks `$1`, exclusive, in key order: what a single
/// completion takes before its write (`keys::task_lock_key`), so that the write's release of
/// the dependents sees every edge to them. Sent in the same round trip as [`WRITE`], whose
/// snapshot comes after it.
const LOCK: &str = "SELECT count(pg_advisory_xact_lock(k))
FROM (SELECT DISTINCT k FROM unnest($1::int8[]) k ORDER BY k) o";

/// Every change of a batch in one statement: each row written if it is still at the version
/// and status read, locked in id order first (so that two batches never wait for each other
/// in a circle); then what a transition records ([`RECORD`]); then the dependents of the
/// completed tasks, locked in id order like every write to several of them, wait for as
/// many dependencies fewer. Only the columns a finish or a heartbeat changes are written
/// (`fits` checks it). Answers the ids written.
const WRITE: &str = "WITH items AS MATERIALIZED (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
        $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::text[],
        $13::text[], $14::text[], $15::int8[], $16::text[], $17::text[], $18::text[],
        $19::int8[], $20::text[], $21::bool[])
        AS i(id, status, result, error, version, updated_at, finished_at, lease_token,
             lease_expires_at, run_at, prev_version, prev_status, entered, run_bucket, run_ms,
             h_kind, h_from, h_actor, h_token, h_error, completes)
), locked AS MATERIALIZED (
    SELECT t.id FROM {s}.tasks t JOIN items i ON i.id = t.id
    WHERE t.version = i.prev_version AND t.status = i.prev_status
    ORDER BY t.id FOR UPDATE OF t
), upd AS (
    UPDATE {s}.tasks t SET status = i.status, result = i.result, error = i.error,
        version = i.version, updated_at = i.updated_at, finished_at = i.finished_at,
        lease_token = i.lease_token, lease_expires_at = i.lease_expires_at, run_at = i.run_at
    FROM items i
    WHERE t.id = i.id AND t.id IN (SELECT id FROM locked)
      AND t.version = i.prev_version AND t.status = i.prev_status
    RETURNING t.id
), written AS MATERIALIZED (
    SELECT i.* FROM items i JOIN upd USING (id)
), {record}, released AS (
    UPDATE {s}.tasks d SET waiting = d.waiting - r.n
    FROM (SELECT dep.task_id, count(*) AS n FROM {s}.task_deps dep
          JOIN written w ON w.id = dep.depends_on AND w.completes
          GROUP BY dep.task_id) r
    WHERE d.id = r.task_id AND d.id IN (
        SELECT x.id FROM {s}.tasks x
        WHERE x.id IN (SELECT dep.task_id FROM {s}.task_deps dep
                       JOIN written w ON w.id = dep.depends_on AND w.completes)
        ORDER BY x.id FOR UPDATE)
)
SELECT id FROM upd";

/// What the written changes (`written`) record beside the rows, as `sql/transition.sql`
/// records one: the counters of the statuses entered and of the finished runs' buckets and
/// sum, appended to `task_tallies` as rows of changes (decision 0047: no row every batch
/// locks), the counts by status moved (migration 9: no trigger does it), and one history row
/// per transition.
const RECORD: &str = "deltas AS (
    SELECT key, sum(n)::bigint AS n FROM (
        SELECT entered AS key, 1::bigint AS n FROM written WHERE entered <> ''
        UNION ALL SELECT run_bucket, 1 FROM written WHERE run_bucket <> ''
        UNION ALL SELECT 'run_ms_sum', run_ms FROM written WHERE run_bucket <> '') x
    GROUP BY key
), counted AS (
    INSERT INTO {s}.task_tallies (key, delta) SELECT key, n FROM deltas
), moved AS (
    INSERT INTO {s}.task_counts (status, delta)
    SELECT status, sum(n)::bigint FROM (
        SELECT prev_status AS status, -1 AS n FROM written WHERE entered <> ''
        UNION ALL SELECT status, 1 FROM written WHERE entered <> '') x
    GROUP BY status
), hist AS (
    INSERT INTO {s}.task_history (task_id, version, at, kind, from_status, to_status, actor,
        token, error)
    SELECT id, version, updated_at, h_kind, h_from, status, h_actor, h_token, h_error
    FROM written WHERE h_kind <> ''
)";

/// The statements of a batch for schema `s` (quoted), rendered per call (a few microseconds
/// beside a round trip; sent as text with their types, without a prepare).
#[derive(Debug)]
pub(super) struct BatchSql {
    read: String,
    write: String,
}

impl BatchSql {
    pub(super) fn new(s: &str) -> Self {
        BatchSql {
            read: render(READ, s, &[]),
            write: render(&WRITE.replace("{record}", RECORD), s, &[]),
        }
    }
}

/// One change to write: the item's place in the batch, the task as read and as it will be.
struct Write {
    at: usize,
    prev: Task,
    next: Task,
    history: Option<HistoryEntry>,
}

/// Whether `next` differs from `prev` only in the columns [`WRITE`] writes (always so for a
/// finish or a heartbeat; anything else goes through the single path).
fn fits(prev: &Task, next: &Task) -> bool {
    let mut t = prev.clone();
    t.status = next.status;
    t.result.clone_from(&next.result);
    t.error.clone_from(&next.error);
    t.version = next.version;
    t.updated_at = next.updated_at;
    t.finished_at = next.finished_at;
    t.lease = next.lease;
    t.run_at = next.run_at;
    t == *next
}

/// The columns of [`WRITE`]'s items, `$1` … `$21`.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    status: Vec<String>,
    result: Vec<Option<String>>,
    error: Vec<Option<String>>,
    version: Vec<i64>,
    updated_at: Vec<i64>,
    finished_at: Vec<Option<i64>>,
    lease_token: Vec<Option<i64>>,
    lease_expires_at: Vec<Option<i64>>,
    run_at: Vec<Option<i64>>,
    prev_version: Vec<i64>,
    prev_status: Vec<String>,
    entered: Vec<String>,
    run_bucket: Vec<String>,
    run_ms: Vec<i64>,
    h_kind: Vec<String>,
    h_from: Vec<Option<String>>,
    h_actor: Vec<Option<String>>,
    h_token: Vec<Option<i64>>,
    h_error: Vec<Option<String>>,
    completes: Vec<bool>,
}

impl Columns {
    /// The write's values, as the single transition's statement takes them
    /// ([`TransitionParams`]), moved into the columns.
    fn push(&mut self, w: &Write) -> Result<()> {
        let p = TransitionParams::new(&w.prev, &w.next, false, w.history.as_ref())?;
        self.id.push(p.id);
        self.status.push(p.status);
        self.result.push(p.result);
        self.error.push(p.error);
        self.version.push(p.version);
        self.updated_at.push(p.updated_at);
        self.finished_at.push(p.finished_at);
        self.lease_token.push(p.lease_token);
        self.lease_expires_at.push(p.lease_expires_at);
        self.run_at.push(p.run_at);
        self.prev_version.push(p.prev_version);
        self.prev_status.push(p.prev_status);
        self.entered.push(p.entered);
        self.run_bucket.push(p.run_bucket);
        self.run_ms.push(p.run_ms);
        self.h_kind.push(p.history_kind);
        self.h_from.push(p.history_from);
        self.h_actor.push(p.history_actor);
        self.h_token.push(p.history_token);
        self.h_error.push(p.history_error);
        self.completes.push(completes(&w.prev, &w.next));
        Ok(())
    }

    fn params(&self) -> [(&(dyn ToSql + Sync), Type); 21] {
        let (text, int8) = (Type::TEXT_ARRAY, Type::INT8_ARRAY);
        [
            (&self.id, text.clone()),
            (&self.status, text.clone()),
            (&self.result, text.clone()),
            (&self.error, text.clone()),
            (&self.version, int8.clone()),
            (&self.updated_at, int8.clone()),
            (&self.finished_at, int8.clone()),
            (&self.lease_token, int8.clone()),
            (&self.lease_expires_at, int8.clone()),
            (&self.run_at, int8.clone()),
            (&self.prev_version, int8.clone()),
            (&self.prev_status, text.clone()),
            (&self.entered, text.clone()),
            (&self.run_bucket, text.clone()),
            (&self.run_ms, int8.clone()),
            (&self.h_kind, text.clone()),
            (&self.h_from, text.clone()),
            (&self.h_actor, text.clone()),
            (&self.h_token, int8),
            (&self.h_error, text),
            (&self.completes, Type::BOOL_ARRAY),
        ]
    }
}

fn completes(prev: &Task, next: &Task) -> bool {
    next.status == TaskStatus::Completed && prev.status != TaskStatus::Completed
}

/// Polls `a` and `b` together, so that tokio-postgres pipelines their statements: sent in
/// one round trip, run by the server one after the other.
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(x) = a.as_mut().poll(cx)
        {
            ra = Some(x);
        }
        if rb.is_none()
            && let Poll::Ready(x) = b.as_mut().poll(cx)
        {
            rb = Some(x);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}

impl PgTaskStore {
    /// Applies each change (a finish or a heartbeat) in order, each item's outcome its own:
    /// rounds of one read and one write, the first item of each id in a round (a later one
    /// waits for the next, as it waits for the first in a single call), a change that lost a
    /// race recomputed in the next, as a single call does.
    pub(super) fn apply_batch(&self, changes: Vec<(&TaskId, Change)>) -> Result<Vec<Result<Task>>> {
        let mut out: Vec<Option<Result<Task>>> = Vec::with_capacity(changes.len());
        let mut todo = Vec::new();
        for (i, (_, change)) in changes.iter().enumerate() {
            match change.validate() {
                Ok(()) => {
                    out.push(None);
                    todo.push(i);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        // A round can leave items for the next for three reasons: an id already in it, a
        // dependency completing in it, a lost race; only the last is bounded by the attempts.
        let mut lost_races = 0;
        while !todo.is_empty() && lost_races < CAS_ATTEMPTS {
            let (mut round, mut later) = (Vec::new(), Vec::new());
            let mut seen = HashSet::new();
            for i in todo {
                if seen.insert(changes[i].0) {
                    round.push(i);
                } else {
                    later.push(i);
                }
            }
            let ids: Vec<String> = round.iter().map(|i| changes[*i].0.to_string()).collect();
            let (rows, now) = self.read_many(ids)?;
            let mut writes = Vec::new();
            for i in round {
                let (id, change) = &changes[i];
                let Some(prev) = rows.get(*id) else {
                    out[i] = Some(Err(Error::NotFound { id: (*id).clone() }));
                    continue;
                };
                match transition(prev, change, None, now, || 0) {
                    Err(e) => out[i] = Some(Err(e)),
                    Ok((next, _)) if !fits(prev, &next) => {
                        out[i] = Some(self.apply_change(id, change.clone(), None));
                    }
                    Ok((next, kind)) => writes.push(Write {
                        at: i,
                        history: kind.map(|k| HistoryEntry::new(k, Some(prev), &next)),
                        prev: prev.clone(),
                        next,
                    }),
                }
            }
            // A task depending on one this round completes waits for the next round: one
            // statement cannot write its row and release it both.
            let completing: HashSet<TaskId> = writes
                .iter()
                .filter(|w| completes(&w.prev, &w.next))
                .map(|w| w.next.id.clone())
                .collect();
            let (writes, deferred): (Vec<Write>, Vec<Write>) = writes
                .into_iter()
                .partition(|w| !w.prev.depends_on.iter().any(|d| completing.contains(d)));
            later.extend(deferred.iter().map(|w| w.at));
            let written = self.write_many(&writes)?;
            let mut lost = false;
            for w in writes {
                if written.contains(w.next.id.as_str()) {
                    if let Some(h) = &w.history {
                        h.trace();
                    }
                    out[w.at] = Some(Ok(w.next));
                } else {
                    // Another writer changed the task since it was read: recompute.
                    lost = true;
                    later.push(w.at);
                }
            }
            lost_races += usize::from(lost);
            later.sort_unstable();
            todo = later;
        }
        Ok(out
            .into_iter()
            .zip(&changes)
            .map(|(r, (id, _))| {
                r.unwrap_or_else(|| {
                    Err(Error::backend(
                        "postgres",
                        true,
                        format!(
                            "task {id} kept changing under {CAS_ATTEMPTS} attempts to write it"
                        ),
                    ))
                })
            })
            .collect())
    }

    /// The tasks `ids` that exist, by id, and the time, read in one statement.
    fn read_many(&self, ids: Vec<String>) -> Result<(HashMap<TaskId, Task>, oc_tasks::Timestamp)> {
        let (sql, now) = (BatchSql::new(&self.table_schema()).read, self.clock_ms());
        let rows = self.call("read_many", move |c| async move {
            c.client
                .query_typed(&sql, &[(&ids, Type::TEXT_ARRAY), (&now, Type::INT8)])
                .await
        })?;
        let mut tasks = HashMap::with_capacity(rows.len());
        let mut at = None;
        for r in &rows {
            at = Some(r.try_get::<_, i64>(0).map_err(|e| corrupt("(now)", e))?);
            let present: Option<String> = r.try_get(1).map_err(|e| corrupt("(row)", e))?;
            if present.is_some() {
                let t = row_task(r, 1)?;
                tasks.insert(t.id.clone(), t);
            }
        }
        let now = at.ok_or_else(|| corrupt("(now)", "the read answered no row"))?;
        Ok((tasks, oc_tasks::Timestamp::from_millis(now)))
    }

    /// Writes `writes` in one statement ([`WRITE`]), after the task locks of the tasks it
    /// completes (in the same round trip); answers the ids written.
    fn write_many(&self, writes: &[Write]) -> Result<HashSet<String>> {
        if writes.is_empty() {
            return Ok(HashSet::new());
        }
        let mut cols = Columns::default();
        for w in writes {
            cols.push(w)?;
        }
        let schema = self.table_schema();
        let mut keys: Vec<i64> = writes
            .iter()
            .filter(|w| completes(&w.prev, &w.next))
            .map(|w| task_lock_key(&schema, &w.next.id))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let sql = BatchSql::new(&schema).write;
        let started = std::time::Instant::now();
        let rows = if keys.is_empty() {
            self.pool
                .call(move |c| async move { c.client.query_typed(&sql, &cols.params()).await })
        } else {
            self.pool
                .transaction(move |t, _| {
                    Box::pin(async move {
                        let (locked, rows) = both(
                            t.query_typed(LOCK, &[(&keys, Type::INT8_ARRAY)]),
                            t.query_typed(&sql, &cols.params()),
                        )
                        .await;
                        locked?;
                        Ok(Ok::<_, ()>(rows?))
                    })
                })
                .map(|r| r.unwrap_or_default())
        }
        .map_err(task_error)?;
        self.slow
            .record("write_many", started.elapsed(), self.clock_ms());
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(|e| corrupt("(id)", e)))
            .collect()
    }
}
