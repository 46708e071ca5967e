//! The [`TaskStore`] implementation: each method one read or one write transaction.

use std::time::Duration;

use oc_sqlite::Fence;
use rusqlite::Transaction;
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use super::SqliteTaskStore;
use super::graph::{dependents, drop_edge, edges_of};
use super::keys::{forget, keyed};
use super::listing::{READY_TABLE, counts_in, history_in, stats_in, where_clause};
use super::retention;
use super::rows::{COLS, corrupt, load, row_to_task, to_u64};
use super::write::{apply_in, exists, insert, key_holder, moved, store_cas, touch, uncount};
use crate::backend::{
    Doomed, KeyedRequest, KeyedResult, PathSearch, cycle_error, given_back, plan_submit,
};
use crate::model::reap;
use crate::store::{complete_changes, fail_changes, heartbeat_changes};
use crate::wait::may_ready;
use crate::{
    Change, Created, Error, EventKind, HistoryEntry, IdempotencyKey, Keyed, LabelFilter, NewTask,
    OnDependents, Order, Readiness, ReadySignal, ReapedTask, Result, Task, TaskCounts, TaskFilter,
    TaskId, TaskPage, TaskQuery, TaskStats, TaskStatus, TaskStore, Timestamp,
};

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
            self.woke(&out, now);
            return Ok(out);
        }
        let out = self.write(|tx| submit_in(tx, tasks.clone()))?;
        self.woke(&out, now);
        Ok(out)
    }

    fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        self.read(|c| load(c, id))
    }

    fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
        change.validate()?;
        let now = self.opts.clock.now();
        let next = self.write(|tx| apply_in(tx, &self.fence, id, &change, expect, now))?;
        if may_ready(&change) {
            self.ready.after(&[&next], now);
        }
        Ok(next)
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
        // The time (`?1`) is read inside the transaction (below), not before waiting for the
        // writer: a claim that waited behind a completion must not be stamped before it.
        let (sql, mut params) = claim_sql(filter, n);
        self.write(|tx| {
            let now = self.opts.clock.now();
            claim_in(tx, &self.fence, &sql, &mut params, &change, now)
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
            let mut search = PathSearch::new(on, task);
            while let Some(level) = search.wanted() {
                let edges = edges_of(tx, level)?;
                search.feed(edges);
            }
            if let Some(path) = search.path() {
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
        let t = self.write(|tx| {
            let now = self.opts.clock.now();
            let t = load(tx, task)?.ok_or_else(|| Error::NotFound { id: task.clone() })?;
            if !t.depends_on.contains(on) {
                return Ok(t);
            }
            drop_edge(tx, task.as_str(), on.as_str())?;
            touch(tx, task.as_str(), now)?;
            load(tx, task)?.ok_or_else(|| Error::NotFound { id: task.clone() })
        })?;
        self.ready.bump();
        Ok(t)
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
            let mut walk = Doomed::new(id, on_dependents);
            while let Some(t) = walk.wanted() {
                let below = dependents(tx, t)?;
                walk.feed(below)?;
            }
            let mut doomed = vec![prev];
            for d in walk.tasks().into_iter().skip(1) {
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
        .inspect(|_| self.ready.bump())
    }

    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
        let reaped = self.write(|tx| {
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
                    store_cas(tx, &prev, &r.task, Some(EventKind::LeaseExpired))?;
                    reaped.push(r);
                }
            }
            Ok(reaped)
        })?;
        if !reaped.is_empty() {
            let tasks: Vec<&Task> = reaped.iter().map(|r| &r.task).collect();
            self.ready.after(&tasks, now);
        }
        Ok(reaped)
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
            crate::backend::sql::order_by_sql(query.order),
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

    fn ready_signal(&self) -> Option<&ReadySignal> {
        Some(&self.ready)
    }

    fn prune_finished(&self, policy: &crate::RetentionPolicy) -> Result<crate::PruneReport> {
        self.prune(policy)
    }

    fn archived(&self, id: &TaskId) -> Result<Option<crate::ArchivedTask>> {
        self.read(|c| retention::archived_in(c, id))
    }

    fn submit_many_keyed(
        &self,
        key: &IdempotencyKey,
        new: Vec<NewTask>,
    ) -> Result<Keyed<Vec<Created>>> {
        let request = KeyedRequest::Submit { tasks: &new }.fingerprint()?;
        let out = self
            .write(|tx| {
                let now = self.opts.clock.now();
                let tasks = new
                    .iter()
                    .map(|n| n.clone().into_task(now))
                    .collect::<Result<Vec<_>>>()?;
                keyed(tx, key, &request, now, true, || {
                    submit_in(tx, tasks).map(KeyedResult::Submit)
                })
            })?
            .try_map(|r| r.submit(key))?;
        if !out.replayed {
            self.woke(&out.value, self.opts.clock.now());
        }
        Ok(out)
    }

    fn apply_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        change: Change,
        expect: Option<u64>,
    ) -> Result<Keyed<Task>> {
        let request = KeyedRequest::apply(id, &change, expect)?;
        let out = self
            .write(|tx| {
                let now = self.opts.clock.now();
                keyed(tx, key, &request, now, true, || {
                    apply_in(tx, &self.fence, id, &change, expect, now)
                        .map(|t| KeyedResult::Apply(Box::new(t)))
                })
            })?
            .try_map(|r| r.apply(key))?;
        if !out.replayed && may_ready(&change) {
            self.ready.after(&[&out.value], self.opts.clock.now());
        }
        Ok(out)
    }

    fn claim_many_keyed(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Keyed<Vec<Task>>> {
        self.claim_keyed_recording(key, owner, ttl, n, filter, true)
    }

    fn claim_many_keyed_granted(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Keyed<Vec<Task>>> {
        self.claim_keyed_recording(key, owner, ttl, n, filter, false)
    }

    fn release_forgetting(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
    ) -> Result<Option<Task>> {
        let change = Change::Release { token };
        change.validate()?;
        let released = self.write(|tx| {
            let now = self.opts.clock.now();
            forget(tx, key)?;
            given_back(apply_in(tx, &self.fence, id, &change, None, now))
        })?;
        if let Some(t) = &released {
            self.ready.after(&[t], self.opts.clock.now());
        }
        Ok(released)
    }

    /// One `BEGIN IMMEDIATE` transaction for the whole batch.
    fn complete_many(
        &self,
        items: &[(TaskId, Option<u64>, Option<Value>)],
    ) -> Result<Vec<Result<Task>>> {
        self.apply_many(complete_changes(items)?)
    }

    /// One `BEGIN IMMEDIATE` transaction for the whole batch.
    fn fail_many(&self, items: &[(TaskId, Option<u64>, String)]) -> Result<Vec<Result<Task>>> {
        self.apply_many(fail_changes(items)?)
    }

    /// One `BEGIN IMMEDIATE` transaction for the whole batch.
    fn heartbeat_many(&self, items: &[(TaskId, u64)], ttl: Duration) -> Result<Vec<Result<Task>>> {
        self.apply_many(heartbeat_changes(items, ttl)?)
    }
}

impl SqliteTaskStore {
    /// A keyed claim of up to `n` tasks; with `record_empty`, an answer of no task is recorded
    /// under the key too (`claim_many_keyed`), without, only a grant (`claim_many_keyed_granted`).
    fn claim_keyed_recording(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
        record_empty: bool,
    ) -> Result<Keyed<Vec<Task>>> {
        let (change, request) = KeyedRequest::claim(owner, ttl, n, filter)?;
        let (sql, mut params) = claim_sql(filter, n);
        self.write(|tx| {
            let now = self.opts.clock.now();
            keyed(tx, key, &request, now, record_empty, || {
                claim_in(tx, &self.fence, &sql, &mut params, &change, now).map(KeyedResult::Claim)
            })
        })?
        .try_map(|r| r.claim(key))
    }
    /// Applies each change in order in one write transaction, each item's outcome its own:
    /// an item refused (before it wrote anything: every refusal comes from reading) does not
    /// stop the others, while a failure of the database rolls the whole batch back and is the
    /// call's. Wakes waiters once, after the commit.
    fn apply_many(&self, changes: Vec<(&TaskId, Change)>) -> Result<Vec<Result<Task>>> {
        let mut now = self.opts.clock.now();
        let out = self.write(|tx| {
            now = self.opts.clock.now();
            let mut out = Vec::with_capacity(changes.len());
            for (id, change) in &changes {
                let r = change
                    .validate()
                    .and_then(|()| apply_in(tx, &self.fence, id, change, None, now));
                match r {
                    Err(e @ Error::Backend { .. }) => return Err(e),
                    r => out.push(r),
                }
            }
            Ok(out)
        })?;
        let woke: Vec<&Task> = out
            .iter()
            .zip(&changes)
            .filter(|(_, (_, change))| may_ready(change))
            .filter_map(|(r, _)| r.as_ref().ok())
            .collect();
        if !woke.is_empty() {
            self.ready.after(&woke, now);
        }
        Ok(out)
    }
}

/// Inserts planned tasks with their edges and counts, looking up unique keys and references
/// in `tx`.
fn submit_in(tx: &Transaction<'_>, tasks: Vec<Task>) -> Result<Vec<Created>> {
    let out = plan_submit(tasks, |key| key_holder(tx, key, None), |id| exists(tx, id))?;
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
}

/// The claim's `SELECT` of ready ids and its parameters, `?1` the time (set in the
/// transaction).
fn claim_sql(filter: &LabelFilter, n: usize) -> (String, Vec<SqlValue>) {
    let ready = TaskFilter {
        labels: filter.clone(),
        readiness: Some(Readiness::Ready),
        ..TaskFilter::default()
    };
    let (cond, mut params) = where_clause(&ready, None, Timestamp::from_millis(0));
    params.push(SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT id FROM {READY_TABLE}{cond} ORDER BY priority DESC, created_at, id LIMIT ?{}",
        params.len()
    );
    (sql, params)
}

/// Claims what `sql` selects at `now`.
// The time (`?1`) is read inside the transaction, not before waiting for the writer: a claim
// that waited behind a completion must not be stamped before it.
fn claim_in(
    tx: &Transaction<'_>,
    fence: &Fence,
    sql: &str,
    params: &mut [SqlValue],
    change: &Change,
    now: Timestamp,
) -> Result<Vec<Task>> {
    if let Some(p) = params.first_mut() {
        *p = SqlValue::Integer(now.as_millis());
    }
    let ids: Vec<String> = tx
        .prepare_cached(sql)?
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let id = TaskId::new(id.clone()).map_err(|e| corrupt(&id, e))?;
        claimed.push(apply_in(tx, fence, &id, change, None, now)?);
    }
    Ok(claimed)
}

impl SqliteTaskStore {
    /// Wakes this handle's waiting claims after tasks were created.
    fn woke(&self, created: &[Created], now: Timestamp) {
        let tasks: Vec<&Task> = created.iter().map(|c| &c.task).collect();
        self.ready.after(&tasks, now);
    }
}
