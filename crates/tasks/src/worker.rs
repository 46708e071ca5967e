//! [`BatchWorker`]: claims ready tasks n at a time into a local queue, heartbeats every lease
//! it holds in one call, and acknowledges finishes in batches (River's batch completer,
//! graphile-worker's local queue; `docs/decisions/0049-batches.md`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::Value;

use crate::{Change, Error, LabelFilter, MAX_BATCH, Result, Task, TaskId, TaskStore};

/// A task whose lease this worker lost: reaped, cancelled or claimed by someone else before
/// its finish was written. Nothing of its finish was written; whoever holds it now finishes it.
#[derive(Debug)]
pub struct Lost {
    /// The task.
    pub id: TaskId,
    /// The token of the lease this worker held.
    pub token: u64,
    /// What the store answered (most often [`Error::LeaseLost`]).
    pub error: Error,
}

/// How a [`BatchWorker`] works: built by [`BatchWorker::builder`], started by
/// [`WorkerOptions::start`].
#[derive(Clone)]
pub struct WorkerOptions {
    store: Arc<dyn TaskStore>,
    owner: String,
    batch: usize,
    ttl: Duration,
    filter: LabelFilter,
    flush_every: Duration,
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("owner", &self.owner)
            .field("batch", &self.batch)
            .field("ttl", &self.ttl)
            .field("filter", &self.filter)
            .field("flush_every", &self.flush_every)
            .finish_non_exhaustive()
    }
}

