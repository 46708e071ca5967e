//! [`AsyncLockManager`] (feature `tokio`): the lock manager for agents running on a tokio
//! runtime. Each call runs on the runtime's blocking pool, never on a worker, so a busy SQLite
//! writer or a five-second wait leaves the workers free for the agent's other tasks.
//!
//! A wait keeps its place in the manager's queue, and ends when its future is dropped (within
//! [`WATCH_EVERY`](crate::WATCH_EVERY), leaving the queue); a grant that arrives as the future
//! is dropped is released at once, so a cancelled acquire takes nothing. Other calls are short
//! and finish even if their future is dropped, as a synchronous call would.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Lock, LockManager, LockRequest, LockStats, Owner, Resource, Result};

/// A [`LockManager`] for async callers; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AsyncLockManager {
    inner: Arc<dyn LockManager>,
}

impl std::fmt::Debug for AsyncLockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLockManager").finish_non_exhaustive()
    }
}

/// Runs `f` on the blocking pool; a panic there is resumed here.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Backend {
            backend: "tokio",
            message: format!("the blocking call did not finish: {e}"),
            retryable: true,
            source: Box::new(e),
        }),
    }
}

impl AsyncLockManager {
    /// Wraps `inner`, which keeps working for synchronous callers too.
    pub fn new(inner: Arc<dyn LockManager>) -> AsyncLockManager {
        AsyncLockManager { inner }
    }

    /// The manager underneath, for synchronous calls.
    pub fn blocking(&self) -> &Arc<dyn LockManager> {
        &self.inner
    }

    /// [`LockManager::acquire`]: waits up to `wait` without holding a worker; dropping the
    /// future stops the wait and takes nothing.
    pub async fn acquire(&self, req: LockRequest, wait: Duration) -> Result<Lock> {
        let mut got = self.acquire_many(vec![req], wait).await?;
        got.pop().ok_or_else(|| Error::InvalidInput {
            field: "request",
            reason: "nothing was granted".into(),
        })
    }

    /// [`LockManager::acquire_many`]: all or nothing, waiting up to `wait` as
    /// [`acquire`](Self::acquire) does.
    pub async fn acquire_many(&self, reqs: Vec<LockRequest>, wait: Duration) -> Result<Vec<Lock>> {
        let m = Arc::clone(&self.inner);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let worker = tokio::task::spawn_blocking(move || {
            // Waits while somebody awaits the answer.
            let keep_waiting = |_: Duration| !tx.is_closed();
            let got = if wait.is_zero() {
                m.acquire_many(&reqs, wait)
            } else {
                m.acquire_many_watched(&reqs, wait, &keep_waiting)
            };
            // Nobody to hand the grant to: give it back.
            if let Err(Ok(locks)) = tx.send(got) {
                for l in locks {
                    let _ = m.release(&l.resource, &l.owner);
                }
            }
        });
        match rx.await {
            Ok(got) => got,
            Err(_) => match worker.await {
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                _ => Err(Error::backend(
                    "tokio",
                    true,
                    "the waiting call ended without an answer",
                )),
            },
        }
    }

    /// [`LockManager::try_acquire`]: never waits.
    pub async fn try_acquire(&self, req: LockRequest) -> Result<Lock> {
        self.acquire(req, Duration::ZERO).await
    }

    /// [`LockManager::renew`].
    pub async fn renew(
        &self,
        resource: Resource,
        owner: Owner,
        ttl: Option<Duration>,
    ) -> Result<Lock> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.renew(&resource, &owner, ttl)).await
    }

    /// [`LockManager::release`].
    pub async fn release(&self, resource: Resource, owner: Owner) -> Result<Lock> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.release(&resource, &owner)).await
    }

    /// [`LockManager::release_owner`].
    pub async fn release_owner(&self, owner: Owner) -> Result<Vec<Lock>> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.release_owner(&owner)).await
    }

    /// [`LockManager::holders`].
    pub async fn holders(&self, resource: Resource) -> Result<Vec<Lock>> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.holders(&resource)).await
    }

    /// [`LockManager::list`].
    pub async fn list(&self) -> Result<Vec<Lock>> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.list()).await
    }

    /// [`LockManager::stats`].
    pub async fn stats(&self) -> Result<LockStats> {
        let m = Arc::clone(&self.inner);
        blocking(move || m.stats()).await
    }
}
