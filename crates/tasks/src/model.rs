//! The task model: statuses, the state machine, tasks, and the changes a store applies.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::{MAX_DEPENDENCIES, MAX_SCHEDULE_AHEAD, MAX_UNIQUE_KEY_LEN, check_labels};
use crate::{Error, Result, RetryPolicy, TaskId, Timestamp, Unique, UniqueScope};

/// Default number of runs before an expired lease fails the task instead of returning it to pending.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Where a task is in its life.
///
/// ```text
/// pending ──start/claim──► running ──complete──► completed
///    │                        │ └────fail──────► failed ────┐
///    └──────cancel───────┬────┘                             │ retry
///                        ▼                                  ▼
///                    cancelled ───────retry───────────► pending
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting to be started or claimed.
    Pending,
    /// Being worked on by an agent.
    Running,
    /// Finished successfully (terminal).
    Completed,
    /// Finished with an error; may be retried.
    Failed,
    /// Stopped on purpose; may be retried.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in the order the seed's `task-stats` lists them.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The lowercase name (`"pending"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the state machine allows `self → to`.
    pub const fn can_transition_to(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Pending, Running)
                | (Running, Completed)
                | (Running, Failed)
                | (Pending, Cancelled)
                | (Running, Cancelled)
                | (Failed, Pending)
                | (Cancelled, Pending)
        )
    }

    /// Whether no further work happens without a retry.
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                field: "status",
                reason: format!(
                    "unknown status {s:?} (expected pending, running, completed, failed or cancelled)"
                ),
            })
    }
}

/// The lease a running task holds when it was claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Fencing token: strictly increasing across the store, so a newer holder always has a larger one.
    pub token: u64,
    /// When the lease lapses unless renewed by a heartbeat.
    pub expires_at: Timestamp,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Identifier.
    pub id: TaskId,
    /// Short human-readable name.
    pub name: String,
    /// Longer description.
    pub description: Option<String>,
    /// Current status.
    pub status: TaskStatus,
    /// The agent the task belongs to: set at creation, replaced by whoever starts or claims it.
    pub owner: Option<String>,
    /// Higher runs first in `claim_next`.
    pub priority: i32,
    /// Free-form JSON object.
    pub metadata: Map<String, Value>,
    /// What completion reported.
    pub result: Option<Value>,
    /// The last failure's message (kept when retried, so the history stays visible).
    pub error: Option<String>,
    /// How many times the task has been started or claimed.
    pub attempts: u32,
    /// Runs allowed before an expired lease fails the task.
    pub max_attempts: u32,
    /// Bumped on every write; use it for check-and-set updates.
    pub version: u64,
    /// When the task was created.
    pub created_at: Timestamp,
    /// When the task was last written.
    pub updated_at: Timestamp,
    /// When the current or last run started.
    pub started_at: Option<Timestamp>,
    /// When the task last reached completed, failed or cancelled.
    pub finished_at: Option<Timestamp>,
    /// Present while running under a claim.
    pub lease: Option<Lease>,
    /// The tasks this one waits for, sorted: it is ready only once all of them completed.
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
    /// The task this one is part of.
    #[serde(default)]
    pub parent: Option<TaskId>,
    /// Labels, sorted: claims can take only tasks with some labels, or without some.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Not ready before this time (a delayed task, or a failed run waiting out its backoff).
    #[serde(default)]
    pub run_at: Option<Timestamp>,
    /// What a failed run does.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The unique key, if the task was created with one.
    #[serde(default)]
    pub unique: Option<Unique>,
}

impl Task {
    /// How long the last run took, once the task has finished a run.
    pub fn run_duration(&self) -> Option<Duration> {
        Some(self.finished_at?.since(self.started_at?))
    }
}

