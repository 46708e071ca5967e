//! `PgTaskStore`: the task store on PostgreSQL, shared by agents on many machines.

use std::sync::Arc;
use std::time::Duration;

use std::collections::{HashMap, HashSet};

use oc_tasks::backend::{
    StoredTask, after_sql, cursor_position, cycle_error, find_path, finished_run, like_anywhere,
    metadata_text, order_by_sql, page, plan_submit, retry_columns, validate_change, validate_query,
};
use oc_tasks::{
    Capped, Change, Created, Error, HistoryEntry, HistoryKind, LabelFilter, NewTask, OnDependents,
    Order, RUN_BUCKETS_MS, Readiness, ReapedTask, Result, RunDurations, SlowStatement,
    StorageSource, StorageStats, Task, TaskCounts, TaskFilter, TaskId, TaskPage, TaskQuery,
    TaskStats, TaskStatus, TaskStore, TaskSummary, Timestamp, Unique, reap, transition,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, Transaction};

use crate::errors::{Failure, task_error};
use crate::options::PgOptions;
use crate::pool::{Pool, Prepare};
use crate::schema::migrate;

mod migrations;
use migrations::COMPONENT;
pub(crate) use migrations::MIGRATIONS;

/// How many rows of changes `task_counts` may gather before a reader folds them.
const FOLD_AT: i64 = 1_000;

/// How many calls a store makes between folds of its own (so that the rows of changes stay
/// few when nobody reads the counts).
const CALLS_PER_FOLD: u64 = 4_096;

/// The counts that `counts` and `stats` read, as select-list items over schema `s` (`$lim`
/// the cap plus one, or NULL for no cap; `$now` the time): the sums by status as JSON, the
/// pending tasks waiting on a dependency, and those with every dependency done but scheduled
/// for later, each counted through its partial index up to the cap.
fn counts_sql(s: &str, lim: &str, now: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(json_build_array(status, n)), '[]')
            FROM (SELECT status, sum(delta) AS n FROM {s}.task_counts GROUP BY status) a)::text,
         (SELECT count(*) FROM (SELECT 1 FROM {s}.tasks
            WHERE status = 'pending' AND waiting > 0 LIMIT {lim}) w),
         (SELECT count(*) FROM (SELECT 1 FROM {s}.tasks
            WHERE status = 'pending' AND waiting = 0 AND run_at IS NOT NULL AND run_at > {now}
            LIMIT {lim}) l)"
    )
}

/// The stored columns of a task, in [`task_params`] order.
const COLS: &str = "id, name, description, status, owner, priority, metadata, result, error, \
    attempts, max_attempts, version, created_at, updated_at, started_at, finished_at, \
    lease_token, lease_expires_at, parent, labels, run_at, retry_base_ms, retry_cap_ms, \
    retry_jitter, unique_key, unique_scope";

/// What a task is read from, the table aliased `t` in schema `s`: the stored columns and its
/// dependencies.
fn select_cols(s: &str, t: &str) -> String {
    let cols = COLS
        .split(", ")
        .map(|c| format!("{t}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{cols}, ARRAY(SELECT d.depends_on FROM {s}.task_deps d WHERE d.task_id = {t}.id \
         ORDER BY 1)"
    )
}

/// The SQL condition "ready at `now`" over the table aliased `t`: the terms of the partial
/// index `tasks_claimable`, and the `run_at` check.
fn ready_sql(t: &str, now: &str) -> String {
    format!(
        "{t}.status = 'pending' AND {t}.waiting = 0 AND ({t}.run_at IS NULL OR {t}.run_at <= {now})"
    )
}

/// The database clock in milliseconds, unless the caller passed a time (`$n`).
fn now_sql(n: usize) -> String {
    format!("coalesce(${n}::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)")
}

/// The text column `i` of `row`, parsed as JSON (`null` when SQL NULL).
fn json_column(row: &Row, i: usize) -> Result<serde_json::Value> {
    let text: Option<String> = row.try_get(i).map_err(|e| corrupt("(counts)", e))?;
    serde_json::from_str(text.as_deref().unwrap_or("null")).map_err(|e| corrupt("(counts)", e))
}

/// The first three columns of [`counts_sql`].
struct CountsRow {
    /// The counts by status.
    by_status: [(TaskStatus, u64); 5],
    /// The pending tasks waiting on a dependency, counted up to the cap.
    waiting: Capped,
    /// The pending tasks scheduled for later, counted up to the cap.
    scheduled: Capped,
}

/// Reads the first three columns of [`counts_sql`], counted up to `cap`.
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

/// How often a transition is recomputed when another writer changed the task in between.
const CAS_ATTEMPTS: usize = 32;

/// How often a claim that found nothing, while ready tasks were held locked by others, runs
/// again before it answers "nothing" (about a second of pauses in all).
const SKIPPED_ATTEMPTS: u32 = 100;

/// The one statement a claim runs (`$1` owner, `$2` lease in milliseconds, `$3` the time or
/// NULL for the database's, `$4` labels required, `$5` labels excluded, and for a batch `$6`
/// how many), with the schema `s` quoted: the ready tasks locked with `FOR UPDATE SKIP
/// LOCKED` in a materialised CTE, one token each from one bump of the counter, in claim order.
///
/// The rows are locked as they are chosen, which re-checks the whole condition on their
/// latest version; the `UPDATE` re-checks only the status, so that the planner finds them by
/// primary key (with `waiting = 0` repeated there, it would walk the partial index of ready
/// tasks instead, every one of them, for each claim).
///
/// A single claim says `LIMIT 1` in the text and is prepared once: a prepared statement's
/// generic plan guesses a `LIMIT $n` at a tenth of the table and would join the claimed rows
/// by a scan of it. A batch is sent as text and planned with its own limit.
pub(crate) fn claim_sql(s: &str, batch: bool) -> String {
    let cols = COLS
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH n AS (SELECT {now} AS ms),
                    locked AS MATERIALIZED (
                        SELECT c.id, c.priority, c.created_at FROM {s}.tasks c, n
                        WHERE {ready}
                          AND c.labels @> $4::text[] AND NOT (c.labels && $5::text[])
                        ORDER BY c.priority DESC, c.created_at, c.id LIMIT {limit}
                        FOR UPDATE OF c SKIP LOCKED
                    ), next AS MATERIALIZED ({numbered}), tok AS (
                        UPDATE {s}.tasks_meta SET value = value + (SELECT count(*) FROM next)
                        WHERE key = 'lease_token' AND EXISTS (SELECT 1 FROM next) RETURNING value
                    ), upd AS (
                        UPDATE {s}.tasks t SET status = 'running', owner = $1,
                            attempts = t.attempts + 1, started_at = n.ms, finished_at = NULL,
                            lease_token = (SELECT value FROM tok) - next.n + next.rn,
                            lease_expires_at = n.ms + $2::bigint,
                            version = t.version + 1, updated_at = n.ms
                        FROM next, n
                        WHERE t.id = next.id AND t.status = 'pending'
                        RETURNING {cols}
                    ), ent AS (
                        UPDATE {s}.tasks_meta SET value = value + (SELECT count(*) FROM upd)
                        WHERE key = 'entered_running' AND EXISTS (SELECT 1 FROM upd)
                    ), hist AS (
                        INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
                            to_status, actor, token)
                        SELECT id, version, updated_at, 'claimed', 'pending', 'running', owner,
                            lease_token
                        FROM upd
                    )
                    SELECT {sel} FROM upd u ORDER BY u.lease_token",
        now = now_sql(3),
        ready = ready_sql("c", "n.ms"),
        sel = select_cols(s, "u"),
        limit = if batch { "$6" } else { "1" },
        // Each claimed row's place in claim order (`rn`) and their number (`n`): for one row,
        // constants rather than two window functions and a sort.
        numbered = if batch {
            "SELECT id, row_number() OVER (ORDER BY priority DESC, created_at, id) AS rn,
                count(*) OVER () AS n FROM locked"
        } else {
            "SELECT id, 1 AS rn, 1 AS n FROM locked"
        },
    )
}

