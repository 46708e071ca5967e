//! `SqliteTaskStore`: tasks in a SQLite file shared safely by threads and processes.

mod ffi;
mod schema;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oc_sqlite::{Connect, Durability, Fence};
use parking_lot::Mutex;
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::graph::{cycle_error, find_path, plan_submit};
use crate::model::{reap, transition};
use crate::query::{RUN_BUCKETS_MS, RunDurations, finished_run};
use crate::{
    Capped, Change, Clock, Created, Error, HistoryEntry, LabelFilter, NewTask, OnDependents, Order,
    Readiness, ReapedTask, Result, SystemClock, Task, TaskCounts, TaskFilter, TaskId, TaskPage,
    TaskQuery, TaskStats, TaskStatus, TaskStore, TaskSummary, Timestamp, Unique,
};

/// Default wait for another writer (thread or process) before a statement gives up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default threshold above which a statement is reported as slow (the seed's one second).
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(1);
/// How many slow statements are kept for [`StorageStats::recent_slow`].
const SLOW_KEEP: usize = 32;
/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// The stored columns of a task, in [`task_values`] order.
macro_rules! stored_cols {
    () => {
        "id, name, description, status, owner, priority, metadata, result, error, attempts, \
         max_attempts, version, created_at, updated_at, started_at, finished_at, lease_token, \
         lease_expires_at, parent, labels, run_at, retry_base_ms, retry_cap_ms, retry_jitter, \
         unique_key, unique_scope"
    };
}
const STORED_COLS: &str = stored_cols!();
/// What a task is read from: the stored columns and its dependencies (as a JSON array).
const COLS: &str = concat!(
    stored_cols!(),
    ", (SELECT json_group_array(depends_on) FROM task_deps WHERE task_deps.task_id = tasks.id)"
);

/// A statement that ran longer than the slow threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowStatement {
    /// The SQL text (unexpanded: parameters are not included).
    pub sql: String,
    /// How long SQLite took to run it.
    pub duration_us: u64,
    /// When it finished.
    pub at: Timestamp,
}

impl SlowStatement {
    /// Reports it to `tracing`: a `WARN` event of target `oc_tasks` naming the backend.
    pub fn trace(&self, backend: &str) {
        tracing::warn!(
            target: "oc_tasks",
            backend,
            sql = %self.sql,
            duration_us = self.duration_us,
            "slow statement"
        );
    }
}

/// Called for each slow statement, on the thread that ran it.
pub type SlowCallback = Arc<dyn Fn(&SlowStatement) + Send + Sync>;

struct SlowLog {
    threshold: Duration,
    count: AtomicU64,
    recent: Mutex<VecDeque<SlowStatement>>,
    callback: Option<SlowCallback>,
    clock: Arc<dyn Clock>,
}

impl SlowLog {
    fn record(&self, sql: &str, d: Duration) {
        if d < self.threshold {
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let s = SlowStatement {
            sql: sql.to_owned(),
            duration_us: u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            at: self.clock.now(),
        };
        s.trace("sqlite");
        if let Some(cb) = &self.callback {
            cb(&s);
        }
        let mut recent = self.recent.lock();
        if recent.len() == SLOW_KEEP {
            recent.pop_front();
        }
        recent.push_back(s);
    }
}

/// Size, cache and slow-statement figures of the database (for `oc db stats` and metrics).
/// Other backends fill in what they have: PostgreSQL reports its database's size in its
/// block size, its buffer hits and reads, no WAL size and no free list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStats {
    /// The database file.
    pub path: PathBuf,
    /// Bytes of the main database file.
    pub file_bytes: u64,
    /// Bytes of the write-ahead log (`-wal`), 0 when absent.
    pub wal_bytes: u64,
    /// Pages in the database.
    pub page_count: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Unused pages.
    pub freelist_count: u64,
    /// Page-cache hits summed over this store's open connections.
    pub cache_hits: u64,
    /// Page-cache misses summed over this store's open connections.
    pub cache_misses: u64,
    /// Statements slower than the threshold since the store opened.
    pub slow_statements: u64,
    /// The slow-statement threshold in milliseconds.
    pub slow_threshold_ms: u64,
    /// The most recent slow statements, oldest first.
    pub recent_slow: Vec<SlowStatement>,
}

impl StorageStats {
    /// Database size as SQLite sees it: page count × page size.
    pub fn database_bytes(&self) -> u64 {
        self.page_count * self.page_size
    }
}

/// How to open a [`SqliteTaskStore`].
#[derive(Clone)]
pub struct SqliteOptions {
    busy_timeout: Duration,
    durability: Durability,
    slow_threshold: Duration,
    on_slow: Option<SlowCallback>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("busy_timeout", &self.busy_timeout)
            .field("slow_threshold", &self.slow_threshold)
            .field("durability", &self.durability)
            .field("on_slow", &self.on_slow.is_some())
            .field("clock", &self.clock)
            .finish()
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            durability: Durability::default(),
            slow_threshold: DEFAULT_SLOW_THRESHOLD,
            on_slow: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl SqliteOptions {
    /// Default options: 5 s busy timeout, 1 s slow threshold, system clock.
    pub fn new() -> Self {
        Self::default()
    }
    /// How long a statement waits for other writers before failing with a retryable error.
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }
    /// Statements at least this slow are counted and kept in [`StorageStats::recent_slow`].
    pub fn slow_threshold(mut self, d: Duration) -> Self {
        self.slow_threshold = d;
        self
    }
    /// Also calls `f` for each slow statement.
    pub fn on_slow(mut self, f: impl Fn(&SlowStatement) + Send + Sync + 'static) -> Self {
        self.on_slow = Some(Arc::new(f));
        self
    }
    /// What survives an OS crash or a power loss, at what cost (`oc_sqlite::Durability`:
    /// tokens covered by one synced commit, or a sync at every commit).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// The clock for timestamps and leases.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Opens (creating if needed) the database at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteTaskStore> {
        SqliteTaskStore::open_with(path.as_ref(), self)
    }
}