/// What [`crate::TaskStore::create`] needs; everything but the name is optional.
///
/// ```
/// use oc_tasks::NewTask;
/// let t = NewTask::new("index repo").priority(5).owner("agent-1").meta("lang", "rust");
/// assert_eq!(t.priority, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewTask {
    /// Id to use; one is generated when absent.
    pub id: Option<TaskId>,
    /// Name (required, 1–1024 bytes).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Initial owner.
    pub owner: Option<String>,
    /// Priority (default 0).
    pub priority: i32,
    /// Metadata object.
    pub metadata: Map<String, Value>,
    /// Runs allowed before an expired lease fails the task (default 3, at least 1).
    pub max_attempts: Option<u32>,
    /// Tasks that must complete before this one is ready (existing ones, or earlier or later
    /// in the same batch).
    pub depends_on: Vec<TaskId>,
    /// The parent task (existing, or in the same batch).
    pub parent: Option<TaskId>,
    /// Labels (each 1–64 bytes of ASCII letters, digits and `- _ . : /`, no duplicates).
    pub labels: Vec<String>,
    /// Not ready before this time (at most ten years ahead).
    pub run_at: Option<Timestamp>,
    /// What a failed run does (default: the failure is final).
    pub retry: RetryPolicy,
    /// A unique key: while a task holds it, creating another with it returns that task.
    pub unique: Option<Unique>,
}

impl NewTask {
    /// A task named `name` with defaults for the rest.
    pub fn new(name: impl Into<String>) -> Self {
        NewTask {
            name: name.into(),
            ..Default::default()
        }
    }
    /// Sets the id.
    pub fn id(mut self, id: TaskId) -> Self {
        self.id = Some(id);
        self
    }
    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Sets the owner.
    pub fn owner(mut self, o: impl Into<String>) -> Self {
        self.owner = Some(o.into());
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    /// Replaces the metadata.
    pub fn metadata(mut self, m: Map<String, Value>) -> Self {
        self.metadata = m;
        self
    }
    /// Sets one metadata key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
    /// Sets the attempt budget.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Adds a dependency.
    pub fn depends_on(mut self, id: TaskId) -> Self {
        self.depends_on.push(id);
        self
    }
    /// Sets the parent.
    pub fn parent(mut self, id: TaskId) -> Self {
        self.parent = Some(id);
        self
    }
    /// Adds a label.
    pub fn label(mut self, l: impl Into<String>) -> Self {
        self.labels.push(l.into());
        self
    }
    /// Not ready before `at`.
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Sets the retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }
    /// Sets a unique key, held while the task is unfinished.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique = Some(Unique {
            key: key.into(),
            scope: UniqueScope::Unfinished,
        });
        self
    }
    /// Sets a unique key held as long as the task exists.
    pub fn unique_key_always(mut self, key: impl Into<String>) -> Self {
        self.unique = Some(Unique {
            key: key.into(),
            scope: UniqueScope::Always,
        });
        self
    }

    /// Checks the fields and builds the pending task, created at `now`.
    pub fn into_task(self, now: Timestamp) -> Result<Task> {
        check_text("name", &self.name, 1, MAX_NAME_LEN)?;
        if let Some(d) = &self.description {
            check_text("description", d, 0, MAX_TEXT_LEN)?;
        }
        if let Some(o) = &self.owner {
            check_text("owner", o, 1, MAX_NAME_LEN)?;
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if max_attempts == 0 {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        check_labels(&self.labels)?;
        if let Some(at) = self.run_at {
            check_run_at(at, now)?;
        }
        self.retry.validate()?;
        if let Some(u) = &self.unique {
            check_text("unique key", &u.key, 1, MAX_UNIQUE_KEY_LEN)?;
        }
        if self.depends_on.len() > MAX_DEPENDENCIES {
            return Err(invalid(
                "depends_on",
                format!("at most {MAX_DEPENDENCIES} dependencies"),
            ));
        }
        let (mut depends_on, mut labels) = (self.depends_on, self.labels);
        depends_on.sort();
        labels.sort();
        Ok(Task {
            id: self.id.unwrap_or_else(TaskId::generate),
            name: self.name,
            description: self.description,
            status: TaskStatus::Pending,
            owner: self.owner,
            priority: self.priority,
            metadata: self.metadata,
            result: None,
            error: None,
            attempts: 0,
            max_attempts,
            version: 1,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            lease: None,
            depends_on,
            parent: self.parent,
            labels,
            run_at: self.run_at,
            retry: self.retry,
            unique: self.unique,
        })
    }
}

/// Checks a `run_at` against the store's clock: not before the epoch, at most
/// [`MAX_SCHEDULE_AHEAD`] ahead.
pub(crate) fn check_run_at(at: Timestamp, now: Timestamp) -> Result<()> {
    if at < Timestamp::EPOCH || at > now.saturating_add(MAX_SCHEDULE_AHEAD) {
        return Err(invalid(
            "run_at",
            format!("{at} is not between 1970 and ten years from now"),
        ));
    }
    Ok(())
}

const MAX_NAME_LEN: usize = 1024;
const MAX_TEXT_LEN: usize = 1 << 20;

/// Shortest lease a claim or heartbeat may ask for.
pub const MIN_LEASE: Duration = Duration::from_millis(1);
/// Longest lease a claim or heartbeat may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

fn check_text(field: &'static str, s: &str, min: usize, max: usize) -> Result<()> {
    if s.len() < min {
        return Err(invalid(field, "must not be empty"));
    }
    if s.len() > max {
        return Err(invalid(field, format!("must be at most {max} bytes")));
    }
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL"));
    }
    Ok(())
}

