//! `TaskLifecycle`: every transition through the store (which records it in the task's
//! history) and the hooks.

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::{
    Change, EventKind, IdempotencyKey, Keyed, LabelFilter, NewTask, OnDependents, Order, Readiness,
    Task, TaskFilter, TaskId, TaskQuery, TaskStore, Timestamp, Waiting, transition,
};
use serde::Serialize;
use serde_json::Value;

use crate::{Error, HookReport, Hooks, Result, TaskEvent};

/// A committed transition: the event (with the task as stored), and what the hooks did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Committed {
    /// What happened, with the task after the change (before it, for a deletion).
    pub event: TaskEvent,
    /// Failures and slow hooks.
    pub hooks: HookReport,
    /// Set by [`TaskLifecycle::create`] when a task holding the new task's unique key was
    /// found instead: nothing was created, the event holds that task, no after-hook ran.
    pub duplicate: bool,
}

/// The API agents and the CLI call for transitions: the store's atomic change, framed by
/// before-hooks (which may veto it) and after-hooks. The store records every transition in
/// the task's history in the same transaction ([`TaskStore::history`]); the task's
/// `logs.jsonl` is the agent's own.
///
/// A transition the state machine would refuse is refused before any hook runs. Before-hooks see
/// the task as it would be; the change is then written only if the task is still at the version
/// they saw, so a concurrent change makes this one fail (and no after-hook fires for it).
///
/// ```
/// use std::sync::Arc;
/// use oc_hooks::{Hooks, TaskLifecycle};
/// use oc_tasks::{EventKind, MemoryTaskStore, NewTask};
///
/// let hooks = Arc::new(Hooks::new());
/// hooks.before("no-forbidden", &[EventKind::Created], 0, |ev| {
///     if ev.task().name.starts_with("forbidden-") { Err("forbidden work".into()) } else { Ok(()) }
/// });
/// let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), hooks);
/// assert!(life.create(NewTask::new("forbidden-rm-rf")).unwrap_err().is_vetoed());
/// let t = life.create(NewTask::new("write tests"))?.into_task();
/// life.start(&t.id, "agent-1")?;
/// let done = life.complete(&t.id, None, None)?;
/// assert_eq!(done.task().status, oc_tasks::TaskStatus::Completed);
/// let history = life.store().history(&t.id)?;
/// assert_eq!(history.len(), 3, "created, started, completed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TaskLifecycle {
    store: Arc<dyn TaskStore>,
    hooks: Arc<Hooks>,
}

impl std::fmt::Debug for TaskLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLifecycle")
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Committed {
    /// The task after the change (before it, for a deletion).
    pub fn task(&self) -> &Task {
        self.event.task()
    }

    /// The task, by value.
    pub fn into_task(self) -> Task {
        self.event.into_task()
    }
}

impl TaskLifecycle {
    /// Transitions on `store` with `hooks`.
    pub fn new(store: Arc<dyn TaskStore>, hooks: Arc<Hooks>) -> Self {
        TaskLifecycle { store, hooks }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.store
    }

    /// What the refusal `error` of a change of task `id` asked as `action` (`claim`, `renew`,
    /// `complete`...) means, from the task as it is now ([`Refusal::of`](crate::Refusal::of));
    /// `None` when the task cannot be read or says nothing more than `error`.
    pub fn refusal(&self, id: &TaskId, action: &str, error: &Error) -> Option<crate::Refusal> {
        let task = self.store.get(id).ok().flatten()?;
        crate::Refusal::of(error, &task, action)
    }

    /// The hooks.
    pub fn hooks(&self) -> &Arc<Hooks> {
        &self.hooks
    }

    /// Runs the after side of a committed change.
    fn committed(&self, ev: TaskEvent, mut hooks: HookReport) -> Committed {
        self.hooks.run_after(&ev, &mut hooks);
        Committed {
            event: ev,
            hooks,
            duplicate: false,
        }
    }