/// A [`TaskStore`] in a SQLite database file.
///
/// One writer connection per store serialises this process's writes without busy-waiting;
/// other processes are kept out by `BEGIN IMMEDIATE` and the busy timeout, so several processes
/// can share one file. Reads use a small pool of connections and never block on writers (WAL).
///
/// ```
/// use oc_tasks::{NewTask, SqliteTaskStore, TaskStore, TaskStatus};
/// let dir = tempfile::tempdir()?;
/// let store = SqliteTaskStore::open(dir.path().join("opencode.db"))?;
/// let t = store.create(NewTask::new("review PR").owner("agent-1"))?;
/// store.start(&t.id, "agent-1")?;
/// let done = store.complete(&t.id, None, Some(serde_json::json!({"ok": true})))?;
/// assert_eq!(done.status, TaskStatus::Completed);
/// assert_eq!(done.owner.as_deref(), Some("agent-1"), "untouched fields survive");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteTaskStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Option<Mutex<Vec<Connection>>>,
    opts: SqliteOptions,
    slow: Arc<SlowLog>,
    fence: Fence,
}

impl fmt::Debug for SqliteTaskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTaskStore")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl SqliteTaskStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), SqliteOptions::default())
    }

    /// Options to open a store with.
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// A private in-memory database (one connection), for examples and tests.
    pub fn open_in_memory() -> Result<Self> {
        let opts = SqliteOptions::default();
        let slow = slow_log(&opts);
        let mut conn = Connection::open_in_memory()?;
        connect(&opts).configure(&conn, false).map_err(plumbing)?;
        instrument(&mut conn, &slow)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteTaskStore {
            path: PathBuf::from(":memory:"),
            writer: Mutex::new(conn),
            readers: None,
            fence: fence(&opts),
            opts,
            slow,
        })
    }

    fn open_with(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let slow = slow_log(&opts);
        let mut writer = retry_busy(|| {
            let mut c = connect(&opts).writer(path).map_err(plumbing)?;
            instrument(&mut c, &slow)?;
            Ok(c)
        })?;
        retry_busy(|| schema::migrate(&mut writer))?;
        Ok(SqliteTaskStore {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Some(Mutex::new(Vec::new())),
            fence: fence(&opts),
            opts,
            slow,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader connection (the writer's for in-memory stores).
    /// Runs several reads in one read transaction, so that they describe the same snapshot.
    fn read_snapshot<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        self.read(|c| {
            c.execute_batch("BEGIN")?;
            let out = f(c);
            c.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
            out
        })
    }

    fn read<T>(&self, mut f: impl FnMut(&Connection) -> Result<T>) -> Result<T> {
        let Some(pool) = &self.readers else {
            return f(&self.writer.lock());
        };
        let conn = match pool.lock().pop() {
            Some(c) => c,
            None => {
                let mut c = connect(&self.opts).reader(&self.path).map_err(plumbing)?;
                instrument(&mut c, &self.slow)?;
                c
            }
        };
        let out = retry_busy(|| f(&conn));
        let mut idle = pool.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, committing on `Ok`; then
    /// makes any fencing token it took durable before the caller sees it.
    fn write<T>(&self, mut f: impl FnMut(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let out = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })?;
        retry_busy(|| Ok(self.fence.settle(&mut conn)?))?;
        Ok(out)
    }

    /// Synced commits this handle made so that its fencing tokens survive power loss (one per
    /// reserve of tokens, plus one for its first token).
    pub fn token_syncs(&self) -> u64 {
        self.fence.syncs()
    }

    /// File sizes, page counts, cache hits and misses, and slow statements.
    pub fn storage_stats(&self) -> Result<StorageStats> {
        let (page_count, page_size, freelist_count) = self.read(|c| {
            Ok((
                c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))?,
                c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))?,
                c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))?,
            ))
        })?;
        let (mut hits, mut misses) = ffi::cache_hits_misses(&self.writer.lock());
        if let Some(pool) = &self.readers {
            for c in pool.lock().iter() {
                let (h, m) = ffi::cache_hits_misses(c);
                hits += h;
                misses += m;
            }
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(StorageStats {
            path: self.path.clone(),
            file_bytes: size(&self.path),
            wal_bytes: size(Path::new(&wal)),
            page_count: u64::try_from(page_count).unwrap_or(0),
            page_size: u64::try_from(page_size).unwrap_or(0),
            freelist_count: u64::try_from(freelist_count).unwrap_or(0),
            cache_hits: hits,
            cache_misses: misses,
            slow_statements: self.slow.count.load(Ordering::Relaxed),
            slow_threshold_ms: u64::try_from(self.slow.threshold.as_millis()).unwrap_or(u64::MAX),
            recent_slow: self.slow.recent.lock().iter().cloned().collect(),
        })
    }

    /// Runs SQLite's `PRAGMA integrity_check`, then checks that every task's count of
    /// unfinished dependencies matches its edges and that the kept counts by status match
    /// the tasks; returns the problems found (empty when healthy).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let problems: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
            let mut problems: Vec<String> = problems.into_iter().filter(|p| p != "ok").collect();
            if problems.is_empty() {
                let miscounted: Vec<String> = c
                    .prepare(
                        "SELECT t.id FROM tasks t WHERE t.waiting <> (
                            SELECT count(*) FROM task_deps d JOIN tasks x ON x.id = d.depends_on
                            WHERE d.task_id = t.id AND x.status <> 'completed')
                         ORDER BY 1 LIMIT 10",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !miscounted.is_empty() {
                    problems.push(format!(
                        "unfinished dependencies miscounted on {}",
                        miscounted.join(", ")
                    ));
                }
                let off: Vec<String> = c
                    .prepare(
                        "SELECT m.key || ' is ' || m.value || ', the tasks say ' || (
                            SELECT count(*) FROM tasks WHERE 'count_' || status = m.key)
                         FROM oc_tasks_meta m WHERE m.key LIKE 'count_%' AND m.value <> (
                            SELECT count(*) FROM tasks WHERE 'count_' || status = m.key)",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !off.is_empty() {
                    problems.push(format!("tasks by status miscounted: {}", off.join("; ")));
                }
            }
            Ok(problems)
        })
    }

    /// Copies a consistent snapshot of the last committed state into a new file at `dest`
    /// (`VACUUM INTO`), while other connections keep working.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest_str = dest.to_str().ok_or_else(|| Error::InvalidInput {
            field: "backup path",
            reason: format!("{} is not valid UTF-8", dest.display()),
        })?;
        self.read(|c| {
            c.execute("VACUUM INTO ?1", [dest_str])?;
            Ok(())
        })
    }
}