pub(crate) fn check_agent(field: &'static str, agent: &str) -> Result<()> {
    check_text(field, agent, 1, MAX_NAME_LEN)
}

pub(crate) fn check_lease(ttl: Duration) -> Result<()> {
    if ttl < MIN_LEASE || ttl > MAX_LEASE {
        return Err(invalid(
            "lease",
            format!(
                "must be between {} and {}",
                humantime::format_duration(MIN_LEASE),
                humantime::format_duration(MAX_LEASE)
            ),
        ));
    }
    Ok(())
}

/// A partial update: only the fields that are `Some` change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskPatch {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New owner (`Some(None)` clears it).
    pub owner: Option<Option<String>>,
    /// New priority.
    pub priority: Option<i32>,
    /// A JSON merge patch (RFC 7396) applied to the metadata: keys set to `null` are removed.
    pub metadata: Option<Map<String, Value>>,
    /// New attempt budget.
    pub max_attempts: Option<u32>,
    /// New labels, replacing the old ones.
    pub labels: Option<Vec<String>>,
    /// New `run_at` (`Some(None)` clears it).
    pub run_at: Option<Option<Timestamp>>,
    /// New retry policy.
    pub retry: Option<RetryPolicy>,
}

impl TaskPatch {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the name.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// Sets or clears the description.
    pub fn description(mut self, d: Option<String>) -> Self {
        self.description = Some(d);
        self
    }
    /// Sets or clears the owner.
    pub fn owner(mut self, o: Option<String>) -> Self {
        self.owner = Some(o);
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = Some(p);
        self
    }
    /// Merges `m` into the metadata.
    pub fn merge_metadata(mut self, m: Map<String, Value>) -> Self {
        self.metadata = Some(m);
        self
    }
    /// Sets the attempt budget.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Replaces the labels.
    pub fn labels(mut self, l: Vec<String>) -> Self {
        self.labels = Some(l);
        self
    }
    /// Sets or clears `run_at`.
    pub fn run_at(mut self, at: Option<Timestamp>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Sets the retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = Some(p);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            check_text("name", n, 1, MAX_NAME_LEN)?;
        }
        if let Some(Some(d)) = &self.description {
            check_text("description", d, 0, MAX_TEXT_LEN)?;
        }
        if let Some(Some(o)) = &self.owner {
            check_text("owner", o, 1, MAX_NAME_LEN)?;
        }
        if self.max_attempts == Some(0) {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        if let Some(l) = &self.labels {
            check_labels(l)?;
        }
        if let Some(r) = &self.retry {
            r.validate()?;
        }
        Ok(())
    }
}