impl WorkerOptions {
    /// Claims up to `n` tasks at once and acknowledges in batches of `n` (1 to
    /// [`MAX_BATCH`]; 16 by default).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// The lease of each claim (30 s by default); the worker heartbeats every third of it.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Claims only tasks that pass `filter` (any task by default).
    pub fn filter(mut self, filter: LabelFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Acknowledgements wait at most this long for a batch to fill (50 ms by default).
    pub fn flush_every(mut self, every: Duration) -> Self {
        self.flush_every = every;
        self
    }

    /// Checks the options and starts the worker's thread (`oc-tasks-batch-worker`), which
    /// flushes acknowledgements that waited [`flush_every`](Self::flush_every) and
    /// heartbeats the leases.
    pub fn start(self) -> Result<BatchWorker> {
        Change::Claim {
            owner: self.owner.clone(),
            ttl: self.ttl,
        }
        .validate()?;
        self.filter.validate()?;
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(Error::InvalidInput {
                field: "batch",
                reason: format!("{} tasks at once, from 1 to {MAX_BATCH}", self.batch),
            });
        }
        let shared = Arc::new(Shared {
            opts: self,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name("oc-tasks-batch-worker".into())
            .spawn(move || bg.run())
            .map_err(|e| Error::backend("worker", false, e.to_string()))?;
        Ok(BatchWorker {
            shared,
            thread: Some(thread),
        })
    }
}

/// A worker for many small jobs: claims up to n ready tasks at once (one
/// [`TaskStore::claim_many`]) into a local queue that [`next`](BatchWorker::next) hands out,
/// heartbeats every lease it holds in one [`TaskStore::heartbeat_many`], and acknowledges
/// [`complete`](BatchWorker::complete) and [`fail`](BatchWorker::fail) in batches
/// ([`TaskStore::complete_many`], [`TaskStore::fail_many`]): when n are waiting, after
/// [`flush_every`](WorkerOptions::flush_every), on [`flush`](BatchWorker::flush), on
/// [`shutdown`](BatchWorker::shutdown) and on drop.
///
/// A task is acknowledged at most once, with its claim's token, so the store never finishes
/// it twice. One whose lease was lost (reaped, claimed by another) is never handed out if it
/// was still queued, and its finish is refused: it is reported as [`Lost`] by `flush`,
/// [`take_lost`](BatchWorker::take_lost) or `shutdown`. Tasks still queued at shutdown are
/// released for others to claim at once.
///
/// Threads: the caller's, and one of the worker's own (no async runtime).
///
/// ```
/// use std::sync::Arc;
/// use oc_tasks::worker::BatchWorker;
/// use oc_tasks::{MemoryTaskStore, NewTask, TaskStatus, TaskStore};
///
/// let store = Arc::new(MemoryTaskStore::new());
/// store.create_many((0..10).map(|i| NewTask::new(format!("job {i}"))).collect())?;
/// let worker = BatchWorker::builder(store.clone(), "worker-1").batch(4).start()?;
/// while let Some(task) = worker.next()? {
///     // ... run the job ...
///     worker.complete(&task, Some(serde_json::json!({"ok": true})))?;
/// }
/// let lost = worker.shutdown()?;
/// assert!(lost.is_empty());
/// assert_eq!(store.counts(100)?.count(TaskStatus::Completed), 10);
/// # Ok::<(), oc_tasks::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    opts: WorkerOptions,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
enum Ack {
    Complete(TaskId, u64, Option<Value>),
    Fail(TaskId, u64, String),
}

impl Ack {
    fn id(&self) -> (&TaskId, u64) {
        match self {
            Ack::Complete(id, t, _) | Ack::Fail(id, t, _) => (id, *t),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Claimed, not handed out yet.
    queue: VecDeque<Task>,
    /// Every lease held and not acknowledged: queued or handed out.
    held: HashMap<TaskId, u64>,
    /// Acknowledgements waiting for their batch, and since when the first has waited.
    acks: Vec<Ack>,
    since: Option<Instant>,
    lost: Vec<Lost>,
    /// Tasks handed out and found lost, so that their acknowledgement is refused.
    gone: HashMap<TaskId, u64>,
    stop: bool,
}

impl BatchWorker {
    /// A worker claiming for `owner` from `store`, to configure and [`start`](WorkerOptions::start).
    pub fn builder(store: Arc<dyn TaskStore>, owner: &str) -> WorkerOptions {
        WorkerOptions {
            store,
            owner: owner.to_owned(),
            batch: 16,
            ttl: Duration::from_secs(30),
            filter: LabelFilter::any(),
            flush_every: Duration::from_millis(50),
        }
    }

    /// The next task to run: from the local queue, refilled by one claim of up to n ready
    /// tasks when empty; `None` when nothing is ready.
    pub fn next(&self) -> Result<Option<Task>> {
        let sh = &self.shared;
        if let Some(t) = sh.state.lock().queue.pop_front() {
            return Ok(Some(t));
        }
        let o = &sh.opts;
        let claimed = o.store.claim_many(&o.owner, o.ttl, o.batch, &o.filter)?;
        let mut st = sh.state.lock();
        for t in claimed {
            if let Some(l) = t.lease {
                st.held.insert(t.id.clone(), l.token);
                st.queue.push_back(t);
            }
        }
        Ok(st.queue.pop_front())
    }

    /// Acknowledges `task` (as [`next`](Self::next) handed it out) as completed with
    /// `result`, in the next batch. Refused ([`Error::LeaseLost`]) when the worker already
    /// knows its lease lost, and ([`Error::InvalidInput`]) when this worker does not hold it
    /// (acknowledged already, or never claimed here).
    pub fn complete(&self, task: &Task, result: Option<Value>) -> Result<()> {
        self.ack(task, |id, token| Ack::Complete(id, token, result))
    }

    /// Acknowledges `task` as failed with `error` (a retry policy may put it back to pending),
    /// in the next batch; refused as [`complete`](Self::complete) is.
    pub fn fail(&self, task: &Task, error: &str) -> Result<()> {
        Change::Fail {
            token: None,
            error: error.to_owned(),
        }
        .validate()?;
        self.ack(task, |id, token| Ack::Fail(id, token, error.to_owned()))
    }

    fn ack(&self, task: &Task, make: impl FnOnce(TaskId, u64) -> Ack) -> Result<()> {
        let sh = &self.shared;
        let mut st = sh.state.lock();
        let token = task.lease.map(|l| l.token);
        if token.is_some() && st.gone.get(&task.id).copied() == token {
            st.gone.remove(&task.id);
            return Err(Error::LeaseLost {
                id: task.id.clone(),
                token,
            });
        }
        let held = st.held.get(&task.id).copied();
        let Some(token) = token.filter(|t| held == Some(*t)) else {
            return Err(Error::InvalidInput {
                field: "task",
                reason: format!("task {} is not held by this worker", task.id),
            });
        };
        st.held.remove(&task.id);
        st.acks.push(make(task.id.clone(), token));
        st.since.get_or_insert_with(Instant::now);
        let full = st.acks.len() >= sh.opts.batch;
        drop(st);
        if full {
            sh.flush()?;
        }
        Ok(())
    }

    /// Writes the acknowledgements waiting now, and answers every task found lost since the
    /// last report (by this flush, an earlier one or a heartbeat). An error of the store
    /// leaves the acknowledgements waiting, to be tried again.
    pub fn flush(&self) -> Result<Vec<Lost>> {
        self.shared.flush()?;
        Ok(self.take_lost())
    }

    /// Extends every lease the worker holds now, in one call (its thread does it every third
    /// of the lease); a task found lost is dropped from the queue and reported.
    pub fn heartbeat(&self) -> Result<()> {
        self.shared.heartbeat()
    }

    /// The tasks found lost since the last report.
    pub fn take_lost(&self) -> Vec<Lost> {
        std::mem::take(&mut self.shared.state.lock().lost)
    }

    /// How many leases the worker holds: tasks queued, handed out, or acknowledged and not
    /// yet written.
    pub fn held(&self) -> usize {
        let st = self.shared.state.lock();
        st.held.len() + st.acks.len()
    }

    /// Stops the thread, writes the waiting acknowledgements, releases the tasks still queued
    /// and answers every task found lost.
    pub fn shutdown(mut self) -> Result<Vec<Lost>> {
        self.stop()?;
        Ok(self.take_lost())
    }

    fn stop(&mut self) -> Result<()> {
        let sh = &self.shared;
        sh.state.lock().stop = true;
        sh.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let flushed = sh.flush();
        let queued: Vec<Task> = {
            let mut st = sh.state.lock();
            let q: Vec<Task> = st.queue.drain(..).collect();
            for t in &q {
                st.held.remove(&t.id);
            }
            q
        };
        for t in queued {
            if let Some(l) = t.lease {
                match sh.opts.store.release(&t.id, l.token) {
                    Ok(_) | Err(Error::LeaseLost { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        flushed
    }
}

impl Drop for BatchWorker {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Best effort: an error here has nobody to go to; the leases lapse.
            let _ = self.stop();
        }
    }
}

impl Shared {
    /// The worker's thread: flushes acknowledgements that waited long enough, heartbeats
    /// every third of the lease, until stopped.
    fn run(&self) {
        let beat_every = self.opts.ttl / 3;
        let mut next_beat = Instant::now() + beat_every;
        loop {
            let mut st = self.state.lock();
            if st.stop {
                return;
            }
            let flush_at = st.since.map(|s| s + self.opts.flush_every);
            let now = Instant::now();
            let due_flush = flush_at.is_some_and(|at| at <= now);
            let due_beat = next_beat <= now;
            if !due_flush && !due_beat {
                let until = flush_at.map_or(next_beat, |f| f.min(next_beat));
                self.wake.wait_until(&mut st, until);
                continue;
            }
            drop(st);
            if due_flush {
                // A failure leaves the acknowledgements waiting: the next tick tries again.
                let _ = self.flush();
            }
            if due_beat {
                let _ = self.heartbeat();
                next_beat = Instant::now() + beat_every;
            }
        }
    }

    fn flush(&self) -> Result<()> {
        let acks = {
            let mut st = self.state.lock();
            st.since = None;
            std::mem::take(&mut st.acks)
        };
        if acks.is_empty() {
            return Ok(());
        }
        let (completes, fails): (Vec<Ack>, Vec<Ack>) = acks
            .into_iter()
            .partition(|a| matches!(a, Ack::Complete(..)));
        let store = &self.opts.store;
        let done: Vec<_> = completes
            .iter()
            .filter_map(|a| match a {
                Ack::Complete(id, t, r) => Some((id.clone(), Some(*t), r.clone())),
                Ack::Fail(..) => None,
            })
            .collect();
        let failed: Vec<_> = fails
            .iter()
            .filter_map(|a| match a {
                Ack::Fail(id, t, e) => Some((id.clone(), Some(*t), e.clone())),
                Ack::Complete(..) => None,
            })
            .collect();
        // In calls of at most `MAX_BATCH` items: acknowledgements that piled up while flushes
        // failed must not make every later call too large to be taken.
        let mut outcome = Ok(());
        let mut completes = completes.into_iter();
        for chunk in done.chunks(MAX_BATCH) {
            let acks = completes.by_ref().take(chunk.len()).collect();
            outcome = outcome.and(self.settle(acks, store.complete_many(chunk)));
        }
        let mut fails = fails.into_iter();
        for chunk in failed.chunks(MAX_BATCH) {
            let acks = fails.by_ref().take(chunk.len()).collect();
            outcome = outcome.and(self.settle(acks, store.fail_many(chunk)));
        }
        outcome
    }

    /// Takes in the store's answers to `acks`: a refused batch (nothing of it written) waits
    /// again, as does an item that failed in a way worth retrying; an item refused is lost.
    /// A retry of a finish that did commit is refused and reported lost, never written twice.
    fn settle(&self, acks: Vec<Ack>, answers: Result<Vec<Result<Task>>>) -> Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        let mut st = self.state.lock();
        let answers = match answers {
            Ok(a) => a,
            Err(e) => {
                st.acks.extend(acks);
                st.since.get_or_insert_with(Instant::now);
                return Err(e);
            }
        };
        for (a, r) in acks.into_iter().zip(answers) {
            match r {
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    st.acks.push(a);
                    st.since.get_or_insert_with(Instant::now);
                }
                Err(error) => {
                    let (id, token) = a.id();
                    st.lost.push(Lost {
                        id: id.clone(),
                        token,
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    fn heartbeat(&self) -> Result<()> {
        let leases: Vec<(TaskId, u64)> = {
            let st = self.state.lock();
            st.held
                .iter()
                .map(|(id, t)| (id.clone(), *t))
                .chain(st.acks.iter().map(|a| {
                    let (id, t) = a.id();
                    (id.clone(), t)
                }))
                .collect()
        };
        for chunk in leases.chunks(MAX_BATCH) {
            let answers = self.opts.store.heartbeat_many(chunk, self.opts.ttl)?;
            let mut st = self.state.lock();
            for ((id, token), r) in chunk.iter().zip(answers) {
                match r {
                    Err(e) if !e.is_retryable() && st.held.get(id) == Some(token) => {
                        // Lost while held here (an acknowledged one is judged by its flush).
                        st.held.remove(id);
                        let queued = st.queue.len();
                        st.queue.retain(|t| &t.id != id);
                        if st.queue.len() == queued {
                            st.gone.insert(id.clone(), *token);
                        }
                        st.lost.push(Lost {
                            id: id.clone(),
                            token: *token,
                            error: e,
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