    /// One transition: preview, before-hooks, check-and-set write, log, after-hooks.
    fn apply(&self, id: &TaskId, change: Change) -> Result<Committed> {
        let current = self.store.require(id)?;
        let mut report = HookReport::default();
        // The state machine's decision, the one the store makes from the same version.
        let kind = change.kind(&current);
        if self
            .hooks
            .has_before(TaskEvent::of(kind, &change, current.clone()).kind())
        {
            // The state machine decides first: refused transitions never reach the hooks.
            let (preview, kind) = transition(&current, &change, None, self.store.now(), || 0)?;
            self.hooks
                .run_before(&TaskEvent::of(kind, &change, preview), &mut report)?;
        }
        let task = self
            .store
            .apply(id, change.clone(), Some(current.version))?;
        Ok(self.committed(TaskEvent::of(kind, &change, task), report))
    }

    /// Creates a task (before-hooks may veto it); with a unique key held by another task,
    /// returns that one, marked [`Committed::duplicate`].
    pub fn create(&self, new: NewTask) -> Result<Committed> {
        let mut report = HookReport::default();
        let new = match new.id.clone() {
            Some(_) => new,
            None => new.id(TaskId::generate()),
        };
        if self.hooks.has_before(EventKind::Created) {
            let preview = new.clone().into_task(self.store.now())?;
            self.hooks
                .run_before(&TaskEvent::Created { task: preview }, &mut report)?;
        }
        let created = self.store.submit(new)?;
        if created.duplicate {
            return Ok(Committed {
                event: TaskEvent::Created { task: created.task },
                hooks: report,
                duplicate: true,
            });
        }
        Ok(self.committed(TaskEvent::Created { task: created.task }, report))
    }

    /// pending → running for `agent`.
    pub fn start(&self, id: &TaskId, agent: &str) -> Result<Committed> {
        self.apply(
            id,
            Change::Start {
                agent: agent.into(),
            },
        )
    }

    /// pending → running for `owner`, with a lease.
    pub fn claim(&self, id: &TaskId, owner: &str, ttl: Duration) -> Result<Committed> {
        self.apply(
            id,
            Change::Claim {
                owner: owner.into(),
                ttl,
            },
        )
    }

    /// Claims the next ready task. Without before-hooks on claims this is the store's atomic
    /// `claim_next`; with them, candidates are tried in claim order and a vetoed one is passed over.
    pub fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Committed>> {
        self.claim_next_matching(owner, ttl, &LabelFilter::any())
    }