fn fence(opts: &SqliteOptions) -> Fence {
    opts.durability
        .fence("oc_tasks_meta", "lease_token", "lease_token_ceiling")
}

fn slow_log(opts: &SqliteOptions) -> Arc<SlowLog> {
    Arc::new(SlowLog {
        threshold: opts.slow_threshold,
        count: AtomicU64::new(0),
        recent: Mutex::new(VecDeque::new()),
        callback: opts.on_slow.clone(),
        clock: opts.clock.clone(),
    })
}

/// How the store's connections are opened: its busy timeout and durability.
fn connect(opts: &SqliteOptions) -> Connect {
    Connect::new(opts.busy_timeout, opts.durability)
}

/// What this store adds to every connection [`Connect`] configured: foreign keys and the
/// slow-statement log.
fn instrument(c: &mut Connection, slow: &Arc<SlowLog>) -> Result<()> {
    c.execute_batch("PRAGMA foreign_keys = ON")?;
    let slow = slow.clone();
    c.trace_v2(
        TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(move |ev: TraceEvent<'_>| {
            // Only a slow statement's text is read: the profile fires for every statement.
            if let TraceEvent::Profile(stmt, d) = ev
                && d >= slow.threshold
            {
                slow.record(&stmt.sql(), d);
            }
        }),
    )?;
    Ok(())
}

/// The shared plumbing's error as this crate's (a refused journal mode is invalid input).
fn plumbing(e: oc_sqlite::Error) -> Error {
    match e {
        oc_sqlite::Error::Sqlite(e) => Error::Sqlite(e),
        oc_sqlite::Error::SchemaTooNew { found, supported } => {
            Error::SchemaTooNew { found, supported }
        }
        other => Error::InvalidInput {
            field: "database",
            reason: other.to_string(),
        },
    }
}

/// Whether `e` is SQLite finding the database busy or locked.
fn busy(e: &Error) -> bool {
    matches!(e, Error::Sqlite(e) if oc_sqlite::is_busy(e))
}

/// Retries `f` while SQLite reports the database busy or locked ([`oc_sqlite::retry_busy`]).
fn retry_busy<T>(f: impl FnMut() -> Result<T>) -> Result<T> {
    oc_sqlite::retry_busy(busy, f)
}

