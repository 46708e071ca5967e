//! `PgTaskStore`: the task store on PostgreSQL, shared by agents on many machines.
//!
//! One concept per file: the schema's versions (`migrations.rs`, `migrations/*.sql`), the SQL
//! fragments and templates (`sql.rs`, `sql/*.sql`), the statements prepared on each connection
//! (`statements.rs`), rows to tasks (`row.rs`), transitions (`transition.rs`), the lease
//! holder's transitions in one call each (`lease.rs`), creations
//! (`insert.rs`), claims (`claim.rs`), the work graph's writes (`graph.rs`), listing by
//! filter (`filter.rs`), the counts by status (`counts.rs`), what `oc db` shows and checks
//! (`maintenance.rs`) and the retention of finished tasks (`retention.rs`). This file holds
//! the store and the [`TaskStore`] methods, each a call into one of them.

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::{
    Change, Created, Error, HistoryEntry, IdempotencyKey, Keyed, LabelFilter, NewTask,
    OnDependents, ReadySignal, ReapedTask, Result, Task, TaskCounts, TaskFilter, TaskId, TaskPage,
    TaskQuery, TaskStats, TaskStore, Timestamp,
};

use oc_tasks::backend::{complete_changes, fail_changes, heartbeat_changes};

use crate::errors::task_error;
use crate::options::PgOptions;
use crate::pool::{Conn, Pool};
use crate::schema::migrate;
use crate::slow::SlowLog;

mod batch;
mod claim;
mod counts;
mod filter;
mod graph;
mod insert;
mod keyed;
mod lease;
mod maintenance;
mod migrations;
mod ready;
mod retention;
mod row;
mod sql;
mod statements;
mod transition;

pub use maintenance::PgStorageStats;
use migrations::COMPONENT;
pub(crate) use migrations::MIGRATIONS;
use row::{corrupt, history_of, row_task};
pub(crate) use sql::claim_sql;
use statements::TaskStatements;

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
///   `docs/decisions/0022-postgres-graph-advisory-locks.md`).
/// - Fencing tokens come from the sequence `task_tokens` (decision 0047): a token once returned
///   is never returned again, and a later claim of a task gets a greater token than every
///   earlier claim of it, across hosts and crashes; tokens of unrelated tasks need not follow
///   commit order. No row is updated by every claim or completion: the counters are rows of
///   changes, summed by readers and folded now and then.
/// - The lease holder's completion, final failure, heartbeat and release are one call each,
///   without reading the task first (`lease.rs`); no lock is held across a round trip.
/// - Time is the database's clock (`clock_timestamp()`), so leases and reaping are judged by
///   one clock whatever the hosts' clocks say; [`PgOptions::clock`] replaces it in tests.
#[derive(Debug)]
pub struct PgTaskStore {
    pool: Pool<TaskStatements>,
    opts: PgOptions,
    slow: SlowLog,
    /// Calls made, for folding the rows of changes to the counts every
    /// `counts::CALLS_PER_FOLD`.
    calls: std::sync::atomic::AtomicU64,
    /// The text of a batch claim (planned per call, with its own limit), rendered once.
    claim_batch: Arc<str>,
    /// The text of the work graph's statements, rendered once.
    graph_sql: Arc<graph::GraphSql>,
    /// Bumped by the notifications of writes that leave a task ready, from every host.
    ready: Arc<ReadySignal>,
}

