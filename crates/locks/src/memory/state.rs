//! The memory manager's table: holders by resource, the wait queue, idempotency keys, granting.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::time::Duration;

use oc_time::Timestamp;

use super::hash::FastHash;
use crate::idempotency::is_acquire;
use crate::model::{Blocked, Counters, Decision, decide};
use crate::{
    Holder, IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, Lock, LockMode,
    LockRequest, Owner, Resource, Result,
};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Holders by exact resource.
    pub(super) locks: HashMap<Resource, Vec<Lock>, FastHash>,
    /// The keys of `locks` that are nested paths, in order, to find what lies below a resource.
    /// While it is empty no lock lies below another, so flat resources look at their own entry only.
    pub(super) nested: BTreeSet<Resource>,
    /// Keys of `locks` whose holder list is empty. Entries are kept when their last holder
    /// leaves, so that re-locking a resource costs no allocation; they are pruned in bulk.
    pub(super) empty: usize,
    pub(super) queue: VecDeque<Waiter>,
    pub(super) next_ticket: u64,
    pub(super) last_token: u64,
    pub(super) counters: Counters,
    /// Idempotency keys by (agent, key): the request's fingerprint, what it was given, when.
    pub(super) keys: HashMap<(String, String), (String, Vec<Lock>, Timestamp)>,
    /// The keys in the order they were recorded, for the bounded sweep.
    pub(super) key_order: VecDeque<(Timestamp, (String, String))>,
}

impl State {
    /// The result recorded for `key` if it is live, after sweeping a bounded batch of lapsed
    /// keys; `IdempotencyConflict` if it was recorded for another request.
    pub(super) fn replay(
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

    /// Forgets `key`: the locks an acquire recorded under it, none if it is unknown or lapsed;
    /// `IdempotencyConflict`, keeping it, if a release recorded it.
    pub(super) fn forget(&mut self, key: &IdempotencyKey, now: Timestamp) -> Result<Vec<Lock>> {
        let k = (key.agent().to_owned(), key.key().to_owned());
        let live = |at: Timestamp| now < at.saturating_add(IDEMPOTENCY_KEY_TTL);
        match self.keys.get(&k) {
            None => return Ok(Vec::new()),
            Some((req, _, at)) if live(*at) && !is_acquire(req) => return Err(key.conflict()),
            Some(_) => {}
        }
        Ok(self
            .keys
            .remove(&k)
            .filter(|(_, _, at)| live(*at))
            .map(|(_, locks, _)| locks)
            .unwrap_or_default())
    }

    /// Records `key`'s result, under the same lock as the change.
    pub(super) fn remember(
        &mut self,
        key: &IdempotencyKey,
        request: &str,
        locks: Vec<Lock>,
        now: Timestamp,
    ) {
        let k = (key.agent().to_owned(), key.key().to_owned());
        self.keys
            .insert(k.clone(), (request.to_owned(), locks, now));
        self.key_order.push_back((now, k));
    }
}

#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) ticket: u64,
    pub(super) owner: Owner,
    pub(super) items: Vec<(Resource, LockMode)>,
}

/// Empty entries kept for reuse before they are pruned.
const PRUNE_EMPTY: usize = 1024;

/// A request with its TTL resolved.
pub(super) type Item<'a> = (&'a LockRequest, Duration);

impl State {
    /// Live locks on `res`, its ancestors and its descendants.
    pub(super) fn overlapping<'a>(
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
    pub(super) fn try_grant(
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
    pub(super) fn drop_if_empty(&mut self, res: &Resource) {
        if self.locks.get(res).is_some_and(Vec::is_empty) {
            self.one_more_empty();
        }
    }

    /// Counts an entry that just lost its last holder.
    pub(super) fn one_more_empty(&mut self) {
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

    pub(super) fn dequeue(&mut self, ticket: u64) {
        self.queue.retain(|w| w.ticket != ticket);
    }

    /// Removes every lapsed lock.
    pub(super) fn purge(&mut self, now: Timestamp) -> Vec<Lock> {
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
    pub(super) fn others_on(&self, res: &Resource, owner: &Owner, now: Timestamp) -> Vec<Holder> {
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
