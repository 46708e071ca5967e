//! `MemoryTaskStore`: the reference backend, for embedders' tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::backend::{
    Doomed, KeyedRequest, KeyedResult, PathSearch, cycle_error, finished_run, given_back,
    idempotency_conflict, plan_submit,
};
use crate::model::{reap, transition};
use crate::query::{Cursor, RunDurations};
use crate::store::{complete_changes, fail_changes, heartbeat_changes};
use crate::wait::may_ready;
use crate::{
    Capped, Change, Clock, Created, Error, EventKind, HistoryEntry, IDEMPOTENCY_KEY_TTL,
    IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, Keyed, LabelFilter, NewTask, OnDependents, Order,
    ReadySignal, ReapedTask, Result, SystemClock, Task, TaskCounts, TaskFilter, TaskId, TaskPage,
    TaskQuery, TaskStats, TaskStatus, TaskStore, TaskSummary, Timestamp, Unique, is_ready,
};

/// An in-memory [`TaskStore`] with the same semantics as the SQLite one.
///
/// Everything lives behind one mutex; listings scan every task and readiness is worked out
/// from the dependencies' statuses, which is fine for tests and small embedded uses.
/// The clock is read under the mutex, so the times it records follow the order of its changes.
///
/// ```
/// use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};
/// use std::time::Duration;
/// let store = MemoryTaskStore::new();
/// store.create(NewTask::new("write docs"))?;
/// let t = store.claim_next("agent-1", Duration::from_secs(30))?.expect("a pending task");
/// store.complete(&t.id, t.lease.map(|l| l.token), None)?;
/// # Ok::<(), oc_tasks::Error>(())
/// ```
#[derive(Debug)]
pub struct MemoryTaskStore {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    ready: ReadySignal,
}

#[derive(Debug, Default)]
struct State {
    tasks: HashMap<TaskId, Task>,
    last_token: u64,
    /// Entries into each status, indexed like `TaskStatus::ALL`.
    entered: [u64; 5],
    runs: RunDurations,
    history: HashMap<TaskId, Vec<HistoryEntry>>,
    /// Idempotency keys by (agent, key): the request's fingerprint, the first result, when.
    keys: HashMap<(String, String), (String, KeyedResult, Timestamp)>,
    /// The keys in the order they were recorded, for the bounded sweep.
    key_order: VecDeque<(Timestamp, (String, String))>,
    /// Tasks archived by `prune_finished` (`retention.rs`), by id.
    archive: HashMap<TaskId, crate::ArchivedTask>,
}

impl State {
    /// Records what a write from `prev` to `next` changed: counters, and the history entry of
    /// `kind` (the one [`transition`] returned; `None` records none).
    fn record(&mut self, prev: Option<&Task>, next: &Task, kind: Option<EventKind>) {
        if prev.is_none_or(|p| p.status != next.status) {
            self.entered[slot(next.status)] += 1;
        }
        if let Some(d) = prev.and_then(|p| finished_run(p, next)) {
            self.runs.observe(d);
        }
        if let Some(kind) = kind {
            let h = HistoryEntry::new(kind, prev, next);
            h.trace();
            self.history.entry(next.id.clone()).or_default().push(h);
        }
    }
}

impl State {
    /// Whether `t` is ready at `now`.
    fn ready(&self, t: &Task, now: Timestamp) -> bool {
        let unfinished = t
            .depends_on
            .iter()
            .filter(|d| {
                self.tasks
                    .get(*d)
                    .is_some_and(|x| x.status != TaskStatus::Completed)
            })
            .count();
        is_ready(t, unfinished, now)
    }

    /// The task other than `except` holding `key`.
    fn holder(&self, key: &str, except: Option<&TaskId>) -> Option<&Task> {
        self.tasks
            .values()
            .find(|t| Some(&t.id) != except && Unique::held_by(t) == Some(key))
    }

    /// Checks that writing `next` keeps unique keys unique.
    fn check_key(&self, next: &Task) -> Result<()> {
        if let Some(key) = Unique::held_by(next)
            && let Some(h) = self.holder(key, Some(&next.id))
        {
            return Err(Error::UniqueKeyHeld {
                key: key.to_owned(),
                holder: h.id.clone(),
            });
        }
        Ok(())
    }