fn corrupt(id: &str, reason: impl fmt::Display) -> Error {
    Error::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

fn row_to_task(r: &Row<'_>) -> Result<Task> {
    let id: String = r.get(0)?;
    // Labels and dependencies are JSON arrays here (PostgreSQL has arrays).
    let list = |text: Option<String>| -> Result<Vec<String>> {
        serde_json::from_str(text.as_deref().unwrap_or("[]")).map_err(|e| corrupt(&id, e))
    };
    crate::backend::StoredTask {
        labels: list(r.get(19)?)?,
        depends_on: list(r.get(26)?)?,
        name: r.get(1)?,
        description: r.get(2)?,
        status: r.get(3)?,
        owner: r.get(4)?,
        priority: r.get(5)?,
        metadata: r.get(6)?,
        result: r.get(7)?,
        error: r.get(8)?,
        attempts: r.get(9)?,
        max_attempts: r.get(10)?,
        version: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        started_at: r.get(14)?,
        finished_at: r.get(15)?,
        lease_token: r.get(16)?,
        lease_expires_at: r.get(17)?,
        parent: r.get(18)?,
        run_at: r.get(20)?,
        retry_base_ms: r.get(21)?,
        retry_cap_ms: r.get(22)?,
        retry_jitter: r.get(23)?,
        unique_key: r.get(24)?,
        unique_scope: r.get(25)?,
        id,
    }
    .into_task()
}

/// The column values of `t`, in `STORED_COLS` order.
fn task_values(t: &Task) -> Result<Vec<SqlValue>> {
    let i = |v: u64| SqlValue::Integer(i64::try_from(v).unwrap_or(i64::MAX));
    let text = |s: &Option<String>| s.clone().map_or(SqlValue::Null, SqlValue::Text);
    let ts = |t: Option<Timestamp>| t.map_or(SqlValue::Null, |t| SqlValue::Integer(t.as_millis()));
    let int = |v: Option<i64>| v.map_or(SqlValue::Null, SqlValue::Integer);
    let retry = crate::backend::retry_columns(&t.retry);
    let json = |v: &serde_json::Value| {
        serde_json::to_string(v).map_err(|e| Error::InvalidInput {
            field: "result",
            reason: e.to_string(),
        })
    };
    Ok(vec![
        SqlValue::Text(t.id.to_string()),
        SqlValue::Text(t.name.clone()),
        text(&t.description),
        SqlValue::Text(t.status.as_str().to_owned()),
        text(&t.owner),
        SqlValue::Integer(t.priority.into()),
        SqlValue::Text(crate::query::metadata_text(t)),
        t.result
            .as_ref()
            .map(json)
            .transpose()?
            .map_or(SqlValue::Null, SqlValue::Text),
        text(&t.error),
        SqlValue::Integer(t.attempts.into()),
        SqlValue::Integer(t.max_attempts.into()),
        i(t.version),
        ts(Some(t.created_at)),
        ts(Some(t.updated_at)),
        ts(t.started_at),
        ts(t.finished_at),
        t.lease.map_or(SqlValue::Null, |l| i(l.token)),
        ts(t.lease.map(|l| l.expires_at)),
        t.parent
            .as_ref()
            .map_or(SqlValue::Null, |p| SqlValue::Text(p.to_string())),
        SqlValue::Text(labels_json(&t.labels)),
        ts(t.run_at),
        int(retry.0),
        int(retry.1),
        int(retry.2),
        text(&t.unique.as_ref().map(|u| u.key.clone())),
        text(&t.unique.as_ref().map(|u| u.scope.as_str().to_owned())),
    ])
}

fn labels_json(labels: &[String]) -> String {
    serde_json::Value::from(labels.to_vec()).to_string()
}

fn load(tx: &Connection, id: &TaskId) -> Result<Option<Task>> {
    let mut stmt = tx.prepare_cached(&format!("SELECT {COLS} FROM tasks WHERE id = ?1"))?;
    let mut rows = stmt.query([id.as_str()])?;
    match rows.next()? {
        Some(r) => Ok(Some(row_to_task(r)?)),
        None => Ok(None),
    }
}

/// Counts `n` tasks moving from status `from` (`None`: created) into `to`: the entries into
/// `to` and the tasks in each status, beside each other (a delete counts itself, in
/// [`uncount`]).
fn moved(tx: &Transaction<'_>, from: Option<TaskStatus>, to: TaskStatus, n: usize) -> Result<()> {
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
fn uncount(tx: &Transaction<'_>, id: &str) -> Result<()> {
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
fn run_key(i: usize) -> String {
    RUN_BUCKETS_MS
        .get(i)
        .map_or_else(|| "run_le_inf".to_owned(), |b| format!("run_le_{b}"))
}

/// Counts a finished run of `d` into its bucket and the sum.
fn observe_run(tx: &Transaction<'_>, d: Duration) -> Result<()> {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "UPDATE oc_tasks_meta SET value = value + CASE key WHEN 'run_ms_sum' THEN ?2 ELSE 1 END
         WHERE key IN (?1, 'run_ms_sum')",
    )?
    .execute((run_key(RunDurations::bucket(to_u64(ms))), ms))?;
    Ok(())
}

/// Records the history entry of a write from `prev` to `next`, if it changes the status.
fn record_history(
    tx: &Transaction<'_>,
    prev: Option<&Task>,
    next: &Task,
    reaped: bool,
) -> Result<()> {
    let Some(h) = HistoryEntry::of(prev, next, reaped) else {
        return Ok(());
    };
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
fn key_holder(c: &Connection, key: &str, except: Option<&TaskId>) -> Result<Option<Task>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLS} FROM tasks WHERE unique_key = ?1 AND id IS NOT ?2
           AND (unique_scope = 'always' OR status IN ('pending', 'running'))"
    ))?;
    let mut rows = stmt.query((key, except.map(|e| e.as_str())))?;
    rows.next()?.map(row_to_task).transpose()
}

/// Whether a task with this id exists.
fn exists(c: &Connection, id: &TaskId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
        .exists([id.as_str()])?)
}

/// The dependency edges `(task, on)` of the tasks in `ids`.
fn edges_of(c: &Connection, ids: &[TaskId]) -> Result<Vec<(TaskId, TaskId)>> {
    let mut stmt = c.prepare_cached("SELECT depends_on FROM task_deps WHERE task_id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let mut rows = stmt.query([id.as_str()])?;
        while let Some(r) = rows.next()? {
            let on: String = r.get(0)?;
            out.push((
                id.clone(),
                TaskId::new(on.clone()).map_err(|e| corrupt(&on, e))?,
            ));
        }
    }
    Ok(out)
}

