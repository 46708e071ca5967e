//! For implementers of [`LockManager`](crate::LockManager) (the PostgreSQL manager, an
//! embedder's own): the pieces every manager shares, so that they agree with the memory and
//! SQLite managers by construction rather than by copy.

use std::time::Instant;

use std::time::Duration;

pub use crate::idempotency::{fingerprint, is_acquire};

use crate::{Error, Holder, Lock, LockMode, LockRequest, LockStats, Result, Timestamp, TtlPolicy};

/// A grant reaches its caller only while it lives: `Expired` (naming the first lapsed lock)
/// when any of `locks` lapsed at `now`, the time the answer reached the caller.
///
/// The lesson of etcd-io/etcd#11456, where a lock whose lease lapsed while the answer was on
/// its way (a long wait, a slow commit, a stalled connection) was returned as held, and two
/// clients believed they held it. The linearizability check of the conformance suite
/// (`testkit::check_linearizable`) found the same in the PostgreSQL manager.
pub fn unexpired(locks: &[Lock], now: Timestamp) -> Result<()> {
    match locks.iter().find(|l| l.is_expired(now)) {
        Some(l) => Err(Error::Expired {
            resource: l.resource.to_string(),
            owner: l.owner.to_string(),
        }),
        None => Ok(()),
    }
}

/// The requests of an `acquire_many` in canonical order (by resource), duplicates merged
/// (exclusive wins, the longest TTL wins); refused when empty or of several owners.
pub fn canonical(reqs: &[LockRequest]) -> Result<Vec<LockRequest>> {
    let Some(first) = reqs.first() else {
        return Err(Error::InvalidInput {
            field: "requests",
            reason: "nothing to acquire".into(),
        });
    };
    if reqs.iter().any(|r| r.owner != first.owner) {
        return Err(Error::InvalidInput {
            field: "requests",
            reason: "acquire_many takes requests of one owner".into(),
        });
    }
    let mut v = reqs.to_vec();
    v.sort_by(|a, b| a.resource.cmp(&b.resource));
    v.dedup_by(|later, kept| {
        if later.resource == kept.resource {
            if later.mode == LockMode::Exclusive {
                kept.mode = LockMode::Exclusive;
            }
            kept.ttl = kept.ttl.max(later.ttl);
            true
        } else {
            false
        }
    });
    Ok(v)
}

/// The requests of an `acquire_many` in canonical order with their TTLs resolved by `policy`.
pub fn canonical_items(
    reqs: &[LockRequest],
    policy: &TtlPolicy,
) -> Result<Vec<(LockRequest, Duration)>> {
    canonical(reqs)?
        .into_iter()
        .map(|r| {
            let ttl = policy.resolve(r.ttl)?;
            Ok((r, ttl))
        })
        .collect()
}

/// When a waiter should look again: just after the earliest of `holders`' expiries (read at
/// `now`, on the monotonic clock at `at`), if any.
pub fn next_lapse(holders: &[Holder], at: Instant, now: Timestamp) -> Option<Instant> {
    crate::model::next_lapse(holders, at, now)
}

/// Asked by [`LockManager::acquire_many_watched`](crate::LockManager::acquire_many_watched), with how long the request has waited, whether
/// to go on waiting.
pub type KeepWaiting<'a> = dyn Fn(Duration) -> bool + Sync + 'a;

/// How often a watched wait asks its watcher, at least.
pub const WATCH_EVERY: Duration = Duration::from_millis(100);

/// How long a waiting acquire keeps waiting: until `wait` has passed, or, when it is watched
/// ([`LockManager::acquire_many_watched`](crate::LockManager::acquire_many_watched)), until its
/// watcher says stop; the watcher is asked at least every [`WATCH_EVERY`].
///
/// It is also the wait's `tracing` span (`lock_wait`, `DEBUG`, target `oc_locks`, with the
/// resource, the owner and the allowed wait), open from the first conflict until the grant or
/// the end of the wait, so a subscriber sees how long each wait took.
pub struct Patience<'a> {
    started: Instant,
    deadline: Instant,
    watcher: Option<&'a KeepWaiting<'a>>,
    span: tracing::Span,
}

