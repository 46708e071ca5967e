//! The `LockManager` trait, and RAII guards on top of it.

use std::sync::Arc;
use std::time::Duration;

use oc_time::Timestamp;

use crate::backend::{KeepWaiting, Patience};
use crate::{Error, IdempotencyKey, Keyed, Lock, LockRequest, LockStats, Owner, Resource, Result};

/// A lock manager: exclusive and shared locks on hierarchical resources, with fencing tokens,
/// expiry, re-entrant holds and first-come-first-served waiting.
///
/// Object-safe (`&dyn LockManager`, `Arc<dyn LockManager>`); [`MemoryLockManager`](crate::MemoryLockManager)
/// serves one process, `SqliteLockManager` (feature `sqlite`) several processes through one file.
/// Both pass the conformance suite in [`crate::testkit`].
///
/// # Rules
/// - Locks of different owners on overlapping resources conflict when either is exclusive.
/// - Re-acquiring a lock one already holds adds a hold (same token, expiry extended); it is freed
///   when released as many times. Asking exclusive while holding shared upgrades, if nobody else
///   overlaps.
/// - Every grant gets a fencing token larger than every token the manager granted before.
/// - A lock lapses at its expiry unless renewed; lapsed locks never block anyone.
/// - Waiters are served first come, first served: a request never overtakes an earlier waiter it
///   conflicts with, so a stream of shared requests cannot starve an exclusive one.
///
/// # Implementing
///
/// [`acquire_many`](LockManager::acquire_many) is the one acquiring method a manager must write;
/// the others are defaulted from it. A manager that queues its waiters overrides
/// [`acquire_many_watched`](LockManager::acquire_many_watched) so that a watched wait keeps its
/// place (the default waits in slices, each queueing afresh), and may override
/// [`acquire`](LockManager::acquire) to skip the canonical ordering's allocations (the memory,
/// SQLite and PostgreSQL managers do all three). A wrapper forwards all three, or its callers
/// get the defaults rather than what the wrapped manager does. Why the watched form is not the
/// required one: `docs/decisions/0031-lock-manager-required-methods.md`.
pub trait LockManager: Send + Sync {
    /// Grants `req`, waiting up to `wait` for conflicting holders to go (zero: answer at once).
    ///
    /// The default is [`acquire_many`](LockManager::acquire_many) of the one request.
    fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
        let mut got = self.acquire_many(std::slice::from_ref(req), wait)?;
        got.pop().ok_or_else(|| Error::InvalidInput {
            field: "request",
            reason: "nothing was granted".into(),
        })
    }

    /// Grants all of `reqs` or none, taking them in canonical (sorted) order, waiting up to `wait`.
    fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>>;

    /// As [`LockManager::acquire_many`], but a wait also ends, with `Timeout`, as soon as
    /// `keep_waiting` (given how long the request has waited) returns false. While the request
    /// waits, the manager asks at least every [`WATCH_EVERY`](crate::WATCH_EVERY): a caller
    /// can report progress from it and stop a wait its own caller no longer wants (the MCP
    /// server does both). A request that stops leaves the queue at once.
    ///
    /// The default waits in slices of [`WATCH_EVERY`](crate::WATCH_EVERY), each queueing
    /// afresh; the memory, SQLite and PostgreSQL managers keep the request's place in the queue
    /// throughout.
    fn acquire_many_watched(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: &KeepWaiting<'_>,
    ) -> Result<Vec<Lock>> {
        let Some(first) = reqs.first() else {
            return self.acquire_many(reqs, wait);
        };
        let patience = Patience::new(wait, Some(keep_waiting), first);
        loop {
            let now = std::time::Instant::now();
            let slice = patience.wake_by(now).saturating_duration_since(now);
            match self.acquire_many(reqs, slice) {
                Err(
                    Error::Conflict { resource, holders }
                    | Error::Timeout {
                        resource, holders, ..
                    },
                ) if !slice.is_zero() => {
                    let at = std::time::Instant::now();
                    if patience.over(at) {
                        return Err(patience.timed_out(resource, holders, at));
                    }
                }
                other => return other,
            }
        }
    }

    /// Extends the owner's lock to now + `ttl` (the default TTL when `None`).
    fn renew(&self, resource: &Resource, owner: &Owner, ttl: Option<Duration>) -> Result<Lock>;

    /// Drops one hold of the owner's lock; returns the lock as it is after (`holds == 0`: freed).
    /// Releasing a lock one does not hold fails with `NotHeld`, naming the holders.
    fn release(&self, resource: &Resource, owner: &Owner) -> Result<Lock>;

    /// Frees every lock of `owner`, whatever its holds (emergency cleanup); returns them.
    fn release_owner(&self, owner: &Owner) -> Result<Vec<Lock>>;

    /// Removes every lapsed lock and returns them.
    fn sweep_expired(&self) -> Result<Vec<Lock>>;

    /// Live locks on `resource` or overlapping it.
    fn holders(&self, resource: &Resource) -> Result<Vec<Lock>>;

    /// Every live lock, by resource then owner.
    fn list(&self) -> Result<Vec<Lock>>;

    /// Counters and a snapshot of what is held.
    fn stats(&self) -> Result<LockStats>;

    /// The manager's current time, as used for expiry.
    fn now(&self) -> Timestamp;

    /// Grants `req` at once or fails with `Conflict`, naming the holders.
    fn try_acquire(&self, req: &LockRequest) -> Result<Lock> {
        self.acquire(req, Duration::ZERO)
    }

    // Idempotency keys (docs/decisions/0043): a retry with the same key and request returns
    // the first result and grants or releases nothing; with another request it is
    // `IdempotencyConflict`. A manager records the key with the grant or release it guards,
    // under the same lock or transaction, so only the manager can write these three: their
    // defaults refuse (`IdempotencyUnsupported`). A wrapper forwards them.

    /// [`acquire_many`](LockManager::acquire_many) under `key` (watched as
    /// [`acquire_many_watched`](LockManager::acquire_many_watched) when `keep_waiting` is
    /// given): a retry, even one that waited, returns the locks the first call was granted,
    /// with their tokens and holds, and adds no hold. A refused or timed-out call records no
    /// key.
    fn acquire_many_keyed(
        &self,
        key: &IdempotencyKey,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: Option<&KeepWaiting<'_>>,
    ) -> Result<Keyed<Vec<Lock>>> {
        let _ = (key, reqs, wait, keep_waiting);
        Err(Error::IdempotencyUnsupported)
    }

    /// [`release`](LockManager::release) under `key`: a retry returns the lock as the first
    /// call left it and drops no second hold.
    fn release_keyed(
        &self,
        key: &IdempotencyKey,
        resource: &Resource,
        owner: &Owner,
    ) -> Result<Keyed<Lock>> {
        let _ = (key, resource, owner);
        Err(Error::IdempotencyUnsupported)
    }

    /// Gives back a keyed grant whose answer never reached its caller: releases the grant
    /// that [`acquire_many_keyed`](LockManager::acquire_many_keyed) recorded under `key` (one
    /// hold of each lock, if the owner's lock still bears the token granted; a lock that lapsed,
    /// was released or was granted afresh since is left alone) and forgets `key`, in one step,
    /// so a retry with the key acquires anew instead of replaying a grant that was given back.
    /// Returns the locks as released (`holds` 0 once free). An unknown or lapsed key is a
    /// no-op (nothing released); a key recorded by a keyed release is `IdempotencyConflict`
    /// and is kept. Call it only for a grant that was not replayed: a replayed grant is the
    /// first call's.
    fn release_forgetting(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
        let _ = key;
        Err(Error::IdempotencyUnsupported)
    }

    /// [`acquire`](LockManager::acquire) under `key`.
    fn acquire_keyed(
        &self,
        key: &IdempotencyKey,
        req: &LockRequest,
        wait: Duration,
    ) -> Result<Keyed<Lock>> {
        let got = self.acquire_many_keyed(key, std::slice::from_ref(req), wait, None)?;
        let replayed = got.replayed;
        let value = got
            .value
            .into_iter()
            .next()
            .ok_or_else(|| Error::InvalidInput {
                field: "request",
                reason: "nothing was granted".into(),
            })?;
        Ok(Keyed { value, replayed })
    }
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<T: LockManager + ?Sized> LockManager for $ty {
            fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> { (**self).acquire(req, wait) }
            fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>> {
                (**self).acquire_many(reqs, wait)
            }
            fn acquire_many_watched(&self, reqs: &[LockRequest], wait: Duration, keep_waiting: &KeepWaiting<'_>) -> Result<Vec<Lock>> {
                (**self).acquire_many_watched(reqs, wait, keep_waiting)
            }
            fn renew(&self, r: &Resource, o: &Owner, ttl: Option<Duration>) -> Result<Lock> { (**self).renew(r, o, ttl) }
            fn release(&self, r: &Resource, o: &Owner) -> Result<Lock> { (**self).release(r, o) }
            fn release_owner(&self, o: &Owner) -> Result<Vec<Lock>> { (**self).release_owner(o) }
            fn sweep_expired(&self) -> Result<Vec<Lock>> { (**self).sweep_expired() }
            fn holders(&self, r: &Resource) -> Result<Vec<Lock>> { (**self).holders(r) }
            fn list(&self) -> Result<Vec<Lock>> { (**self).list() }
            fn stats(&self) -> Result<LockStats> { (**self).stats() }
            fn now(&self) -> Timestamp { (**self).now() }
            fn try_acquire(&self, req: &LockRequest) -> Result<Lock> { (**self).try_acquire(req) }
            fn acquire_many_keyed(
                &self, key: &IdempotencyKey, reqs: &[LockRequest], wait: Duration, keep_waiting: Option<&KeepWaiting<'_>>,
            ) -> Result<Keyed<Vec<Lock>>> {
                (**self).acquire_many_keyed(key, reqs, wait, keep_waiting)
            }
            fn release_keyed(&self, key: &IdempotencyKey, r: &Resource, o: &Owner) -> Result<Keyed<Lock>> {
                (**self).release_keyed(key, r, o)
            }
            fn release_forgetting(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
                (**self).release_forgetting(key)
            }
        }
    )*};
}

