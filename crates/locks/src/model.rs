//! Modes, requests, grants, statistics, and the conflict rules every manager follows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use oc_time::Timestamp;

use crate::resource::overlaps;
use crate::{Error, Owner, Resource, Result};

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Excludes every other owner from the resource and everything overlapping it.
    Exclusive,
    /// Any number of shared holders; excludes exclusive ones. The seed calls it "collaborative".
    Shared,
}

impl LockMode {
    /// `"exclusive"` or `"shared"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        }
    }

    /// Whether a lock in this mode and one in `other`, held by different owners on overlapping
    /// resources, conflict.
    pub const fn conflicts_with(self, other: LockMode) -> bool {
        matches!(self, LockMode::Exclusive) || matches!(other, LockMode::Exclusive)
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LockMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exclusive" => Ok(LockMode::Exclusive),
            "shared" | "collaborative" => Ok(LockMode::Shared),
            _ => Err(Error::InvalidInput {
                field: "mode",
                reason: format!("unknown lock mode {s:?} (expected exclusive or shared)"),
            }),
        }
    }
}

/// A request for one lock.
///
/// ```
/// use std::time::Duration;
/// use oc_locks::{LockMode, LockRequest};
/// let r = LockRequest::shared("repo/docs", "agent-2")?.ttl(Duration::from_secs(60));
/// assert_eq!(r.mode, LockMode::Shared);
/// # Ok::<(), oc_locks::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockRequest {
    /// What to lock.
    pub resource: Resource,
    /// Who asks.
    pub owner: Owner,
    /// How.
    pub mode: LockMode,
    /// How long the lock lives unless renewed; the manager's default when `None`.
    pub ttl: Option<Duration>,
}

impl LockRequest {
    /// A request in `mode`.
    pub fn new(resource: &str, owner: &str, mode: LockMode) -> Result<Self> {
        Ok(LockRequest {
            resource: Resource::new(resource)?,
            owner: Owner::new(owner)?,
            mode,
            ttl: None,
        })
    }
    /// An exclusive request.
    pub fn exclusive(resource: &str, owner: &str) -> Result<Self> {
        Self::new(resource, owner, LockMode::Exclusive)
    }
    /// A shared request.
    pub fn shared(resource: &str, owner: &str) -> Result<Self> {
        Self::new(resource, owner, LockMode::Shared)
    }
    /// From already validated parts.
    pub fn from_parts(resource: Resource, owner: Owner, mode: LockMode) -> Self {
        LockRequest {
            resource,
            owner,
            mode,
            ttl: None,
        }
    }
    /// Sets the time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A granted lock, as held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The locked resource.
    pub resource: Resource,
    /// Its holder.
    pub owner: Owner,
    /// Exclusive or shared.
    pub mode: LockMode,
    /// Fencing token: strictly increasing per manager over all grants; kept across
    /// re-entrant acquisitions and renewals of this lock.
    pub token: u64,
    /// How many times the owner acquired it without releasing (re-entrant holds).
    pub holds: u32,
    /// When it was first granted.
    pub acquired_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

impl Lock {
    /// Whether it has lapsed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// The lock as a [`Holder`] standing in someone's way.
    pub fn holder(&self) -> Holder {
        Holder {
            resource: self.resource.clone(),
            owner: self.owner.clone(),
            mode: self.mode,
            expires_at: Some(self.expires_at),
        }
    }
}

/// Who stands in the way of a request: a holder, or an earlier waiter (`expires_at` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The resource it holds or waits for (may be an ancestor or descendant of the one asked).
    pub resource: Resource,
    /// The owner.
    pub owner: Owner,
    /// Its mode.
    pub mode: LockMode,
    /// When its lock lapses; `None` for a queued waiter.
    pub expires_at: Option<Timestamp>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expires_at {
            Some(_) => write!(f, "{} ({} on {})", self.owner, self.mode, self.resource),
            None => write!(
                f,
                "{} (waiting, {} on {})",
                self.owner, self.mode, self.resource
            ),
        }
    }
}

/// When (on the monotonic clock, `at` being `now`) the first of `holders`' locks lapses, plus
/// a millisecond: a waiter sleeps no longer than that before looking again.
pub(crate) fn next_lapse(
    holders: &[Holder],
    at: std::time::Instant,
    now: Timestamp,
) -> Option<std::time::Instant> {
    holders
        .iter()
        .filter_map(|h| h.expires_at)
        .min()
        .map(|e| at + e.since(now) + Duration::from_millis(1))
}

