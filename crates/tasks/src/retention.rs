//! Retention of finished tasks ([`TaskStore::prune_finished`](crate::TaskStore::prune_finished),
//! docs/decisions/0051): which tasks a run may take out of the hot tables, and what it reports.
//!
//! A task is *retirable* when it is finished (completed, failed or cancelled), finished at or
//! before the cutoff (the store's now minus [`RetentionPolicy::older_than`]) and holds no unique
//! key (a key of scope `always` is held for ever, so its task stays). A retirable task is
//! *pruned* only when every task that depends on it or is its child is pruned with it: the work
//! graph never keeps an edge, or a parent, pointing at a task that is gone, and no unfinished
//! task's count of dependencies changes. [`prunable`] works that set out, with no I/O, for every
//! backend.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, HistoryEntry, Result, Task, TaskId, Timestamp, Unique};

/// How many tasks a run retires per transaction unless told otherwise.
pub const DEFAULT_PRUNE_BATCH: usize = 1_000;

/// The most tasks a run may retire per transaction: a bound on the locks one transaction holds
/// and on the write-ahead log one commit writes.
pub const MAX_PRUNE_BATCH: usize = 10_000;

/// The longest `older_than` accepted: a hundred years.
const MAX_AGE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What happens to a pruned task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retire {
    /// Deleted with its history and its edges, as [`TaskStore::delete`](crate::TaskStore::delete) would.
    Delete,
    /// Moved, with its history, to the store's archive: gone from the hot tables, lists and
    /// counts, readable by id through [`TaskStore::archived`](crate::TaskStore::archived).
    Archive,
}

/// Which finished tasks a run takes out of the hot tables, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Tasks finished at least this long ago (by the store's clock) are retired.
    pub older_than: Duration,
    /// Deleted or archived.
    pub retire: Retire,
    /// At most this many tasks per transaction (1 to [`MAX_PRUNE_BATCH`]).
    pub batch: usize,
}

impl RetentionPolicy {
    /// Deletes the tasks finished at least `older_than` ago, in batches of
    /// [`DEFAULT_PRUNE_BATCH`].
    pub fn delete_older_than(older_than: Duration) -> Self {
        RetentionPolicy {
            older_than,
            retire: Retire::Delete,
            batch: DEFAULT_PRUNE_BATCH,
        }
    }

    /// Archives the tasks finished at least `older_than` ago, in batches of
    /// [`DEFAULT_PRUNE_BATCH`].
    pub fn archive_older_than(older_than: Duration) -> Self {
        RetentionPolicy {
            retire: Retire::Archive,
            ..Self::delete_older_than(older_than)
        }
    }

    /// At most `n` tasks per transaction.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Checks the bounds: a batch of 1 to [`MAX_PRUNE_BATCH`], an age of at most a hundred
    /// years.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 || self.batch > MAX_PRUNE_BATCH {
            return Err(Error::InvalidInput {
                field: "batch",
                reason: format!("must be 1 to {MAX_PRUNE_BATCH}, not {}", self.batch),
            });
        }
        if self.older_than > MAX_AGE {
            return Err(Error::InvalidInput {
                field: "older_than",
                reason: "must be at most a hundred years".into(),
            });
        }
        Ok(())
    }

    /// The newest finish a task may have to be retired at `now`.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        let ms = i64::try_from(self.older_than.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(now.as_millis().saturating_sub(ms))
    }
}

/// What a run of [`TaskStore::prune_finished`](crate::TaskStore::prune_finished) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Tasks finished at or before this were retired.
    pub cutoff: Timestamp,
    /// Deleted or archived.
    pub retire: Retire,
    /// Tasks created at or before the cutoff that the run looked at.
    pub scanned: u64,
    /// Tasks deleted or archived.
    pub pruned: u64,
    /// Tasks finished before the cutoff that stay: a task that stays depends on them or is
    /// their child, or they hold a unique key of scope `always`.
    pub kept: u64,
    /// Transactions that retired at least one task.
    pub batches: u64,
}