/// One change to one task, applied atomically by [`crate::TaskStore::apply`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// pending → running, owned by `agent`, without a lease.
    Start {
        /// The agent starting the task.
        agent: String,
    },
    /// pending → running, owned by `owner`, with a lease of `ttl` and a fresh fencing token.
    Claim {
        /// The claiming agent.
        owner: String,
        /// Lease length.
        ttl: Duration,
    },
    /// Extends the lease identified by `token` to now + `ttl`.
    Heartbeat {
        /// The current lease's token.
        token: u64,
        /// New lease length from now.
        ttl: Duration,
    },
    /// running → completed; `token` must match the lease (or be `None` for a task started without one).
    Complete {
        /// The lease token, if the task was claimed.
        token: Option<u64>,
        /// What to record as the result.
        result: Option<Value>,
    },
    /// running → failed; the token rule is as for `Complete`.
    Fail {
        /// The lease token, if the task was claimed.
        token: Option<u64>,
        /// The failure message.
        error: String,
    },
    /// pending | running → cancelled.
    Cancel,
    /// failed | cancelled → pending.
    Retry,
    /// running → pending: the holder of the lease identified by `token` gives the task back
    /// (the lease ends, the attempt is refunded, the owner is kept as the reaper keeps it).
    /// A lease operation like [`Change::Heartbeat`]: only the current lease's token passes,
    /// and only a running task holds one.
    Release {
        /// The current lease's token.
        token: u64,
    },
    /// Changes fields without touching the status.
    Update(TaskPatch),
}

impl Change {
    /// The status this change leads to, if it is a status transition.
    pub fn target(&self) -> Option<TaskStatus> {
        match self {
            Change::Start { .. } | Change::Claim { .. } => Some(TaskStatus::Running),
            Change::Complete { .. } => Some(TaskStatus::Completed),
            Change::Fail { .. } => Some(TaskStatus::Failed),
            Change::Cancel => Some(TaskStatus::Cancelled),
            Change::Retry => Some(TaskStatus::Pending),
            Change::Heartbeat { .. } | Change::Release { .. } | Change::Update(_) => None,
        }
    }

    /// The lease token this change must present, if it is token-checked.
    pub(crate) fn token_check(&self) -> Option<Option<u64>> {
        match self {
            Change::Heartbeat { token, .. } | Change::Release { token } => Some(Some(*token)),
            Change::Complete { token, .. } | Change::Fail { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// A short lowercase name (`"claim"`, `"complete"`...).
    pub fn name(&self) -> &'static str {
        match self {
            Change::Start { .. } => "start",
            Change::Claim { .. } => "claim",
            Change::Heartbeat { .. } => "heartbeat",
            Change::Complete { .. } => "complete",
            Change::Fail { .. } => "fail",
            Change::Cancel => "cancel",
            Change::Retry => "retry",
            Change::Release { .. } => "release",
            Change::Update(_) => "update",
        }
    }

    /// Checks the change's own arguments, before any store is touched.
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            Change::Start { agent } => check_agent("agent", agent),
            Change::Claim { owner, ttl } => {
                check_agent("owner", owner)?;
                check_lease(*ttl)
            }
            Change::Heartbeat { ttl, .. } => check_lease(*ttl),
            Change::Fail { error, .. } => check_text("error", error, 0, MAX_TEXT_LEN),
            Change::Update(p) => p.validate(),
            Change::Complete { .. } | Change::Cancel | Change::Retry | Change::Release { .. } => {
                Ok(())
            }
        }
    }
}