/// The tasks that depend on `id` or are its children.
fn dependents(c: &Connection, id: &TaskId) -> Result<Vec<TaskId>> {
    let mut stmt = c.prepare_cached(
        "SELECT task_id FROM task_deps WHERE depends_on = ?1
         UNION SELECT id FROM tasks WHERE parent = ?1 ORDER BY 1",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
    rows.map(|r| {
        let s = r?;
        TaskId::new(s.clone()).map_err(|e| corrupt(&s, e))
    })
    .collect()
}

/// Bumps the version of `id` as a write at `now` that is not a transition.
fn touch(tx: &Transaction<'_>, id: &str, now: Timestamp) -> Result<()> {
    tx.prepare_cached("UPDATE tasks SET version = version + 1, updated_at = ?2 WHERE id = ?1")?
        .execute((id, now.as_millis()))?;
    Ok(())
}

/// Writes `next` over the row only if it is still at `prev`'s version and status: the
/// check-and-set every change ends in.
fn store_cas(tx: &Transaction<'_>, prev: &Task, next: &Task, reaped: bool) -> Result<()> {
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
        record_history(tx, Some(prev), next, reaped)
    } else {
        Err(Error::VersionMismatch {
            id: prev.id.clone(),
            expected: prev.version,
            actual: load(tx, &prev.id)?.map_or(0, |t| t.version),
        })
    }
}

fn apply_in(
    tx: &Transaction<'_>,
    fence: &Fence,
    id: &TaskId,
    change: &Change,
    expect: Option<u64>,
    now: Timestamp,
) -> Result<Task> {
    let prev = load(tx, id)?.ok_or_else(|| Error::NotFound { id: id.clone() })?;
    let mut tokens = fence.issue(tx)?;
    let next = transition(&prev, change, expect, now, || tokens.take())?;
    store_cas(tx, &prev, &next, false)?;
    tokens.save(tx)?;
    Ok(next)
}

fn insert(tx: &Transaction<'_>, t: &Task) -> Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO tasks ({STORED_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
         ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
    ))?;
    match stmt.execute(rusqlite::params_from_iter(task_values(t)?)) {
        Ok(_) => record_history(tx, None, t, false),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(Error::AlreadyExists { id: t.id.clone() })
        }
        Err(e) => Err(e.into()),
    }
}

/// The SQL condition "ready at `now`" (`now` a placeholder): the leading terms of the index
/// `tasks_ready` (status, waiting, claim order, run_at), and the `run_at` check it covers.
fn ready_sql(now: &str) -> String {
    format!("status = 'pending' AND waiting = 0 AND (run_at IS NULL OR run_at <= {now})")
}

/// The tasks table read through `tasks_ready`, for queries over ready tasks: named, so that a
/// planner without statistics never walks another index and reads every pending row, blocked
/// ones included, to find the ready ones (and so that a query fails rather than slows down if
/// the index ever stops serving them).
const READY_TABLE: &str = "tasks INDEXED BY tasks_ready";

/// The conditions of a label filter, with their parameters pushed by `p`.
fn label_conds(f: &LabelFilter, mut p: impl FnMut(SqlValue) -> String, conds: &mut Vec<String>) {
    for l in &f.all {
        let m = p(SqlValue::Text(l.clone()));
        conds.push(format!(
            "EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value = {m})"
        ));
    }
    if !f.none.is_empty() {
        let marks: Vec<String> = f
            .none
            .iter()
            .map(|l| p(SqlValue::Text(l.clone())))
            .collect();
        conds.push(format!(
            "NOT EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value IN ({}))",
            marks.join(", ")
        ));
    }
}

