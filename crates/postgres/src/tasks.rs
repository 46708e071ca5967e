//! `PgTaskStore`: the task store on PostgreSQL, shared by agents on many machines.

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::backend::{
    after_sql, cursor_position, finished_run, like_anywhere, metadata_text, order_by_sql, page,
    validate_change, validate_query,
};
use oc_tasks::{
    Change, Error, HistoryEntry, Lease, NewTask, Order, RUN_BUCKETS_MS, ReapedTask, Result,
    RunDurations, SlowStatement, StorageSource, StorageStats, Task, TaskFilter, TaskId, TaskPage,
    TaskQuery, TaskStats, TaskStatus, TaskStore, TaskSummary, Timestamp, reap, transition,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::client::{Failure, PgOptions, Pool, Prepare, task_error};
use crate::schema::migrate;

const COMPONENT: &str = "oc-tasks";

/// Each entry moves the schema one version up; `{s}` is the schema. Never edit a shipped entry.
const MIGRATIONS: &[&str] = &[
    // 1: tasks as in SQLite (timestamps in milliseconds, metadata and result as JSON text),
    // counters, the lease-token counter and the run-duration buckets.
    "CREATE TABLE {s}.tasks (
        id               text COLLATE \"C\" PRIMARY KEY,
        name             text NOT NULL,
        description      text,
        status           text NOT NULL
                         CHECK (status IN ('pending','running','completed','failed','cancelled')),
        owner            text COLLATE \"C\",
        priority         integer NOT NULL,
        metadata         text NOT NULL,
        result           text,
        error            text,
        attempts         bigint NOT NULL,
        max_attempts     bigint NOT NULL,
        version          bigint NOT NULL,
        created_at       bigint NOT NULL,
        updated_at       bigint NOT NULL,
        started_at       bigint,
        finished_at      bigint,
        lease_token      bigint,
        lease_expires_at bigint,
        CHECK ((status = 'running') OR (lease_token IS NULL AND lease_expires_at IS NULL))
    );
    CREATE INDEX tasks_ready ON {s}.tasks (status, priority DESC, created_at, id);
    CREATE INDEX tasks_owner ON {s}.tasks (owner);
    CREATE INDEX tasks_created ON {s}.tasks (created_at, id);
    CREATE INDEX tasks_lease ON {s}.tasks (lease_expires_at) WHERE status = 'running';
    CREATE TABLE {s}.tasks_meta (key text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO {s}.tasks_meta (key, value) VALUES
        ('lease_token', 0), ('entered_pending', 0), ('entered_running', 0),
        ('entered_completed', 0), ('entered_failed', 0), ('entered_cancelled', 0),
        ('run_le_1000', 0), ('run_le_5000', 0), ('run_le_10000', 0), ('run_le_30000', 0),
        ('run_le_60000', 0), ('run_le_300000', 0), ('run_le_inf', 0), ('run_ms_sum', 0);",
    // 2: each task's history of status transitions, written in the statement of each.
    "CREATE TABLE {s}.task_history (
        task_id     text COLLATE \"C\" NOT NULL,
        version     bigint NOT NULL,
        at          bigint NOT NULL,
        kind        text NOT NULL,
        from_status text,
        to_status   text NOT NULL,
        actor       text,
        token       bigint,
        error       text,
        PRIMARY KEY (task_id, version)
    );",
];

const COLS: &str = "id, name, description, status, owner, priority, metadata, result, error, \
    attempts, max_attempts, version, created_at, updated_at, started_at, finished_at, \
    lease_token, lease_expires_at";

/// The database clock in milliseconds, unless the caller passed a time (`$n`).
fn now_sql(n: usize) -> String {
    format!("coalesce(${n}::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)")
}

/// How often a transition is recomputed when another writer changed the task in between.
const CAS_ATTEMPTS: usize = 32;