/// Applies `change` to `task` at `now`, the reference semantics every store follows.
///
/// `next_token` is called only when the change is granted and needs a fencing token.
/// Returns the task as it is after the change, or the typed reason it was refused.
pub fn transition(
    task: &Task,
    change: &Change,
    expect_version: Option<u64>,
    now: Timestamp,
    next_token: impl FnOnce() -> u64,
) -> Result<Task> {
    change.validate()?;
    if let Some(expected) = expect_version
        && expected != task.version
    {
        return Err(Error::VersionMismatch {
            id: task.id.clone(),
            expected,
            actual: task.version,
        });
    }
    if let Some(token) = change.token_check()
        && task.lease.map(|l| l.token) != token
    {
        // A token that is not the current lease's is a lost lease whatever the status; no token
        // on a claimed task is one too, since only the lease holder may finish it.
        if token.is_some() || task.status == TaskStatus::Running {
            tracing::info!(
                target: "oc_tasks",
                task = %task.id,
                token,
                held = task.lease.map(|l| l.token),
                "lease lost"
            );
            return Err(Error::LeaseLost {
                id: task.id.clone(),
                token,
            });
        }
    }
    if let Some(to) = change.target()
        && !task.status.can_transition_to(to)
    {
        return Err(Error::InvalidTransition {
            id: task.id.clone(),
            from: task.status,
            to,
        });
    }
    let mut t = task.clone();
    match change {
        Change::Start { agent } => {
            start_run(&mut t, agent, now);
        }
        Change::Claim { owner, ttl } => {
            start_run(&mut t, owner, now);
            t.lease = Some(Lease {
                token: next_token(),
                expires_at: now.saturating_add(*ttl),
            });
        }
        Change::Heartbeat { token, ttl } => {
            t.lease = Some(Lease {
                token: *token,
                expires_at: now.saturating_add(*ttl),
            });
        }
        Change::Complete { result, .. } => {
            finish(&mut t, TaskStatus::Completed, now);
            t.result = result.clone();
        }
        Change::Fail { error, .. } => {
            t.error = Some(error.clone());
            match backoff(&t, now) {
                Some(at) => {
                    t.status = TaskStatus::Pending;
                    t.lease = None;
                    t.run_at = Some(at);
                }
                None => finish(&mut t, TaskStatus::Failed, now),
            }
        }
        Change::Cancel => finish(&mut t, TaskStatus::Cancelled, now),
        Change::Retry => {
            t.status = TaskStatus::Pending;
            t.finished_at = None;
            t.lease = None;
        }
        Change::Release { .. } => {
            t.status = TaskStatus::Pending;
            t.lease = None;
            t.attempts = t.attempts.saturating_sub(1);
        }
        Change::Update(p) => {
            if let Some(Some(at)) = p.run_at {
                check_run_at(at, now)?;
            }
            apply_patch(&mut t, p);
        }
    }
    t.version += 1;
    t.updated_at = now;
    Ok(t)
}

fn start_run(t: &mut Task, agent: &str, now: Timestamp) {
    t.status = TaskStatus::Running;
    t.owner = Some(agent.to_owned());
    t.attempts = t.attempts.saturating_add(1);
    t.started_at = Some(now);
    t.finished_at = None;
    t.lease = None;
}

fn finish(t: &mut Task, status: TaskStatus, now: Timestamp) {
    t.status = status;
    t.finished_at = Some(now);
    t.lease = None;
}

fn apply_patch(t: &mut Task, p: &TaskPatch) {
    if let Some(n) = &p.name {
        t.name.clone_from(n);
    }
    if let Some(d) = &p.description {
        t.description.clone_from(d);
    }
    if let Some(o) = &p.owner {
        t.owner.clone_from(o);
    }
    if let Some(pr) = p.priority {
        t.priority = pr;
    }
    if let Some(m) = &p.metadata {
        merge_patch(&mut t.metadata, m);
    }
    if let Some(n) = p.max_attempts {
        t.max_attempts = n;
    }
    if let Some(l) = &p.labels {
        let mut l = l.clone();
        l.sort();
        t.labels = l;
    }
    if let Some(at) = p.run_at {
        t.run_at = at;
    }
    if let Some(r) = p.retry {
        t.retry = r;
    }
}

/// When the next run of `t`, whose run `t.attempts` just failed at `now`, may start: `None`
/// when the failure is final (no retry policy, or no attempts left).
fn backoff(t: &Task, now: Timestamp) -> Option<Timestamp> {
    if t.attempts >= t.max_attempts {
        return None;
    }
    Some(now.saturating_add(t.retry.delay(&t.id, t.attempts)?))
}

