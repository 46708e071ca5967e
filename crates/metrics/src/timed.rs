//! [`TimedLocks`]: a lock manager that observes how long requests waited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::histogram;
use metrics_exporter_prometheus::PrometheusRecorder;
use oc_locks::{
    IdempotencyKey, KeepWaiting, Keyed, Lock, LockManager, LockRequest, LockStats, Owner, Resource,
    Result,
};
use oc_time::Timestamp;

use crate::catalogue::LOCK_WAIT;

/// Wraps any [`LockManager`] and observes into `opencode_lock_wait_seconds` the time of each
/// request allowed to wait (`wait > 0`), whether it was granted or timed out. Requests that
/// answer at once (`wait == 0`, [`try_acquire`](LockManager::try_acquire)) never wait and are
/// not observed. Made by [`Exporter::timed_locks`](crate::Exporter::timed_locks).
pub struct TimedLocks<M> {
    inner: M,
    recorder: Arc<PrometheusRecorder>,
}

impl<M: std::fmt::Debug> std::fmt::Debug for TimedLocks<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedLocks")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<M> TimedLocks<M> {
    pub(crate) fn new(inner: M, recorder: Arc<PrometheusRecorder>) -> Self {
        TimedLocks { inner, recorder }
    }

    /// The wrapped manager.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    fn timed<T>(&self, wait: Duration, call: impl FnOnce() -> T) -> T {
        if wait.is_zero() {
            return call();
        }
        let start = Instant::now();
        let out = call();
        let waited = start.elapsed().as_secs_f64();
        metrics::with_local_recorder(&*self.recorder, || histogram!(LOCK_WAIT).record(waited));
        out
    }
}

impl<M: LockManager> LockManager for TimedLocks<M> {
    fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
        self.timed(wait, || self.inner.acquire(req, wait))
    }
    fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>> {
        self.timed(wait, || self.inner.acquire_many(reqs, wait))
    }
    fn acquire_many_keyed(
        &self,
        key: &IdempotencyKey,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: Option<&KeepWaiting<'_>>,
    ) -> Result<Keyed<Vec<Lock>>> {
        self.timed(wait, || {
            self.inner.acquire_many_keyed(key, reqs, wait, keep_waiting)
        })
    }
    fn acquire_many_watched(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: &KeepWaiting<'_>,
    ) -> Result<Vec<Lock>> {
        self.timed(wait, || {
            self.inner.acquire_many_watched(reqs, wait, keep_waiting)
        })
    }
    fn release_keyed(&self, key: &IdempotencyKey, r: &Resource, o: &Owner) -> Result<Keyed<Lock>> {
        self.inner.release_keyed(key, r, o)
    }
    fn release_forgetting(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
        self.inner.release_forgetting(key)
    }
    fn renew(&self, r: &Resource, o: &Owner, ttl: Option<Duration>) -> Result<Lock> {
        self.inner.renew(r, o, ttl)
    }
    fn release(&self, r: &Resource, o: &Owner) -> Result<Lock> {
        self.inner.release(r, o)
    }
    fn release_owner(&self, o: &Owner) -> Result<Vec<Lock>> {
        self.inner.release_owner(o)
    }
    fn sweep_expired(&self) -> Result<Vec<Lock>> {
        self.inner.sweep_expired()
    }
    fn holders(&self, r: &Resource) -> Result<Vec<Lock>> {
        self.inner.holders(r)
    }
    fn list(&self) -> Result<Vec<Lock>> {
        self.inner.list()
    }
    fn stats(&self) -> Result<LockStats> {
        self.inner.stats()
    }
    fn now(&self) -> Timestamp {
        self.inner.now()
    }
    fn try_acquire(&self, req: &LockRequest) -> Result<Lock> {
        self.inner.try_acquire(req)
    }
}