    /// Tasks depending on `id` or children of it.
    fn dependents(&self, id: &TaskId) -> Vec<TaskId> {
        let mut v: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.depends_on.contains(id) || t.parent.as_ref() == Some(id))
            .map(|t| t.id.clone())
            .collect();
        v.sort();
        v
    }
}

mod retention;

fn slot(s: TaskStatus) -> usize {
    TaskStatus::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Default for MemoryTaskStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTaskStore {
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
        let mut st = self.state.lock();
        let now = self.clock.now();
        st.keyed(key, request, now, record_empty, |st| {
            st.claim(&change, n, filter, now).map(KeyedResult::Claim)
        })?
        .try_map(|r| r.claim(key))
    }

    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store reading time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryTaskStore {
            clock,
            state: Mutex::new(State::default()),
            ready: ReadySignal::new(),
        }
    }
}

fn sorted<'a>(tasks: impl Iterator<Item = &'a Task>, order: Order) -> Vec<&'a Task> {
    let mut v: Vec<&Task> = tasks.collect();
    match order {
        Order::Newest => v.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id))),
        Order::Oldest => v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id))),
        Order::Priority => v.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then((a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
        }),
    }
    v
}

impl TaskStore for MemoryTaskStore {
    fn submit_many(&self, new: Vec<NewTask>) -> Result<Vec<Created>> {
        let now = self.clock.now();
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        let out = self.state.lock().submit(tasks)?;
        self.ready
            .after(&out.iter().map(|c| &c.task).collect::<Vec<_>>(), now);
        Ok(out)
    }

    fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        Ok(self.state.lock().tasks.get(id).cloned())
    }

    fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
        change.validate()?;
        let mut st = self.state.lock();
        let now = self.clock.now();
        let next = st.apply(id, &change, expect, now)?;
        // Waiters are woken once the mutex is free, or they would wake only to wait for it.
        drop(st);
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
        let mut st = self.state.lock();
        let now = self.clock.now();
        st.claim(&change, n, filter, now)
    }

    fn add_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        let mut st = self.state.lock();
        let now = self.clock.now();
        let t = st
            .tasks
            .get(task)
            .ok_or_else(|| Error::NotFound { id: task.clone() })?
            .clone();
        if task == on {
            return Err(Error::Cycle {
                cycle: vec![task.clone(), task.clone()],
            });
        }
        if !st.tasks.contains_key(on) {
            return Err(Error::MissingReference {
                field: "depends_on",
                id: on.clone(),
            });
        }
        if t.depends_on.contains(on) {
            return Ok(t);
        }
        let mut search = PathSearch::new(on, task);
        while let Some(level) = search.wanted() {
            let edges: Vec<(TaskId, TaskId)> = level
                .iter()
                .filter_map(|f| st.tasks.get(f))
                .flat_map(|x| x.depends_on.iter().map(|d| (x.id.clone(), d.clone())))
                .collect();
            search.feed(edges);
        }
        if let Some(path) = search.path() {
            return Err(cycle_error(task, path));
        }
        let mut next = t;
        next.depends_on.push(on.clone());
        next.depends_on.sort();
        next.version += 1;
        next.updated_at = now;
        st.tasks.insert(task.clone(), next.clone());
        Ok(next)
    }

    fn remove_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
        let mut st = self.state.lock();
        let now = self.clock.now();
        let t = st
            .tasks
            .get_mut(task)
            .ok_or_else(|| Error::NotFound { id: task.clone() })?;
        if let Some(i) = t.depends_on.iter().position(|d| d == on) {
            t.depends_on.remove(i);
            t.version += 1;
            t.updated_at = now;
        }
        let t = t.clone();
        drop(st);
        self.ready.bump();
        Ok(t)
    }

    fn delete_with(
        &self,
        id: &TaskId,
        expect: Option<u64>,
        dependents: OnDependents,
    ) -> Result<Vec<Task>> {
        let mut st = self.state.lock();
        let now = self.clock.now();
        let task = st
            .tasks
            .get(id)
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        if let Some(expected) = expect
            && expected != task.version
        {
            return Err(Error::VersionMismatch {
                id: id.clone(),
                expected,
                actual: task.version,
            });
        }
        let mut walk = Doomed::new(id, dependents);
        while let Some(t) = walk.wanted() {
            let below = st.dependents(t);
            walk.feed(below)?;
        }
        let doomed = walk.tasks();
        let mut out = Vec::with_capacity(doomed.len());
        for d in &doomed {
            st.history.remove(d);
            if let Some(t) = st.tasks.remove(d) {
                out.push(t);
            }
        }
        // What is left keeps no edge to what went.
        for t in st.tasks.values_mut() {
            let before = (t.depends_on.len(), t.parent.clone());
            t.depends_on.retain(|d| !doomed.contains(d));
            if t.parent.as_ref().is_some_and(|p| doomed.contains(p)) {
                t.parent = None;
            }
            if before != (t.depends_on.len(), t.parent.clone()) {
                t.version += 1;
                t.updated_at = now;
            }
        }
        drop(st);
        self.ready.bump();
        Ok(out)
    }

    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
        let mut st = self.state.lock();
        let mut reaped: Vec<ReapedTask> = st
            .tasks
            .values()
            .filter_map(|t| reap(t, now))
            .filter(|r| st.check_key(&r.task).is_ok())
            .collect();
        reaped.sort_by(|a, b| a.task.id.cmp(&b.task.id));
        for r in &reaped {
            if let Some(prev) = st.tasks.insert(r.task.id.clone(), r.task.clone()) {
                st.record(Some(&prev), &r.task, Some(EventKind::LeaseExpired));
            }
        }
        drop(st);
        if !reaped.is_empty() {
            self.ready
                .after(&reaped.iter().map(|r| &r.task).collect::<Vec<_>>(), now);
        }
        Ok(reaped)
    }

    fn list(&self, query: &TaskQuery) -> Result<TaskPage> {
        query.validate()?;
        let st = self.state.lock();
        let now = self.clock.now();
        let tasks = sorted(
            st.tasks.values().filter(|t| {
                query.filter.matches(t, st.ready(t, now))
                    && query
                        .after
                        .as_ref()
                        .is_none_or(|c: &Cursor| c.precedes(t, query.order))
            }),
            query.order,
        )
        .into_iter()
        .take(query.limit + 1)
        .cloned()
        .collect();
        Ok(TaskPage::from_overfetch(tasks, query.limit))
    }

    fn count(&self, filter: &TaskFilter) -> Result<u64> {
        filter.validate()?;
        let st = self.state.lock();
        let now = self.clock.now();
        Ok(st
            .tasks
            .values()
            .filter(|t| filter.matches(t, st.ready(t, now)))
            .count() as u64)
    }

    fn stats(&self, recent: usize) -> Result<TaskStats> {
        let st = self.state.lock();
        let now = self.clock.now();
        let ready = st.tasks.values().filter(|t| st.ready(t, now)).count() as u64;
        let mut by_owner: BTreeMap<Option<String>, u64> = BTreeMap::new();
        let mut by_status = TaskStatus::ALL.map(|s| (s, 0u64));
        for t in st.tasks.values() {
            *by_owner.entry(t.owner.clone()).or_default() += 1;
            if let Some(slot) = by_status.iter_mut().find(|(s, _)| *s == t.status) {
                slot.1 += 1;
            }
        }
        let mut by_owner: Vec<_> = by_owner.into_iter().collect();
        by_owner.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let recent = sorted(st.tasks.values(), Order::Newest)
            .into_iter()
            .take(recent)
            .map(|t| TaskSummary {
                id: t.id.clone(),
                name: t.name.clone(),
                status: t.status,
                created_at: t.created_at,
            })
            .collect();
        Ok(TaskStats {
            total: st.tasks.len() as u64,
            by_status: by_status.to_vec(),
            by_owner,
            recent,
            entered: TaskStatus::ALL
                .iter()
                .map(|s| (*s, st.entered[slot(*s)]))
                .collect(),
            runs: st.runs,
            ready,
            blocked: by_status[0].1 - ready,
        })
    }

    /// One walk of the tasks, counting exactly (a map in memory has no cheaper way).
    fn counts(&self, _cap: u64) -> Result<TaskCounts> {
        let st = self.state.lock();
        let now = self.clock.now();
        let (mut by_status, mut ready) = (TaskStatus::ALL.map(|s| (s, 0u64)), 0);
        for t in st.tasks.values() {
            by_status[slot(t.status)].1 += 1;
            ready += u64::from(st.ready(t, now));
        }
        Ok(TaskCounts {
            ready: Capped::exact(ready),
            blocked: Capped::exact(by_status[slot(TaskStatus::Pending)].1 - ready),
            by_status: by_status.to_vec(),
            entered: TaskStatus::ALL
                .iter()
                .map(|s| (*s, st.entered[slot(*s)]))
                .collect(),
        })
    }

    fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>> {
        let st = self.state.lock();
        if !st.tasks.contains_key(id) {
            return Err(Error::NotFound { id: id.clone() });
        }
        Ok(st.history.get(id).cloned().unwrap_or_default())
    }

    fn ready_signal(&self) -> Option<&ReadySignal> {
        Some(&self.ready)
    }

    fn prune_finished(&self, policy: &crate::RetentionPolicy) -> Result<crate::PruneReport> {
        self.prune(policy)
    }

    fn archived(&self, id: &TaskId) -> Result<Option<crate::ArchivedTask>> {
        Ok(self.state.lock().archive.get(id).cloned())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn submit_many_keyed(
        &self,
        key: &IdempotencyKey,
        new: Vec<NewTask>,
    ) -> Result<Keyed<Vec<Created>>> {
        let request = KeyedRequest::Submit { tasks: &new }.fingerprint()?;
        let mut st = self.state.lock();
        let now = self.clock.now();
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        let out = st
            .keyed(key, request, now, true, |st| {
                st.submit(tasks).map(KeyedResult::Submit)
            })?
            .try_map(|r| r.submit(key))?;
        drop(st);
        if !out.replayed {
            self.ready
                .after(&out.value.iter().map(|c| &c.task).collect::<Vec<_>>(), now);
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
        let mut st = self.state.lock();
        let now = self.clock.now();
        let out = st
            .keyed(key, request, now, true, |st| {
                st.apply(id, &change, expect, now)
                    .map(|t| KeyedResult::Apply(Box::new(t)))
            })?
            .try_map(|r| r.apply(key))?;
        drop(st);
        if !out.replayed && may_ready(&change) {
            self.ready.after(&[&out.value], now);
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
        let mut st = self.state.lock();
        let now = self.clock.now();
        st.keys
            .remove(&(key.agent().to_owned(), key.key().to_owned()));
        let released = given_back(st.apply(id, &change, None, now))?;
        drop(st);
        if let Some(t) = &released {
            self.ready.after(&[t], now);
        }
        Ok(released)
    }

    /// Every item under one hold of the mutex, at one time.
    fn complete_many(
        &self,
        items: &[(TaskId, Option<u64>, Option<Value>)],
    ) -> Result<Vec<Result<Task>>> {
        self.apply_many(complete_changes(items)?)
    }

    /// Every item under one hold of the mutex, at one time.
    fn fail_many(&self, items: &[(TaskId, Option<u64>, String)]) -> Result<Vec<Result<Task>>> {
        self.apply_many(fail_changes(items)?)
    }

    /// Every item under one hold of the mutex, at one time.
    fn heartbeat_many(&self, items: &[(TaskId, u64)], ttl: Duration) -> Result<Vec<Result<Task>>> {
        self.apply_many(heartbeat_changes(items, ttl)?)
    }
}

impl MemoryTaskStore {
    /// Applies each change in order under one hold of the mutex, each item's outcome its own;
    /// wakes waiters once, after.
    fn apply_many(&self, changes: Vec<(&TaskId, Change)>) -> Result<Vec<Result<Task>>> {
        let mut st = self.state.lock();
        let now = self.clock.now();
        let out: Vec<Result<Task>> = changes
            .iter()
            .map(|(id, change)| {
                change.validate()?;
                st.apply(id, change, None, now)
            })
            .collect();
        drop(st);
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

impl State {
    fn submit(&mut self, tasks: Vec<Task>) -> Result<Vec<Created>> {
        let st = self;
        let out = plan_submit(
            tasks,
            |key| Ok(st.holder(key, None).cloned()),
            |id| Ok(st.tasks.contains_key(id)),
        )?;
        for c in out.iter().filter(|c| !c.duplicate) {
            if st.tasks.contains_key(&c.task.id) {
                return Err(Error::AlreadyExists {
                    id: c.task.id.clone(),
                });
            }
        }
        for c in out.iter().filter(|c| !c.duplicate) {
            st.tasks.insert(c.task.id.clone(), c.task.clone());
            st.record(None, &c.task, Some(EventKind::Created));
        }
        Ok(out)
    }

    fn apply(
        &mut self,
        id: &TaskId,
        change: &Change,
        expect: Option<u64>,
        now: Timestamp,
    ) -> Result<Task> {
        let st = self;
        let task = st
            .tasks
            .get_mut(id)
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        let mut token = st.last_token;
        let (next, kind) = transition(task, change, expect, now, || {
            token += 1;
            token
        })?;
        st.check_key(&next)?;
        st.last_token = token;
        let prev = st.tasks.insert(id.clone(), next.clone());
        st.record(prev.as_ref(), &next, kind);
        Ok(next)
    }

    fn claim(
        &mut self,
        change: &Change,
        n: usize,
        filter: &LabelFilter,
        now: Timestamp,
    ) -> Result<Vec<Task>> {
        let st = self;
        let ids: Vec<TaskId> = sorted(
            st.tasks
                .values()
                .filter(|t| st.ready(t, now) && filter.matches(&t.labels)),
            Order::Priority,
        )
        .into_iter()
        .take(n)
        .map(|t| t.id.clone())
        .collect();
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(task) = st.tasks.get_mut(&id) else {
                continue;
            };
            let (next, kind) = transition(task, change, None, now, || {
                st.last_token += 1;
                st.last_token
            })?;
            let prev = std::mem::replace(task, next.clone());
            st.record(Some(&prev), &next, kind);
            claimed.push(next);
        }
        Ok(claimed)
    }

    /// Runs `op` under `key`, or replays the result recorded for it; sweeps a bounded batch of
    /// lapsed keys first. Called with the store's mutex held, so the key and the change are
    /// recorded together. Without `record_empty`, a claim that claimed nothing is not
    /// recorded.
    fn keyed(
        &mut self,
        key: &IdempotencyKey,
        request: String,
        now: Timestamp,
        record_empty: bool,
        op: impl FnOnce(&mut State) -> Result<KeyedResult>,
    ) -> Result<Keyed<KeyedResult>> {
        let lapsed = |at: Timestamp| at.saturating_add(IDEMPOTENCY_KEY_TTL) <= now;
        for _ in 0..IDEMPOTENCY_SWEEP_BATCH {
            match self.key_order.front() {
                Some((at, _)) if lapsed(*at) => {}
                _ => break,
            }
            if let Some((at, k)) = self.key_order.pop_front()
                && self.keys.get(&k).is_some_and(|e| e.2 == at)
            {
                self.keys.remove(&k);
            }
        }
        let k = (key.agent().to_owned(), key.key().to_owned());
        if let Some((req, result, at)) = self.keys.get(&k)
            && !lapsed(*at)
        {
            if *req != request {
                return Err(idempotency_conflict(key));
            }
            return Ok(Keyed {
                value: result.clone(),
                replayed: true,
            });
        }
        let result = op(self)?;
        if !record_empty && result.is_empty_claim() {
            return Ok(Keyed {
                value: result,
                replayed: false,
            });
        }
        self.keys.insert(k.clone(), (request, result.clone(), now));
        self.key_order.push_back((now, k));
        Ok(Keyed {
            value: result,
            replayed: false,
        })
    }
}

#[cfg(test)]
mod tests;
