//! `MemoryLockManager`: locks for the threads of one process, as fast as a mutex allows.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

use oc_time::{Clock, CoarseClock, Timestamp};

use crate::backend::{Patience, conflict, fingerprint};
use crate::model::{Blocked, Counters, Decision, decide, next_lapse};
use crate::{
    Error, Holder, IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, KeepWaiting,
    Keyed, Lock, LockManager, LockMode, LockRequest, LockStats, Owner, Resource, Result, TtlPolicy,
};

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

#[derive(Debug, Default)]
struct State {
    /// Holders by exact resource.
    locks: HashMap<Resource, Vec<Lock>, FastHash>,
    /// The keys of `locks` that are nested paths, in order, to find what lies below a resource.
    /// While it is empty no lock lies below another, so flat resources look at their own entry only.
    nested: BTreeSet<Resource>,
    /// Keys of `locks` whose holder list is empty. Entries are kept when their last holder
    /// leaves, so that re-locking a resource costs no allocation; they are pruned in bulk.
    empty: usize,
    queue: VecDeque<Waiter>,
    next_ticket: u64,
    last_token: u64,
    counters: Counters,
    /// Idempotency keys by (agent, key): the request's fingerprint, what it was given, when.
    keys: HashMap<(String, String), (String, Vec<Lock>, Timestamp)>,
    /// The keys in the order they were recorded, for the bounded sweep.
    key_order: VecDeque<(Timestamp, (String, String))>,
}

/// A keyed acquire's key and request, and where its grant is collected.
struct KeyArg<'a> {
    key: &'a IdempotencyKey,
    request: &'a str,
    granted: &'a std::cell::RefCell<Vec<Lock>>,
}

