//! A refused change of a task said from what the task is now: who holds it and until when,
//! that it is finished and when, or where a lost lease went. The CLI and the MCP server say
//! it in the same words ([`Refusal`]'s `Display`).

use std::fmt;

use oc_tasks::{Task, TaskId, TaskStatus};
use oc_time::Timestamp;

use crate::Error;

/// Why a claim or a token-checked change of a task was refused, read from the task as it is
/// now ([`Refusal::of`], [`TaskLifecycle::refusal`](crate::TaskLifecycle::refusal)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A claim of a task another agent runs.
    AlreadyClaimed {
        /// The task.
        id: TaskId,
        /// Who holds it.
        owner: Option<String>,
        /// When its lease lapses unless renewed.
        until: Timestamp,
    },
    /// A change of a task that is finished.
    AlreadyFinished {
        /// The task.
        id: TaskId,
        /// How it finished.
        status: TaskStatus,
        /// When, if known.
        at: Option<Timestamp>,
        /// Who held it last.
        owner: Option<String>,
        /// What was asked (`claim`, `complete`, `renew`...).
        action: String,
    },
    /// A token-checked change whose lease is gone.
    LeaseLost {
        /// The task.
        id: TaskId,
        /// Who holds it now and until when; `None`: nobody, it is pending again.
        holder: Option<(Option<String>, Timestamp)>,
    },
}

impl Refusal {
    /// The refusal `error` (a change of `task` asked as `action`: `claim`, `renew`, `release`,
    /// `complete`, `fail`, `finish`) means, given `task` as read after it; `None` when the
    /// error is not a refused transition or lost lease, or the task says nothing more (the
    /// store's own error is then the answer).
    pub fn of(error: &Error, task: &Task, action: &str) -> Option<Refusal> {
        let lease_lost = matches!(error, Error::Task(oc_tasks::Error::LeaseLost { .. }));
        let transition = matches!(
            error,
            Error::Task(oc_tasks::Error::InvalidTransition { .. })
        );
        if !(lease_lost || transition) {
            return None;
        }
        let id = task.id.clone();
        if task.status.is_finished() {
            return Some(Refusal::AlreadyFinished {
                id,
                status: task.status,
                at: task.finished_at,
                owner: task.owner.clone(),
                action: action.to_owned(),
            });
        }
        match (task.status, task.lease) {
            (TaskStatus::Running, Some(lease)) if action == "claim" => {
                Some(Refusal::AlreadyClaimed {
                    id,
                    owner: task.owner.clone(),
                    until: lease.expires_at,
                })
            }
            (TaskStatus::Running, Some(lease)) => Some(Refusal::LeaseLost {
                id,
                holder: Some((task.owner.clone(), lease.expires_at)),
            }),
            (TaskStatus::Pending, _) if lease_lost => Some(Refusal::LeaseLost { id, holder: None }),
            _ => None,
        }
    }

    /// A stable code: `ALREADY_CLAIMED`, `ALREADY_FINISHED`, `LEASE_LOST`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::AlreadyClaimed { .. } => "ALREADY_CLAIMED",
            Refusal::AlreadyFinished { .. } => "ALREADY_FINISHED",
            Refusal::LeaseLost { .. } => "LEASE_LOST",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = |o: &Option<String>| o.clone().unwrap_or_else(|| "nobody".to_owned());
        match self {
            Refusal::AlreadyClaimed { id, owner, until } => write!(
                f,
                "task {id} is running: {} holds it until {until} (its lease); claim another task, or try again once the lease has lapsed",
                who(owner)
            ),
            Refusal::AlreadyFinished {
                id,
                status,
                at,
                action,
                ..
            } => match at {
                Some(at) => write!(
                    f,
                    "task {id} is already {status} at {at}: nothing to {action}"
                ),
                None => write!(f, "task {id} is already {status}: nothing to {action}"),
            },
            Refusal::LeaseLost {
                id,
                holder: Some((owner, until)),
            } => write!(
                f,
                "the lease on task {id} is lost: {} holds it now, until {until}; stop working on it (claim another task)",
                who(owner)
            ),
            Refusal::LeaseLost { id, holder: None } => write!(
                f,
                "the lease on task {id} is lost: the task is pending again (the lease lapsed or was given back); claim it again to go on"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use oc_tasks::{MemoryTaskStore, NewTask};

    use crate::{Hooks, TaskLifecycle};

    #[test]
    fn refusals_are_said_from_the_task_as_it_is_now() {
        let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
        let id: oc_tasks::TaskId = "t1".parse().unwrap();
        life.create(NewTask::new("x").id(id.clone())).unwrap();
        let claimed = life.claim(&id, "alice", Duration::from_secs(60)).unwrap();
        let lease = claimed.task().lease.unwrap();
        let e = life.claim(&id, "bob", Duration::from_secs(60)).unwrap_err();
        let r = life.refusal(&id, "claim", &e).unwrap();
        assert_eq!(r.code(), "ALREADY_CLAIMED");
        assert_eq!(
            r.to_string(),
            format!(
                "task t1 is running: alice holds it until {} (its lease); claim another task, or try again once the lease has lapsed",
                lease.expires_at
            )
        );
        let done = life.complete(&id, Some(lease.token), None).unwrap();
        let at = done.task().finished_at.unwrap();
        let e = life.complete(&id, Some(lease.token), None).unwrap_err();
        let r = life.refusal(&id, "complete", &e).unwrap();
        assert_eq!(r.code(), "ALREADY_FINISHED");
        assert_eq!(
            r.to_string(),
            format!("task t1 is already completed at {at}: nothing to complete")
        );
        // Not a refusal of that kind: nothing more to say.
        let e = crate::Error::InvalidInput {
            field: "x",
            reason: "x".into(),
        };
        assert_eq!(life.refusal(&id, "claim", &e), None);
    }
}