/// The one statement `claim_next` runs (`$1` owner, `$2` lease in milliseconds, `$3` the
/// time or NULL for the database's), with the schema `s` quoted.
pub(crate) fn claim_next_sql(s: &str) -> String {
    let cols = COLS
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH n AS (SELECT {} AS ms),
                    next AS MATERIALIZED (
                        SELECT id FROM {s}.tasks WHERE status = 'pending'
                        ORDER BY priority DESC, created_at, id LIMIT 1
                        FOR UPDATE SKIP LOCKED
                    ), tok AS (
                        UPDATE {s}.tasks_meta SET value = value + 1
                        WHERE key = 'lease_token' AND EXISTS (SELECT 1 FROM next) RETURNING value
                    ), upd AS (
                        UPDATE {s}.tasks t SET status = 'running', owner = $1,
                            attempts = t.attempts + 1, started_at = n.ms, finished_at = NULL,
                            lease_token = (SELECT value FROM tok),
                            lease_expires_at = n.ms + $2::bigint,
                            version = t.version + 1, updated_at = n.ms
                        FROM next, n
                        WHERE t.id = next.id AND t.status = 'pending'
                        RETURNING {}
                    ), ent AS (
                        UPDATE {s}.tasks_meta SET value = value + 1
                        WHERE key = 'entered_running' AND EXISTS (SELECT 1 FROM upd)
                    ), hist AS (
                        INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
                            to_status, actor, token)
                        SELECT id, version, updated_at, 'claimed', 'pending', 'running', owner,
                            lease_token
                        FROM upd
                    )
                    SELECT {COLS} FROM upd",
        now_sql(3),
        cols
    )
}

pub(crate) struct TaskStatements {
    read: Statement,
    now: Statement,
    cas: Statement,
    insert: Statement,
    claim_next: Statement,
    delete: Statement,
    expired: Statement,
    stats: Statement,
    history: Statement,
}