/// The WHERE clause and parameters of a filter (plus an optional cursor), readiness judged
/// at `now`.
fn where_clause(
    filter: &TaskFilter,
    after: Option<(&crate::query::Cursor, Order)>,
    now: Timestamp,
) -> (String, Vec<SqlValue>) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    let p = |v: SqlValue, params: &mut Vec<SqlValue>| {
        params.push(v);
        format!("?{}", params.len())
    };
    if let Some(r) = filter.readiness {
        let now = p(SqlValue::Integer(now.as_millis()), &mut params);
        conds.push(match r {
            Readiness::Ready => ready_sql(&now),
            Readiness::Blocked => {
                format!("status = 'pending' AND (waiting > 0 OR run_at > {now})")
            }
        });
    }
    label_conds(&filter.labels, |v| p(v, &mut params), &mut conds);
    if let Some(parent) = &filter.parent {
        conds.push(format!(
            "parent = {}",
            p(SqlValue::Text(parent.to_string()), &mut params)
        ));
    }
    if let Some(d) = &filter.dependents_of {
        conds.push(format!(
            "id IN (SELECT task_id FROM task_deps WHERE depends_on = {})",
            p(SqlValue::Text(d.to_string()), &mut params)
        ));
    }
    if !filter.statuses.is_empty() {
        let marks: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| p(SqlValue::Text(s.as_str().into()), &mut params))
            .collect();
        conds.push(format!("status IN ({})", marks.join(", ")));
    }
    if let Some(o) = &filter.owner {
        conds.push(format!(
            "owner = {}",
            p(SqlValue::Text(o.clone()), &mut params)
        ));
    }
    if let Some(f) = filter.created_from {
        conds.push(format!(
            "created_at >= {}",
            p(SqlValue::Integer(f.as_millis()), &mut params)
        ));
    }
    if let Some(t) = filter.created_to {
        conds.push(format!(
            "created_at < {}",
            p(SqlValue::Integer(t.as_millis()), &mut params)
        ));
    }
    if let Some(s) = &filter.search {
        let m = p(
            SqlValue::Text(crate::backend::like_anywhere(s)),
            &mut params,
        );
        conds.push(format!(
            "(name LIKE {m} ESCAPE '\\' OR description LIKE {m} ESCAPE '\\' OR metadata LIKE {m} ESCAPE '\\')"
        ));
    }
    if let Some((c, order)) = after {
        let created = p(SqlValue::Integer(c.created_at.as_millis()), &mut params);
        let id = p(SqlValue::Text(c.id.to_string()), &mut params);
        conds.push(crate::backend::after_sql(order, &created, &id, || {
            p(SqlValue::Integer(c.priority.into()), &mut params)
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

impl crate::StorageSource for SqliteTaskStore {
    fn storage_stats(&self) -> Result<StorageStats> {
        SqliteTaskStore::storage_stats(self)
    }
}

impl TaskStore for SqliteTaskStore {
    fn submit_many(&self, new: Vec<NewTask>) -> Result<Vec<Created>> {
        let now = self.opts.clock.now();
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        // Without edges or keys there is nothing to look up: plan once, outside the
        // transaction (which may be tried again when the database is busy).
        let plain = tasks
            .iter()
            .all(|t| t.depends_on.is_empty() && t.parent.is_none() && t.unique.is_none());
        if plain {
            let out = plan_submit(tasks, |_| Ok(None), |_| Ok(false))?;
            self.write(|tx| {
                out.iter().try_for_each(|c| insert(tx, &c.task))?;
                moved(tx, None, TaskStatus::Pending, out.len())
            })?;
            return Ok(out);
        }
        self.write(|tx| {
            let out = plan_submit(
                tasks.clone(),
                |key| key_holder(tx, key, None),
                |id| exists(tx, id),
            )?;
            let fresh = || out.iter().filter(|c| !c.duplicate).map(|c| &c.task);
            for t in fresh() {
                insert(tx, t)?;
            }
            let mut edge =
                tx.prepare_cached("INSERT INTO task_deps (task_id, depends_on) VALUES (?1, ?2)")?;
            let mut waiting = tx.prepare_cached(
                "UPDATE tasks SET waiting = (
                    SELECT count(*) FROM task_deps d JOIN tasks x ON x.id = d.depends_on
                    WHERE d.task_id = ?1 AND x.status <> 'completed')
                 WHERE id = ?1",
            )?;
            for t in fresh().filter(|t| !t.depends_on.is_empty()) {
                for d in &t.depends_on {
                    edge.execute((t.id.as_str(), d.as_str()))?;
                }
                waiting.execute([t.id.as_str()])?;
            }
            moved(tx, None, TaskStatus::Pending, fresh().count())?;
            Ok(out)
        })
    }

    fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        self.read(|c| load(c, id))
    }

    fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
        change.validate()?;
        self.write(|tx| apply_in(tx, &self.fence, id, &change, expect, self.opts.clock.now()))
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
        change.validate()?;
        filter.validate()?;
        // The time is read inside the transaction (below), not before waiting for the writer:
        // a claim that waited behind a completion must not be stamped before it.
        let mut params = vec![SqlValue::Integer(0)];
        let mut conds = vec![ready_sql("?1")];
        label_conds(
            filter,
            |v| {
                params.push(v);
                format!("?{}", params.len())
            },
            &mut conds,
        );
        params.push(SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT id FROM {READY_TABLE} WHERE {} ORDER BY priority DESC, created_at, id LIMIT ?{}",
            conds.join(" AND "),
            params.len()
        );
        self.write(|tx| {
            let now = self.opts.clock.now();
            params[0] = SqlValue::Integer(now.as_millis());
            let ids: Vec<String> = tx
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                let id = TaskId::new(id.clone()).map_err(|e| corrupt(&id, e))?;
                claimed.push(apply_in(tx, &self.fence, &id, &change, None, now)?);
            }
            Ok(claimed)
        })
    }

    fn add_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        self.write(|tx| {
            let now = self.opts.clock.now();
            let t = load(tx, task)?.ok_or_else(|| Error::NotFound { id: task.clone() })?;
            if task == on {
                return Err(Error::Cycle {
                    cycle: vec![task.clone(), task.clone()],
                });
            }
            let Some(dep) = load(tx, on)? else {
                return Err(Error::MissingReference {
                    field: "depends_on",
                    id: on.clone(),
                });
            };
            if t.depends_on.contains(on) {
                return Ok(t);
            }
            if let Some(path) = find_path(on, task, |f| edges_of(tx, f))? {
                return Err(cycle_error(task, path));
            }
            tx.prepare_cached("INSERT INTO task_deps (task_id, depends_on) VALUES (?1, ?2)")?
                .execute((task.as_str(), on.as_str()))?;
            if dep.status != TaskStatus::Completed {
                tx.prepare_cached("UPDATE tasks SET waiting = waiting + 1 WHERE id = ?1")?
                    .execute([task.as_str()])?;
            }
            touch(tx, task.as_str(), now)?;
            load(tx, task)?.ok_or_else(|| Error::NotFound { id: task.clone() })
        })
    }

    fn remove_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        self.write(|tx| {
            let now = self.opts.clock.now();
            let t = load(tx, task)?.ok_or_else(|| Error::NotFound { id: task.clone() })?;
            if !t.depends_on.contains(on) {
                return Ok(t);
            }
            drop_edge(tx, task.as_str(), on.as_str())?;
            touch(tx, task.as_str(), now)?;
            load(tx, task)?.ok_or_else(|| Error::NotFound { id: task.clone() })
        })
    }

    fn delete_with(
        &self,
        id: &TaskId,
        expect: Option<u64>,
        on_dependents: OnDependents,
    ) -> Result<Vec<Task>> {
        self.write(|tx| {
            let now = self.opts.clock.now();
            let prev = load(tx, id)?.ok_or_else(|| Error::NotFound { id: id.clone() })?;
            if let Some(expected) = expect
                && expected != prev.version
            {
                return Err(Error::VersionMismatch {
                    id: id.clone(),
                    expected,
                    actual: prev.version,
                });
            }
            let mut doomed = vec![prev];
            for d in crate::graph::doomed(id, on_dependents, |t| dependents(tx, t))?
                .into_iter()
                .skip(1)
            {
                if let Some(t) = load(tx, &d)? {
                    doomed.push(t);
                }
            }
            for t in &doomed {
                let id = t.id.as_str();
                // Whoever is left stops waiting for it and loses it as a parent.
                let kept: Vec<String> = tx
                    .prepare_cached("SELECT task_id FROM task_deps WHERE depends_on = ?1")?
                    .query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for k in kept {
                    drop_edge(tx, &k, id)?;
                    touch(tx, &k, now)?;
                }
                let orphans: Vec<String> = tx
                    .prepare_cached("SELECT id FROM tasks WHERE parent = ?1")?
                    .query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for o in orphans {
                    tx.prepare_cached("UPDATE tasks SET parent = NULL WHERE id = ?1")?
                        .execute([&o])?;
                    touch(tx, &o, now)?;
                }
                tx.prepare_cached("DELETE FROM task_deps WHERE task_id = ?1")?
                    .execute([id])?;
                uncount(tx, id)?;
                tx.prepare_cached("DELETE FROM task_history WHERE task_id = ?1")?
                    .execute([id])?;
            }
            Ok(doomed)
        })
    }

    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
        self.write(|tx| {
            let expired: Vec<Task> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {COLS} FROM tasks
                     WHERE status = 'running' AND lease_expires_at <= ?1 ORDER BY id"
                ))?;
                let mut rows = stmt.query([now.as_millis()])?;
                let mut v = Vec::new();
                while let Some(r) = rows.next()? {
                    v.push(row_to_task(r)?);
                }
                v
            };
            let mut reaped = Vec::with_capacity(expired.len());
            for prev in expired {
                if let Some(r) = reap(&prev, now) {
                    store_cas(tx, &prev, &r.task, true)?;
                    reaped.push(r);
                }
            }
            Ok(reaped)
        })
    }

    fn list(&self, query: &TaskQuery) -> Result<TaskPage> {
        query.validate()?;
        let (cond, mut params) = where_clause(
            &query.filter,
            query.after.as_ref().map(|c| (c, query.order)),
            self.opts.clock.now(),
        );
        params.push(SqlValue::Integer(
            i64::try_from(query.limit + 1).unwrap_or(i64::MAX),
        ));
        // Ready tasks in claim order are one range of `tasks_ready`. In order of creation,
        // pages walk `tasks_created` from the cursor and skip what is not ready: left to
        // itself the planner would take the ready range and sort all of it for every page.
        let table = match (query.filter.readiness, query.order) {
            (Some(Readiness::Ready), Order::Priority) => READY_TABLE,
            (Some(Readiness::Ready), _) => "tasks INDEXED BY tasks_created",
            _ => "tasks",
        };
        let sql = format!(
            "SELECT {COLS} FROM {table}{cond}{} LIMIT ?{}",
            crate::backend::order_by_sql(query.order),
            params.len()
        );
        let tasks = self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            let mut v = Vec::new();
            while let Some(r) = rows.next()? {
                v.push(row_to_task(r)?);
            }
            Ok(v)
        })?;
        Ok(TaskPage::from_overfetch(tasks, query.limit))
    }

    fn count(&self, filter: &TaskFilter) -> Result<u64> {
        filter.validate()?;
        let (cond, params) = where_clause(filter, None, self.opts.clock.now());
        let table = match filter.readiness {
            Some(Readiness::Ready) => READY_TABLE,
            _ => "tasks",
        };
        let n: i64 = self.read(|c| {
            Ok(
                c.prepare_cached(&format!("SELECT COUNT(*) FROM {table}{cond}"))?
                    .query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?,
            )
        })?;
        Ok(to_u64(n))
    }

    fn stats(&self, recent: usize) -> Result<TaskStats> {
        self.read_snapshot(|c| stats_in(c, recent, self.opts.clock.now()))
    }

    fn counts(&self, cap: u64) -> Result<TaskCounts> {
        self.read_snapshot(|c| counts_in(c, cap, self.opts.clock.now()))
    }

    fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>> {
        self.read_snapshot(|c| history_in(c, id))
    }

    fn now(&self) -> Timestamp {
        self.opts.clock.now()
    }
}

