//! `TaskEvent`: what happened to a task, with the task as it is after the change.

use std::fmt;
use std::time::Duration;

use oc_tasks::{Lease, Task};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of events, for registering a hook on some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A task was created.
    Created,
    /// An agent started a task (without a lease).
    Started,
    /// An agent claimed a task with a lease.
    Claimed,
    /// A task completed.
    Completed,
    /// A task failed.
    Failed,
    /// A task was cancelled.
    Cancelled,
    /// A failed or cancelled task went back to pending.
    Retried,
    /// A claim's lease lapsed and the reaper took the task back.
    LeaseExpired,
    /// The holder of a claim gave the task back.
    Released,
    /// A task was deleted.
    Deleted,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::Created,
        EventKind::Started,
        EventKind::Claimed,
        EventKind::Completed,
        EventKind::Failed,
        EventKind::Cancelled,
        EventKind::Retried,
        EventKind::LeaseExpired,
        EventKind::Released,
        EventKind::Deleted,
    ];

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Started => "started",
            EventKind::Claimed => "claimed",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
            EventKind::Retried => "retried",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::Released => "released",
            EventKind::Deleted => "deleted",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a task. Before-hooks see the task as it would be after the change; after-hooks
/// see it as committed. A deleted task is shown as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskEvent {
    /// Created (pending).
    Created {
        /// The task.
        task: Task,
    },
    /// Started by `agent`.
    Started {
        /// The task.
        task: Task,
        /// The agent.
        agent: String,
    },
    /// Claimed by `agent` with `lease`.
    Claimed {
        /// The task.
        task: Task,
        /// The agent.
        agent: String,
        /// The lease granted.
        lease: Lease,
    },
    /// Completed.
    Completed {
        /// The task.
        task: Task,
        /// What the agent reported.
        result: Option<Value>,
        /// How long the run took.
        duration: Option<Duration>,
    },
    /// Failed.
    Failed {
        /// The task.
        task: Task,
        /// The failure.
        error: String,
        /// How long the run took.
        duration: Option<Duration>,
    },
    /// Cancelled.
    Cancelled {
        /// The task.
        task: Task,
    },
    /// Back to pending after failing or being cancelled.
    Retried {
        /// The task.
        task: Task,
    },
    /// The reaper took the task back from an agent whose lease lapsed.
    LeaseExpired {
        /// The task (pending again, or failed once out of attempts).
        task: Task,
        /// The agent that lost it.
        expired_owner: Option<String>,
        /// The lapsed lease.
        expired_lease: Lease,
    },
    /// The holder of the lease `token` gave the task back (pending again).
    Released {
        /// The task.
        task: Task,
        /// The token of the lease that ended.
        token: u64,
    },
    /// Deleted.
    Deleted {
        /// The task as it was.
        task: Task,
    },
}

impl TaskEvent {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            TaskEvent::Created { .. } => EventKind::Created,
            TaskEvent::Started { .. } => EventKind::Started,
            TaskEvent::Claimed { .. } => EventKind::Claimed,
            TaskEvent::Completed { .. } => EventKind::Completed,
            TaskEvent::Failed { .. } => EventKind::Failed,
            TaskEvent::Cancelled { .. } => EventKind::Cancelled,
            TaskEvent::Retried { .. } => EventKind::Retried,
            TaskEvent::LeaseExpired { .. } => EventKind::LeaseExpired,
            TaskEvent::Released { .. } => EventKind::Released,
            TaskEvent::Deleted { .. } => EventKind::Deleted,
        }
    }

    /// The task, by value.
    pub fn into_task(self) -> Task {
        match self {
            TaskEvent::Created { task }
            | TaskEvent::Started { task, .. }
            | TaskEvent::Claimed { task, .. }
            | TaskEvent::Completed { task, .. }
            | TaskEvent::Failed { task, .. }
            | TaskEvent::Cancelled { task }
            | TaskEvent::Retried { task }
            | TaskEvent::LeaseExpired { task, .. }
            | TaskEvent::Released { task, .. }
            | TaskEvent::Deleted { task } => task,
        }
    }

    /// The task.
    pub fn task(&self) -> &Task {
        match self {
            TaskEvent::Created { task }
            | TaskEvent::Started { task, .. }
            | TaskEvent::Claimed { task, .. }
            | TaskEvent::Completed { task, .. }
            | TaskEvent::Failed { task, .. }
            | TaskEvent::Cancelled { task }
            | TaskEvent::Retried { task }
            | TaskEvent::LeaseExpired { task, .. }
            | TaskEvent::Released { task, .. }
            | TaskEvent::Deleted { task } => task,
        }
    }
}