    /// As [`TaskLifecycle::claim_next`], among the ready tasks that pass `filter`.
    pub fn claim_next_matching(
        &self,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
    ) -> Result<Option<Committed>> {
        if !self.hooks.has_before(EventKind::Claimed) {
            return Ok(self
                .store
                .claim_next_matching(owner, ttl, filter)?
                .map(|task| {
                    let change = Change::Claim {
                        owner: owner.into(),
                        ttl,
                    };
                    let kind = Some(EventKind::Claimed);
                    self.committed(TaskEvent::of(kind, &change, task), HookReport::default())
                }));
        }
        let mut after = None;
        let mut candidates = TaskFilter::new().readiness(Readiness::Ready);
        candidates.labels = filter.clone();
        loop {
            let q = TaskQuery::new(candidates.clone())
                .order(Order::Priority)
                .limit(32)
                .after(after.clone());
            let page = self.store.list(&q)?;
            for t in &page.tasks {
                match self.claim(&t.id, owner, ttl) {
                    Ok(c) => return Ok(Some(c)),
                    Err(e) if e.is_vetoed() || e.is_conflict() || e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
            match page.next {
                Some(c) => after = Some(c),
                None => return Ok(None),
            }
        }
    }

    /// Extends a lease (no event: heartbeats are not transitions).
    pub fn heartbeat(&self, id: &TaskId, token: u64, ttl: Duration) -> Result<Task> {
        Ok(self.store.heartbeat(id, token, ttl)?)
    }

    /// As [`TaskLifecycle::claim_next_matching`], waiting as `wait` says for a ready task
    /// that passes `filter` ([`TaskStore::claim_next_watched`]: woken by the store's signal,
    /// polling too); `None` when nothing was ready in time or the wait was stopped. A task
    /// claimed as the wait was stopped is released again through the hooks, so a stopped wait
    /// takes nothing.
    pub fn claim_next_watched(
        &self,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
        wait: &Waiting<'_>,
    ) -> Result<Option<Committed>> {
        let store = &*self.store;
        wait.run(
            store.ready_signal(),
            &|| store.now(),
            &mut || self.claim_next_matching(owner, ttl, filter),
            &mut |c: Committed| {
                let Some(lease) = c.task().lease else {
                    return Ok(());
                };
                match self.release(&c.task().id, lease.token) {
                    Ok(_) => Ok(()),
                    Err(Error::Task(oc_tasks::Error::LeaseLost { .. })) => Ok(()),
                    Err(e) => Err(e),
                }
            },
        )
    }

    /// running → pending: the holder of the lease `token` gives the task back.
    pub fn release(&self, id: &TaskId, token: u64) -> Result<Committed> {
        self.apply(id, Change::Release { token })
    }

    /// running → completed.
    pub fn complete(
        &self,
        id: &TaskId,
        token: Option<u64>,
        result: Option<Value>,
    ) -> Result<Committed> {
        self.apply(id, Change::Complete { token, result })
    }

    /// running → failed (or back to pending after a backoff, under the task's retry policy:
    /// `retry_scheduled` in the history; the `Failed` event fires either way, with the task as
    /// stored, see [`TaskEvent`]).
    pub fn fail(&self, id: &TaskId, token: Option<u64>, error: &str) -> Result<Committed> {
        self.apply(
            id,
            Change::Fail {
                token,
                error: error.into(),
            },
        )
    }

    /// pending | running → cancelled.
    pub fn cancel(&self, id: &TaskId) -> Result<Committed> {
        self.apply(id, Change::Cancel)
    }

    /// failed | cancelled → pending.
    pub fn retry(&self, id: &TaskId) -> Result<Committed> {
        self.apply(id, Change::Retry)
    }

    /// Deletes a task nothing depends on (before-hooks may veto it).
    pub fn delete(&self, id: &TaskId) -> Result<Committed> {
        self.delete_with(id, OnDependents::Refuse)?
            .into_iter()
            .next()
            .ok_or_else(|| oc_tasks::Error::NotFound { id: id.clone() }.into())
    }

    /// Deletes a task, and with [`OnDependents::Cascade`] what depends on it (before-hooks on
    /// the task may veto it); one `Deleted` event per task deleted, this one first.
    pub fn delete_with(&self, id: &TaskId, dependents: OnDependents) -> Result<Vec<Committed>> {
        let current = self.store.require(id)?;
        let mut report = HookReport::default();
        if self.hooks.has_before(EventKind::Deleted) {
            self.hooks.run_before(
                &TaskEvent::Deleted {
                    task: current.clone(),
                },
                &mut report,
            )?;
        }
        let mut gone = self
            .store
            .delete_with(id, Some(current.version), dependents)?
            .into_iter();
        let mut out = Vec::with_capacity(gone.len());
        if let Some(task) = gone.next() {
            out.push(self.committed(TaskEvent::Deleted { task }, report));
        }
        out.extend(
            gone.map(|task| self.committed(TaskEvent::Deleted { task }, HookReport::default())),
        );
        Ok(out)
    }

    // Keyed transitions (docs/decisions/0043): the before-hooks run, then the store's keyed
    // call; a replay (`replayed: true`) runs no after-hook, since they ran when the change was
    // first made, and returns the first call's task as it was then.

    /// The keyed side of [`TaskLifecycle::apply`]: a change the state machine refuses on the
    /// task as it is now skips the before-hooks and goes to the store, which replays it if the
    /// key is known (a retried completion finds the task completed) or refuses it as the
    /// unkeyed call would, recording no key.
    fn apply_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        change: Change,
    ) -> Result<Keyed<Committed>> {
        let current = self.store.require(id)?;
        let mut report = HookReport::default();
        let kind = change.kind(&current);
        if self
            .hooks
            .has_before(TaskEvent::of(kind, &change, current.clone()).kind())
            && let Ok((preview, kind)) = transition(&current, &change, None, self.store.now(), || 0)
        {
            self.hooks
                .run_before(&TaskEvent::of(kind, &change, preview), &mut report)?;
        }
        let done = self
            .store
            .apply_keyed(key, id, change.clone(), Some(current.version))?;
        Ok(self.keyed_committed(done, |task| TaskEvent::of(kind, &change, task), report))
    }

    /// The committed (or replayed) keyed change: after-hooks only for a change made now.
    fn keyed_committed<T>(
        &self,
        done: Keyed<T>,
        event: impl FnOnce(T) -> TaskEvent,
        report: HookReport,
    ) -> Keyed<Committed> {
        let ev = event(done.value);
        let value = if done.replayed {
            Committed {
                event: ev,
                hooks: report,
                duplicate: false,
            }
        } else {
            self.committed(ev, report)
        };
        Keyed {
            value,
            replayed: done.replayed,
        }
    }

    /// [`TaskLifecycle::create`] under `key` ([`TaskStore::submit_keyed`]): a retry returns
    /// the task the first call created (or found, [`Committed::duplicate`]) and creates
    /// nothing. A task without an id gets the store's: a before-hook sees it with an id of its
    /// own, since the retry's request must be the first's.
    pub fn create_keyed(&self, key: &IdempotencyKey, new: NewTask) -> Result<Keyed<Committed>> {
        let mut report = HookReport::default();
        if self.hooks.has_before(EventKind::Created) {
            let preview = new.clone().into_task(self.store.now())?;
            self.hooks
                .run_before(&TaskEvent::Created { task: preview }, &mut report)?;
        }
        let created = self.store.submit_keyed(key, new)?;
        if created.value.duplicate {
            return Ok(Keyed {
                value: Committed {
                    event: TaskEvent::Created {
                        task: created.value.task,
                    },
                    hooks: report,
                    duplicate: true,
                },
                replayed: created.replayed,
            });
        }
        Ok(self.keyed_committed(created, |c| TaskEvent::Created { task: c.task }, report))
    }

    /// [`TaskLifecycle::claim`] under `key`: a retry returns the first grant, lease and
    /// token as they were, and claims nothing.
    pub fn claim_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Keyed<Committed>> {
        let owner = owner.into();
        self.apply_keyed(key, id, Change::Claim { owner, ttl })
    }

    /// [`TaskLifecycle::claim_next_matching`] under `key` ([`TaskStore::claim_next_keyed`]):
    /// a retry returns the first call's grant (or its `None`). With before-hooks on claims a
    /// keyed claim of the next task is refused (`InvalidInput`): the hooks would pick the
    /// task, and a retry, seeing the first one taken, would pick another.
    pub fn claim_next_keyed(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
    ) -> Result<Keyed<Option<Committed>>> {
        self.no_claim_hooks()?;
        let got = self.store.claim_next_keyed(key, owner, ttl, filter)?;
        Ok(self.claimed_keyed(got, owner, ttl))
    }

    fn no_claim_hooks(&self) -> Result<()> {
        if self.hooks.has_before(EventKind::Claimed) {
            return Err(Error::InvalidInput {
                field: "idempotency key",
                reason: "a keyed claim of the next task cannot run before-hooks on claims: \
                         claim a task by id"
                    .into(),
            });
        }
        Ok(())
    }

    fn claimed_keyed(
        &self,
        got: Keyed<Option<Task>>,
        owner: &str,
        ttl: Duration,
    ) -> Keyed<Option<Committed>> {
        let change = Change::Claim {
            owner: owner.into(),
            ttl,
        };
        let replayed = got.replayed;
        let value = got.value.map(|task| {
            let ev = TaskEvent::of(Some(EventKind::Claimed), &change, task);
            if replayed {
                Committed {
                    event: ev,
                    hooks: HookReport::default(),
                    duplicate: false,
                }
            } else {
                self.committed(ev, HookReport::default())
            }
        });
        Keyed { value, replayed }
    }

    /// [`TaskLifecycle::claim_next_watched`] under `key`: the key is looked up first, so a
    /// retry replays the first call's answer at once; each attempt records the key only with
    /// a grant ([`TaskStore::claim_many_keyed_granted`]), so a wait that ends with nothing
    /// leaves the key unused. A task claimed as the wait was stopped is given back and its key
    /// forgotten ([`TaskLifecycle::give_back_keyed`]); a replayed grant is the first call's,
    /// never given back here. Before-hooks on claims refuse it, as
    /// [`TaskLifecycle::claim_next_keyed`].
    pub fn claim_next_watched_keyed(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        filter: &LabelFilter,
        wait: &Waiting<'_>,
    ) -> Result<Keyed<Option<Committed>>> {
        self.no_claim_hooks()?;
        let store = &*self.store;
        let got = wait.run(
            store.ready_signal(),
            &|| store.now(),
            &mut || {
                let got = store.claim_many_keyed_granted(key, owner, ttl, 1, filter)?;
                let got = got.map(|mut v| v.pop());
                Ok::<_, Error>((got.replayed || got.value.is_some()).then_some(got))
            },
            &mut |got: Keyed<Option<Task>>| {
                if !got.replayed
                    && let Some(t) = &got.value
                    && let Some(lease) = t.lease
                {
                    self.give_back_keyed(key, &t.id, lease.token)?;
                }
                Ok(())
            },
        )?;
        Ok(match got {
            Some(got) => self.claimed_keyed(got, owner, ttl),
            None => Keyed {
                value: None,
                replayed: false,
            },
        })
    }

    /// Gives back a keyed claim whose answer never reached its caller
    /// ([`TaskStore::release_forgetting`]): the task is released if `token` is still its
    /// lease and the key forgotten, in one step, so a retry claims afresh. Before-hooks on
    /// releases run first (a veto keeps the claim, and its key: a retry then gets it);
    /// after-hooks run for a release made. `None` when the lease was no longer `token`'s.
    pub fn give_back_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
    ) -> Result<Option<Committed>> {
        let change = Change::Release { token };
        let mut report = HookReport::default();
        if self.hooks.has_before(EventKind::Released)
            && let Some(current) = self.store.get(id)?
            && let Ok((preview, kind)) = transition(&current, &change, None, self.store.now(), || 0)
        {
            self.hooks
                .run_before(&TaskEvent::of(kind, &change, preview), &mut report)?;
        }
        Ok(self.store.release_forgetting(key, id, token)?.map(|task| {
            let ev = TaskEvent::of(Some(EventKind::Released), &change, task);
            self.committed(ev, report)
        }))
    }

