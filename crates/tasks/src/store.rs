//! The `TaskStore` trait every backend implements.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::idempotency::unsupported;
use crate::wait::{ReadySignal, Waiting};
use crate::{
    ArchivedTask, Blockers, Change, Created, Error, HistoryEntry, IdempotencyKey, Keyed,
    LabelFilter, NewTask, OnDependents, PruneReport, ReapedTask, Result, RetentionPolicy, Rollup,
    StorageStats, Task, TaskCounts, TaskFilter, TaskId, TaskPage, TaskPatch, TaskQuery, TaskStats,
    TaskStatus, Timestamp,
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
/// - Every status transition is recorded in the task's history in the same transaction, as
///   the [`HistoryEntry::new`] of the kind [`crate::transition`] returned (of
///   [`crate::EventKind::LeaseExpired`] for the reaper's).
/// - Claims hand out ready tasks only ([`crate::is_ready`]); the graph never
///   has a cycle; a unique key is held by at most one task.
/// - The conformance suite in [`crate::testkit`] (feature `testkit`) checks all of this.
pub trait TaskStore: Send + Sync {
    /// Inserts new pending tasks in one transaction, all of them or none. A task whose unique
    /// key is held (by a stored task or an earlier one of the batch) is not created: its
    /// [`Created`] holds the holder, with `duplicate` set, and dependencies on its id in the
    /// batch point at the holder. Dependencies and parents must exist or come in the batch;
    /// an edge that would close a cycle is refused with [`Error::Cycle`].
    fn submit_many(&self, new: Vec<NewTask>) -> Result<Vec<Created>>;

    /// The task with this id, if any.
    fn get(&self, id: &TaskId) -> Result<Option<Task>>;

    /// Applies one change atomically; with `expect_version`, only if the task is at that version.
    fn apply(&self, id: &TaskId, change: Change, expect_version: Option<u64>) -> Result<Task>;

    /// Claims up to `n` ready tasks that pass `filter`, highest priority first (oldest first
    /// among equals), for `owner` with a lease of `ttl` each, in one transaction.
    fn claim_many(
        &self,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Vec<Task>>;

    /// Makes `task` depend on `on` (bumping `task`'s version); nothing changes when it already
    /// does. Refused with [`Error::MissingReference`] when `on` does not exist and with
    /// [`Error::Cycle`] when `on` already depends on `task`, directly or not.
    fn add_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task>;

    /// Removes the edge `task → on` (bumping `task`'s version); nothing changes when there is
    /// none.
    fn remove_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task>;

    /// Deletes a task in any status, deciding by `dependents` what happens to the tasks that
    /// depend on it or are its children; returns every task deleted, this one first.
    fn delete_with(
        &self,
        id: &TaskId,
        expect_version: Option<u64>,
        dependents: OnDependents,
    ) -> Result<Vec<Task>>;

    /// Returns running tasks whose lease lapsed at or before `now` to pending, or fails them
    /// when their attempts are used up; reports each one.
    fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>>;

    /// One page of tasks.
    fn list(&self, query: &TaskQuery) -> Result<TaskPage>;

    /// How many tasks match.
    fn count(&self, filter: &TaskFilter) -> Result<u64>;

    /// Totals by status and owner and the `recent` newest tasks.
    fn stats(&self, recent: usize) -> Result<TaskStats>;

    /// Tasks by status, exactly, and the ready and blocked ones counted up to `cap` each
    /// (a store may count further, or exactly): cheap enough to read every second over
    /// millions of tasks. The SQLite and PostgreSQL stores keep the counts by status as they
    /// write; this default takes them from [`stats`](TaskStore::stats).
    fn counts(&self, cap: u64) -> Result<TaskCounts> {
        let _ = cap;
        Ok(TaskCounts::of_stats(&self.stats(0)?))
    }

    /// The task's history: every status transition, oldest first, as the store recorded it in
    /// the transaction of the transition (deleting a task deletes its history). `NotFound` when
    /// the task does not exist.
    fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>>;

    /// The store's current time (its clock), as used for leases and timestamps.
    fn now(&self) -> Timestamp;

    /// Inserts a new pending task (or finds the task holding its unique key).
    fn submit(&self, new: NewTask) -> Result<Created> {
        self.submit_many(vec![new])?
            .pop()
            .ok_or_else(|| Error::InvalidInput {
                field: "tasks",
                reason: "nothing to create".into(),
            })
    }

    /// Inserts a new pending task; with a unique key held by another task, returns that one.
    fn create(&self, new: NewTask) -> Result<Task> {
        Ok(self.submit(new)?.task)
    }

    /// Inserts many tasks in one transaction: all of them or none (see [`TaskStore::submit_many`]).
    fn create_many(&self, new: Vec<NewTask>) -> Result<Vec<Task>> {
        Ok(self.submit_many(new)?.into_iter().map(|c| c.task).collect())
    }

    /// Claims the ready task with the highest priority (oldest first among equals) for `owner`,
    /// with a lease of `ttl`; `None` when nothing is ready.
    fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Task>> {
        self.claim_next_matching(owner, ttl, &LabelFilter::any())
    }

    /// As [`TaskStore::claim_next`], among the tasks that pass `filter`.
    fn claim_next_matching(
        &self,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
    ) -> Result<Option<Task>> {
        Ok(self.claim_many(owner, ttl, 1, filter)?.pop())
    }

    /// The signal this store bumps when a write of this handle may have made a task ready,
    /// which [`TaskStore::claim_next_watched`] waits on; `None` (the default): waiting polls
    /// with a backoff.
    fn ready_signal(&self) -> Option<&ReadySignal> {
        None
    }

    /// As [`TaskStore::claim_next_matching`], waiting up to `wait`'s timeout for a task that
    /// passes `filter` to be ready: woken by the store's [`ReadySignal`] (or, on PostgreSQL,
    /// a notification), trying again at least every poll bound, and stopping when `wait`'s
    /// watcher says so. `None` when nothing was ready in time or the wait was stopped: it never
    /// claims past its timeout or once stopped, and a task claimed as it was stopped is
    /// released, so a stopped wait takes nothing.
    fn claim_next_watched(
        &self,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
        wait: &Waiting<'_>,
    ) -> Result<Option<Task>> {
        crate::wait::claim_watched(self, owner, ttl, filter, wait)
    }

    /// Deletes a task that nothing depends on and that has no children, and returns it as it
    /// was; [`Error::HasDependents`] otherwise.
    fn delete(&self, id: &TaskId, expect_version: Option<u64>) -> Result<Task> {
        self.delete_with(id, expect_version, OnDependents::Refuse)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    /// What keeps a task from being ready: its unfinished dependencies and a `run_at` still
    /// ahead (empty for a ready task, and for one that is not pending).
    fn blockers(&self, id: &TaskId) -> Result<Blockers> {
        let task = self.require(id)?;
        let mut out = Blockers {
            task: id.clone(),
            waiting_on: Vec::new(),
            run_at: None,
        };
        if task.status != TaskStatus::Pending {
            return Ok(out);
        }
        for dep in &task.depends_on {
            if let Some(d) = self.get(dep)?
                && d.status != TaskStatus::Completed
            {
                out.waiting_on.push((d.id, d.status));
            }
        }
        out.run_at = task.run_at.filter(|at| *at > self.now());
        Ok(out)
    }

    /// A parent's children counted by status.
    fn rollup(&self, parent: &TaskId) -> Result<Rollup> {
        self.require(parent)?;
        let mut by_status = Vec::with_capacity(TaskStatus::ALL.len());
        for s in TaskStatus::ALL {
            let f = TaskFilter::new().parent(parent.clone()).status(s);
            by_status.push((s, self.count(&f)?));
        }
        Ok(Rollup {
            parent: parent.clone(),
            total: by_status.iter().map(|(_, n)| n).sum(),
            by_status,
        })
    }

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

    /// running → pending: gives back a claimed task (the lease ends, the attempt is refunded,
    /// another agent may claim it at once); `LeaseLost` if `token` is no longer current.
    fn release(&self, id: &TaskId, token: u64) -> Result<Task> {
        self.apply(id, Change::Release { token }, None)
    }

    /// running → completed.
    fn complete(&self, id: &TaskId, token: Option<u64>, result: Option<Value>) -> Result<Task> {
        self.apply(id, Change::Complete { token, result }, None)
    }

    /// running → failed, or back to pending with a `run_at` after a backoff when the task has a
    /// retry policy and attempts left.
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

    // Idempotency keys (docs/decisions/0043): a retry with the same key and request returns the first
    // result and writes nothing; with another request it is `IdempotencyConflict`. A store
    // records the key in the transaction of the change it guards, so only the store can
    // write the three methods below: their defaults refuse (`IdempotencyUnsupported`).
    // The memory, SQLite and PostgreSQL stores implement them; the rest are defaulted on top.

    /// [`submit_many`](TaskStore::submit_many) under `key`: a retry returns the first call's
    /// [`Created`] (each `duplicate` as it was then) and creates nothing.
    fn submit_many_keyed(
        &self,
        key: &IdempotencyKey,
        new: Vec<NewTask>,
    ) -> Result<Keyed<Vec<Created>>> {
        let _ = (key, new);
        Err(unsupported())
    }

    /// [`apply`](TaskStore::apply) under `key`: a retry returns the task as the first call
    /// left it (a claim's lease and token included) and changes nothing, whatever happened to
    /// the task since. A refused change records no key.
    fn apply_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        change: Change,
        expect_version: Option<u64>,
    ) -> Result<Keyed<Task>> {
        let _ = (key, id, change, expect_version);
        Err(unsupported())
    }

    /// [`claim_many`](TaskStore::claim_many) under `key`: a retry returns the tasks the first
    /// call claimed (none, if it found none) and claims nothing more.
    fn claim_many_keyed(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Keyed<Vec<Task>>> {
        let _ = (key, owner, ttl, n, filter);
        Err(unsupported())
    }

    /// [`claim_many_keyed`](TaskStore::claim_many_keyed), except that a call that claims
    /// nothing records no key (a key recorded earlier, even empty, still replays): what each
    /// attempt of a keyed waiting claim calls, so a wait that ends with nothing leaves the key
    /// unused and a retry waits afresh.
    fn claim_many_keyed_granted(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<Keyed<Vec<Task>>> {
        let _ = (key, owner, ttl, n, filter);
        Err(unsupported())
    }

    /// Gives back a keyed claim whose answer never reached its caller: releases task `id`
    /// if `token` is still its lease, and forgets `key`, in one transaction, so a retry with
    /// the key claims afresh instead of replaying a grant that was given back. The task as
    /// released, or `None` when the lease is no longer `token`'s (finished, lapsed, claimed
    /// afresh, deleted): the task is left alone, and the key is forgotten all the same.
    fn release_forgetting(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
    ) -> Result<Option<Task>> {
        let _ = (key, id, token);
        Err(unsupported())
    }

    /// [`submit`](TaskStore::submit) under `key`.
    fn submit_keyed(&self, key: &IdempotencyKey, new: NewTask) -> Result<Keyed<Created>> {
        let k = self.submit_many_keyed(key, vec![new])?;
        let replayed = k.replayed;
        let created = k
            .value
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidInput {
                field: "tasks",
                reason: "nothing to create".into(),
            })?;
        Ok(Keyed {
            value: created,
            replayed,
        })
    }

    /// [`claim_next_matching`](TaskStore::claim_next_matching) under `key`.
    fn claim_next_keyed(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
    ) -> Result<Keyed<Option<Task>>> {
        Ok(self
            .claim_many_keyed(key, owner, ttl, 1, filter)?
            .map(|mut v| v.pop()))
    }

    /// [`claim`](TaskStore::claim) under `key`.
    fn claim_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Keyed<Task>> {
        let owner = owner.into();
        self.apply_keyed(key, id, Change::Claim { owner, ttl }, None)
    }

    /// [`heartbeat`](TaskStore::heartbeat) under `key`.
    fn heartbeat_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
        ttl: Duration,
    ) -> Result<Keyed<Task>> {
        self.apply_keyed(key, id, Change::Heartbeat { token, ttl }, None)
    }

    /// [`release`](TaskStore::release) under `key`.
    fn release_keyed(&self, key: &IdempotencyKey, id: &TaskId, token: u64) -> Result<Keyed<Task>> {
        self.apply_keyed(key, id, Change::Release { token }, None)
    }

    /// [`complete`](TaskStore::complete) under `key`.
    fn complete_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: Option<u64>,
        result: Option<Value>,
    ) -> Result<Keyed<Task>> {
        self.apply_keyed(key, id, Change::Complete { token, result }, None)
    }

    /// [`fail`](TaskStore::fail) under `key`.
    fn fail_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: Option<u64>,
        error: &str,
    ) -> Result<Keyed<Task>> {
        let error = error.into();
        self.apply_keyed(key, id, Change::Fail { token, error }, None)
    }

    /// Takes the finished tasks that `policy` names out of the hot tables, deleted or archived,
    /// in transactions of at most `policy.batch` tasks each (docs/decisions/0051): a task goes
    /// only with every task that depends on it or is its child, so the graph keeps no edge to
    /// a missing task; the counts by status lose it; the counters of entries into each status
    /// and of run durations keep it. The default refuses with [`Error::Unsupported`].
    fn prune_finished(&self, policy: &RetentionPolicy) -> Result<PruneReport> {
        let _ = policy;
        Err(Error::Unsupported {
            operation: "pruning finished tasks",
        })
    }

    /// A task a [`prune_finished`](TaskStore::prune_finished) run archived, with its history;
    /// `None` when there is none (the default: a store that archives nothing).
    fn archived(&self, id: &TaskId) -> Result<Option<ArchivedTask>> {
        let _ = id;
        Ok(None)
    }
    // Batches (docs/decisions/0049): many finishes or heartbeats in one call, for embedders
    // who run many small jobs. Each item's outcome is its own: the answer holds one `Result`
    // per item, in the order given, and an item refused (its lease lost, the task unknown or
    // already finished) changes nothing and does not stop the others. The defaults loop over
    // the single calls; the memory, SQLite and PostgreSQL stores write a batch at once.

    /// [`complete`](TaskStore::complete) for each `(id, token, result)`, in order: one
    /// `Result` per item, each as the single call would answer it (an item's lost lease is its
    /// own [`Error::LeaseLost`], not the batch's; an id given twice is finished by its first
    /// item and refused for the second). The call itself fails only for more than
    /// [`MAX_BATCH`] items, or when the store cannot run the batch at all: then the memory,
    /// SQLite and PostgreSQL stores, which write a batch in one transaction, wrote nothing of it.
    /// Counts and history afterwards are what the single calls would leave.
    fn complete_many(
        &self,
        items: &[(TaskId, Option<u64>, Option<Value>)],
    ) -> Result<Vec<Result<Task>>> {
        check_batch(items.len())?;
        Ok(items
            .iter()
            .map(|(id, token, result)| self.complete(id, *token, result.clone()))
            .collect())
    }

    /// [`fail`](TaskStore::fail) for each `(id, token, error)`, in order, each item's outcome
    /// its own, as for [`complete_many`](TaskStore::complete_many).
    fn fail_many(&self, items: &[(TaskId, Option<u64>, String)]) -> Result<Vec<Result<Task>>> {
        check_batch(items.len())?;
        Ok(items
            .iter()
            .map(|(id, token, error)| self.fail(id, *token, error))
            .collect())
    }

    /// [`heartbeat`](TaskStore::heartbeat) for each `(id, token)`, every lease extended by
    /// `ttl` from now, each item's outcome its own, as for
    /// [`complete_many`](TaskStore::complete_many); a `ttl` out of bounds refuses the whole
    /// call before anything is written.
    fn heartbeat_many(&self, items: &[(TaskId, u64)], ttl: Duration) -> Result<Vec<Result<Task>>> {
        check_batch(items.len())?;
        Change::Heartbeat { token: 0, ttl }.validate()?;
        Ok(items
            .iter()
            .map(|(id, token)| self.heartbeat(id, *token, ttl))
            .collect())
    }
}

