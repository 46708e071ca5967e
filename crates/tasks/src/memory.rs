//! `MemoryTaskStore`: the reference backend, for embedders' tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::HistoryEntry;
use crate::model::{reap, transition};
use crate::query::{Cursor, RunDurations, finished_run};
use crate::{
    Change, Clock, Error, NewTask, Order, ReapedTask, Result, SystemClock, Task, TaskFilter,
    TaskId, TaskPage, TaskQuery, TaskStats, TaskStatus, TaskStore, TaskSummary, Timestamp,
};

/// An in-memory [`TaskStore`] with the same semantics as the SQLite one.
///
/// Everything lives behind one mutex; listings scan every task, which is fine for tests
/// and small embedded uses.
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
}

#[derive(Debug, Default)]
struct State {
    tasks: HashMap<TaskId, Task>,
    last_token: u64,
    /// Entries into each status, indexed like `TaskStatus::ALL`.
    entered: [u64; 5],
    runs: RunDurations,
    history: HashMap<TaskId, Vec<HistoryEntry>>,
}

impl State {
    /// Records what a write from `prev` to `next` changed: counters and history.
    fn record(&mut self, prev: Option<&Task>, next: &Task, reaped: bool) {
        if prev.is_none_or(|p| p.status != next.status) {
            self.entered[slot(next.status)] += 1;
        }
        if let Some(d) = prev.and_then(|p| finished_run(p, next)) {
            self.runs.observe(d);
        }
        if let Some(h) = HistoryEntry::of(prev, next, reaped) {
            self.history.entry(next.id.clone()).or_default().push(h);
        }
    }
}

fn slot(s: TaskStatus) -> usize {
    TaskStatus::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Default for MemoryTaskStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTaskStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store reading time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryTaskStore {
            clock,
            state: Mutex::new(State::default()),
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
    fn create(&self, new: NewTask) -> Result<Task> {
        self.create_many(vec![new])?
            .pop()
            .ok_or_else(|| Error::InvalidInput {
                field: "tasks",
                reason: "nothing to create".into(),
            })
    }

    fn create_many(&self, new: Vec<NewTask>) -> Result<Vec<Task>> {
        let now = self.clock.now();
        let tasks = new
            .into_iter()
            .map(|n| n.into_task(now))
            .collect::<Result<Vec<_>>>()?;
        let mut st = self.state.lock();
        let mut seen = std::collections::HashSet::new();
        for t in &tasks {
            if st.tasks.contains_key(&t.id) || !seen.insert(&t.id) {
                return Err(Error::AlreadyExists { id: t.id.clone() });
            }
        }
        for t in &tasks {
            st.tasks.insert(t.id.clone(), t.clone());
            st.record(None, t, false);
        }
        Ok(tasks)
    }

    fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        Ok(self.state.lock().tasks.get(id).cloned())
    }

    fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
        change.validate()?;
        let now = self.clock.now();
        let mut st = self.state.lock();
        let st = &mut *st;
        let task = st
            .tasks
            .get_mut(id)
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        let next = transition(task, &change, expect, now, || {
            st.last_token += 1;
            st.last_token
        })?;
        let prev = std::mem::replace(task, next.clone());
        st.record(Some(&prev), &next, false);
        Ok(next)
    }

    fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Task>> {
        let change = Change::Claim {
            owner: owner.into(),
            ttl,
        };
        change.validate()?;
        let now = self.clock.now();
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(id) = sorted(
            st.tasks
                .values()
                .filter(|t| t.status == TaskStatus::Pending),
            Order::Priority,
        )
        .first()
        .map(|t| t.id.clone()) else {
            return Ok(None);
        };
        let Some(task) = st.tasks.get_mut(&id) else {
            return Ok(None);
        };
        let next = transition(task, &change, None, now, || {
            st.last_token += 1;
            st.last_token
        })?;
        let prev = std::mem::replace(task, next.clone());
        st.record(Some(&prev), &next, false);
        Ok(Some(next))
    }

    fn delete(&self, id: &TaskId, expect: Option<u64>) -> Result<Task> {
        let mut st = self.state.lock();
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
        st.history.remove(id);
        st.tasks
            .remove(id)
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> {
        let mut st = self.state.lock();
        let mut reaped: Vec<ReapedTask> = st.tasks.values().filter_map(|t| reap(t, now)).collect();
        reaped.sort_by(|a, b| a.task.id.cmp(&b.task.id));
        for r in &reaped {
            if let Some(prev) = st.tasks.insert(r.task.id.clone(), r.task.clone()) {
                st.record(Some(&prev), &r.task, true);
            }
        }
        Ok(reaped)
    }

    fn list(&self, query: &TaskQuery) -> Result<TaskPage> {
        query.validate()?;
        let st = self.state.lock();
        let tasks = sorted(
            st.tasks.values().filter(|t| {
                query.filter.matches(t)
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
        let st = self.state.lock();
        Ok(st.tasks.values().filter(|t| filter.matches(t)).count() as u64)
    }

    fn stats(&self, recent: usize) -> Result<TaskStats> {
        let st = self.state.lock();
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
        })
    }

    fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>> {
        let st = self.state.lock();
        if !st.tasks.contains_key(id) {
            return Err(Error::NotFound { id: id.clone() });
        }
        Ok(st.history.get(id).cloned().unwrap_or_default())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
