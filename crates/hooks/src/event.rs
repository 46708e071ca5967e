//! `TaskEvent`: what happened to a task, with the task as it is after the change.

use std::time::Duration;

use oc_tasks::{Change, EventKind, Lease, Task, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to a task. Before-hooks see the task as it would be after the change; after-hooks
/// see it as committed. A deleted task is shown as it was.
///
/// Its kind ([`TaskEvent::kind`], what hooks are registered on) is the [`EventKind`] the state
/// machine decided for the change ([`oc_tasks::transition`]), with one rule: a failure whose
/// retry policy puts the task back to pending ([`EventKind::RetryScheduled`] in the history) is
/// a [`TaskEvent::Failed`], of kind [`EventKind::Failed`], with the task pending again: the run
/// failed either way, so the hooks on failures see every failed run, and no event is of kind
/// `RetryScheduled`.
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
    /// Failed: the task failed, or its retry policy put it back to pending after a backoff.
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
    /// The event of `change`, which the state machine decided is of `kind`
    /// ([`Change::kind`]), leaving `task`; what the task does not say (the agent, the result,
    /// the error, the released token) comes from the change.
    pub(crate) fn of(kind: Option<EventKind>, change: &Change, task: Task) -> TaskEvent {
        match (kind, change) {
            (Some(EventKind::Started), Change::Start { agent }) => TaskEvent::Started {
                agent: agent.clone(),
                task,
            },
            (Some(EventKind::Claimed), Change::Claim { owner, .. }) => {
                let lease = task.lease.unwrap_or(Lease {
                    token: 0,
                    expires_at: Timestamp::EPOCH,
                });
                TaskEvent::Claimed {
                    agent: owner.clone(),
                    lease,
                    task,
                }
            }
            (Some(EventKind::Completed), Change::Complete { result, .. }) => TaskEvent::Completed {
                result: result.clone(),
                duration: task.run_duration(),
                task,
            },
            // A failure put back to pending by its retry policy is a failure to hooks.
            (Some(EventKind::Failed | EventKind::RetryScheduled), Change::Fail { error, .. }) => {
                TaskEvent::Failed {
                    error: error.clone(),
                    duration: task.run_duration(),
                    task,
                }
            }
            (Some(EventKind::Cancelled), _) => TaskEvent::Cancelled { task },
            (Some(EventKind::Released), Change::Release { token }) => TaskEvent::Released {
                token: *token,
                task,
            },
            // A retry: the lifecycle makes no other change.
            _ => TaskEvent::Retried { task },
        }
    }

    /// The event's kind, never [`EventKind::RetryScheduled`] (see [`TaskEvent`]).
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