/// The most items one batch call ([`TaskStore::complete_many`], [`TaskStore::fail_many`],
/// [`TaskStore::heartbeat_many`]) takes.
pub const MAX_BATCH: usize = 1_000;

/// Refuses a batch of more than [`MAX_BATCH`] items ([`Error::InvalidInput`]).
pub fn check_batch(n: usize) -> Result<()> {
    if n > MAX_BATCH {
        return Err(Error::InvalidInput {
            field: "items",
            reason: format!("{n} items in one batch, at most {MAX_BATCH}"),
        });
    }
    Ok(())
}

/// The changes of a [`TaskStore::complete_many`] batch, in order, once [`check_batch`] passed:
/// what a store that writes a batch natively applies.
pub fn complete_changes(
    items: &[(TaskId, Option<u64>, Option<Value>)],
) -> Result<Vec<(&TaskId, Change)>> {
    check_batch(items.len())?;
    Ok(items
        .iter()
        .map(|(id, token, result)| {
            let (token, result) = (*token, result.clone());
            (id, Change::Complete { token, result })
        })
        .collect())
}

/// The changes of a [`TaskStore::fail_many`] batch, as [`complete_changes`].
pub fn fail_changes(items: &[(TaskId, Option<u64>, String)]) -> Result<Vec<(&TaskId, Change)>> {
    check_batch(items.len())?;
    Ok(items
        .iter()
        .map(|(id, token, error)| {
            let (token, error) = (*token, error.clone());
            (id, Change::Fail { token, error })
        })
        .collect())
}