impl std::fmt::Debug for Patience<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patience")
            .field("deadline", &self.deadline)
            .field("watched", &self.watcher.is_some())
            .finish()
    }
}

impl<'a> Patience<'a> {
    /// Patience for `wait` from now, watched by `watcher` if given, for `req` (the first of
    /// the requests waiting together).
    pub fn new(
        wait: Duration,
        watcher: Option<&'a KeepWaiting<'a>>,
        req: &LockRequest,
    ) -> Patience<'a> {
        let started = Instant::now();
        let deadline = started
            .checked_add(wait)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
        let span = tracing::debug_span!(
            target: "oc_locks",
            "lock_wait",
            resource = %req.resource,
            owner = %req.owner,
            mode = req.mode.as_str(),
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        );
        Patience {
            started,
            deadline,
            watcher,
            span,
        }
    }

    /// The error of a wait that gave up at `at` on `resource`, reported in the wait's span.
    pub fn timed_out(&self, resource: String, holders: Vec<Holder>, at: Instant) -> Error {
        let waited = self.waited(at);
        tracing::debug!(
            target: "oc_locks",
            parent: &self.span,
            resource = %resource,
            waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            holders = holders.len(),
            "lock wait gave up"
        );
        Error::Timeout {
            resource,
            waited,
            holders,
        }
    }

    /// Whether to give up at `at`: the deadline passed, or the watcher said stop.
    pub fn over(&self, at: Instant) -> bool {
        at >= self.deadline || self.watcher.is_some_and(|w| !w(at - self.started))
    }

    /// How long the caller has waited at `at`.
    pub fn waited(&self, at: Instant) -> Duration {
        at - self.started
    }

    /// The latest moment to look again after `at`: the deadline, or sooner when watched.
    pub fn wake_by(&self, at: Instant) -> Instant {
        match self.watcher {
            Some(_) => self.deadline.min(at + WATCH_EVERY),
            None => self.deadline,
        }
    }
}

/// The refusal of a request that may not wait (`wait` zero) because of `holders`, reported
/// to `tracing` (`DEBUG`, target `oc_locks`).
pub fn conflict(resource: String, holders: Vec<Holder>) -> Error {
    tracing::debug!(
        target: "oc_locks",
        resource = %resource,
        holders = holders.len(),
        held_by = holders.first().map(|h| h.owner.as_str()),
        "lock conflict"
    );
    Error::Conflict { resource, holders }
}

/// The counters a manager keeps, from which [`stats`] derives [`LockStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Locks granted (re-entries excluded).
    pub total: u64,
    /// Locks that lapsed and were removed.
    pub expired: u64,
    /// Requests refused or made to wait.
    pub conflicts: u64,
    /// Locks released by their owner.
    pub released: u64,
    /// Re-entrant holds granted.
    pub reentrant: u64,
    /// Hold time of the released locks, summed, in milliseconds.
    pub hold_total_ms: u64,
    /// The longest hold of a released lock, in milliseconds.
    pub hold_max_ms: u64,
    /// Requests that waited.
    pub waits: u64,
    /// Waits that timed out.
    pub timeouts: u64,
}

/// The statistics of a manager with these counters, live locks and waiters, at `now`.
pub fn stats<'a>(
    c: Counters,
    live: impl Iterator<Item = &'a Lock>,
    waiting: u64,
    now: Timestamp,
) -> LockStats {
    crate::model::Counters {
        total: c.total,
        expired: c.expired,
        conflicts: c.conflicts,
        released: c.released,
        reentrant: c.reentrant,
        hold_total_ms: c.hold_total_ms,
        hold_max_ms: c.hold_max_ms,
        waits: c.waits,
        timeouts: c.timeouts,
    }
    .into_stats(live, waiting, now)
}
