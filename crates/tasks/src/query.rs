//! Queries: filters, ordering, cursor pagination and statistics.

use serde::{Deserialize, Serialize};

use crate::{Error, LabelFilter, Readiness, Result, Task, TaskId, TaskStatus, Timestamp};

/// Which tasks a query or count covers; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskFilter {
    /// Any of these statuses (empty: all).
    pub statuses: Vec<TaskStatus>,
    /// Exactly this owner.
    pub owner: Option<String>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created before.
    pub created_to: Option<Timestamp>,
    /// Case-insensitive (ASCII) substring of the name, description or metadata JSON.
    pub search: Option<String>,
    /// Labels required and excluded.
    #[serde(default)]
    pub labels: LabelFilter,
    /// Children of this task.
    #[serde(default)]
    pub parent: Option<TaskId>,
    /// Tasks that depend on this one (its dependents).
    #[serde(default)]
    pub dependents_of: Option<TaskId>,
    /// Only ready tasks, or only blocked ones (both pending), by the store's clock.
    #[serde(default)]
    pub readiness: Option<Readiness>,
}

impl TaskFilter {
    /// A filter matching every task.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a status.
    pub fn status(mut self, s: TaskStatus) -> Self {
        self.statuses.push(s);
        self
    }
    /// Restricts to one owner.
    pub fn owner(mut self, o: impl Into<String>) -> Self {
        self.owner = Some(o.into());
        self
    }
    /// Restricts to tasks created in `[from, to)`.
    pub fn created_between(mut self, from: Option<Timestamp>, to: Option<Timestamp>) -> Self {
        self.created_from = from;
        self.created_to = to;
        self
    }
    /// Restricts to tasks whose name, description or metadata contains `text`.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Requires `label`.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.labels.all.push(label.into());
        self
    }
    /// Excludes `label`.
    pub fn without_label(mut self, label: impl Into<String>) -> Self {
        self.labels.none.push(label.into());
        self
    }
    /// Restricts to the children of `parent`.
    pub fn parent(mut self, parent: TaskId) -> Self {
        self.parent = Some(parent);
        self
    }
    /// Restricts to the tasks that depend on `id`.
    pub fn dependents_of(mut self, id: TaskId) -> Self {
        self.dependents_of = Some(id);
        self
    }
    /// Restricts to ready or to blocked tasks.
    pub fn readiness(mut self, r: Readiness) -> Self {
        self.readiness = Some(r);
        self
    }

    /// Checks the labels named.
    pub(crate) fn validate(&self) -> Result<()> {
        self.labels.validate()
    }

    /// Whether `task` passes the filter (the reference semantics every store follows), all
    /// but `readiness`, which needs the graph: `ready` says whether the task is ready.
    pub fn matches(&self, task: &Task, ready: bool) -> bool {
        self.readiness.is_none_or(|r| match r {
            Readiness::Ready => ready,
            Readiness::Blocked => task.status == TaskStatus::Pending && !ready,
        }) && self.labels.matches(&task.labels)
            && self
                .parent
                .as_ref()
                .is_none_or(|p| task.parent.as_ref() == Some(p))
            && self
                .dependents_of
                .as_ref()
                .is_none_or(|d| task.depends_on.contains(d))
            && (self.statuses.is_empty() || self.statuses.contains(&task.status))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| task.owner.as_ref() == Some(o))
            && self.created_from.is_none_or(|f| task.created_at >= f)
            && self.created_to.is_none_or(|t| task.created_at < t)
            && self.search.as_ref().is_none_or(|s| {
                let needle = s.to_ascii_lowercase();
                let hay = |h: &str| h.to_ascii_lowercase().contains(&needle);
                hay(&task.name)
                    || task.description.as_deref().is_some_and(hay)
                    || hay(&metadata_text(task))
            })
    }
}

/// The metadata as stored and searched: compact JSON with sorted keys.
pub fn metadata_text(task: &Task) -> String {
    serde_json::Value::Object(task.metadata.clone()).to_string()
}

/// The order of a listing. Every order ends with the id, so it is total and pages never overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Order {
    /// Newest first (by creation).
    #[default]
    Newest,
    /// Oldest first (by creation).
    Oldest,
    /// Highest priority first, then oldest: the order `claim_next` takes.
    Priority,
}

/// Where the next page starts: the sort key of the last task of the previous page.
///
/// Opaque to callers; it round-trips through its string form, which the CLI prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cursor {
    pub(crate) priority: i32,
    pub(crate) created_at: Timestamp,
    pub(crate) id: TaskId,
}

impl Cursor {
    pub(crate) fn after(task: &Task) -> Self {
        Cursor {
            priority: task.priority,
            created_at: task.created_at,
            id: task.id.clone(),
        }
    }

    /// Whether `task` comes after this cursor in `order`.
    pub(crate) fn precedes(&self, task: &Task, order: Order) -> bool {
        let key = (task.created_at, &task.id);
        let mine = (self.created_at, &self.id);
        match order {
            Order::Newest => key < mine,
            Order::Oldest => key > mine,
            Order::Priority => {
                task.priority < self.priority || (task.priority == self.priority && key > mine)
            }
        }
    }
}