pub(crate) fn list_holders(h: &[Holder]) -> String {
    if h.is_empty() {
        return "nobody".into();
    }
    h.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Time-to-live limits: the default for requests without one, and the accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// Used when a request has no TTL (30 s).
    pub default: Duration,
    /// Shortest accepted (1 s).
    pub min: Duration,
    /// Longest accepted (1 h).
    pub max: Duration,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        TtlPolicy {
            default: Duration::from_secs(30),
            min: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl TtlPolicy {
    /// The TTL to use for `asked`, or why it is refused.
    pub fn resolve(&self, asked: Option<Duration>) -> Result<Duration> {
        let ttl = asked.unwrap_or(self.default);
        if ttl.is_zero() || ttl < self.min || ttl > self.max {
            return Err(Error::InvalidTtl {
                ttl,
                min: self.min,
                max: self.max,
            });
        }
        Ok(ttl)
    }
}

/// Lock statistics: the seed's fields (serialised with its camelCase names) and more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockStats {
    /// Locks granted since the manager (or, for SQLite, the database) started; re-entrant
    /// acquisitions are not new grants.
    pub total_locks: u64,
    /// Locks held now (not lapsed).
    pub active_locks: u64,
    /// Locks that lapsed and were removed.
    pub expired_locks: u64,
    /// Requests that found a conflicting holder or waiter (whether they then waited or not).
    pub conflicts_detected: u64,
    /// Mean time from grant to final release, in milliseconds, over released locks.
    pub average_hold_time: f64,
    /// Longest such time, in milliseconds.
    pub max_hold_time: u64,
    /// Locks fully released.
    pub released: u64,
    /// Re-entrant acquisitions (holds added to a lock already held).
    pub reentrant: u64,
    /// Requests that waited.
    pub waits: u64,
    /// Requests that gave up waiting.
    pub timeouts: u64,
    /// Requests waiting now.
    pub waiting: u64,
    /// Active locks per owner, most first.
    pub by_owner: Vec<OwnerCount>,
    /// The longest-held active lock.
    pub oldest_lock: Option<OldestLock>,
}

impl LockStats {
    /// Conflicts per granted lock (the seed's conflict rate), 0 when nothing was granted.
    pub fn conflict_rate(&self) -> f64 {
        if self.total_locks == 0 {
            0.0
        } else {
            self.conflicts_detected as f64 / self.total_locks as f64
        }
    }
}

/// Active locks of one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCount {
    /// The owner.
    pub owner: String,
    /// How many locks it holds.
    pub count: u64,
}

/// The longest-held active lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OldestLock {
    /// Its resource.
    pub resource: String,
    /// Its owner.
    pub owner: String,
    /// Milliseconds since it was granted.
    pub age_ms: u64,
}

/// Counters every manager keeps (plain fields under the manager's own lock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) total: u64,
    pub(crate) expired: u64,
    pub(crate) conflicts: u64,
    pub(crate) released: u64,
    pub(crate) reentrant: u64,
    pub(crate) hold_total_ms: u64,
    pub(crate) hold_max_ms: u64,
    pub(crate) waits: u64,
    pub(crate) timeouts: u64,
}

impl Counters {
    pub(crate) fn record_release(&mut self, lock: &Lock, now: Timestamp) {
        let held = u64::try_from(now.as_millis() - lock.acquired_at.as_millis()).unwrap_or(0);
        self.released += 1;
        self.hold_total_ms += held;
        self.hold_max_ms = self.hold_max_ms.max(held);
    }

    /// Fills the counter part of the statistics; the caller adds what it scans.
    pub(crate) fn into_stats<'a>(
        self,
        active: impl Iterator<Item = &'a Lock>,
        waiting: u64,
        now: Timestamp,
    ) -> LockStats {
        let mut by_owner: std::collections::BTreeMap<&str, u64> = Default::default();
        let mut oldest: Option<&Lock> = None;
        let mut active_locks = 0;
        for l in active.filter(|l| !l.is_expired(now)) {
            active_locks += 1;
            *by_owner.entry(l.owner.as_str()).or_default() += 1;
            if oldest.is_none_or(|o| l.acquired_at < o.acquired_at) {
                oldest = Some(l);
            }
        }
        let mut by_owner: Vec<OwnerCount> = by_owner
            .into_iter()
            .map(|(o, n)| OwnerCount {
                owner: o.to_owned(),
                count: n,
            })
            .collect();
        by_owner.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.owner.cmp(&b.owner)));
        LockStats {
            total_locks: self.total,
            active_locks,
            expired_locks: self.expired,
            conflicts_detected: self.conflicts,
            average_hold_time: if self.released == 0 {
                0.0
            } else {
                self.hold_total_ms as f64 / self.released as f64
            },
            max_hold_time: self.hold_max_ms,
            released: self.released,
            reentrant: self.reentrant,
            waits: self.waits,
            timeouts: self.timeouts,
            waiting,
            by_owner,
            oldest_lock: oldest.map(|l| OldestLock {
                resource: l.resource.to_string(),
                owner: l.owner.to_string(),
                age_ms: u64::try_from(now.as_millis() - l.acquired_at.as_millis()).unwrap_or(0),
            }),
        }
    }
}

/// What stood in the way of a grant: the resource asked for and who blocks it.
pub(crate) type Blocked = (Resource, Vec<Holder>);

/// What a manager should do with one request, given the live locks that overlap it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Grant a new lock.
    Grant,
    /// Add a hold to the owner's lock on this very resource (upgrading shared to exclusive
    /// when asked, which is only possible when nobody else overlaps).
    Reenter,
    /// Refused: these stand in the way.
    Blocked(Vec<Holder>),
}