pub(crate) struct TaskStatements {
    read: Statement,
    now: Statement,
    cas: Statement,
    insert: Statement,
    claim_next: Statement,
    skipped: Statement,
    expired: Statement,
    counts: Statement,
    ready_up_to: Statement,
    fold: Statement,
    stats: Statement,
    history: Statement,
    release: Statement,
    edges: Statement,
    lock_refs: Statement,
    read_refs: Statement,
    lock_task_key: Statement,
    holders: Statement,
}

impl Prepare for TaskStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let sel = select_cols(&s, "t");
        Ok(TaskStatements {
            read: c
                .prepare(&format!(
                    "SELECT n.ms, {sel} FROM (SELECT {} AS ms) n LEFT JOIN {s}.tasks t ON t.id = $1",
                    now_sql(2)
                ))
                .await?,
            now: c.prepare(&format!("SELECT {}", now_sql(1))).await?,
            cas: c
                .prepare(&format!(
                    "WITH tok AS (
                        UPDATE {s}.tasks_meta SET value = value + 1
                        WHERE key = 'lease_token' AND $21::boolean RETURNING value
                    ), upd AS (
                        UPDATE {s}.tasks SET name = $2, description = $3, status = $4, owner = $5,
                            priority = $6, metadata = $7, result = $8, error = $9, attempts = $10,
                            max_attempts = $11, version = $12, created_at = $13, updated_at = $14,
                            started_at = $15, finished_at = $16,
                            lease_token = CASE WHEN $21::boolean THEN (SELECT value FROM tok) ELSE $17 END,
                            lease_expires_at = $18, labels = $30::text[], run_at = $31::bigint,
                            retry_base_ms = $32::bigint, retry_cap_ms = $33::bigint,
                            retry_jitter = $34::integer
                        WHERE id = $1 AND version = $19 AND status = $20
                        RETURNING lease_token
                    ), counts AS (
                        -- The status entered, and a finished run's bucket and sum: one UPDATE
                        -- that locks its rows in key order, so that transitions holding them
                        -- (a completion holds them until it has released its dependents)
                        -- never wait for each other in a circle.
                        UPDATE {s}.tasks_meta
                        SET value = value + CASE WHEN key = 'run_ms_sum' THEN $24::bigint ELSE 1 END
                        WHERE key IN (
                            SELECT key FROM {s}.tasks_meta
                            WHERE (key = $22::text
                                   OR ($23::text <> '' AND key IN ($23::text, 'run_ms_sum')))
                              AND EXISTS (SELECT 1 FROM upd)
                            ORDER BY key FOR UPDATE)
                    ), hist AS (
                        INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
                            to_status, actor, token, error)
                        SELECT $1, $12, $14, $25::text, $26::text, $4, $27::text,
                            CASE WHEN $21::boolean THEN (SELECT lease_token FROM upd)
                                 ELSE $28::bigint END,
                            $29::text
                        WHERE $25::text <> '' AND EXISTS (SELECT 1 FROM upd)
                    )
                    SELECT lease_token FROM upd"
                ))
                .await?,
            insert: c
                .prepare(&format!(
                    "WITH ins AS (
                        INSERT INTO {s}.tasks ({COLS}, waiting)
                        SELECT u.id, u.name, u.description, u.status, u.owner, u.priority,
                            u.metadata, u.result, u.error, u.attempts, u.max_attempts, u.version,
                            u.created_at, u.updated_at, u.started_at, u.finished_at,
                            u.lease_token, u.lease_expires_at, u.parent,
                            ARRAY(SELECT json_array_elements_text(u.labels::json)), u.run_at,
                            u.retry_base_ms, u.retry_cap_ms, u.retry_jitter, u.unique_key,
                            u.unique_scope, u.waiting
                        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                            $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::int8[],
                            $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[],
                            $16::int8[], $17::int8[], $18::int8[], $19::text[], $20::text[],
                            $21::int8[], $22::int8[], $23::int8[], $24::int4[], $25::text[],
                            $26::text[], $27::int4[])
                          AS u(id, name, description, status, owner, priority, metadata, result,
                            error, attempts, max_attempts, version, created_at, updated_at,
                            started_at, finished_at, lease_token, lease_expires_at, parent,
                            labels, run_at, retry_base_ms, retry_cap_ms, retry_jitter,
                            unique_key, unique_scope, waiting)
                        RETURNING id, version, created_at, owner
                    ), hist AS (
                        INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
                            to_status, actor)
                        SELECT id, version, created_at, 'created', NULL, 'pending', owner FROM ins
                    )
                    UPDATE {s}.tasks_meta SET value = value + (SELECT count(*) FROM ins)
                    WHERE key = 'entered_pending'"
                ))
                .await?,
            claim_next: c.prepare(&claim_sql(&s, false)).await?,
            // Whether a claim that found nothing skipped ready tasks someone held locked.
            skipped: c
                .prepare(&format!(
                    "SELECT EXISTS (SELECT 1 FROM {s}.tasks c, (SELECT {} AS ms) n
                     WHERE {} AND c.labels @> $2::text[] AND NOT (c.labels && $3::text[]))",
                    now_sql(1),
                    ready_sql("c", "n.ms")
                ))
                .await?,
            expired: c
                .prepare(&format!(
                    "SELECT {sel} FROM {s}.tasks t
                     WHERE t.status = 'running' AND t.lease_expires_at <= $1 ORDER BY t.id"
                ))
                .await?,
            counts: c
                .prepare(&format!(
                    "SELECT {}, (SELECT json_object_agg(key, value) FROM {s}.tasks_meta
                                WHERE key LIKE 'entered\\_%')::text,
                            (SELECT count(*) FROM {s}.task_counts)
                     FROM (SELECT {} AS ms) n",
                    counts_sql(&s, "$1", "n.ms"),
                    now_sql(2)
                ))
                .await?,
            ready_up_to: c
                .prepare(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {s}.tasks c, (SELECT {} AS ms) n
                                           WHERE {} LIMIT $1) r",
                    now_sql(2),
                    ready_sql("c", "n.ms")
                ))
                .await?,
            // Folds the rows of changes into one per status, unless another call is folding.
            fold: c
                .prepare(&format!(
                    "WITH ok AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1) AS ok),
                     gone AS (DELETE FROM {s}.task_counts WHERE (SELECT ok FROM ok)
                              RETURNING status, delta)
                     INSERT INTO {s}.task_counts (status, delta)
                     SELECT status, sum(delta) FROM gone GROUP BY status HAVING sum(delta) <> 0"
                ))
                .await?,
            stats: c
                .prepare(&format!(
                    "SELECT {},
                      (SELECT coalesce(json_agg(json_build_array(owner, n)
                                ORDER BY n DESC, owner NULLS FIRST), '[]')
                         FROM (SELECT owner, count(*) AS n FROM {s}.tasks GROUP BY owner) b)::text,
                      (SELECT coalesce(json_agg(json_build_array(id, name, status, created_at)
                                ORDER BY created_at DESC, id DESC), '[]')
                         FROM (SELECT id, name, status, created_at FROM {s}.tasks
                               ORDER BY created_at DESC, id DESC LIMIT $1) c)::text,
                      (SELECT json_object_agg(key, value) FROM {s}.tasks_meta)::text
                     FROM (SELECT {} AS ms) n",
                    counts_sql(&s, "NULL", "n.ms"),
                    now_sql(2)
                ))
                .await?,
            history: c
                .prepare(&format!(
                    "SELECT EXISTS (SELECT 1 FROM {s}.tasks WHERE id = $1),
                      (SELECT coalesce(json_agg(json_build_array(version, at, kind, from_status,
                              to_status, actor, token, error) ORDER BY version), '[]')
                       FROM {s}.task_history WHERE task_id = $1)::text"
                ))
                .await?,
            // The dependents are locked in id order first, like every write to several of
            // them: two completions releasing overlapping sets of dependents would otherwise
            // lock them in whatever order each plan reads them, and deadlock.
            release: c
                .prepare(&format!(
                    "UPDATE {s}.tasks SET waiting = waiting - 1
                     WHERE id IN (SELECT id FROM {s}.tasks
                                  WHERE id IN (SELECT task_id FROM {s}.task_deps
                                               WHERE depends_on = $1)
                                  ORDER BY id FOR UPDATE)"
                ))
                .await?,
            edges: c
                .prepare(&format!(
                    "INSERT INTO {s}.task_deps (task_id, depends_on)
                     SELECT * FROM unnest($1::text[], $2::text[])"
                ))
                .await?,
            // Shared task locks on the ids, in key order (the same order everywhere); the
            // statuses are read by `read_refs`, a later statement, whose snapshot comes after
            // the locks (one statement's snapshot would be taken before it waited for them).
            lock_refs: c
                .prepare(
                    "SELECT count(pg_advisory_xact_lock_shared(k))
                     FROM (SELECT DISTINCT k FROM unnest($1::int8[]) k ORDER BY k) o",
                )
                .await?,
            read_refs: c
                .prepare(&format!(
                    "SELECT id, status FROM {s}.tasks WHERE id = ANY($1::text[]) ORDER BY id"
                ))
                .await?,
            lock_task_key: c.prepare("SELECT pg_advisory_xact_lock($1)").await?,
            holders: c
                .prepare(&format!(
                    "SELECT {sel} FROM {s}.tasks t
                     WHERE t.unique_key = ANY($1::text[])
                       AND (t.unique_scope = 'always' OR t.status IN ('pending', 'running'))
                     ORDER BY t.id"
                ))
                .await?,
        })
    }
}