impl From<Cursor> for String {
    fn from(c: Cursor) -> String {
        format!("{}|{}|{}", c.priority, c.created_at.as_millis(), c.id)
    }
}

impl TryFrom<String> for Cursor {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        let bad = || Error::InvalidInput {
            field: "cursor",
            reason: format!("{s:?} is not a cursor returned by a listing"),
        };
        let mut parts = s.splitn(3, '|');
        let priority = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let created = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let id = parts
            .next()
            .and_then(|p| TaskId::new(p).ok())
            .ok_or_else(bad)?;
        Ok(Cursor {
            priority,
            created_at: Timestamp::from_millis(created),
            id,
        })
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Cursor::try_from(s.to_owned())
    }
}

/// Default page size of a listing.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page a listing returns.
pub const MAX_LIMIT: usize = 10_000;

/// A listing: filter, order, page size and where to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskQuery {
    /// Which tasks.
    pub filter: TaskFilter,
    /// In which order.
    pub order: Order,
    /// Page size (1–10,000; default 100).
    pub limit: usize,
    /// Continue after this cursor.
    pub after: Option<Cursor>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            filter: TaskFilter::default(),
            order: Order::default(),
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

impl TaskQuery {
    /// A query over `filter` with the default order and page size.
    pub fn new(filter: TaskFilter) -> Self {
        TaskQuery {
            filter,
            ..Default::default()
        }
    }
    /// Sets the order.
    pub fn order(mut self, o: Order) -> Self {
        self.order = o;
        self
    }
    /// Sets the page size.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }
    /// Continues after `c`.
    pub fn after(mut self, c: Option<Cursor>) -> Self {
        self.after = c;
        self
    }

    /// Checks the query's filter, limit and cursor, before a store is touched.
    pub fn validate(&self) -> Result<()> {
        self.filter.validate()?;
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(Error::InvalidInput {
                field: "limit",
                reason: format!("must be between 1 and {MAX_LIMIT}"),
            });
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    /// The tasks, in the query's order.
    pub tasks: Vec<Task>,
    /// Pass this as `after` to get the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

impl TaskPage {
    /// The page from up to `limit + 1` tasks read in the query's order: the extra one only
    /// says that there is more (and is dropped), the last one kept is the next page's cursor.
    pub fn from_overfetch(mut tasks: Vec<Task>, limit: usize) -> Self {
        let next = if tasks.len() > limit {
            tasks.truncate(limit);
            tasks.last().map(Cursor::after)
        } else {
            None
        };
        TaskPage { tasks, next }
    }
}

/// A task in a statistics listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// Id.
    pub id: TaskId,
    /// Name.
    pub name: String,
    /// Status.
    pub status: TaskStatus,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Counts by status and owner, and the most recent tasks: the seed's "Task Statistics".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStats {
    /// All tasks.
    pub total: u64,
    /// Count per status, every status present, in [`TaskStatus::ALL`] order.
    pub by_status: Vec<(TaskStatus, u64)>,
    /// Count per owner (`None`: no owner), most tasks first, then by name.
    pub by_owner: Vec<(Option<String>, u64)>,
    /// The most recently created tasks, newest first.
    pub recent: Vec<TaskSummary>,
    /// How many times tasks entered each status since the store was created (creations count
    /// as entering pending), every status present: the counters behind `opencode_tasks_total`.
    pub entered: Vec<(TaskStatus, u64)>,
    /// How long finished runs took, counted as they finished: the histogram behind
    /// `opencode_task_duration_seconds`.
    pub runs: RunDurations,
    /// Pending tasks ready to be claimed now.
    #[serde(default)]
    pub ready: u64,
    /// Pending tasks waiting on a dependency or their `run_at`.
    #[serde(default)]
    pub blocked: u64,
}

impl TaskStats {
    /// The JSON that `oc task-stats --json` and the MCP `task_stats` tool show:
    /// totals, statuses as an object, owners as a list, the recent tasks, ready and blocked.
    pub fn to_json(&self) -> serde_json::Value {
        let by_status: serde_json::Map<String, serde_json::Value> = self
            .by_status
            .iter()
            .map(|(s, n)| (s.to_string(), (*n).into()))
            .collect();
        let by_owner: Vec<serde_json::Value> = self
            .by_owner
            .iter()
            .map(|(o, n)| serde_json::json!({ "owner": o, "count": n }))
            .collect();
        serde_json::json!({
            "total": self.total,
            "by_status": by_status,
            "by_owner": by_owner,
            "recent": self.recent,
            "ready": self.ready,
            "blocked": self.blocked,
        })
    }
}

/// Upper bounds, in milliseconds, of the buckets [`RunDurations`] counts in: the seed's 1, 5,
/// 10, 30, 60 and 300 seconds. A store keeps these counts durably, so they are part of its
/// format: never change them, add a new histogram instead.
pub const RUN_BUCKETS_MS: [u64; 6] = [1_000, 5_000, 10_000, 30_000, 60_000, 300_000];

/// Run time of every finished run (a running task completed or failed, timed from its start or
/// claim), counted by the store in the same transaction as the transition, so every process
/// reads the same histogram and it never goes down (deleting a task does not undo history).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDurations {
    /// Runs per bucket, not cumulative: `counts[i]` took more than `RUN_BUCKETS_MS[i - 1]` and
    /// at most `RUN_BUCKETS_MS[i]`; the last counts those above 300 s.
    pub counts: [u64; RUN_BUCKETS_MS.len() + 1],
    /// Their run time summed, in milliseconds.
    pub sum_ms: u64,
}