impl State {
    /// The result recorded for `key` if it is live, after sweeping a bounded batch of lapsed
    /// keys; `IdempotencyConflict` if it was recorded for another request.
    fn replay(
        &mut self,
        key: &IdempotencyKey,
        request: &str,
        now: Timestamp,
    ) -> Result<Option<Vec<Lock>>> {
        let lapsed = |at: Timestamp| at.saturating_add(IDEMPOTENCY_KEY_TTL) <= now;
        for _ in 0..IDEMPOTENCY_SWEEP_BATCH {
            match self.key_order.front() {
                Some((at, _)) if lapsed(*at) => {}
                _ => break,
            }
            if let Some((at, k)) = self.key_order.pop_front()
                && self.keys.get(&k).is_some_and(|e| e.2 == at)
            {
                self.keys.remove(&k);
            }
        }
        let k = (key.agent().to_owned(), key.key().to_owned());
        match self.keys.get(&k) {
            Some((req, locks, at)) if !lapsed(*at) => {
                if req != request {
                    return Err(key.conflict());
                }
                Ok(Some(locks.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Records `key`'s result, under the same lock as the change.
    fn remember(&mut self, key: &IdempotencyKey, request: &str, locks: Vec<Lock>, now: Timestamp) {
        let k = (key.agent().to_owned(), key.key().to_owned());
        self.keys
            .insert(k.clone(), (request.to_owned(), locks, now));
        self.key_order.push_back((now, k));
    }
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    owner: Owner,
    items: Vec<(Resource, LockMode)>,
}

/// A seeded multiply-rotate hash for resource names: several times cheaper than SipHash on
/// short keys. Names come from the agents of one process, which are not adversaries, and the
/// per-manager random seed keeps collisions from being precomputed.
#[derive(Debug, Clone, Copy)]
struct FastHash(u64);

impl Default for FastHash {
    fn default() -> Self {
        FastHash(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        )
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

#[derive(Debug)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        // The last 1-7 bytes, read as at most two overlapping words (no copy of a
        // variable length, which would be a call to `memcpy`).
        let rest = chunks.remainder();
        let n = rest.len();
        let word = |i: usize, len: usize| {
            rest[i..i + len]
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b))
        };
        let tail = match n {
            0 => return,
            1..=3 => word(0, 1) | word(n / 2, 1) << 8 | word(n - 1, 1) << 16,
            _ => word(0, 4) | word(n - 4, 4) << 32,
        };
        self.add(tail ^ ((n as u64) << 56));
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Empty entries kept for reuse before they are pruned.
const PRUNE_EMPTY: usize = 1024;

/// A request with its TTL resolved.
type Item<'a> = (&'a LockRequest, Duration);

impl State {
    /// Live locks on `res`, its ancestors and its descendants.
    fn overlapping<'a>(
        &'a self,
        res: &'a Resource,
        now: Timestamp,
    ) -> impl Iterator<Item = &'a Lock> + Clone + 'a {
        let exact = self.locks.get(res).into_iter().flatten();
        let ancestors = res.ancestors().filter_map(|a| self.locks.get(a)).flatten();
        let below = (!self.nested.is_empty()).then(|| {
            let lo = format!("{res}/");
            let hi = format!("{res}0"); // '0' is the character right after '/'
            self.nested
                .range::<str, _>((Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())))
        });
        let below = below
            .into_iter()
            .flatten()
            .filter_map(|k| self.locks.get(k))
            .flatten();
        exact
            .chain(ancestors)
            .chain(below)
            .filter(move |l| !l.is_expired(now))
    }

    /// Grants every item or none.
    fn try_grant(
        &mut self,
        items: &[Item<'_>],
        ticket: Option<u64>,
        now: Timestamp,
        out: &mut dyn FnMut(Lock),
    ) -> std::result::Result<(), Blocked> {
        if let [(req, ttl)] = items
            && self.nested.is_empty()
            && !req.resource.is_nested()
        {
            return self.try_grant_flat(req, *ttl, ticket, now).map(out);
        }
        for (req, _) in items {
            let decision = decide(
                req,
                self.overlapping(&req.resource, now),
                queued(&self.queue, ticket),
            );
            if let Decision::Blocked(h) = decision {
                return Err((req.resource.clone(), h));
            }
        }
        for (req, ttl) in items {
            out(self.grant(req, *ttl, now));
        }
        Ok(())
    }

    /// Adds a hold to the owner's lock on the resource, or a new lock.
    fn grant(&mut self, req: &LockRequest, ttl: Duration, now: Timestamp) -> Lock {
        let mut inserted = false;
        let entry = self.locks.entry(req.resource.clone()).or_insert_with(|| {
            inserted = true;
            Vec::with_capacity(1)
        });
        if inserted {
            if req.resource.is_nested() {
                self.nested.insert(req.resource.clone());
            }
        } else if entry.is_empty() {
            self.empty -= 1;
        }
        grant_into(
            entry,
            req,
            ttl,
            now,
            &mut self.last_token,
            &mut self.counters,
        )
    }

    /// The fast path for one flat request while no nested resource is held: the decision and
    /// the grant share a single map lookup.
    fn try_grant_flat(
        &mut self,
        req: &LockRequest,
        ttl: Duration,
        ticket: Option<u64>,
        now: Timestamp,
    ) -> std::result::Result<Lock, Blocked> {
        // Look the name up without cloning it: a new entry is only made for a first lock.
        if let Some(entry) = self.locks.get_mut(&req.resource) {
            let decision = decide(
                req,
                entry.iter().filter(|l| !l.is_expired(now)),
                queued(&self.queue, ticket),
            );
            if let Decision::Blocked(h) = decision {
                return Err((req.resource.clone(), h));
            }
            if entry.is_empty() {
                self.empty -= 1;
            }
            return Ok(grant_into(
                entry,
                req,
                ttl,
                now,
                &mut self.last_token,
                &mut self.counters,
            ));
        }
        if let Decision::Blocked(h) = decide(req, std::iter::empty(), queued(&self.queue, ticket)) {
            return Err((req.resource.clone(), h));
        }
        let entry = self
            .locks
            .entry(req.resource.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        Ok(grant_into(
            entry,
            req,
            ttl,
            now,
            &mut self.last_token,
            &mut self.counters,
        ))
    }

    /// Notes that the entry of `res` may have lost its last holder; prunes empty entries in
    /// bulk once there are many.
    fn drop_if_empty(&mut self, res: &Resource) {
        if self.locks.get(res).is_some_and(Vec::is_empty) {
            self.one_more_empty();
        }
    }

    /// Counts an entry that just lost its last holder.
    fn one_more_empty(&mut self) {
        self.empty += 1;
        if self.empty > PRUNE_EMPTY {
            self.prune_empty();
        }
    }

    fn prune_empty(&mut self) {
        let nested = &mut self.nested;
        self.locks.retain(|k, v| {
            if v.is_empty() && k.is_nested() {
                nested.remove(k);
            }
            !v.is_empty()
        });
        self.empty = 0;
    }

    fn dequeue(&mut self, ticket: u64) {
        self.queue.retain(|w| w.ticket != ticket);
    }

    /// Removes every lapsed lock.
    fn purge(&mut self, now: Timestamp) -> Vec<Lock> {
        let mut gone = Vec::new();
        for v in self.locks.values_mut() {
            let (dead, live): (Vec<Lock>, Vec<Lock>) = v.drain(..).partition(|l| l.is_expired(now));
            *v = live;
            gone.extend(dead);
        }
        self.counters.expired += gone.len() as u64;
        self.prune_empty();
        gone
    }

    /// Live locks of other owners on exactly `res`, to name in a `NotHeld` error.
    fn others_on(&self, res: &Resource, owner: &Owner, now: Timestamp) -> Vec<Holder> {
        self.locks
            .get(res)
            .into_iter()
            .flatten()
            .filter(|l| &l.owner != owner && !l.is_expired(now))
            .map(Lock::holder)
            .collect()
    }
}

/// Live waiters with a ticket below `ticket` (all of them when `None`), in arrival order.
fn queued(
    queue: &VecDeque<Waiter>,
    ticket: Option<u64>,
) -> impl Iterator<Item = (&Resource, &Owner, LockMode)> {
    queue
        .iter()
        .take_while(move |w| ticket.is_none_or(|t| w.ticket < t))
        .flat_map(|w| w.items.iter().map(move |(r, m)| (r, &w.owner, *m)))
}

/// Grants `req` into the holders of its resource: a hold on the owner's lock, or a new lock.
fn grant_into(
    entry: &mut Vec<Lock>,
    req: &LockRequest,
    ttl: Duration,
    now: Timestamp,
    last_token: &mut u64,
    counters: &mut Counters,
) -> Lock {
    let expires_at = now.saturating_add(ttl);
    let before = entry.len();
    entry.retain(|l| !l.is_expired(now) || l.owner == req.owner);
    counters.expired += (before - entry.len()) as u64;
    if let Some(own) = entry.iter_mut().find(|l| l.owner == req.owner) {
        if own.is_expired(now) {
            // The owner's own lapsed lock: it is gone; this is a fresh grant.
            *own = Lock {
                resource: req.resource.clone(),
                owner: req.owner.clone(),
                mode: req.mode,
                token: 0,
                holds: 0,
                acquired_at: now,
                expires_at,
            };
            counters.expired += 1;
        }
        if own.holds == 0 {
            *last_token += 1;
            own.token = *last_token;
            own.holds = 1;
            counters.total += 1;
        } else {
            own.holds += 1;
            own.expires_at = own.expires_at.max(expires_at);
            if req.mode == LockMode::Exclusive {
                own.mode = LockMode::Exclusive;
            }
            counters.reentrant += 1;
        }
        return own.clone();
    }
    *last_token += 1;
    counters.total += 1;
    let lock = Lock {
        resource: req.resource.clone(),
        owner: req.owner.clone(),
        mode: req.mode,
        token: *last_token,
        holds: 1,
        acquired_at: now,
        expires_at,
    };
    entry.push(lock.clone());
    lock
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
