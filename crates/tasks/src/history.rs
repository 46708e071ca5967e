//! A task's history: every status transition, recorded by the store in the same transaction
//! as the transition itself, so it is exact after a crash at any moment and the same from
//! every host that shares the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Task, TaskId, TaskStatus, Timestamp};

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HistoryKind {
    /// Created (pending).
    Created,
    /// Started without a lease.
    Started,
    /// Claimed with a lease.
    Claimed,
    /// Completed by its runner.
    Completed,
    /// Failed by its runner.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Put back to pending after a failure or a cancellation.
    Retried,
    /// Its lease lapsed: back to pending, or failed once out of attempts.
    LeaseExpired,
    /// Its run failed and its retry policy put it back to pending, waiting out a backoff.
    RetryScheduled,
    /// Its holder gave it back: running → pending, the attempt refunded.
    Released,
}

impl HistoryKind {
    /// Every kind.
    pub const ALL: [HistoryKind; 10] = [
        HistoryKind::Created,
        HistoryKind::Started,
        HistoryKind::Claimed,
        HistoryKind::Completed,
        HistoryKind::Failed,
        HistoryKind::Cancelled,
        HistoryKind::Retried,
        HistoryKind::LeaseExpired,
        HistoryKind::RetryScheduled,
        HistoryKind::Released,
    ];

    /// The lowercase name (`lease_expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Created => "created",
            HistoryKind::Started => "started",
            HistoryKind::Claimed => "claimed",
            HistoryKind::Completed => "completed",
            HistoryKind::Failed => "failed",
            HistoryKind::Cancelled => "cancelled",
            HistoryKind::Retried => "retried",
            HistoryKind::LeaseExpired => "lease_expired",
            HistoryKind::RetryScheduled => "retry_scheduled",
            HistoryKind::Released => "released",
        }
    }
}

impl fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HistoryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HistoryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown history kind {s:?}"))
    }
}

/// One transition of a task, as its store recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The task.
    pub task: TaskId,
    /// The task's version after the transition (1 for the creation): entries are ordered by it.
    pub version: u64,
    /// When, by the store's clock.
    pub at: Timestamp,
    /// What happened.
    pub kind: HistoryKind,
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

    /// The entry a write from `prev` (`None` for a creation) to `next` records, if it changes
    /// the status; `reaped` says the reaper made it. Every store records exactly these, in the
    /// transaction of the write.
    pub fn of(prev: Option<&Task>, next: &Task, reaped: bool) -> Option<HistoryEntry> {
        let entry = |kind, actor: Option<&String>, token: Option<u64>, error: bool| HistoryEntry {
            task: next.id.clone(),
            version: next.version,
            at: next.updated_at,
            kind,
            from: prev.map(|p| p.status),
            to: next.status,
            actor: actor.cloned(),
            token,
            error: if error { next.error.clone() } else { None },
        };
        let Some(prev) = prev else {
            return Some(entry(
                HistoryKind::Created,
                next.owner.as_ref(),
                None,
                false,
            ));
        };
        if prev.status == next.status {
            return None;
        }
        let held = prev.lease.map(|l| l.token);
        let failed = next.status == TaskStatus::Failed;
        Some(match next.status {
            _ if reaped => entry(HistoryKind::LeaseExpired, prev.owner.as_ref(), held, failed),
            TaskStatus::Running if next.lease.is_some() => entry(
                HistoryKind::Claimed,
                next.owner.as_ref(),
                next.lease.map(|l| l.token),
                false,
            ),
            TaskStatus::Running => entry(HistoryKind::Started, next.owner.as_ref(), None, false),
            TaskStatus::Completed => {
                entry(HistoryKind::Completed, prev.owner.as_ref(), held, false)
            }
            TaskStatus::Failed => entry(HistoryKind::Failed, prev.owner.as_ref(), held, true),
            TaskStatus::Cancelled => entry(HistoryKind::Cancelled, None, held, false),
            // Only a release refunds the attempt; a failure's backoff keeps it.
            TaskStatus::Pending
                if prev.status == TaskStatus::Running && next.attempts < prev.attempts =>
            {
                entry(HistoryKind::Released, prev.owner.as_ref(), held, false)
            }
            TaskStatus::Pending if prev.status == TaskStatus::Running => {
                entry(HistoryKind::RetryScheduled, prev.owner.as_ref(), held, true)
            }
            TaskStatus::Pending => entry(HistoryKind::Retried, None, None, false),
        })
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
