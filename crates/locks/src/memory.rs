//! `MemoryLockManager`: locks for the threads of one process, as fast as a mutex allows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

use oc_time::{Clock, CoarseClock, Timestamp};

use crate::backend::{Patience, conflict, fingerprint};
use crate::model::next_lapse;
use crate::{
    Error, IdempotencyKey, KeepWaiting, Keyed, Lock, LockManager, LockRequest, LockStats, Owner,
    Resource, Result, TtlPolicy,
};

mod hash;
mod state;

use state::{Item, State, Waiter};

/// An in-process [`LockManager`].
///
/// One mutex guards a map from resource to holders; waiters sleep on a condition variable and
/// wake when something is released (or when the lock they wait for is due to lapse).
///
/// ```
/// use std::time::Duration;
/// use oc_locks::{Error, LockManager, LockRequest, MemoryLockManager};
/// let locks = MemoryLockManager::new();
/// let dir = locks.try_acquire(&LockRequest::exclusive("repo/src", "agent-1")?)?;
/// // A file inside the directory overlaps it:
/// let e = locks.try_acquire(&LockRequest::shared("repo/src/main.rs", "agent-2")?).unwrap_err();
/// assert!(matches!(e, Error::Conflict { .. }));
/// assert!(e.to_string().contains("agent-1 (exclusive on repo/src)"));
/// locks.release(&dir.resource, &dir.owner)?;
/// let file = locks.acquire(&LockRequest::shared("repo/src/main.rs", "agent-2")?, Duration::from_secs(1))?;
/// assert!(file.token > dir.token);
/// # Ok::<(), oc_locks::Error>(())
/// ```
#[derive(Debug)]
pub struct MemoryLockManager {
    clock: Arc<dyn Clock>,
    ttl: TtlPolicy,
    state: Mutex<State>,
    freed: Condvar,
}

/// A keyed acquire's key and request, and where its grant is collected.
struct KeyArg<'a> {
    key: &'a IdempotencyKey,
    request: &'a str,
    granted: &'a std::cell::RefCell<Vec<Lock>>,
}

impl Default for MemoryLockManager {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLockManager {
    /// A manager with the default TTL policy (30 s default, 1 s to 1 h), reading the wall clock
    /// through [`CoarseClock`] (1 ms ticks): a system call per acquisition would cost more than
    /// the acquisition itself.
    pub fn new() -> Self {
        Self::with(Arc::new(CoarseClock), TtlPolicy::default())
    }

