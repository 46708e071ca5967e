//! [`EventKind`]: the one list of what happens to a task, which [`transition`](super::transition)
//! decides, the history records and hooks are registered on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happened to a task: the kind of each entry of its history ([`crate::HistoryEntry`])
/// and of each event hooks run for (`oc_hooks::TaskEvent`).
///
/// [`Change::kind`](crate::Change::kind) decides the kind of a change from the task it is
/// applied to, [`transition`](crate::transition) returns it with the task after the change,
/// and every store records that kind; the reaper records [`EventKind::LeaseExpired`].
///
/// Two kinds belong to one side only:
/// - [`EventKind::RetryScheduled`] is recorded in the history but has no hook event of its
///   own: to hooks it is a failure (`TaskEvent::Failed`, of kind [`EventKind::Failed`], with
///   the task pending again), since the run failed either way. Register on `Failed` to see it.
/// - [`EventKind::Deleted`] is a hook event only: deleting a task deletes its history.
///
/// The names ([`as_str`](Self::as_str), serde, `Display`, `FromStr`) are the snake_case
/// variant names; stores keep them as text, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Created (pending).
    Created,
    /// Started by an agent, without a lease.
    Started,
    /// Claimed by an agent, with a lease.
    Claimed,
    /// Completed by its runner.
    Completed,
    /// Failed by its runner, for good (no retry policy, or no attempts left).
    Failed,
    /// Cancelled.
    Cancelled,
    /// Put back to pending after a failure or a cancellation.
    Retried,
    /// Its lease lapsed and the reaper took it back: pending again, or failed once out of
    /// attempts.
    LeaseExpired,
    /// Its run failed and its retry policy put it back to pending, waiting out a backoff
    /// (history only: hooks see it as [`EventKind::Failed`]).
    RetryScheduled,
    /// The holder of its lease gave it back: running → pending, the attempt refunded.
    Released,
    /// Deleted (hooks only: the history goes with the task).
    Deleted,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 11] = [
        EventKind::Created,
        EventKind::Started,
        EventKind::Claimed,
        EventKind::Completed,
        EventKind::Failed,
        EventKind::Cancelled,
        EventKind::Retried,
        EventKind::LeaseExpired,
        EventKind::RetryScheduled,
        EventKind::Released,
        EventKind::Deleted,
    ];

    /// The snake_case name (`lease_expired`).
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
            EventKind::RetryScheduled => "retry_scheduled",
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

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown history kind {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names history rows, JSON and hook listings use, as they were when the history and
    /// the hooks kept two lists: they must never change.
    const NAMES: [&str; 11] = [
        "created",
        "started",
        "claimed",
        "completed",
        "failed",
        "cancelled",
        "retried",
        "lease_expired",
        "retry_scheduled",
        "released",
        "deleted",
    ];

    #[test]
    fn one_list_with_the_names_it_always_had() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, NAMES);
        for k in EventKind::ALL {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(
                json,
                serde_json::Value::from(k.as_str()),
                "serde name of {k:?}"
            );
            assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), k);
            assert_eq!(k.to_string().parse::<EventKind>(), Ok(k));
        }
        let mut sorted = EventKind::ALL;
        sorted.sort();
        assert_eq!(sorted, EventKind::ALL, "ALL is in declaration order");
        assert!("done".parse::<EventKind>().unwrap_err().contains("done"));
    }
}