    /// [`TaskLifecycle::heartbeat`] under `key`: a retry returns the lease as the first call
    /// left it.
    pub fn heartbeat_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
        ttl: Duration,
    ) -> Result<Keyed<Task>> {
        Ok(self.store.heartbeat_keyed(key, id, token, ttl)?)
    }

    /// [`TaskLifecycle::release`] under `key`.
    pub fn release_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
    ) -> Result<Keyed<Committed>> {
        self.apply_keyed(key, id, Change::Release { token })
    }

    /// [`TaskLifecycle::complete`] under `key`: a retry returns the task as first completed
    /// and runs no hook again.
    pub fn complete_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: Option<u64>,
        result: Option<Value>,
    ) -> Result<Keyed<Committed>> {
        self.apply_keyed(key, id, Change::Complete { token, result })
    }

    /// [`TaskLifecycle::fail`] under `key`.
    pub fn fail_keyed(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: Option<u64>,
        error: &str,
    ) -> Result<Keyed<Committed>> {
        let error = error.into();
        self.apply_keyed(key, id, Change::Fail { token, error })
    }

    /// Returns lapsed claims to pending (or fails them), firing `LeaseExpired` for each.
    pub fn reap(&self, now: Timestamp) -> Result<Vec<Committed>> {
        Ok(self
            .store
            .reap_expired(now)?
            .into_iter()
            .map(|r| {
                let ev = TaskEvent::LeaseExpired {
                    task: r.task,
                    expired_owner: r.expired_owner,
                    expired_lease: r.expired_lease,
                };
                self.committed(ev, HookReport::default())
            })
            .collect())
    }
}