/// A [`TaskStore`] on PostgreSQL: every host that connects to the same database and schema
/// shares the tasks, with the semantics of the SQLite store.
///
/// - Every change is computed by [`oc_tasks::transition`] from the row as read and written by
///   one conditional `UPDATE` (on the version and status read), together with the counters;
///   a change that lost a race is recomputed from the new row (or refused with
///   `VersionMismatch` when the caller asked for a version).
/// - `claim_next` and `claim_many` are one statement: the next ready tasks (that pass the label
///   filter) locked with `FOR UPDATE SKIP LOCKED` in a materialised CTE, the state re-checked
///   in the `UPDATE`, so two hosts never claim the same task.
/// - The work graph's counts (`waiting`, the unfinished dependencies of each task) stay exact
///   under concurrency: a completion releases its dependents in a second statement of its
///   transaction, after its row is locked, and whoever adds an edge to a task, or creates a
///   task depending on it, takes that task's advisory lock shared first (see
///   `ARCHITECTURE.md`).
/// - Fencing tokens come from a counter row bumped in the claiming statement: they strictly
///   increase in commit order across every host, and survive crashes with the commit
///   (`synchronous_commit=on`, PostgreSQL's default).
/// - Time is the database's clock (`clock_timestamp()`), so leases and reaping are judged by
///   one clock whatever the hosts' clocks say; [`PgOptions::clock`] replaces it in tests.
#[derive(Debug)]
pub struct PgTaskStore {
    pool: Pool<TaskStatements>,
    opts: PgOptions,
    slow: SlowLog,
    /// Calls made, for folding the rows of changes to the counts every [`CALLS_PER_FOLD`].
    calls: std::sync::atomic::AtomicU64,
}

/// Calls slower than the threshold, as this client saw them (queueing and the network
/// included).
#[derive(Debug)]
struct SlowLog {
    threshold: Duration,
    count: std::sync::atomic::AtomicU64,
    recent: parking_lot::Mutex<std::collections::VecDeque<SlowStatement>>,
}

/// How many slow calls are kept.
const SLOW_KEEP: usize = 32;