/// The conflict rules, shared by every manager.
///
/// `live` are the unexpired locks overlapping `req.resource` (any owner); `queued` are the
/// requests of earlier waiters (any resource), which a new request may not overtake when
/// they conflict, so that a stream of shared requests cannot starve a waiting exclusive one.
pub(crate) fn decide<'a>(
    req: &LockRequest,
    live: impl Iterator<Item = &'a Lock>,
    queued: impl Iterator<Item = (&'a Resource, &'a Owner, LockMode)>,
) -> Decision {
    // One pass over the live locks; vectors are only allocated when someone stands in the way.
    let mut own: Option<&Lock> = None;
    let mut blockers: Vec<Holder> = Vec::new();
    for l in live {
        if l.owner == req.owner {
            if l.resource == req.resource {
                own = Some(l);
            }
        } else if l.mode.conflicts_with(req.mode) {
            blockers.push(l.holder());
        }
    }
    if let Some(own) = own {
        // Re-entry never waits behind the queue (that would deadlock the holder against itself);
        // an upgrade to exclusive needs everyone else gone.
        let upgrading = own.mode == LockMode::Shared && req.mode == LockMode::Exclusive;
        return if upgrading && !blockers.is_empty() {
            Decision::Blocked(blockers)
        } else {
            Decision::Reenter
        };
    }
    if !blockers.is_empty() {
        return Decision::Blocked(blockers);
    }
    for (r, o, m) in queued {
        if *o != req.owner
            && m.conflicts_with(req.mode)
            && overlaps(r.as_str(), req.resource.as_str())
        {
            blockers.push(Holder {
                resource: r.clone(),
                owner: o.clone(),
                mode: m,
                expires_at: None,
            });
        }
    }
    if blockers.is_empty() {
        Decision::Grant
    } else {
        Decision::Blocked(blockers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(res: &str, owner: &str, mode: LockMode) -> Lock {
        Lock {
            resource: Resource::new(res).unwrap(),
            owner: Owner::new(owner).unwrap(),
            mode,
            token: 1,
            holds: 1,
            acquired_at: Timestamp::EPOCH,
            expires_at: Timestamp::from_millis(1000),
        }
    }

    fn check(req: LockRequest, live: &[Lock], want: &str) {
        let got = decide(&req, live.iter(), std::iter::empty());
        let got = match got {
            Decision::Grant => "grant".to_owned(),
            Decision::Reenter => "reenter".to_owned(),
            Decision::Blocked(h) => format!("blocked by {}", list_holders(&h)),
        };
        assert_eq!(got, want);
    }

    #[test]
    fn conflict_table() {
        use LockMode::*;
        let ex = |r: &str, o: &str| LockRequest::exclusive(r, o).unwrap();
        let sh = |r: &str, o: &str| LockRequest::shared(r, o).unwrap();
        check(ex("a", "x"), &[], "grant");
        check(sh("a", "x"), &[lock("a", "y", Shared)], "grant");
        check(
            ex("a", "x"),
            &[lock("a", "y", Shared)],
            "blocked by y (shared on a)",
        );
        check(
            sh("a/b", "x"),
            &[lock("a", "y", Exclusive)],
            "blocked by y (exclusive on a)",
        );
        check(
            ex("a", "x"),
            &[lock("a/b/c", "y", Shared)],
            "blocked by y (shared on a/b/c)",
        );
        check(ex("a", "x"), &[lock("a", "x", Exclusive)], "reenter");
        check(sh("a", "x"), &[lock("a", "x", Exclusive)], "reenter");
        check(ex("a", "x"), &[lock("a", "x", Shared)], "reenter");
        check(
            ex("a", "x"),
            &[lock("a", "x", Shared), lock("a", "y", Shared)],
            "blocked by y (shared on a)",
        );
        check(ex("a/b", "x"), &[lock("a", "x", Exclusive)], "grant");
    }

    #[test]
    fn queued_conflicting_waiters_are_not_overtaken() {
        let r = Resource::new("a").unwrap();
        let w = Owner::new("w").unwrap();
        let req = LockRequest::shared("a", "x").unwrap();
        let d = decide(
            &req,
            std::iter::empty(),
            [(&r, &w, LockMode::Exclusive)].into_iter(),
        );
        assert!(matches!(d, Decision::Blocked(h) if h[0].expires_at.is_none()));
        let d = decide(
            &req,
            std::iter::empty(),
            [(&r, &w, LockMode::Shared)].into_iter(),
        );
        assert_eq!(d, Decision::Grant, "shared behind shared is fine");
    }

    #[test]
    fn ttl_policy_enforces_bounds() {
        let p = TtlPolicy::default();
        assert_eq!(p.resolve(None).unwrap(), Duration::from_secs(30));
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_secs(3601),
        ] {
            assert!(matches!(
                p.resolve(Some(bad)),
                Err(Error::InvalidTtl { .. })
            ));
        }
    }
}