impl PruneReport {
    /// An empty report of a run at `cutoff`.
    pub fn new(cutoff: Timestamp, retire: Retire) -> Self {
        PruneReport {
            cutoff,
            retire,
            scanned: 0,
            pruned: 0,
            kept: 0,
            batches: 0,
        }
    }
}

/// A task as the archive keeps it: the task as it was when archived, its history, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedTask {
    /// The task as it was (its `depends_on` as it was too, though the edges are gone).
    pub task: Task,
    /// Its history, oldest first.
    pub history: Vec<HistoryEntry>,
    /// When it was archived, by the store's clock.
    pub archived_at: Timestamp,
}

/// Whether `task` finished at or before `cutoff` (retired, or kept by [`retirable`] and
/// [`prunable`]: a report's `kept` are these less the pruned).
pub fn finished_by(task: &Task, cutoff: Timestamp) -> bool {
    task.status.is_finished() && task.finished_at.is_some_and(|f| f <= cutoff)
}

/// Whether `task` may be retired by a run whose cutoff is `cutoff` (see the module doc); the
/// graph decides the rest ([`prunable`]).
pub fn retirable(task: &Task, cutoff: Timestamp) -> bool {
    finished_by(task, cutoff) && Unique::held_by(task).is_none()
}

/// Of `candidates` (retirable tasks, each with the tasks that depend on it or are its children),
/// the ones that may go together: those whose every dependent and child goes too. A task kept
/// keeps what it depends on, and so on down.
pub fn prunable(candidates: &[(TaskId, Vec<TaskId>)]) -> BTreeSet<TaskId> {
    let below: HashMap<&TaskId, &Vec<TaskId>> = candidates.iter().map(|(i, b)| (i, b)).collect();
    let mut set: BTreeSet<TaskId> = candidates.iter().map(|(i, _)| i.clone()).collect();
    // A fixpoint: drop each task with something below it outside the set, until none is left.
    loop {
        let out: Vec<TaskId> = set
            .iter()
            .filter(|id| {
                below
                    .get(id)
                    .is_some_and(|b| b.iter().any(|x| !set.contains(x)))
            })
            .cloned()
            .collect();
        if out.is_empty() {
            return set;
        }
        for id in out {
            set.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).unwrap()
    }

    fn check(cands: &[(&str, &[&str])], want: &[&str]) {
        let cands: Vec<(TaskId, Vec<TaskId>)> = cands
            .iter()
            .map(|(i, b)| (id(i), b.iter().map(|x| id(x)).collect()))
            .collect();
        let got: Vec<String> = prunable(&cands).iter().map(|t| t.to_string()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_task_goes_only_with_everything_below_it() {
        check(&[("a", &[]), ("b", &[])], &["a", "b"]);
        // b depends on a: both go together.
        check(&[("a", &["b"]), ("b", &[])], &["a", "b"]);
        // c (not a candidate) depends on b, which a is below: b and a stay.
        check(&[("a", &["b"]), ("b", &["c"]), ("d", &[])], &["d"]);
        // A chain kept from its far end, whatever the order given.
        check(&[("b", &["c"]), ("c", &["x"]), ("a", &["b"])], &[]);
    }

    #[test]
    fn the_policy_is_bounded() {
        let p = RetentionPolicy::delete_older_than(Duration::from_secs(60));
        assert!(p.validate().is_ok());
        assert!(p.clone().batch(0).validate().is_err());
        assert!(p.clone().batch(MAX_PRUNE_BATCH + 1).validate().is_err());
        let old = RetentionPolicy::archive_older_than(Duration::from_secs(u64::MAX));
        assert!(old.validate().is_err());
        let now = Timestamp::from_millis(100_000);
        assert_eq!(p.cutoff(now), Timestamp::from_millis(40_000));
    }
}