impl SlowLog {
    fn record(&self, op: &str, took: Duration, now_ms: Option<i64>) {
        if took < self.threshold {
            return;
        }
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut recent = self.recent.lock();
        if recent.len() == SLOW_KEEP {
            recent.pop_front();
        }
        let s = SlowStatement {
            sql: op.to_owned(),
            duration_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            at: now_ms.map_or_else(Timestamp::now, Timestamp::from_millis),
        };
        s.trace("postgres");
        recent.push_back(s);
    }
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

fn corrupt(id: &str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A task from the columns of `COLS`, starting at column `at`.
fn row_task(r: &Row, at: usize) -> Result<Task> {
    let get_err = |e: tokio_postgres::Error| corrupt("(row)", e);
    macro_rules! col {
        ($i:expr) => {
            r.try_get(at + $i).map_err(get_err)?
        };
    }
    let jitter: Option<i32> = col!(23);
    StoredTask {
        id: col!(0),
        name: col!(1),
        description: col!(2),
        status: col!(3),
        owner: col!(4),
        priority: col!(5),
        metadata: col!(6),
        result: col!(7),
        error: col!(8),
        attempts: col!(9),
        max_attempts: col!(10),
        version: col!(11),
        created_at: col!(12),
        updated_at: col!(13),
        started_at: col!(14),
        finished_at: col!(15),
        lease_token: col!(16),
        lease_expires_at: col!(17),
        parent: col!(18),
        labels: col!(19),
        run_at: col!(20),
        retry_base_ms: col!(21),
        retry_cap_ms: col!(22),
        retry_jitter: jitter.map(i64::from),
        unique_key: col!(24),
        unique_scope: col!(25),
        depends_on: col!(26),
    }
    .into_task()
}

fn result_text(t: &Task) -> Result<Option<String>> {
    t.result
        .as_ref()
        .map(|v| {
            serde_json::to_string(v).map_err(|e| Error::InvalidInput {
                field: "result",
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The column values of `t` in `COLS` order.
fn task_params(t: &Task) -> Result<Params> {
    let ts = |t: Option<Timestamp>| t.map(|t| t.as_millis());
    Ok(vec![
        Box::new(t.id.to_string()),
        Box::new(t.name.clone()),
        Box::new(t.description.clone()),
        Box::new(t.status.as_str().to_owned()),
        Box::new(t.owner.clone()),
        Box::new(t.priority),
        Box::new(metadata_text(t)),
        Box::new(result_text(t)?),
        Box::new(t.error.clone()),
        Box::new(i64::from(t.attempts)),
        Box::new(i64::from(t.max_attempts)),
        Box::new(i64_of(t.version)),
        Box::new(t.created_at.as_millis()),
        Box::new(t.updated_at.as_millis()),
        Box::new(ts(t.started_at)),
        Box::new(ts(t.finished_at)),
        Box::new(t.lease.map(|l| i64_of(l.token))),
        Box::new(ts(t.lease.map(|l| l.expires_at))),
    ])
}

/// The meta key of run-duration bucket `i`.
fn run_key(i: usize) -> String {
    RUN_BUCKETS_MS
        .get(i)
        .map_or_else(|| "run_le_inf".to_owned(), |b| format!("run_le_{b}"))
}

/// What a CAS write reports: the row moved on (`None`), or the token the write took.
enum Cas {
    Lost,
    Written(Option<u64>),
}

impl PgTaskStore {
    /// Connects to the server of `opts` and migrates the schema (once, whatever other hosts
    /// do at the same time).
    pub fn connect(opts: PgOptions) -> Result<Self> {
        let pool = Pool::new(&opts, "tasks").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
        })?;
        let schema = opts.schema.clone();
        let found = pool
            .dedicated(
                move |mut c| async move { migrate(&mut c, &schema, COMPONENT, MIGRATIONS).await },
            )
            .map_err(task_error)?;
        if let Err(found) = found {
            return Err(Error::SchemaTooNew {
                found,
                supported: i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX),
            });
        }
        Ok(PgTaskStore {
            pool,
            slow: SlowLog {
                threshold: opts.slow_threshold,
                count: Default::default(),
                recent: Default::default(),
            },
            opts,
            calls: Default::default(),
        })
    }

    /// Connects to `url` with default options.
    pub fn open(url: &str) -> Result<Self> {
        Self::connect(PgOptions::new(url)?)
    }

    /// The injected clock's time, or `None` for the database's.
    fn clock_ms(&self) -> Option<i64> {
        self.opts.clock.as_ref().map(|c| c.now().as_millis())
    }

    /// Runs `f` on a pooled connection; a call slower than the threshold is counted.
    fn call<T: Send + 'static, Fut>(
        &self,
        op: &'static str,
        f: impl FnOnce(Arc<crate::pool::Conn<TaskStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        let started = std::time::Instant::now();
        let out = self.pool.call(f).map_err(task_error);
        self.slow.record(op, started.elapsed(), self.clock_ms());
        let calls = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if calls % CALLS_PER_FOLD == CALLS_PER_FOLD - 1 {
            // Best effort: the counts stay right unfolded, and the next fold catches up.
            let _ = self.fold();
        }
        out
    }

    /// The task and the time, read in one statement.
    fn read(&self, id: &TaskId) -> Result<(Option<Task>, Timestamp)> {
        let (id, now) = (id.to_string(), self.clock_ms());
        let row = self.call("read", move |c| async move {
            c.client.query_one(&c.stmts.read, &[&id, &now]).await
        })?;
        let now = Timestamp::from_millis(row.try_get(0).map_err(|e| corrupt("(now)", e))?);
        let present: Option<String> = row.try_get(1).map_err(|e| corrupt("(row)", e))?;
        Ok((present.map(|_| row_task(&row, 1)).transpose()?, now))
    }

    /// Writes `next` over `prev` if the row is still at `prev`'s version and status, with the
    /// counters; `take_token` replaces `next`'s lease token by a new one from the counter.
    fn cas(&self, prev: &Task, next: &Task, take_token: bool, reaped: bool) -> Result<Cas> {
        let mut p = task_params(next)?;
        p.push(Box::new(i64_of(prev.version)));
        p.push(Box::new(prev.status.as_str().to_owned()));
        p.push(Box::new(take_token));
        p.push(Box::new(if next.status != prev.status {
            format!("entered_{}", next.status)
        } else {
            String::new()
        }));
        let run = finished_run(prev, next);
        p.push(Box::new(run.map_or_else(String::new, |d| {
            run_key(RunDurations::bucket(
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            ))
        })));
        p.push(Box::new(run.map_or(0, |d| {
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        })));
        let h = HistoryEntry::of(Some(prev), next, reaped);
        p.push(Box::new(
            h.as_ref()
                .map_or(String::new(), |h| h.kind.as_str().to_owned()),
        ));
        p.push(Box::new(
            h.as_ref()
                .and_then(|h| h.from.map(|f| f.as_str().to_owned())),
        ));
        p.push(Box::new(h.as_ref().and_then(|h| h.actor.clone())));
        p.push(Box::new(h.as_ref().and_then(|h| h.token.map(i64_of))));
        p.push(Box::new(h.as_ref().and_then(|h| h.error.clone())));
        p.push(Box::new(next.labels.clone()));
        p.push(Box::new(next.run_at.map(|t| t.as_millis())));
        let (base, cap, jitter) = retry_columns(&next.retry);
        p.push(Box::new(base));
        p.push(Box::new(cap));
        p.push(Box::new(jitter.and_then(|j| i32::try_from(j).ok())));
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
                        let rows = t.query(&st.cas, &refs(&p)).await?;
                        if !rows.is_empty() {
                            t.execute(&st.release, &[&id]).await?;
                        }
                        Ok(Ok::<_, ()>(rows))
                    })
                })
                .map(|r| r.unwrap_or_default())
        } else {
            self.pool
                .call(move |c| async move { c.client.query(&c.stmts.cas, &refs(&p)).await })
        };
        let rows = match out {
            Ok(rows) => rows,
            Err(Failure::Pg(e)) if is_unique_key_violation(&e) => {
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

    /// Inserts tasks without graph edges or unique keys (so none can conflict but by id), in
    /// one statement.
    fn insert(&self, tasks: &[Task]) -> Result<()> {
        let arrays = insert_params(tasks, &vec![0; tasks.len()])?;
        let first = tasks.first().map(|t| t.id.clone());
        let out = self
            .pool
            .call(move |c| async move { c.client.execute(&c.stmts.insert, &refs(&arrays)).await });
        match out {
            Ok(_) => Ok(()),
            Err(f) => Err(insert_error(f, first)),
        }
    }

    /// Runs `f` in a transaction of its own (see [`Pool::transaction`]); a slow one is counted
    /// as `op`.
    fn graph_tx<X: Send + 'static>(
        &self,
        op: &'static str,
        f: impl for<'a> FnOnce(&'a Transaction<'a>) -> GraphFuture<'a, X> + Send + 'static,
    ) -> Result<X> {
        let started = std::time::Instant::now();
        let out = self.pool.transaction(move |t, _| {
            Box::pin(async move {
                match f(t).await {
                    Ok(x) => Ok(Ok(x)),
                    Err(TxErr::Task(e)) => Ok(Err(e)),
                    Err(TxErr::Pg(e)) => Err(e),
                }
            })
        });
        self.slow.record(op, started.elapsed(), self.clock_ms());
        out.map_err(task_error)?
    }

    /// The task holding `key` now.
    fn holder(&self, key: &str) -> Result<Option<Task>> {
        let keys = vec![key.to_owned()];
        let rows = self.call("holder", move |c| async move {
            c.client.query(&c.stmts.holders, &[&keys]).await
        })?;
        rows.first().map(|r| row_task(r, 0)).transpose()
    }

    /// `submit_many` of a batch with dependencies, parents or unique keys: one transaction
    /// that takes shared task locks on the stored tasks it refers to and the holders of its
    /// keys (see [`task_lock_key`]), reads their statuses after them, plans
    /// the batch from them ([`oc_tasks::backend::plan_submit`]), and inserts the tasks, each
    /// with its count of unfinished dependencies, and their edges. A concurrent creation of
    /// the same key makes the insert fail; the whole transaction is then tried again, and
    /// finds the new holder.
    fn submit_graph(&self, tasks: Vec<Task>) -> Result<Vec<Created>> {
        for _ in 0..CAS_ATTEMPTS {
            let batch = tasks.clone();
            let first = batch.first().map(|t| t.id.clone());
            let schema = self.table_schema();
            let out = self.pool.transaction(move |t, st| {
                Box::pin(async move {
                    let in_batch: HashSet<TaskId> = batch.iter().map(|t| t.id.clone()).collect();
                    let keys: Vec<String> = batch
                        .iter()
                        .filter_map(|t| Unique::held_by(t).map(str::to_owned))
                        .collect();
                    let mut holders: HashMap<String, Task> = HashMap::new();
                    let mut status: HashMap<TaskId, TaskStatus> = HashMap::new();
                    if !keys.is_empty() {
                        for r in t.query(&st.holders, &[&keys]).await? {
                            let h = match row_task(&r, 0) {
                                Ok(h) => h,
                                Err(e) => return Ok(Err(e)),
                            };
                            status.insert(h.id.clone(), h.status);
                            if let Some(k) = Unique::held_by(&h) {
                                holders.insert(k.to_owned(), h.clone());
                            }
                        }
                    }
                    let refs_out: Vec<String> = batch
                        .iter()
                        .flat_map(|t| t.depends_on.iter().chain(t.parent.iter()))
                        .filter(|r| !in_batch.contains(*r))
                        .chain(holders.values().map(|h| &h.id))
                        .map(|r| r.to_string())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    if !refs_out.is_empty() {
                        let keys: Vec<i64> = refs_out
                            .iter()
                            .map(|r| task_lock_key_str(&schema, r))
                            .collect();
                        status.clear();
                        t.query(&st.lock_refs, &[&keys]).await?;
                        for r in t.query(&st.read_refs, &[&refs_out]).await? {
                            let (id, s): (String, String) = (r.get(0), r.get(1));
                            match (TaskId::new(id.clone()), s.parse::<TaskStatus>()) {
                                (Ok(id), Ok(s)) => {
                                    status.insert(id, s);
                                }
                                _ => return Ok(Err(corrupt(&id, "bad id or status"))),
                            }
                        }
                    }
                    let planned = match plan_submit(
                        batch,
                        |key| Ok(holders.get(key).cloned()),
                        |id| Ok(status.contains_key(id)),
                    ) {
                        Ok(p) => p,
                        Err(e) => return Ok(Err(e)),
                    };
                    let fresh: Vec<Task> = planned
                        .iter()
                        .filter(|c| !c.duplicate)
                        .map(|c| c.task.clone())
                        .collect();
                    let fresh_ids: HashSet<&TaskId> = fresh.iter().map(|t| &t.id).collect();
                    let waiting: Vec<i32> = fresh
                        .iter()
                        .map(|t| {
                            let n = t
                                .depends_on
                                .iter()
                                .filter(|d| {
                                    fresh_ids.contains(d)
                                        || status.get(*d) != Some(&TaskStatus::Completed)
                                })
                                .count();
                            i32::try_from(n).unwrap_or(i32::MAX)
                        })
                        .collect();
                    if !fresh.is_empty() {
                        let arrays = match insert_params(&fresh, &waiting) {
                            Ok(a) => a,
                            Err(e) => return Ok(Err(e)),
                        };
                        t.execute(&st.insert, &refs(&arrays)).await?;
                        let (from, to): (Vec<String>, Vec<String>) = fresh
                            .iter()
                            .flat_map(|t| {
                                t.depends_on
                                    .iter()
                                    .map(|d| (t.id.to_string(), d.to_string()))
                            })
                            .unzip();
                        if !from.is_empty() {
                            t.execute(&st.edges, &[&from, &to]).await?;
                        }
                    }
                    Ok(Ok(planned))
                })
            });
            match out {
                Ok(Ok(created)) => {
                    trace_created(&created);
                    return Ok(created);
                }
                Ok(Err(e)) => return Err(e),
                Err(Failure::Pg(e)) if is_unique_key_violation(&e) => continue,
                Err(f) => return Err(insert_error(f, first)),
            }
        }
        Err(Error::Backend {
            backend: "postgres",
            message: format!("unique keys kept changing under {CAS_ATTEMPTS} attempts"),
            retryable: true,
        })
    }

    fn db_now(&self) -> Result<Timestamp> {
        let now = self.clock_ms();
        let row = self.call("db_now", move |c| async move {
            c.client.query_one(&c.stmts.now, &[&now]).await
        })?;
        Ok(Timestamp::from_millis(
            row.try_get(0).map_err(|e| corrupt("(now)", e))?,
        ))
    }
}

/// Reports the creations the insert statement recorded in the history.
fn trace_created(created: &[Created]) {
    if !HistoryEntry::traced() {
        return;
    }
    for c in created.iter().filter(|c| !c.duplicate) {
        if let Some(h) = HistoryEntry::of(None, &c.task, false) {
            h.trace();
        }
    }
}

/// Why a graph transaction stopped: the database failed, or the request was refused.
enum TxErr {
    Pg(tokio_postgres::Error),
    Task(Error),
}

impl From<tokio_postgres::Error> for TxErr {
    fn from(e: tokio_postgres::Error) -> Self {
        TxErr::Pg(e)
    }
}

impl From<Error> for TxErr {
    fn from(e: Error) -> Self {
        TxErr::Task(e)
    }
}

type GraphFuture<'a, X> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<X, TxErr>> + Send + 'a>>;

/// The status of task `id` (if it exists), read after taking its task lock shared (see
/// [`task_lock_key`]).
async fn shared_status(
    t: &Transaction<'_>,
    s: &str,
    id: &TaskId,
) -> std::result::Result<Option<String>, TxErr> {
    t.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&task_lock_key(s, id)],
    )
    .await?;
    Ok(t.query_opt(
        &format!("SELECT status FROM {s}.tasks WHERE id = $1"),
        &[&id.as_str()],
    )
    .await?
    .map(|r| r.get::<_, String>(0)))
}