impl PgTaskStore {
    /// Connects to the server of `opts` and migrates the schema (once, whatever other hosts
    /// do at the same time).
    pub fn connect(opts: PgOptions) -> Result<Self> {
        let pool = Pool::new(&opts, "tasks").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
            source: Box::new(e),
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
        let quoted = format!("\"{}\"", opts.schema);
        let claim_batch = claim_sql(&quoted, true).into();
        let graph_sql = Arc::new(graph::GraphSql::new(&quoted));
        let ready = Arc::new(ReadySignal::new());
        pool.spawn(ready::listen(ready.clone(), opts.clone()));
        Ok(PgTaskStore {
            pool,
            slow: SlowLog::new(opts.slow_threshold),
            opts,
            calls: Default::default(),
            claim_batch,
            graph_sql,
            ready,
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
        f: impl FnOnce(Arc<Conn<TaskStatements>>) -> Fut + Send + 'static,
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
        if calls % counts::CALLS_PER_FOLD == counts::CALLS_PER_FOLD - 1 {
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

    /// The task holding `key` now.
    fn holder(&self, key: &str) -> Result<Option<Task>> {
        let keys = vec![key.to_owned()];
        let rows = self.call("holder", move |c| async move {
            c.client.query(&c.stmts.holders, &[&keys]).await
        })?;
        rows.first().map(|r| row_task(r, 0)).transpose()
    }

    /// The database's time (or the injected clock's).
    fn db_now(&self) -> Result<Timestamp> {
        let now = self.clock_ms();
        let row = self.call("db_now", move |c| async move {
            c.client.query_one(&c.stmts.now, &[&now]).await
        })?;
        Ok(Timestamp::from_millis(
            row.try_get(0).map_err(|e| corrupt("(now)", e))?,
        ))
    }

    /// The quoted schema, for the statements built per call.
    fn table_schema(&self) -> String {
        format!("\"{}\"", self.opts.schema)
    }
}

impl TaskStore for PgTaskStore {
    fn submit_many(&self, new: Vec<NewTask>) -> Result<Vec<Created>> {
        self.submit(new)
    }

    fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        Ok(self.read(id)?.0)
    }

    fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
        self.apply_change(id, change, expect)
    }

    fn claim_many(
        &self,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Vec<Task>> {
        self.claim(owner, ttl, n, filter)
    }

    fn add_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        self.add_edge(task, on)
    }

    fn remove_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        self.remove_edge(task, on)
    }

    fn delete_with(
        &self,
        id: &TaskId,
        expect: Option<u64>,
        on_dependents: OnDependents,
    ) -> Result<Vec<Task>> {
        self.delete_tasks(id, expect, on_dependents)
    }

    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
        self.reap_leases(now)
    }

    fn list(&self, query: &TaskQuery) -> Result<TaskPage> {
        self.list_page(query)
    }

    fn count(&self, filter: &TaskFilter) -> Result<u64> {
        self.count_matching(filter)
    }

    fn stats(&self, recent: usize) -> Result<TaskStats> {
        self.read_stats(recent)
    }

    fn counts(&self, cap: u64) -> Result<TaskCounts> {
        self.read_counts(cap)
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
        history_of(id, &text)
    }

    fn ready_signal(&self) -> Option<&ReadySignal> {
        Some(&self.ready)
    }

    fn prune_finished(&self, policy: &oc_tasks::RetentionPolicy) -> Result<oc_tasks::PruneReport> {
        self.prune(policy)
    }

    fn archived(&self, id: &TaskId) -> Result<Option<oc_tasks::ArchivedTask>> {
        self.read_archived(id)
    }

    fn submit_many_keyed(
        &self,
        key: &IdempotencyKey,
        new: Vec<NewTask>,
    ) -> Result<Keyed<Vec<Created>>> {
        self.submit_keyed_tx(key, new)
    }

    fn apply_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        change: Change,
        expect: Option<u64>,
    ) -> Result<Keyed<Task>> {
        self.apply_keyed_tx(key, id, change, expect)
    }

    fn claim_many_keyed(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Keyed<Vec<Task>>> {
        self.claim_keyed_tx(key, owner, ttl, n, filter, true)
    }

    fn claim_many_keyed_granted(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Keyed<Vec<Task>>> {
        self.claim_keyed_tx(key, owner, ttl, n, filter, false)
    }

    fn release_forgetting(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
    ) -> Result<Option<Task>> {
        self.release_forgetting_tx(key, id, token)
    }

    fn complete_many(
        &self,
        items: &[(TaskId, Option<u64>, Option<serde_json::Value>)],
    ) -> Result<Vec<Result<Task>>> {
        self.apply_batch(complete_changes(items)?)
    }

    fn fail_many(&self, items: &[(TaskId, Option<u64>, String)]) -> Result<Vec<Result<Task>>> {
        self.apply_batch(fail_changes(items)?)
    }

    fn heartbeat_many(&self, items: &[(TaskId, u64)], ttl: Duration) -> Result<Vec<Result<Task>>> {
        self.apply_batch(heartbeat_changes(items, ttl)?)
    }

    fn now(&self) -> Timestamp {
        // The trait cannot fail here; an unreachable server falls back to this host's clock,
        // and the next operation reports the failure.
        self.db_now().unwrap_or_else(|_| Timestamp::now())
    }
}
