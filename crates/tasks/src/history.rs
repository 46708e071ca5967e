//! A task's history: every status transition, recorded by the store in the same transaction
//! as the transition itself, so it is exact after a crash at any moment and the same from
//! every host that shares the store.

use serde::{Deserialize, Serialize};

use crate::{EventKind, Task, TaskId, TaskStatus, Timestamp};

/// One transition of a task, as its store recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The task.
    pub task: TaskId,
    /// The task's version after the transition (1 for the creation): entries are ordered by it.
    pub version: u64,
    /// When, by the store's clock.
    pub at: Timestamp,
    /// What happened: the kind [`crate::transition`] returned for the change (the reaper's
    /// is [`EventKind::LeaseExpired`]).
    pub kind: EventKind,
    /// The status before (`None` for the creation).
    pub from: Option<TaskStatus>,
    /// The status after.
    pub to: TaskStatus,
    /// Who: the agent that started or claimed the task, the holder that finished it or whose
    /// lease lapsed, the owner a task was created for; `None` for the operator's changes.
    pub actor: Option<String>,
    /// The lease token: the one a claim handed out, or the one the holder held.
    pub token: Option<u64>,
    /// The failure's message, for failures.
    pub error: Option<String>,
}

impl HistoryEntry {
    /// Whether a `tracing` subscriber listens to [`trace`](Self::trace): a store that must
    /// build the entries it reports (their rows written by SQL) builds them only then.
    pub fn traced() -> bool {
        tracing::enabled!(target: "oc_tasks", tracing::Level::DEBUG)
    }

    /// Reports this transition to `tracing`: a `DEBUG` event of target `oc_tasks` with the
    /// task, the kind, the statuses, the actor, the lease token and the error. Every store
    /// reports each entry it records, as it records it; with no subscriber listening, this
    /// costs one relaxed load.
    pub fn trace(&self) {
        tracing::debug!(
            target: "oc_tasks",
            task = %self.task,
            kind = self.kind.as_str(),
            from = self.from.map(TaskStatus::as_str),
            to = self.to.as_str(),
            actor = self.actor.as_deref(),
            token = self.token,
            error = self.error.as_deref(),
            "task {}", self.kind.as_str()
        );
    }

    /// The entry of a transition of `kind` from `prev` (`None` for a creation) to `next`: the
    /// task, version, time and statuses from the two, and who and which token by the kind
    /// (the creator for a creation, the new owner and its token for a start or a claim, the
    /// holder and its token for what ends a run, no one for the operator's cancellations and
    /// retries). Every store records exactly these, in the transaction of the write, with the
    /// kind [`crate::transition`] returned (the reaper's is [`EventKind::LeaseExpired`]).
    pub fn new(kind: EventKind, prev: Option<&Task>, next: &Task) -> HistoryEntry {
        let held = prev.and_then(|p| p.lease).map(|l| l.token);
        let prev_owner = prev.and_then(|p| p.owner.as_ref());
        let (actor, token, error) = match kind {
            EventKind::Created | EventKind::Started => (next.owner.as_ref(), None, false),
            EventKind::Claimed => (next.owner.as_ref(), next.lease.map(|l| l.token), false),
            EventKind::Completed | EventKind::Released => (prev_owner, held, false),
            EventKind::Failed | EventKind::RetryScheduled => (prev_owner, held, true),
            EventKind::LeaseExpired => (prev_owner, held, next.status == TaskStatus::Failed),
            EventKind::Cancelled | EventKind::Deleted => (None, held, false),
            EventKind::Retried => (None, None, false),
        };
        HistoryEntry {
            task: next.id.clone(),
            version: next.version,
            at: next.updated_at,
            kind,
            from: prev.map(|p| p.status),
            to: next.status,
            actor: actor.cloned(),
            token,
            error: if error { next.error.clone() } else { None },
        }
    }

    /// One line for people: `completed: running -> completed by agent-1 (token 7)`.
    pub fn describe(&self) -> String {
        let from = self.from.map_or("none", TaskStatus::as_str);
        let mut s = format!("{}: {from} -> {}", self.kind, self.to);
        if let Some(a) = &self.actor {
            s.push_str(&format!(" by {a}"));
        }
        if let Some(t) = self.token {
            s.push_str(&format!(" (token {t})"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(": {e}"));
        }
        s
    }
}