fn history_in(c: &Connection, id: &TaskId) -> Result<Vec<HistoryEntry>> {
    if load(c, id)?.is_none() {
        return Err(Error::NotFound { id: id.clone() });
    }
    let mut stmt = c.prepare_cached(
        "SELECT version, at, kind, from_status, to_status, actor, token, error
         FROM task_history WHERE task_id = ?1 ORDER BY version",
    )?;
    let mut rows = stmt.query([id.as_str()])?;
    let mut v = Vec::new();
    while let Some(r) = rows.next()? {
        let bad = |e: String| corrupt(id.as_str(), e);
        let kind: String = r.get(2)?;
        let from: Option<String> = r.get(3)?;
        let to: String = r.get(4)?;
        let token: Option<i64> = r.get(6)?;
        v.push(HistoryEntry {
            task: id.clone(),
            version: to_u64(r.get(0)?),
            at: Timestamp::from_millis(r.get(1)?),
            kind: kind.parse().map_err(bad)?,
            from: from
                .map(|f| f.parse())
                .transpose()
                .map_err(|e: crate::Error| bad(e.to_string()))?,
            to: to.parse().map_err(|e: crate::Error| bad(e.to_string()))?,
            actor: r.get(5)?,
            token: token.map(to_u64),
            error: r.get(7)?,
        });
    }
    Ok(v)
}