impl RunDurations {
    /// Finished runs counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound in ms, runs at most that long)` per bucket, ending with `(None, all)`: the
    /// cumulative form Prometheus exposes.
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                (RUN_BUCKETS_MS.get(i).copied(), total)
            })
            .collect()
    }

    /// The bucket a run of `ms` milliseconds falls in.
    pub fn bucket(ms: u64) -> usize {
        RUN_BUCKETS_MS.partition_point(|&b| b < ms)
    }

    /// Counts one run.
    pub(crate) fn observe(&mut self, d: std::time::Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(ms)] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }
}

/// The run a write finishes, if it finishes one: `prev` was running and `next` completed or
/// failed. Every store counts these into its [`RunDurations`].
pub fn finished_run(prev: &crate::Task, next: &crate::Task) -> Option<std::time::Duration> {
    (prev.status == TaskStatus::Running
        && matches!(next.status, TaskStatus::Completed | TaskStatus::Failed))
    .then(|| next.run_duration())
    .flatten()
}

impl TaskStats {
    /// The count for one status.
    pub fn count(&self, status: TaskStatus) -> u64 {
        of(&self.by_status, status)
    }
}

/// The count of `status` in a per-status list.
fn of(list: &[(TaskStatus, u64)], status: TaskStatus) -> u64 {
    list.iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| *n)
}

/// How many tasks are in each status, and how many pending ones are ready or blocked, read
/// without walking every task ([`TaskStore::counts`](crate::TaskStore::counts)): what a
/// dashboard refreshes every few seconds over millions of tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    /// Count per status, exact, every status present, in [`TaskStatus::ALL`] order.
    pub by_status: Vec<(TaskStatus, u64)>,
    /// Pending tasks ready to be claimed now.
    pub ready: Capped,
    /// Pending tasks waiting on a dependency or their `run_at`.
    pub blocked: Capped,
    /// How many times tasks entered each status, as in [`TaskStats::entered`].
    pub entered: Vec<(TaskStatus, u64)>,
}

impl TaskCounts {
    /// The count for one status.
    pub fn count(&self, status: TaskStatus) -> u64 {
        of(&self.by_status, status)
    }

    /// All tasks.
    pub fn total(&self) -> u64 {
        self.by_status.iter().map(|(_, n)| n).sum()
    }

    /// Ready and blocked, from the exact count of pending tasks and the blocked ones counted in
    /// two parts up to a cap each: those `waiting` on a dependency and those with every
    /// dependency done but `scheduled` for later. When neither part reached its cap, ready is
    /// the rest of the pending tasks, exactly; otherwise it is counted by `count_ready`.
    pub fn split_pending<E>(
        pending: u64,
        waiting: Capped,
        scheduled: Capped,
        count_ready: impl FnOnce() -> std::result::Result<Capped, E>,
    ) -> std::result::Result<(Capped, Capped), E> {
        let blocked = Capped {
            n: waiting.n + scheduled.n,
            more: waiting.more || scheduled.more,
        };
        let ready = if blocked.more {
            count_ready()?
        } else {
            Capped::exact(pending.saturating_sub(blocked.n))
        };
        Ok((ready, blocked))
    }

    /// The counts within full statistics (exact, whatever the cap).
    pub fn of_stats(stats: &TaskStats) -> TaskCounts {
        TaskCounts {
            by_status: stats.by_status.clone(),
            ready: Capped::exact(stats.ready),
            blocked: Capped::exact(stats.blocked),
            entered: stats.entered.clone(),
        }
    }
}

/// A count that may have stopped at a cap: `n` things were counted, and when `more` is set
/// there are more than that (counting stopped at `n`).
///
/// ```
/// use oc_tasks::Capped;
/// assert_eq!(Capped::up_to(42, 10_000).to_string(), "42");
/// assert_eq!(Capped::up_to(10_001, 10_000).to_string(), "10000+");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capped {
    /// Counted.
    pub n: u64,
    /// Whether counting stopped before the end.
    pub more: bool,
}

impl Capped {
    /// An exact count.
    pub fn exact(n: u64) -> Capped {
        Capped { n, more: false }
    }

    /// What counting up to `cap` found, from `n` counted with a limit of `cap + 1`: exact
    /// up to `cap`, else at least `cap`.
    pub fn up_to(n: u64, cap: u64) -> Capped {
        Capped {
            n: n.min(cap),
            more: n > cap,
        }
    }
}

impl std::fmt::Display for Capped {
    /// `1234`, or `10000+` when counting stopped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.n, if self.more { "+" } else { "" })
    }
}
