//! [`AsyncTaskStore`] (feature `tokio`): the task store for agents running on a tokio runtime.
//! Each call runs on the runtime's blocking pool, never on a worker, so a SQLite writer busy
//! with another process, or a PostgreSQL round trip, leaves the workers free.
//!
//! Dropping a claim's future gives a task it claimed meanwhile back (running → pending, the
//! attempt refunded, recorded as `released`), so a cancelled claim takes nothing. Other calls
//! finish even if their future is dropped, as a synchronous call would: a completion is not
//! undone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::{
    Created, Error, HistoryEntry, LabelFilter, NewTask, Result, Task, TaskCounts, TaskFilter,
    TaskId, TaskPage, TaskPatch, TaskQuery, TaskStats, TaskStore,
};

/// A [`TaskStore`] for async callers; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AsyncTaskStore {
    inner: Arc<dyn TaskStore>,
}

impl std::fmt::Debug for AsyncTaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTaskStore").finish_non_exhaustive()
    }
}

/// The error of a blocking call the runtime dropped (it was shutting down).
fn unfinished(e: tokio::task::JoinError) -> Error {
    Error::Backend {
        backend: "tokio",
        message: format!("the blocking call did not finish: {e}"),
        retryable: true,
        source: Box::new(e),
    }
}

impl AsyncTaskStore {
    /// Wraps `inner`, which keeps working for synchronous callers too.
    pub fn new(inner: Arc<dyn TaskStore>) -> AsyncTaskStore {
        AsyncTaskStore { inner }
    }

    /// The store underneath, for synchronous calls.
    pub fn blocking(&self) -> &Arc<dyn TaskStore> {
        &self.inner
    }

    /// Runs `f` with the store on the blocking pool: any operation of [`TaskStore`] this type
    /// does not wrap. A panic there is resumed here.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn TaskStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || f(&*store)).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(unfinished(e)),
        }
    }

    /// [`TaskStore::submit`].
    pub async fn submit(&self, new: NewTask) -> Result<Created> {
        self.call(move |s| s.submit(new)).await
    }

    /// [`TaskStore::create`].
    pub async fn create(&self, new: NewTask) -> Result<Task> {
        self.call(move |s| s.create(new)).await
    }

    /// [`TaskStore::create_many`].
    pub async fn create_many(&self, new: Vec<NewTask>) -> Result<Vec<Task>> {
        self.call(move |s| s.create_many(new)).await
    }

    /// [`TaskStore::get`].
    pub async fn get(&self, id: TaskId) -> Result<Option<Task>> {
        self.call(move |s| s.get(&id)).await
    }

    /// [`TaskStore::claim_next`]; dropping the future gives back what it claimed.
    pub async fn claim_next(&self, owner: &str, ttl: Duration) -> Result<Option<Task>> {
        self.claim_next_matching(owner, ttl, LabelFilter::default())
            .await
    }

    /// [`TaskStore::claim_next_matching`]; dropping the future gives back what it claimed.
    pub async fn claim_next_matching(
        &self,
        owner: &str,
        ttl: Duration,
        filter: LabelFilter,
    ) -> Result<Option<Task>> {
        let (store, owner) = (Arc::clone(&self.inner), owner.to_owned());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let worker = tokio::task::spawn_blocking(move || {
            let got = store.claim_next_matching(&owner, ttl, &filter);
            // Nobody to hand the task to: give it back.
            if let Err(Ok(Some(t))) = tx.send(got)
                && let Some(lease) = t.lease
            {
                let _ = store.release(&t.id, lease.token);
            }
        });
        match rx.await {
            Ok(got) => got,
            Err(_) => match worker.await {
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(unfinished(e)),
                Ok(()) => Err(Error::backend(
                    "tokio",
                    true,
                    "the claim ended without an answer",
                )),
            },
        }
    }

    /// [`TaskStore::heartbeat`].
    pub async fn heartbeat(&self, id: TaskId, token: u64, ttl: Duration) -> Result<Task> {
        self.call(move |s| s.heartbeat(&id, token, ttl)).await
    }

    /// [`TaskStore::release`].
    pub async fn release(&self, id: TaskId, token: u64) -> Result<Task> {
        self.call(move |s| s.release(&id, token)).await
    }

    /// [`TaskStore::complete`].
    pub async fn complete(
        &self,
        id: TaskId,
        token: Option<u64>,
        result: Option<Value>,
    ) -> Result<Task> {
        self.call(move |s| s.complete(&id, token, result)).await
    }

    /// [`TaskStore::fail`].
    pub async fn fail(&self, id: TaskId, token: Option<u64>, error: String) -> Result<Task> {
        self.call(move |s| s.fail(&id, token, &error)).await
    }

    /// [`TaskStore::cancel`].
    pub async fn cancel(&self, id: TaskId) -> Result<Task> {
        self.call(move |s| s.cancel(&id)).await
    }

    /// [`TaskStore::retry`].
    pub async fn retry(&self, id: TaskId) -> Result<Task> {
        self.call(move |s| s.retry(&id)).await
    }

    /// [`TaskStore::update`].
    pub async fn update(&self, id: TaskId, patch: TaskPatch) -> Result<Task> {
        self.call(move |s| s.update(&id, patch)).await
    }

    /// [`TaskStore::list`].
    pub async fn list(&self, query: TaskQuery) -> Result<TaskPage> {
        self.call(move |s| s.list(&query)).await
    }

    /// [`TaskStore::count`].
    pub async fn count(&self, filter: TaskFilter) -> Result<u64> {
        self.call(move |s| s.count(&filter)).await
    }

    /// [`TaskStore::stats`].
    pub async fn stats(&self, recent: usize) -> Result<TaskStats> {
        self.call(move |s| s.stats(recent)).await
    }

    /// [`TaskStore::counts`].
    pub async fn counts(&self, cap: u64) -> Result<TaskCounts> {
        self.call(move |s| s.counts(cap)).await
    }

    /// [`TaskStore::history`].
    pub async fn history(&self, id: TaskId) -> Result<Vec<HistoryEntry>> {
        self.call(move |s| s.history(&id)).await
    }
}
