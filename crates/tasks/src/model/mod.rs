//! The task model: statuses and their transition table, tasks, new tasks and their checks;
//! the changes a store applies are in `change.rs`, the kinds of what happens to a task in
//! `event.rs`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::{MAX_DEPENDENCIES, MAX_SCHEDULE_AHEAD, MAX_UNIQUE_KEY_LEN, check_labels};
use crate::{Error, Result, RetryPolicy, TaskId, Timestamp, Unique, UniqueScope};

mod change;
mod event;

pub use change::{Change, ReapedTask, TaskPatch, reap, transition};
pub use event::EventKind;

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