/// The changes of a [`TaskStore::heartbeat_many`] batch, as [`complete_changes`]; a bad `ttl`
/// refuses the whole batch.
pub fn heartbeat_changes(items: &[(TaskId, u64)], ttl: Duration) -> Result<Vec<(&TaskId, Change)>> {
    check_batch(items.len())?;
    Change::Heartbeat { token: 0, ttl }.validate()?;
    Ok(items
        .iter()
        .map(|(id, token)| (id, Change::Heartbeat { token: *token, ttl }))
        .collect())
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<T: TaskStore + ?Sized> TaskStore for $ty {
            fn submit_many(&self, new: Vec<NewTask>) -> Result<Vec<Created>> { (**self).submit_many(new) }
            fn get(&self, id: &TaskId) -> Result<Option<Task>> { (**self).get(id) }
            fn apply(&self, id: &TaskId, change: Change, expect: Option<u64>) -> Result<Task> {
                (**self).apply(id, change, expect)
            }
            fn claim_many(&self, owner: &str, ttl: Duration, n: usize, f: &LabelFilter) -> Result<Vec<Task>> {
                (**self).claim_many(owner, ttl, n, f)
            }
            fn add_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
                (**self).add_dependency(task, on)
            }
            fn remove_dependency(&self, task: &TaskId, on: &TaskId) -> Result<Task> {
                (**self).remove_dependency(task, on)
            }
            fn delete_with(&self, id: &TaskId, expect: Option<u64>, d: OnDependents) -> Result<Vec<Task>> {
                (**self).delete_with(id, expect, d)
            }
            fn reap_expired(&self, now: Timestamp) -> Result<Vec<ReapedTask>> { (**self).reap_expired(now) }
            fn list(&self, query: &TaskQuery) -> Result<TaskPage> { (**self).list(query) }
            fn count(&self, filter: &TaskFilter) -> Result<u64> { (**self).count(filter) }
            fn stats(&self, recent: usize) -> Result<TaskStats> { (**self).stats(recent) }
            fn counts(&self, cap: u64) -> Result<TaskCounts> { (**self).counts(cap) }
            fn history(&self, id: &TaskId) -> Result<Vec<HistoryEntry>> { (**self).history(id) }
            fn now(&self) -> Timestamp { (**self).now() }
            fn ready_signal(&self) -> Option<&ReadySignal> { (**self).ready_signal() }
            fn claim_next_watched(
                &self, owner: &str, ttl: Duration, f: &LabelFilter, w: &Waiting<'_>,
            ) -> Result<Option<Task>> {
                (**self).claim_next_watched(owner, ttl, f, w)
            }
            fn submit_many_keyed(&self, key: &IdempotencyKey, new: Vec<NewTask>) -> Result<Keyed<Vec<Created>>> {
                (**self).submit_many_keyed(key, new)
            }
            fn apply_keyed(
                &self, key: &IdempotencyKey, id: &TaskId, change: Change, expect: Option<u64>,
            ) -> Result<Keyed<Task>> {
                (**self).apply_keyed(key, id, change, expect)
            }
            fn claim_many_keyed(
                &self, key: &IdempotencyKey, owner: &str, ttl: Duration, n: usize, f: &LabelFilter,
            ) -> Result<Keyed<Vec<Task>>> {
                (**self).claim_many_keyed(key, owner, ttl, n, f)
            }
            fn claim_many_keyed_granted(
                &self, key: &IdempotencyKey, owner: &str, ttl: Duration, n: usize, f: &LabelFilter,
            ) -> Result<Keyed<Vec<Task>>> {
                (**self).claim_many_keyed_granted(key, owner, ttl, n, f)
            }
            fn release_forgetting(&self, key: &IdempotencyKey, id: &TaskId, token: u64) -> Result<Option<Task>> {
                (**self).release_forgetting(key, id, token)
            }
            fn prune_finished(&self, policy: &RetentionPolicy) -> Result<PruneReport> {
                (**self).prune_finished(policy)
            }
            fn archived(&self, id: &TaskId) -> Result<Option<ArchivedTask>> { (**self).archived(id) }
            fn complete_many(
                &self, items: &[(TaskId, Option<u64>, Option<Value>)],
            ) -> Result<Vec<Result<Task>>> {
                (**self).complete_many(items)
            }
            fn fail_many(&self, items: &[(TaskId, Option<u64>, String)]) -> Result<Vec<Result<Task>>> {
                (**self).fail_many(items)
            }
            fn heartbeat_many(&self, items: &[(TaskId, u64)], ttl: Duration) -> Result<Vec<Result<Task>>> {
                (**self).heartbeat_many(items, ttl)
            }
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