/// RFC 7396 JSON merge patch of an object into an object (the same as SQLite's `json_patch`).
pub(crate) fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// What [`crate::TaskStore::reap_expired`] did to one task whose lease lapsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReapedTask {
    /// The task after reaping: pending again, or failed once its attempts are used up.
    pub task: Task,
    /// The agent whose lease lapsed.
    pub expired_owner: Option<String>,
    /// The lapsed lease.
    pub expired_lease: Lease,
}

/// The error recorded on a task failed by the reaper.
pub(crate) fn reap_error(attempts: u32) -> String {
    format!("lease expired after {attempts} attempt(s)")
}

/// Reaps `task` if its lease lapsed at or before `now`: the reference semantics every store follows.
pub fn reap(task: &Task, now: Timestamp) -> Option<ReapedTask> {
    let lease = task.lease?;
    if task.status != TaskStatus::Running || lease.expires_at > now {
        return None;
    }
    let mut t = task.clone();
    t.lease = None;
    if t.attempts >= t.max_attempts {
        t.status = TaskStatus::Failed;
        t.error = Some(reap_error(t.attempts));
        t.finished_at = Some(now);
    } else {
        t.status = TaskStatus::Pending;
        if let Some(at) = backoff(&t, now) {
            t.run_at = Some(at);
        }
    }
    t.version += 1;
    t.updated_at = now;
    Some(ReapedTask {
        task: t,
        expired_owner: task.owner.clone(),
        expired_lease: lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pending() -> Task {
        NewTask::new("t")
            .id(TaskId::new("t1").unwrap())
            .into_task(Timestamp::from_millis(0))
            .unwrap()
    }

    #[test]
    fn state_machine_table() {
        use TaskStatus::*;
        let allowed = [
            (Pending, Running),
            (Running, Completed),
            (Running, Failed),
            (Pending, Cancelled),
            (Running, Cancelled),
            (Failed, Pending),
            (Cancelled, Pending),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn status_parses_and_rejects_unknown() {
        assert_eq!("failed".parse::<TaskStatus>().unwrap(), TaskStatus::Failed);
        let e = "done".parse::<TaskStatus>().unwrap_err();
        assert!(e.to_string().contains("done"));
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut m = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
            .as_object()
            .unwrap()
            .clone();
        let p = json!({"a": null, "b": {"c": null, "x": 9}, "f": [1]});
        merge_patch(&mut m, p.as_object().unwrap());
        assert_eq!(
            Value::Object(m),
            json!({"b": {"d": 3, "x": 9}, "e": 4, "f": [1]})
        );
    }

    #[test]
    fn complete_requires_the_current_token() {
        let t = pending();
        let claimed = transition(
            &t,
            &Change::Claim {
                owner: "a".into(),
                ttl: Duration::from_secs(1),
            },
            None,
            Timestamp::from_millis(5),
            || 7,
        )
        .unwrap();
        assert_eq!(claimed.lease.unwrap().token, 7);
        for token in [None, Some(6)] {
            let e = transition(
                &claimed,
                &Change::Complete {
                    token,
                    result: None,
                },
                None,
                Timestamp::EPOCH,
                || 0,
            )
            .unwrap_err();
            assert!(matches!(e, Error::LeaseLost { .. }), "{e}");
        }
        let done = transition(
            &claimed,
            &Change::Complete {
                token: Some(7),
                result: None,
            },
            None,
            Timestamp::EPOCH,
            || 0,
        )
        .unwrap();
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(done.version, 3);
        assert_eq!(done.lease, None);
    }

    #[test]
    fn reap_returns_to_pending_then_fails_when_attempts_run_out() {
        let mut t = pending();
        t.max_attempts = 2;
        let now = Timestamp::from_millis(0);
        for attempt in 1..=2 {
            t = transition(
                &t,
                &Change::Claim {
                    owner: "a".into(),
                    ttl: Duration::from_millis(10),
                },
                None,
                now,
                || attempt,
            )
            .unwrap();
            assert!(reap(&t, now.saturating_add(Duration::from_millis(9))).is_none());
            t = reap(&t, now.saturating_add(Duration::from_millis(10)))
                .unwrap()
                .task;
        }
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!(t.error.as_deref(), Some("lease expired after 2 attempt(s)"));
    }
}