/// Ready-made hooks.
pub mod builtin {
    use std::sync::Arc;

    use oc_jsonl::TaskFileStore;

    use super::*;

    /// An after-hook body that calls `f` for every event (register it for the kinds you want).
    pub fn forward(
        f: impl Fn(&TaskEvent) + Send + Sync + 'static,
    ) -> impl Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync + 'static {
        move |ev| {
            f(ev);
            Ok(())
        }
    }

    /// A before-hook body for `Completed` that checkpoints the task's files (described as the
    /// original did, "Checkpoint before completion"), so a completion can always be rolled back.
    /// A checkpoint that cannot be written vetoes the completion. `files` is whichever store
    /// the task's files are in (a data directory's, PostgreSQL's).
    pub fn checkpoint_before_completion(
        files: Arc<dyn TaskFileStore>,
    ) -> impl Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync + 'static {
        move |ev| {
            files
                .create_checkpoint(
                    ev.task().id.as_str(),
                    "Checkpoint before completion",
                    Timestamp::now(),
                )
                .map(|_| ())
                .map_err(|e| format!("checkpoint failed: {e}"))
        }
    }
}

/// The seed's `taskLifecycleHooks.registerAfterTaskStart/Complete/Fail`, in Rust.
impl Hooks {
    /// Calls `f(task, agent)` after every start or claim.
    pub fn register_after_task_start(
        &self,
        f: impl Fn(&Task, &str) + Send + Sync + 'static,
    ) -> crate::HookId {
        self.after(
            "after-task-start",
            &[EventKind::Started, EventKind::Claimed],
            10,
            move |ev| {
                match ev {
                    TaskEvent::Started { task, agent } | TaskEvent::Claimed { task, agent, .. } => {
                        f(task, agent)
                    }
                    _ => {}
                }
                Ok(())
            },
        )
    }

    /// Calls `f(task, result)` after every completion.
    pub fn register_after_task_complete(
        &self,
        f: impl Fn(&Task, Option<&Value>) + Send + Sync + 'static,
    ) -> crate::HookId {
        self.after(
            "after-task-complete",
            &[EventKind::Completed],
            10,
            move |ev| {
                if let TaskEvent::Completed { task, result, .. } = ev {
                    f(task, result.as_ref());
                }
                Ok(())
            },
        )
    }

    /// Calls `f(task, error)` after every failure.
    pub fn register_after_task_fail(
        &self,
        f: impl Fn(&Task, &str) + Send + Sync + 'static,
    ) -> crate::HookId {
        self.after("after-task-fail", &[EventKind::Failed], 10, move |ev| {
            if let TaskEvent::Failed { task, error, .. } = ev {
                f(task, error);
            }
            Ok(())
        })
    }
}