/// The task `id`, locked for update until the transaction ends.
async fn lock_task(
    t: &Transaction<'_>,
    s: &str,
    id: &TaskId,
) -> std::result::Result<Option<Task>, TxErr> {
    let row = t
        .query_opt(
            &format!(
                "SELECT {} FROM {s}.tasks t WHERE t.id = $1 FOR UPDATE OF t",
                select_cols(s, "t")
            ),
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|r| row_task(&r, 0)).transpose()?)
}

/// A write to `id` that is not a transition (an edge added or dropped): the version bumped,
/// `waiting` moved by `waiting`.
async fn touch(
    t: &Transaction<'_>,
    s: &str,
    id: &TaskId,
    now: Option<i64>,
    waiting: i32,
) -> std::result::Result<(), TxErr> {
    t.execute(
        &format!(
            "UPDATE {s}.tasks SET waiting = waiting + $2, version = version + 1,
                updated_at = {} WHERE id = $1",
            now_sql(3)
        ),
        &[&id.as_str(), &waiting, &now],
    )
    .await?;
    Ok(())
}

/// The advisory-lock key of task `id` in schema `s` (FNV-1a; a collision only serialises two
/// tasks' graph writes more than needed).
///
/// A task's completion and its deletion hold it exclusively for their transaction; a creation
/// that refers to it, an edge added to or removed from it, hold it shared, and read its status
/// after. So whichever comes second sees what the first did: the new task counts a completed
/// dependency as done, or the completion's release (a later statement) sees the new edge. Row
/// locks would do the same, but a share lock on a task's row also blocks the release that
/// decrements that task's own count, and two such waits in opposite order deadlock.
pub(crate) fn task_lock_key(s: &str, id: &TaskId) -> i64 {
    task_lock_key_str(s, id.as_str())
}