/// Drops the edge `task → on`; `task` waits for one dependency fewer if `on` is unfinished.
fn drop_edge(tx: &Transaction<'_>, task: &str, on: &str) -> Result<()> {
    let n = tx
        .prepare_cached("DELETE FROM task_deps WHERE task_id = ?1 AND depends_on = ?2")?
        .execute((task, on))?;
    if n == 1 {
        tx.prepare_cached(
            "UPDATE tasks SET waiting = waiting - 1
             WHERE id = ?1 AND (SELECT status FROM tasks WHERE id = ?2) <> 'completed'",
        )?
        .execute((task, on))?;
    }
    Ok(())
}

/// The counts by status and of entries into each (kept by the writes in `oc_tasks_meta`),
/// and the ready and blocked tasks counted up to `cap` by index ranges: those waiting on a
/// dependency in `tasks_ready`, those scheduled for later in `tasks_scheduled`.
fn counts_in(c: &Connection, cap: u64, now: Timestamp) -> Result<TaskCounts> {
    let mut by_status = TaskStatus::ALL.map(|s| (s, 0u64));
    let mut entered = by_status;
    {
        let mut stmt = c.prepare_cached("SELECT key, value FROM oc_tasks_meta")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let (list, status) = match key.split_once('_') {
                Some(("count", s)) => (&mut by_status, s),
                Some(("entered", s)) => (&mut entered, s),
                _ => continue,
            };
            let status: TaskStatus = status.parse().map_err(|e| corrupt("(counts)", e))?;
            if let Some(slot) = list.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = to_u64(r.get(1)?);
            }
        }
    }
    let limit = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
    let count = |sql: &str, with_now: bool| -> Result<Capped> {
        let mut stmt = c.prepare_cached(&format!("SELECT count(*) FROM ({sql} LIMIT ?1)"))?;
        let n: i64 = if with_now {
            stmt.query_row((limit, now.as_millis()), |r| r.get(0))?
        } else {
            stmt.query_row([limit], |r| r.get(0))?
        };
        Ok(Capped::up_to(to_u64(n), cap))
    };
    let waiting = count(
        &format!("SELECT 1 FROM {READY_TABLE} WHERE status = 'pending' AND waiting > 0"),
        false,
    )?;
    let scheduled = count(
        "SELECT 1 FROM tasks INDEXED BY tasks_scheduled
         WHERE status = 'pending' AND run_at IS NOT NULL AND run_at > ?2 AND waiting = 0",
        true,
    )?;
    let (ready, blocked) = TaskCounts::split_pending(by_status[0].1, waiting, scheduled, || {
        count(
            &format!("SELECT 1 FROM {READY_TABLE} WHERE {}", ready_sql("?2")),
            true,
        )
    })?;
    Ok(TaskCounts {
        by_status: by_status.to_vec(),
        ready,
        blocked,
        entered: entered.to_vec(),
    })
}

fn stats_in(c: &Connection, recent: usize, now: Timestamp) -> Result<TaskStats> {
    let counts = counts_in(c, u64::MAX, now)?;
    let by_owner = {
        let mut stmt = c.prepare_cached(
            "SELECT owner, COUNT(*) AS n FROM tasks GROUP BY owner ORDER BY n DESC, owner",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, to_u64(r.get(1)?)))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let recent = {
        let mut stmt = c.prepare_cached(
            "SELECT id, name, status, created_at FROM tasks ORDER BY created_at DESC, id DESC LIMIT ?1",
        )?;
        let mut rows = stmt.query([i64::try_from(recent).unwrap_or(i64::MAX)])?;
        let mut v = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let status: String = r.get(2)?;
            v.push(TaskSummary {
                id: TaskId::new(id.clone()).map_err(|e| corrupt(&id, e))?,
                name: r.get(1)?,
                status: status.parse().map_err(|e| corrupt(&id, e))?,
                created_at: Timestamp::from_millis(r.get(3)?),
            });
        }
        v
    };
    let mut runs = RunDurations::default();
    {
        let mut stmt =
            c.prepare_cached("SELECT key, value FROM oc_tasks_meta WHERE key LIKE 'run_%'")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let value = to_u64(r.get(1)?);
            if key == "run_ms_sum" {
                runs.sum_ms = value;
            } else if let Some(i) = (0..runs.counts.len()).find(|i| run_key(*i) == key) {
                runs.counts[i] = value;
            }
        }
    }
    Ok(TaskStats {
        total: counts.total(),
        ready: counts.ready.n,
        blocked: counts.blocked.n,
        by_status: counts.by_status,
        by_owner,
        recent,
        entered: counts.entered,
        runs,
    })
}
