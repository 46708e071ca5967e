//! The `TaskStore` trait every backend implements.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::{
    Change, Error, HistoryEntry, NewTask, ReapedTask, Result, StorageStats, Task, TaskFilter,
    TaskId, TaskPage, TaskPatch, TaskQuery, TaskStats, Timestamp,
};

/// A store of tasks with an atomic state machine.
///
/// Object-safe: agents hold a `&dyn TaskStore` or `Arc<dyn TaskStore>`.
/// Backends implement the required methods; the convenience methods (`start`, `claim`,
/// `complete`, ...) are defaulted on top of [`TaskStore::apply`].
///
/// # Contract
/// - Every change is one atomic check-and-set: it either happens completely, with `version` bumped,
///   or fails with a typed error and leaves the task byte-for-byte unchanged.
/// - A change only writes the fields it is about; nothing else is erased.
/// - Fencing tokens handed out by claims strictly increase across the whole store.
/// - Every status transition is recorded in the task's history ([`HistoryEntry::of`]) in the
///   same transaction.
/// - The conformance suite in [`crate::testkit`] (feature `testkit`) checks all of this.
pub trait TaskStore: Send + Sync {
    /// Inserts a new pending task.
    fn create(&self, new: NewTask) -> Result<Task>;

    /// Inserts many tasks in one transaction: all of them or none.
    fn create_many(&self, new: Vec<NewTask>) -> Result<Vec<Task>>;

    /// The task with this id, if any.
    fn get(&self, id: &TaskId) -> Result<Option<Task>>;

    /// Applies one change atomically; with `expect_version`, only if the task is at that version.
    fn apply(&self, id: &TaskId, change: Change, expect_version: Option<u64>) -> Result<Task>;

    /// Claims the ready task with the highest priority (oldest first among equals) for `owner`,
    /// with a lease of `ttl`; `None` when nothing is pending.
    fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Task>>;

    /// Deletes a task in any status and returns it as it was.
    fn delete(&self, id: &TaskId, expect_version: Option<u64>) -> Result<Task>;

    /// Returns running tasks whose lease lapsed at or before `now` to pending, or fails them
    /// when their attempts are used up; reports each one.
    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>>;

    /// One page of tasks.
    fn list(&self, query: &TaskQuery) -> Result<TaskPage>;

    /// How many tasks match.
    fn count(&self, filter: &TaskFilter) -> Result<u64>;

    /// Totals by status and owner and the `recent` newest tasks.
    fn stats(&self, recent: usize) -> Result<TaskStats>;

    /// The task's history: every status transition, oldest first, as the store recorded it in
    /// the transaction of the transition (deleting a task deletes its history). `NotFound` when
    /// the task does not exist.
    fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>>;

    /// The store's current time (its clock), as used for leases and timestamps.
    fn now(&self) -> Timestamp;

    /// The task with this id, or `NotFound`.
    fn require(&self, id: &TaskId) -> Result<Task> {
        self.get(id)?
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    /// pending → running for `agent`, without a lease.
    fn start(&self, id: &TaskId, agent: &str) -> Result<Task> {
        self.apply(
            id,
            Change::Start {
                agent: agent.into(),
            },
            None,
        )
    }

    /// pending → running for `owner` with a lease of `ttl` and a fresh fencing token.
    fn claim(&self, id: &TaskId, owner: &str, ttl: Duration) -> Result<Task> {
        self.apply(
            id,
            Change::Claim {
                owner: owner.into(),
                ttl,
            },
            None,
        )
    }

    /// Extends the lease `token` to now + `ttl`; `LeaseLost` if it is no longer current.
    fn heartbeat(&self, id: &TaskId, token: u64, ttl: Duration) -> Result<Task> {
        self.apply(id, Change::Heartbeat { token, ttl }, None)
    }

    /// running → completed.
    fn complete(&self, id: &TaskId, token: Option<u64>, result: Option<Value>) -> Result<Task> {
        self.apply(id, Change::Complete { token, result }, None)
    }

    /// running → failed.
    fn fail(&self, id: &TaskId, token: Option<u64>, error: &str) -> Result<Task> {
        self.apply(
            id,
            Change::Fail {
                token,
                error: error.into(),
            },
            None,
        )
    }

    /// pending | running → cancelled.
    fn cancel(&self, id: &TaskId) -> Result<Task> {
        self.apply(id, Change::Cancel, None)
    }

    /// failed | cancelled → pending.
    fn retry(&self, id: &TaskId) -> Result<Task> {
        self.apply(id, Change::Retry, None)
    }

    /// Changes the fields named in `patch`; nothing else.
    fn update(&self, id: &TaskId, patch: TaskPatch) -> Result<Task> {
        self.apply(id, Change::Update(patch), None)
    }
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<T: TaskStore + ?Sized> TaskStore for $ty {
            fn create(&self, new: NewTask) -> Result<Task> { (**self).create(new) }
            fn create_many(&self, new: Vec<NewTask>) -> Result<Vec<Task>> { (**self).create_many(new) }
            fn get(&self, id: &TaskId) -> Result<Option<Task>> { (**self).get(id) }
            fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
                (**self).apply(id, change, expect)
            }
            fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Task>> {
                (**self).claim_next(owner, ttl)
            }
            fn delete(&self, id: &TaskId, expect: Option<u64>) -> Result<Task> { (**self).delete(id, expect) }
            fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> { (**self).reap_expired(now) }
            fn list(&self, query: &TaskQuery) -> Result<TaskPage> { (**self).list(query) }
            fn count(&self, filter: &TaskFilter) -> Result<u64> { (**self).count(filter) }
            fn stats(&self, recent: usize) -> Result<TaskStats> { (**self).stats(recent) }
            fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>> { (**self).history(id) }
            fn now(&self) -> Timestamp { (**self).now() }
        }
    )*};
}

forward!(&T, Box<T>, Arc<T>);

/// A store that can report its database's size, cache and slow statements (for metrics and
/// `oc db stats`): the SQLite store, the PostgreSQL store.
pub trait StorageSource: Send + Sync {
    /// The figures, read now.
    fn storage_stats(&self) -> Result<StorageStats>;
}

impl<T: StorageSource + ?Sized> StorageSource for &T {
    fn storage_stats(&self) -> Result<StorageStats> {
        (**self).storage_stats()
    }
}

impl<T: StorageSource + ?Sized> StorageSource for Box<T> {
    fn storage_stats(&self) -> Result<StorageStats> {
        (**self).storage_stats()
    }
}

impl<T: StorageSource + ?Sized> StorageSource for Arc<T> {
    fn storage_stats(&self) -> Result<StorageStats> {
        (**self).storage_stats()
    }
}