    /// A manager reading time from `clock`, with `ttl` limits.
    pub fn with(clock: Arc<dyn Clock>, ttl: TtlPolicy) -> Self {
        MemoryLockManager {
            clock,
            ttl,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` on the owner's live lock on `resource` (its holder list and index), for `renew`
    /// and `release`; `NotHeld` (naming the holders) if there is none, `Expired` (after removing
    /// it) if it lapsed.
    fn with_own<T>(
        &self,
        st: &mut State,
        resource: &Resource,
        owner: &Owner,
        now: Timestamp,
        f: impl FnOnce(&mut Vec<Lock>, usize) -> T,
    ) -> Result<T> {
        if let Some(v) = st.locks.get_mut(resource)
            && let Some(i) = v.iter().position(|l| &l.owner == owner)
        {
            if !v[i].is_expired(now) {
                return Ok(f(v, i));
            }
            v.swap_remove(i);
            st.counters.expired += 1;
            st.drop_if_empty(resource);
            self.freed.notify_all();
            return Err(Error::Expired {
                resource: resource.to_string(),
                owner: owner.to_string(),
            });
        }
        Err(Error::NotHeld {
            resource: resource.to_string(),
            owner: owner.to_string(),
            holders: st.others_on(resource, owner, now),
        })
    }

    /// The hot path: a flat resource that nobody holds or waits for, while no nested lock is
    /// held, is granted at once with one map lookup and no conflict analysis.
    fn try_free_flat(&self, req: &LockRequest, ttl: Duration) -> Option<Lock> {
        if req.resource.is_nested() {
            return None;
        }
        let now = self.clock.now();
        let mut st = self.state.lock();
        let st = &mut *st;
        if !st.nested.is_empty() || !st.queue.is_empty() {
            return None;
        }
        let entry = st.locks.get_mut(&req.resource)?;
        if !entry.is_empty() {
            return None;
        }
        st.empty -= 1;
        st.last_token += 1;
        st.counters.total += 1;
        let lock = Lock {
            resource: req.resource.clone(),
            owner: req.owner.clone(),
            mode: req.mode,
            token: st.last_token,
            holds: 1,
            acquired_at: now,
            expires_at: now.saturating_add(ttl),
        };
        entry.push(lock.clone());
        Some(lock)
    }

    fn acquire_many_with(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
    ) -> Result<Vec<Lock>> {
        let items = crate::backend::canonical_items(reqs, &self.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        let mut got = Vec::with_capacity(items.len());
        self.acquire_items(&items, wait, watcher, &mut |l| got.push(l), None)?;
        Ok(got)
    }

    fn acquire_items(
        &self,
        items: &[Item<'_>],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
        out: &mut dyn FnMut(Lock),
        key: Option<&KeyArg<'_>>,
    ) -> Result<Option<Vec<Lock>>> {
        let mut st = self.state.lock();
        let first = self.clock.now();
        if let Some(k) = key
            && let Some(locks) = st.replay(k.key, k.request, first)?
        {
            return Ok(Some(locks));
        }
        let (resource, holders) = match st.try_grant(items, None, first, out) {
            Ok(()) => {
                if let Some(k) = key {
                    st.remember(k.key, k.request, k.granted.borrow().clone(), first);
                }
                return Ok(None);
            }
            Err(b) => b,
        };
        st.counters.conflicts += 1;
        if wait.is_zero() {
            return Err(conflict(resource.to_string(), holders));
        }
        let patience = Patience::new(wait, watcher, items[0].0);
        st.next_ticket += 1;
        let ticket = st.next_ticket;
        let owner = items[0].0.owner.clone();
        st.queue.push_back(Waiter {
            ticket,
            owner,
            items: items
                .iter()
                .map(|(r, _)| (r.resource.clone(), r.mode))
                .collect(),
        });
        st.counters.waits += 1;
        loop {
            let now = self.clock.now();
            // A retry of the same key may have been granted while this one waited.
            if let Some(k) = key {
                match st.replay(k.key, k.request, now) {
                    Ok(None) => {}
                    done => {
                        st.dequeue(ticket);
                        self.freed.notify_all();
                        return done;
                    }
                }
            }
            let (resource, holders) = match st.try_grant(items, Some(ticket), now, out) {
                Ok(()) => {
                    if let Some(k) = key {
                        st.remember(k.key, k.request, k.granted.borrow().clone(), now);
                    }
                    st.dequeue(ticket);
                    self.freed.notify_all();
                    return Ok(None);
                }
                Err(b) => b,
            };
            let at = Instant::now();
            if patience.over(at) {
                st.dequeue(ticket);
                st.counters.timeouts += 1;
                self.freed.notify_all();
                return Err(patience.timed_out(resource.to_string(), holders, at));
            }
            // Sleep until something is freed, the first blocking lock is due to lapse, or the
            // deadline (or the watcher's next look).
            let wake_by = patience.wake_by(at);
            let until = next_lapse(&holders, at, now).map_or(wake_by, |l| l.min(wake_by));
            self.freed.wait_until(&mut st, until);
        }
    }
}

impl MemoryLockManager {
    fn release_in(
        &self,
        st: &mut State,
        resource: &Resource,
        owner: &Owner,
        now: Timestamp,
    ) -> Result<Lock> {
        let (lock, emptied) = self.with_own(st, resource, owner, now, |v, i| {
            v[i].holds -= 1;
            if v[i].holds > 0 {
                (v[i].clone(), false)
            } else {
                let lock = v.swap_remove(i);
                (lock, v.is_empty())
            }
        })?;
        if lock.holds > 0 {
            return Ok(lock);
        }
        st.counters.record_release(&lock, now);
        if emptied {
            st.one_more_empty();
        }
        if !st.queue.is_empty() {
            self.freed.notify_all();
        }
        Ok(lock)
    }
}

impl LockManager for MemoryLockManager {
    fn acquire_many_keyed(
        &self,
        key: &IdempotencyKey,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: Option<&KeepWaiting<'_>>,
    ) -> Result<Keyed<Vec<Lock>>> {
        let items = crate::backend::canonical_items(reqs, &self.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        let request = fingerprint(reqs, None);
        let granted = std::cell::RefCell::new(Vec::with_capacity(items.len()));
        let arg = KeyArg {
            key,
            request: &request,
            granted: &granted,
        };
        let replay = self.acquire_items(
            &items,
            wait,
            keep_waiting,
            &mut |l| granted.borrow_mut().push(l),
            Some(&arg),
        )?;
        Ok(match replay {
            Some(value) => Keyed {
                value,
                replayed: true,
            },
            None => Keyed {
                value: granted.into_inner(),
                replayed: false,
            },
        })
    }

    fn release_keyed(
        &self,
        key: &IdempotencyKey,
        resource: &Resource,
        owner: &Owner,
    ) -> Result<Keyed<Lock>> {
        let request = fingerprint(&[], Some((resource, owner)));
        let now = self.clock.now();
        let mut st = self.state.lock();
        if let Some(mut v) = st.replay(key, &request, now)? {
            return v
                .pop()
                .map(|value| Keyed {
                    value,
                    replayed: true,
                })
                .ok_or_else(|| key.conflict());
        }
        let lock = self.release_in(&mut st, resource, owner, now)?;
        st.remember(key, &request, vec![lock.clone()], now);
        Ok(Keyed {
            value: lock,
            replayed: false,
        })
    }

    fn release_forgetting(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        let granted = st.forget(key, now)?;
        let mut released = Vec::with_capacity(granted.len());
        for g in &granted {
            let still = st
                .locks
                .get(&g.resource)
                .and_then(|v| v.iter().find(|l| l.owner == g.owner))
                .is_some_and(|l| l.token == g.token && !l.is_expired(now));
            if still {
                released.push(self.release_in(&mut st, &g.resource, &g.owner, now)?);
            }
        }
        Ok(released)
    }

    fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
        let ttl = self.ttl.resolve(req.ttl)?;
        if let Some(lock) = self.try_free_flat(req, ttl) {
            return Ok(lock);
        }
        let mut got = None;
        self.acquire_items(&[(req, ttl)], wait, None, &mut |l| got = Some(l), None)?;
        got.ok_or_else(|| Error::InvalidInput {
            field: "request",
            reason: "nothing was granted".into(),
        })
    }

    fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>> {
        self.acquire_many_with(reqs, wait, None)
    }

    fn acquire_many_watched(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: &KeepWaiting<'_>,
    ) -> Result<Vec<Lock>> {
        self.acquire_many_with(reqs, wait, Some(keep_waiting))
    }

    fn renew(&self, resource: &Resource, owner: &Owner, ttl: Option<Duration>) -> Result<Lock> {
        let ttl = self.ttl.resolve(ttl)?;
        let now = self.clock.now();
        let mut st = self.state.lock();
        self.with_own(&mut st, resource, owner, now, |v, i| {
            v[i].expires_at = now.saturating_add(ttl);
            v[i].clone()
        })
    }

    fn release(&self, resource: &Resource, owner: &Owner) -> Result<Lock> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        self.release_in(&mut st, resource, owner, now)
    }

    fn release_owner(&self, owner: &Owner) -> Result<Vec<Lock>> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        let mut freed = Vec::new();
        for v in st.locks.values_mut() {
            if let Some(i) = v.iter().position(|l| &l.owner == owner) {
                freed.push(v.swap_remove(i));
            }
        }
        for l in &freed {
            if l.is_expired(now) {
                st.counters.expired += 1;
            } else {
                st.counters.record_release(l, now);
            }
            st.drop_if_empty(&l.resource);
        }
        self.freed.notify_all();
        freed.sort_by(|a, b| a.resource.cmp(&b.resource));
        Ok(freed)
    }

    fn sweep_expired(&self) -> Result<Vec<Lock>> {
        let now = self.clock.now();
        let gone = self.state.lock().purge(now);
        self.freed.notify_all();
        Ok(gone)
    }

    fn holders(&self, resource: &Resource) -> Result<Vec<Lock>> {
        let now = self.clock.now();
        let st = self.state.lock();
        let mut v: Vec<Lock> = st.overlapping(resource, now).cloned().collect();
        v.sort_by(|a, b| (&a.resource, &a.owner).cmp(&(&b.resource, &b.owner)));
        Ok(v)
    }

    fn list(&self) -> Result<Vec<Lock>> {
        let now = self.clock.now();
        let st = self.state.lock();
        let mut v: Vec<Lock> = st
            .locks
            .values()
            .flatten()
            .filter(|l| !l.is_expired(now))
            .cloned()
            .collect();
        v.sort_by(|a, b| (&a.resource, &a.owner).cmp(&(&b.resource, &b.owner)));
        Ok(v)
    }

    fn stats(&self) -> Result<LockStats> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        st.purge(now);
        let waiting = st.queue.len() as u64;
        Ok(st
            .counters
            .into_stats(st.locks.values().flatten(), waiting, now))
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