fn task_lock_key_str(s: &str, id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "oc-postgres task "
        .bytes()
        .chain(s.bytes())
        .chain([0])
        .chain(id.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// The advisory-lock key that serialises edge additions in schema `s` (FNV-1a).
fn graph_lock_key(s: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "oc-postgres graph ".bytes().chain(s.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Whether `e` is a second holder of a unique key refused by `tasks_unique_key`.
fn is_unique_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().and_then(|d| d.constraint()) == Some("tasks_unique_key")
}

/// The error of an insert that failed: a duplicate id names the id.
fn insert_error(f: Failure, first: Option<TaskId>) -> Error {
    match f {
        Failure::Pg(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            // "Key (id)=(x) already exists."
            let id = e
                .as_db_error()
                .and_then(|d| d.detail())
                .and_then(|d| d.split_once("=(").map(|(_, r)| r))
                .and_then(|r| r.split_once(')').map(|(id, _)| id.to_owned()))
                .and_then(|id| TaskId::new(id).ok())
                .or(first);
            match id {
                Some(id) => Error::AlreadyExists { id },
                None => task_error(Failure::Pg(e)),
            }
        }
        f => task_error(f),
    }
}

/// The column arrays of the insert statement: each parameter is one column of every row.
fn insert_params(tasks: &[Task], waiting: &[i32]) -> Result<Params> {
    let mut arrays: Params = Vec::with_capacity(27);
    macro_rules! column {
        ($ty:ty, $get:expr) => {{
            let v: Vec<$ty> = tasks.iter().map($get).collect();
            arrays.push(Box::new(v));
        }};
    }
    let ts = |t: Option<Timestamp>| t.map(|t| t.as_millis());
    column!(String, |t: &Task| t.id.to_string());
    column!(String, |t: &Task| t.name.clone());
    column!(Option<String>, |t: &Task| t.description.clone());
    column!(String, |t: &Task| t.status.as_str().to_owned());
    column!(Option<String>, |t: &Task| t.owner.clone());
    column!(i32, |t: &Task| t.priority);
    column!(String, metadata_text);
    let results = tasks.iter().map(result_text).collect::<Result<Vec<_>>>()?;
    arrays.push(Box::new(results));
    column!(Option<String>, |t: &Task| t.error.clone());
    column!(i64, |t: &Task| i64::from(t.attempts));
    column!(i64, |t: &Task| i64::from(t.max_attempts));
    column!(i64, |t: &Task| i64_of(t.version));
    column!(i64, |t: &Task| t.created_at.as_millis());
    column!(i64, |t: &Task| t.updated_at.as_millis());
    column!(Option<i64>, |t: &Task| ts(t.started_at));
    column!(Option<i64>, |t: &Task| ts(t.finished_at));
    column!(Option<i64>, |t: &Task| t.lease.map(|l| i64_of(l.token)));
    column!(Option<i64>, |t: &Task| ts(t.lease.map(|l| l.expires_at)));
    column!(Option<String>, |t: &Task| t
        .parent
        .as_ref()
        .map(|p| p.to_string()));
    column!(String, |t: &Task| serde_json::Value::from(t.labels.clone())
        .to_string());
    column!(Option<i64>, |t: &Task| ts(t.run_at));
    column!(Option<i64>, |t: &Task| retry_columns(&t.retry).0);
    column!(Option<i64>, |t: &Task| retry_columns(&t.retry).1);
    column!(Option<i32>, |t: &Task| retry_columns(&t.retry)
        .2
        .and_then(|j| i32::try_from(j).ok()));
    column!(Option<String>, |t: &Task| t
        .unique
        .as_ref()
        .map(|u| u.key.clone()));
    column!(Option<String>, |t: &Task| t
        .unique
        .as_ref()
        .map(|u| u.scope.as_str().to_owned()));
    arrays.push(Box::new(waiting.to_vec()));
    Ok(arrays)
}

/// The WHERE clause and parameters of a filter, with an optional cursor.
/// (The table is aliased `t`; readiness is judged at `now`, or the database's time.)
fn where_clause(
    filter: &TaskFilter,
    after: Option<(&oc_tasks::Cursor, Order)>,
    now: Option<i64>,
    s: &str,
) -> (String, Params) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Params = Vec::new();
    let p = |v: Box<dyn ToSql + Sync + Send>, params: &mut Params| {
        params.push(v);
        format!("${}", params.len())
    };
    if let Some(r) = filter.readiness {
        p(Box::new(now), &mut params);
        let now = now_sql(params.len());
        conds.push(match r {
            Readiness::Ready => ready_sql("t", &now),
            Readiness::Blocked => {
                format!("t.status = 'pending' AND (t.waiting > 0 OR t.run_at > {now})")
            }
        });
    }
    if !filter.labels.all.is_empty() {
        let m = p(Box::new(filter.labels.all.clone()), &mut params);
        conds.push(format!("t.labels @> {m}::text[]"));
    }
    if !filter.labels.none.is_empty() {
        let m = p(Box::new(filter.labels.none.clone()), &mut params);
        conds.push(format!("NOT (t.labels && {m}::text[])"));
    }
    if let Some(parent) = &filter.parent {
        let m = p(Box::new(parent.to_string()), &mut params);
        conds.push(format!("t.parent = {m}"));
    }
    if let Some(d) = &filter.dependents_of {
        let m = p(Box::new(d.to_string()), &mut params);
        conds.push(format!(
            "t.id IN (SELECT d.task_id FROM {s}.task_deps d WHERE d.depends_on = {m})"
        ));
    }
    if !filter.statuses.is_empty() {
        let v: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        conds.push(format!(
            "status = ANY({}::text[])",
            p(Box::new(v), &mut params)
        ));
    }
    if let Some(o) = &filter.owner {
        conds.push(format!("owner = {}", p(Box::new(o.clone()), &mut params)));
    }
    if let Some(f) = filter.created_from {
        conds.push(format!(
            "created_at >= {}",
            p(Box::new(f.as_millis()), &mut params)
        ));
    }
    if let Some(t) = filter.created_to {
        conds.push(format!(
            "created_at < {}",
            p(Box::new(t.as_millis()), &mut params)
        ));
    }
    if let Some(s) = &filter.search {
        // SQLite's LIKE ignores ASCII case; ILIKE does too.
        let m = p(Box::new(like_anywhere(s)), &mut params);
        conds.push(format!(
            "(name ILIKE {m} ESCAPE '\\' OR description ILIKE {m} ESCAPE '\\' OR metadata ILIKE {m} ESCAPE '\\')"
        ));
    }
    if let Some((c, order)) = after {
        let (prio, created, id) = cursor_position(c);
        let created = p(Box::new(created.as_millis()), &mut params);
        let id = p(Box::new(id.to_string()), &mut params);
        conds.push(after_sql(order, &created, &id, || {
            p(Box::new(prio), &mut params)
        }));
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (sql, params)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl TaskStore for PgTaskStore {
    fn submit_many(&self, new: Vec<NewTask>) -> Result<Vec<Created>> {
        let now = self.db_now()?;
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let graph = tasks
            .iter()
            .any(|t| !t.depends_on.is_empty() || t.parent.is_some() || t.unique.is_some());
        if graph {
            return self.submit_graph(tasks);
        }
        // Without edges or keys, only ids can clash: one statement.
        plan_submit(tasks.clone(), |_| Ok(None), |_| Ok(false))?;
        self.insert(&tasks)?;
        let created: Vec<Created> = tasks
            .into_iter()
            .map(|task| Created {
                task,
                duplicate: false,
            })
            .collect();
        trace_created(&created);
        Ok(created)
    }

    fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        Ok(self.read(id)?.0)
    }

    fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
        validate_change(&change)?;
        for _ in 0..CAS_ATTEMPTS {
            let (prev, now) = self.read(id)?;
            let prev = prev.ok_or_else(|| Error::NotFound { id: id.clone() })?;
            let mut took = false;
            let mut next = transition(&prev, &change, expect, now, || {
                took = true;
                0
            })?;
            match self.cas(&prev, &next, took, false)? {
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
        Err(Error::Backend {
            backend: "postgres",
            message: format!("task {id} kept changing under {CAS_ATTEMPTS} attempts to write it"),
            retryable: true,
        })
    }

    fn claim_many(
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
        validate_change(&change)?;
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
                let sql = claim_sql(&self.table_schema(), true);
                self.call("claim_many", move |c| async move {
                    c.client
                        .query(&sql, &[&owner, &ttl_ms, &now, &all, &none, &n])
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
                        kind: HistoryKind::Claimed,
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

    fn add_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        let (s, now) = (self.table_schema(), self.clock_ms());
        let (task, on) = (task.clone(), on.clone());
        self.graph_tx("add_dependency", move |t| {
            Box::pin(async move {
                // Edges are added one at a time: two could close a cycle together.
                t.execute("SELECT pg_advisory_xact_lock($1)", &[&graph_lock_key(&s)])
                    .await?;
                // The dependency's task lock (shared), then its status, then the task's row.
                let on_status = shared_status(t, &s, &on).await?;
                let Some(prev) = lock_task(t, &s, &task).await? else {
                    return Err(Error::NotFound { id: task }.into());
                };
                if task == on {
                    return Err(Error::Cycle {
                        cycle: vec![task.clone(), task],
                    }
                    .into());
                }
                let Some(on_status) = on_status else {
                    return Err(Error::MissingReference {
                        field: "depends_on",
                        id: on,
                    }
                    .into());
                };
                if prev.depends_on.contains(&on) {
                    return Ok(prev);
                }
                let mut path = None;
                let mut frontier = vec![on.clone()];
                let mut edges: Vec<(TaskId, TaskId)> = Vec::new();
                // Breadth first, one query per level, then the shared path search.
                let mut seen: HashSet<TaskId> = HashSet::from([on.clone()]);
                while !frontier.is_empty() && path.is_none() {
                    let ids: Vec<String> = frontier.iter().map(|f| f.to_string()).collect();
                    let rows = t
                        .query(
                            &format!(
                                "SELECT task_id, depends_on FROM {s}.task_deps
                                 WHERE task_id = ANY($1::text[])"
                            ),
                            &[&ids],
                        )
                        .await?;
                    frontier.clear();
                    for r in rows {
                        let (a, b): (String, String) = (r.get(0), r.get(1));
                        let (Ok(a), Ok(b)) = (TaskId::new(a.clone()), TaskId::new(b)) else {
                            return Err(corrupt(&a, "bad edge").into());
                        };
                        if seen.insert(b.clone()) {
                            frontier.push(b.clone());
                        }
                        edges.push((a, b));
                    }
                    if seen.contains(&task) {
                        path = find_path(&on, &task, |f| {
                            Ok(edges
                                .iter()
                                .filter(|(a, _)| f.contains(a))
                                .cloned()
                                .collect())
                        })?;
                    }
                }
                if let Some(path) = path {
                    return Err(cycle_error(&task, path).into());
                }
                t.execute(
                    &format!("INSERT INTO {s}.task_deps (task_id, depends_on) VALUES ($1, $2)"),
                    &[&task.as_str(), &on.as_str()],
                )
                .await?;
                let blocks = i32::from(on_status != "completed");
                touch(t, &s, &task, now, blocks).await?;
                lock_task(t, &s, &task)
                    .await?
                    .ok_or_else(|| Error::NotFound { id: task }.into())
            })
        })
    }

    fn remove_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        let (s, now) = (self.table_schema(), self.clock_ms());
        let (task, on) = (task.clone(), on.clone());
        self.graph_tx("remove_dependency", move |t| {
            Box::pin(async move {
                let on_status = shared_status(t, &s, &on).await?;
                let Some(prev) = lock_task(t, &s, &task).await? else {
                    return Err(Error::NotFound { id: task }.into());
                };
                let removed = t
                    .execute(
                        &format!(
                            "DELETE FROM {s}.task_deps WHERE task_id = $1 AND depends_on = $2"
                        ),
                        &[&task.as_str(), &on.as_str()],
                    )
                    .await?;
                if removed == 0 {
                    return Ok(prev);
                }
                let unblocks = i32::from(on_status.as_deref() != Some("completed"));
                touch(t, &s, &task, now, -unblocks).await?;
                lock_task(t, &s, &task)
                    .await?
                    .ok_or_else(|| Error::NotFound { id: task }.into())
            })
        })
    }

    fn delete_with(
        &self,
        id: &TaskId,
        expect: Option<u64>,
        on_dependents: OnDependents,
    ) -> Result<Vec<Task>> {
        let (s, now) = (self.table_schema(), self.clock_ms());
        let id = id.clone();
        self.graph_tx("delete", move |t| {
            Box::pin(async move {
                t.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    &[&task_lock_key(&s, &id)],
                )
                .await?;
                let Some(prev) = lock_task(t, &s, &id).await? else {
                    return Err(Error::NotFound { id }.into());
                };
                if let Some(expected) = expect
                    && expected != prev.version
                {
                    return Err(Error::VersionMismatch {
                        id,
                        expected,
                        actual: prev.version,
                    }
                    .into());
                }
                let below_sql = format!(
                    "SELECT task_id FROM {s}.task_deps WHERE depends_on = $1
                     UNION SELECT id FROM {s}.tasks WHERE parent = $1 ORDER BY 1"
                );
                let mut doomed = vec![prev];
                let mut i = 0;
                while i < doomed.len() {
                    let below: Vec<TaskId> = t
                        .query(&below_sql, &[&doomed[i].id.as_str()])
                        .await?
                        .iter()
                        .filter_map(|r| TaskId::new(r.get::<_, String>(0)).ok())
                        .collect();
                    if !below.is_empty() && on_dependents == OnDependents::Refuse {
                        return Err(Error::HasDependents {
                            id,
                            dependents: below,
                        }
                        .into());
                    }
                    if on_dependents == OnDependents::Cascade {
                        for d in below {
                            if doomed.iter().any(|x| x.id == d) {
                                continue;
                            }
                            t.execute(
                                "SELECT pg_advisory_xact_lock($1)",
                                &[&task_lock_key(&s, &d)],
                            )
                            .await?;
                            if let Some(x) = lock_task(t, &s, &d).await? {
                                doomed.push(x);
                            }
                        }
                    }
                    i += 1;
                }
                let gone: Vec<String> = doomed.iter().map(|x| x.id.to_string()).collect();
                for x in &doomed {
                    let xid = x.id.as_str();
                    // Whoever is left stops waiting for it and loses it as a parent.
                    let unblocks = i32::from(x.status != TaskStatus::Completed);
                    t.execute(
                        &format!(
                            "UPDATE {s}.tasks SET waiting = waiting - $3, version = version + 1,
                                updated_at = {now_ms}
                             WHERE id IN (SELECT id FROM {s}.tasks
                                          WHERE id IN (SELECT task_id FROM {s}.task_deps
                                                       WHERE depends_on = $1)
                                            AND NOT (id = ANY($2::text[]))
                                          ORDER BY id FOR UPDATE)",
                            now_ms = now_sql(4)
                        ),
                        &[&xid, &gone, &unblocks, &now],
                    )
                    .await?;
                    t.execute(
                        &format!(
                            "UPDATE {s}.tasks SET parent = NULL, version = version + 1,
                                updated_at = {now_ms}
                             WHERE id IN (SELECT id FROM {s}.tasks
                                          WHERE parent = $1 AND NOT (id = ANY($2::text[]))
                                          ORDER BY id FOR UPDATE)",
                            now_ms = now_sql(3)
                        ),
                        &[&xid, &gone, &now],
                    )
                    .await?;
                    t.execute(
                        &format!(
                            "WITH e AS (DELETE FROM {s}.task_deps
                                        WHERE task_id = $1 OR depends_on = $1),
                                  h AS (DELETE FROM {s}.task_history WHERE task_id = $1)
                             DELETE FROM {s}.tasks WHERE id = $1"
                        ),
                        &[&xid],
                    )
                    .await?;
                }
                Ok(doomed)
            })
        })
    }

    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
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
                && let Cas::Written(_) = self.cas(&prev, &x.task, false, true)?
            {
                reaped.push(x);
            }
        }
        Ok(reaped)
    }

    fn list(&self, query: &TaskQuery) -> Result<TaskPage> {
        validate_query(query)?;
        let table = self.table_schema();
        let (cond, mut params) = where_clause(
            &query.filter,
            query.after.as_ref().map(|c| (c, query.order)),
            self.clock_ms(),
            &table,
        );
        params.push(Box::new(i64::try_from(query.limit + 1).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {} FROM {table}.tasks t{cond}{} LIMIT ${}",
            select_cols(&table, "t"),
            order_by_sql(query.order),
            params.len()
        );
        let rows = self.call("list", move |c| async move {
            c.client.query(&sql, &refs(&params)).await
        })?;
        let tasks = rows
            .iter()
            .map(|r| row_task(r, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(tasks, query.limit))
    }

    fn count(&self, filter: &TaskFilter) -> Result<u64> {
        filter.labels.validate()?;
        let table = self.table_schema();
        let (cond, params) = where_clause(filter, None, self.clock_ms(), &table);
        let sql = format!("SELECT count(*) FROM {table}.tasks t{cond}");
        let row = self.call("count", move |c| async move {
            c.client.query_one(&sql, &refs(&params)).await
        })?;
        Ok(to_u64(row.try_get(0).map_err(|e| corrupt("(count)", e))?))
    }

    fn stats(&self, recent: usize) -> Result<TaskStats> {
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

    fn counts(&self, cap: u64) -> Result<TaskCounts> {
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

    fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>> {
        let sid = id.to_string();
        let row = self.call("history", move |c| async move {
            c.client.query_one(&c.stmts.history, &[&sid]).await
        })?;
        let bad = |e: String| corrupt(id.as_str(), e);
        let exists: bool = row.try_get(0).map_err(|e| bad(e.to_string()))?;
        if !exists {
            return Err(Error::NotFound { id: id.clone() });
        }
        let text: String = row.try_get(1).map_err(|e| bad(e.to_string()))?;
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        rows.iter()
            .map(|r| {
                let text = |i: usize| r[i].as_str().map(str::to_owned);
                let status = |t: String| t.parse::<TaskStatus>().map_err(|e| bad(e.to_string()));
                Ok(HistoryEntry {
                    task: id.clone(),
                    version: r[0].as_u64().unwrap_or(0),
                    at: Timestamp::from_millis(r[1].as_i64().unwrap_or(0)),
                    kind: text(2).unwrap_or_default().parse().map_err(bad)?,
                    from: text(3).map(status).transpose()?,
                    to: status(text(4).unwrap_or_default())?,
                    actor: text(5),
                    token: r[6].as_u64(),
                    error: text(7),
                })
            })
            .collect()
    }

    fn now(&self) -> Timestamp {
        // The trait cannot fail here; an unreachable server falls back to this host's clock,
        // and the next operation reports the failure.
        self.db_now().unwrap_or_else(|_| Timestamp::now())
    }
}

/// What `oc db stats` shows of a PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PgStorageStats {
    /// `SELECT version()`.
    pub server_version: String,
    /// The database's size on disk.
    pub database_bytes: u64,
    /// The tasks table with its indexes and TOAST.
    pub tasks_bytes: u64,
    /// Buffer hits of the database since the server's statistics were reset.
    pub cache_hits: u64,
    /// Blocks read from disk (or the OS cache) instead.
    pub cache_reads: u64,
    /// The server's block (page) size.
    pub block_size: u64,
}

impl StorageSource for PgTaskStore {
    /// The database's size in its block size, buffer hits and reads (the whole database's,
    /// since the server's statistics were reset), and this client's slow calls; PostgreSQL has
    /// no free list or WAL file of the database's own to report.
    fn storage_stats(&self) -> Result<StorageStats> {
        let st = self.server_stats()?;
        let block = st.block_size.max(1);
        Ok(StorageStats {
            path: std::path::PathBuf::from(format!("postgresql://{}", self.opts.target())),
            file_bytes: st.database_bytes,
            wal_bytes: 0,
            page_count: st.database_bytes / block,
            page_size: block,
            freelist_count: 0,
            cache_hits: st.cache_hits,
            cache_misses: st.cache_reads,
            slow_statements: self.slow.count.load(std::sync::atomic::Ordering::Relaxed),
            slow_threshold_ms: u64::try_from(self.slow.threshold.as_millis()).unwrap_or(u64::MAX),
            recent_slow: self.slow.recent.lock().iter().cloned().collect(),
        })
    }
}

impl PgTaskStore {
    /// Server version, sizes and cache figures.
    pub fn server_stats(&self) -> Result<PgStorageStats> {
        self.storage_stats_pg()
    }

    /// Server version, sizes and cache figures.
    fn storage_stats_pg(&self) -> Result<PgStorageStats> {
        let table = format!("{}.tasks", self.table_schema());
        let row = self.call("storage_stats", move |c| async move {
            c.client
                .query_one(
                    "SELECT version(), pg_database_size(current_database()),
                        pg_total_relation_size($1::text::regclass),
                        coalesce(blks_hit, 0), coalesce(blks_read, 0),
                        current_setting('block_size')::bigint
                     FROM pg_stat_database WHERE datname = current_database()",
                    &[&table],
                )
                .await
        })?;
        let n = |i: usize| -> Result<u64> {
            let v: i64 = row.try_get(i).map_err(|e| corrupt("(stats)", e))?;
            Ok(to_u64(v))
        };
        Ok(PgStorageStats {
            server_version: row.try_get(0).map_err(|e| corrupt("(stats)", e))?,
            database_bytes: n(1)?,
            tasks_bytes: n(2)?,
            cache_hits: n(3)?,
            cache_reads: n(4)?,
            block_size: n(5)?,
        })
    }

    /// Checks what the schema's constraints cannot: the token counter lies at or above every
    /// lease token in use (else a token could be handed out twice), every task's count of
    /// unfinished dependencies matches its edges (else it would be handed out too early, or
    /// never), and the kept counts by status match the tasks. Returns the problems found.
    pub fn check(&self) -> Result<Vec<String>> {
        let s = self.table_schema();
        let sql = format!(
            "SELECT (SELECT value FROM {s}.tasks_meta WHERE key = 'lease_token'),
                    (SELECT coalesce(max(lease_token), 0) FROM {s}.tasks),
                    ARRAY(SELECT t.id FROM {s}.tasks t WHERE t.waiting <> (
                        SELECT count(*) FROM {s}.task_deps d JOIN {s}.tasks x ON x.id = d.depends_on
                        WHERE d.task_id = t.id AND x.status <> 'completed') ORDER BY 1 LIMIT 10),
                    ARRAY(SELECT format('%s is %s, the tasks say %s', s, coalesce(k.n, 0),
                                        coalesce(t.n, 0))
                          FROM (SELECT status AS s, sum(delta) AS n FROM {s}.task_counts
                                GROUP BY status) k
                          FULL JOIN (SELECT status AS s, count(*) AS n FROM {s}.tasks
                                     GROUP BY status) t USING (s)
                          WHERE coalesce(k.n, 0) <> coalesce(t.n, 0) ORDER BY 1)"
        );
        let row = self.call("check", move |c| async move {
            c.client.query_one(&sql, &[]).await
        })?;
        let (counter, max, miscounted): (i64, i64, Vec<String>) = (
            row.try_get(0).map_err(|e| corrupt("(check)", e))?,
            row.try_get(1).map_err(|e| corrupt("(check)", e))?,
            row.try_get(2).map_err(|e| corrupt("(check)", e))?,
        );
        let mut problems = Vec::new();
        if counter < max {
            problems.push(format!(
                "the lease-token counter ({counter}) is below a token in use ({max})"
            ));
        }
        if !miscounted.is_empty() {
            problems.push(format!(
                "unfinished dependencies miscounted on {}",
                miscounted.join(", ")
            ));
        }
        let off: Vec<String> = row.try_get(3).map_err(|e| corrupt("(check)", e))?;
        if !off.is_empty() {
            problems.push(format!("tasks by status miscounted: {}", off.join("; ")));
        }
        Ok(problems)
    }

    /// Folds the rows of changes to the counts by status into one row per status (unless
    /// another call is folding them at this moment).
    fn fold(&self) -> Result<()> {
        let key = task_lock_key_str(&self.table_schema(), "");
        self.pool
            .call(move |c| async move { c.client.execute(&c.stmts.fold, &[&key]).await })
            .map(drop)
            .map_err(task_error)
    }

    /// The quoted schema, for the statements built per call.
    fn table_schema(&self) -> String {
        format!("\"{}\"", self.opts.schema)
    }
}