impl Prepare for TaskStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let cols = |prefix: &str| {
            COLS.split(", ")
                .map(|c| format!("{prefix}{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(TaskStatements {
            read: c
                .prepare(&format!(
                    "SELECT n.ms, {} FROM (SELECT {} AS ms) n LEFT JOIN {s}.tasks t ON t.id = $1",
                    cols("t."),
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
                            lease_expires_at = $18
                        WHERE id = $1 AND version = $19 AND status = $20
                        RETURNING lease_token
                    ), ent AS (
                        UPDATE {s}.tasks_meta SET value = value + 1
                        WHERE key = $22::text AND EXISTS (SELECT 1 FROM upd)
                    ), run AS (
                        UPDATE {s}.tasks_meta
                        SET value = value + CASE WHEN key = 'run_ms_sum' THEN $24::bigint ELSE 1 END
                        WHERE $23::text <> '' AND key IN ($23::text, 'run_ms_sum')
                          AND EXISTS (SELECT 1 FROM upd)
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
                        INSERT INTO {s}.tasks ({COLS})
                        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                            $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::int8[],
                            $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[],
                            $16::int8[], $17::int8[], $18::int8[])
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
            claim_next: c.prepare(&claim_next_sql(&s)).await?,
            delete: c
                .prepare(&format!(
                    "WITH d AS (
                        DELETE FROM {s}.tasks WHERE id = $1 AND version = $2 RETURNING id
                    ), h AS (
                        DELETE FROM {s}.task_history WHERE task_id IN (SELECT id FROM d)
                    )
                    SELECT id FROM d"
                ))
                .await?,
            expired: c
                .prepare(&format!(
                    "SELECT {COLS} FROM {s}.tasks
                     WHERE status = 'running' AND lease_expires_at <= $1 ORDER BY id"
                ))
                .await?,
            stats: c
                .prepare(&format!(
                    "SELECT
                      (SELECT coalesce(json_agg(json_build_array(status, n)), '[]')
                         FROM (SELECT status, count(*) AS n FROM {s}.tasks GROUP BY status) a)::text,
                      (SELECT coalesce(json_agg(json_build_array(owner, n)
                                ORDER BY n DESC, owner NULLS FIRST), '[]')
                         FROM (SELECT owner, count(*) AS n FROM {s}.tasks GROUP BY owner) b)::text,
                      (SELECT coalesce(json_agg(json_build_array(id, name, status, created_at)
                                ORDER BY created_at DESC, id DESC), '[]')
                         FROM (SELECT id, name, status, created_at FROM {s}.tasks
                               ORDER BY created_at DESC, id DESC LIMIT $1) c)::text,
                      (SELECT json_object_agg(key, value) FROM {s}.tasks_meta)::text"
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
/// - `claim_next` is one statement: the next pending task locked with `FOR UPDATE SKIP LOCKED`
///   in a materialised CTE, the state re-checked in the `UPDATE`, so two hosts never claim the
///   same task.
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
        recent.push_back(SlowStatement {
            sql: op.to_owned(),
            duration_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            at: now_ms.map_or_else(Timestamp::now, Timestamp::from_millis),
        });
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
    let id: String = r.try_get(at).map_err(get_err)?;
    let u =
        |v: i64, what: &str| u64::try_from(v).map_err(|_| corrupt(&id, format!("negative {what}")));
    let u32_ =
        |v: i64, what: &str| u32::try_from(v).map_err(|_| corrupt(&id, format!("bad {what}")));
    let status: String = r.try_get(at + 3).map_err(get_err)?;
    let metadata: String = r.try_get(at + 6).map_err(get_err)?;
    let result: Option<String> = r.try_get(at + 7).map_err(get_err)?;
    let token: Option<i64> = r.try_get(at + 16).map_err(get_err)?;
    let expires: Option<i64> = r.try_get(at + 17).map_err(get_err)?;
    let opt_ts = |v: Option<i64>| v.map(Timestamp::from_millis);
    Ok(Task {
        status: status.parse().map_err(|e| corrupt(&id, e))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| corrupt(&id, e))?,
        result: result
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt(&id, e))?,
        name: r.try_get(at + 1).map_err(get_err)?,
        description: r.try_get(at + 2).map_err(get_err)?,
        owner: r.try_get(at + 4).map_err(get_err)?,
        priority: r.try_get(at + 5).map_err(get_err)?,
        error: r.try_get(at + 8).map_err(get_err)?,
        attempts: u32_(r.try_get(at + 9).map_err(get_err)?, "attempts")?,
        max_attempts: u32_(r.try_get(at + 10).map_err(get_err)?, "max_attempts")?,
        version: u(r.try_get(at + 11).map_err(get_err)?, "version")?,
        created_at: Timestamp::from_millis(r.try_get(at + 12).map_err(get_err)?),
        updated_at: Timestamp::from_millis(r.try_get(at + 13).map_err(get_err)?),
        started_at: opt_ts(r.try_get(at + 14).map_err(get_err)?),
        finished_at: opt_ts(r.try_get(at + 15).map_err(get_err)?),
        lease: match (token, expires) {
            (Some(t), Some(e)) => Some(Lease {
                token: u(t, "lease token")?,
                expires_at: Timestamp::from_millis(e),
            }),
            _ => None,
        },
        id: TaskId::new(id.clone()).map_err(|e| corrupt(&id, e))?,
    })
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
        f: impl FnOnce(Arc<crate::client::Conn<TaskStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        let started = std::time::Instant::now();
        let out = self.pool.call(f).map_err(task_error);
        self.slow.record(op, started.elapsed(), self.clock_ms());
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
        let rows = self.call("cas", move |c| async move {
            c.client.query(&c.stmts.cas, &refs(&p)).await
        })?;
        Ok(match rows.first() {
            None => Cas::Lost,
            Some(r) => {
                let token: Option<i64> = r.try_get(0).map_err(|e| corrupt("(token)", e))?;
                Cas::Written(token.and_then(|t| u64::try_from(t).ok()))
            }
        })
    }

    fn insert(&self, tasks: &[Task]) -> Result<()> {
        // Column arrays for `unnest`: each parameter is one column of every row.
        let mut arrays: Params = Vec::with_capacity(18);
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
        let first = tasks.first().map(|t| t.id.clone());
        let out = self
            .pool
            .call(move |c| async move { c.client.execute(&c.stmts.insert, &refs(&arrays)).await });
        match out {
            Ok(_) => Ok(()),
            Err(Failure::Pg(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                // "Key (id)=(x) already exists."
                let id = e
                    .as_db_error()
                    .and_then(|d| d.detail())
                    .and_then(|d| d.split_once("=(").map(|(_, r)| r))
                    .and_then(|r| r.split_once(')').map(|(id, _)| id.to_owned()))
                    .and_then(|id| TaskId::new(id).ok())
                    .or(first);
                match id {
                    Some(id) => Err(Error::AlreadyExists { id }),
                    None => Err(task_error(Failure::Pg(e))),
                }
            }
            Err(f) => Err(task_error(f)),
        }
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

/// The WHERE clause and parameters of a filter, with an optional cursor.
fn where_clause(
    filter: &TaskFilter,
    after: Option<(&oc_tasks::Cursor, Order)>,
) -> (String, Params) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Params = Vec::new();
    let p = |v: Box<dyn ToSql + Sync + Send>, params: &mut Params| {
        params.push(v);
        format!("${}", params.len())
    };
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
    fn create(&self, new: NewTask) -> Result<Task> {
        let t = new.into_task(self.db_now()?)?;
        self.insert(std::slice::from_ref(&t))?;
        Ok(t)
    }

    fn create_many(&self, new: Vec<NewTask>) -> Result<Vec<Task>> {
        let now = self.db_now()?;
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        if tasks.is_empty() {
            return Ok(tasks);
        }
        self.insert(&tasks)?;
        Ok(tasks)
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

    fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Task>> {
        let change = Change::Claim {
            owner: owner.into(),
            ttl,
        };
        validate_change(&change)?;
        let owner = owner.to_owned();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock_ms();
        let rows = self.call("claim_next", move |c| async move {
            c.client
                .query(&c.stmts.claim_next, &[&owner, &ttl_ms, &now])
                .await
        })?;
        rows.first().map(|r| row_task(r, 0)).transpose()
    }

    fn delete(&self, id: &TaskId, expect: Option<u64>) -> Result<Task> {
        for _ in 0..CAS_ATTEMPTS {
            let prev = self
                .read(id)?
                .0
                .ok_or_else(|| Error::NotFound { id: id.clone() })?;
            if let Some(expected) = expect
                && expected != prev.version
            {
                return Err(Error::VersionMismatch {
                    id: id.clone(),
                    expected,
                    actual: prev.version,
                });
            }
            let (sid, version) = (id.to_string(), i64_of(prev.version));
            let n = self.call("delete", move |c| async move {
                c.client.query(&c.stmts.delete, &[&sid, &version]).await
            })?;
            if !n.is_empty() {
                return Ok(prev);
            }
        }
        Err(Error::Backend {
            backend: "postgres",
            message: format!("task {id} kept changing under {CAS_ATTEMPTS} attempts to delete it"),
            retryable: true,
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
        let (cond, mut params) = where_clause(
            &query.filter,
            query.after.as_ref().map(|c| (c, query.order)),
        );
        params.push(Box::new(i64::try_from(query.limit + 1).unwrap_or(i64::MAX)));
        let table = self.table_schema();
        let sql = format!(
            "SELECT {COLS} FROM {table}.tasks{cond}{} LIMIT ${}",
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
        let (cond, params) = where_clause(filter, None);
        let table = self.table_schema();
        let sql = format!("SELECT count(*) FROM {table}.tasks{cond}");
        let row = self.call("count", move |c| async move {
            c.client.query_one(&sql, &refs(&params)).await
        })?;
        Ok(to_u64(row.try_get(0).map_err(|e| corrupt("(count)", e))?))
    }

    fn stats(&self, recent: usize) -> Result<TaskStats> {
        let n = i64::try_from(recent).unwrap_or(i64::MAX);
        let row = self.call("stats", move |c| async move {
            c.client.query_one(&c.stmts.stats, &[&n]).await
        })?;
        let json = |i: usize| -> Result<serde_json::Value> {
            let text: Option<String> = row.try_get(i).map_err(|e| corrupt("(stats)", e))?;
            serde_json::from_str(text.as_deref().unwrap_or("null"))
                .map_err(|e| corrupt("(stats)", e))
        };
        let (statuses, owners, recent, meta) = (json(0)?, json(1)?, json(2)?, json(3)?);
        let pairs = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        let mut by_status = TaskStatus::ALL.map(|s| (s, 0u64));
        for p in pairs(&statuses) {
            let s: TaskStatus = p[0]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| corrupt("(status count)", e))?;
            if let Some(slot) = by_status.iter_mut().find(|(x, _)| *x == s) {
                slot.1 = p[1].as_u64().unwrap_or(0);
            }
        }
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
    /// lease token in use (else a token could be handed out twice). Returns the problems found.
    pub fn check(&self) -> Result<Vec<String>> {
        let s = self.table_schema();
        let sql = format!(
            "SELECT (SELECT value FROM {s}.tasks_meta WHERE key = 'lease_token'),
                    (SELECT coalesce(max(lease_token), 0) FROM {s}.tasks)"
        );
        let row = self.call("check", move |c| async move {
            c.client.query_one(&sql, &[]).await
        })?;
        let (counter, max): (i64, i64) = (
            row.try_get(0).map_err(|e| corrupt("(check)", e))?,
            row.try_get(1).map_err(|e| corrupt("(check)", e))?,
        );
        Ok(if counter < max {
            vec![format!(
                "the lease-token counter ({counter}) is below a token in use ({max})"
            )]
        } else {
            Vec::new()
        })
    }

    /// The quoted schema, for the statements built per call.
    fn table_schema(&self) -> String {
        format!("\"{}\"", self.opts.schema)
    }
}