forward!(&T, Box<T>, Arc<T>);

/// A held lock that is released when dropped.
///
/// ```
/// use std::time::Duration;
/// use oc_locks::{LockManagerExt, LockRequest, MemoryLockManager};
/// let locks = MemoryLockManager::new();
/// {
///     let g = locks.guard(&LockRequest::exclusive("repo/src/lib.rs", "agent-1")?, Duration::ZERO)?;
///     assert!(g.token() > 0);
/// } // released here
/// assert!(locks.list()?.is_empty());
/// # use oc_locks::LockManager;
/// # Ok::<(), oc_locks::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, M: LockManager + ?Sized> {
    manager: &'a M,
    lock: Lock,
    armed: bool,
}

impl<M: LockManager + ?Sized> LockGuard<'_, M> {
    /// The lock as granted.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// The fencing token to pass to whatever the lock protects.
    pub fn token(&self) -> u64 {
        self.lock.token
    }

    /// Releases now, reporting any error (dropping releases too, but cannot report).
    pub fn release(mut self) -> Result<Lock> {
        self.armed = false;
        self.manager.release(&self.lock.resource, &self.lock.owner)
    }
}

impl<M: LockManager + ?Sized> Drop for LockGuard<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            // Nothing to report to: the lock may have lapsed, which is what expiry is for.
            let _ = self.manager.release(&self.lock.resource, &self.lock.owner);
        }
    }
}

/// Conveniences for every [`LockManager`].
pub trait LockManagerExt: LockManager {
    /// Acquires `req` (waiting up to `wait`) and returns a guard that releases it on drop.
    fn guard(&self, req: &LockRequest, wait: Duration) -> Result<LockGuard<'_, Self>> {
        let lock = self.acquire(req, wait)?;
        Ok(LockGuard {
            manager: self,
            lock,
            armed: true,
        })
    }
}

impl<T: LockManager + ?Sized> LockManagerExt for T {}
