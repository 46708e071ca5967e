//! Linearizability of a [`LockManager`] (feature `testkit`): a random workload of acquires
//! (shared and exclusive, at once or waiting, on nested resources), re-entries, renewals and
//! releases, recorded from threads ([`record`]) or from processes ([`run_process`] and
//! `oc_lincheck::read_logs`), then checked against [`LockModel`], a sequential model of the
//! rules, and for fencing tokens ([`check`]).
//!
//! The model is independent of the managers' code. It knows time only as the manager's clock
//! read just before and just after each call, so a lock whose expiry falls inside a call may
//! or may not have lapsed for it; a grant must carry a token greater than every earlier one
//! and an expiry after its return; a refusal must name a live holder or an earlier waiter.
//!
//! ```
//! use std::sync::Arc;
//! use oc_locks::{LockManager, MemoryLockManager, ManualClock, TtlPolicy, testkit::{self, history}};
//! let clock = ManualClock::new(testkit::START);
//! let m = MemoryLockManager::with(Arc::new(clock.clone()), TtlPolicy::default());
//! let w = history::Workload { threads: 3, ops: 30, seed: 7, ..Default::default() };
//! let h = history::record(&m, &w, Some(&clock));
//! let checked = history::check(&h, 0);
//! assert!(checked.is_ok(), "{checked}");
//! ```

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use oc_lincheck::{Checked, Grant, History, Model, ProcessLog, Sink, SplitMix};
use serde::{Deserialize, Serialize};

use crate::{Error, Lock, LockManager, LockMode, LockRequest, ManualClock, Owner, Resource};

/// The resources a workload locks: two nested subtrees and a flat name, so that grants overlap
/// along paths; each first segment is an independent part of the check.
pub const RESOURCES: [&str; 7] = ["a", "a/b", "a/b/c", "a/d", "e", "e/f", "g"];

/// One call, as asked, with the manager's time just before it (milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOp {
    /// Who asks.
    pub owner: String,
    /// On what.
    pub resource: String,
    /// Which call.
    pub call: LockCall,
    /// The manager's clock before the call.
    pub at: i64,
}

/// The calls a workload makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockCall {
    /// `acquire` with a TTL and a wait (zero: `try_acquire`).
    Acquire {
        /// Mode asked.
        mode: LockMode,
        /// Time to live, in milliseconds.
        ttl_ms: u64,
        /// How long it may wait, in milliseconds.
        wait_ms: u64,
    },
    /// `release`.
    Release,
    /// `renew` with a TTL.
    Renew {
        /// Time to live, in milliseconds.
        ttl_ms: u64,
    },
}

/// An answer, with the manager's time just after the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRet {
    /// The manager's clock after the call.
    pub at: i64,
    /// What it answered.
    pub answer: Answer,
}

/// What a call answered. Errors a caller cannot tell apart from a crash (a busy database, a
/// lost connection) are not answers: the operation's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Granted (first hold or re-entry).
    Granted {
        /// Fencing token.
        token: u64,
        /// Holds after.
        holds: u32,
        /// Mode held after.
        mode: LockMode,
        /// Expiry (ms).
        expires_at: i64,
    },
    /// Refused at once; `waiters_only` when it named only queued waiters, no holder.
    Conflict {
        /// Whether only waiters stood in the way.
        waiters_only: bool,
    },
    /// Waited and gave up.
    Timeout,
    /// One hold released; `holds` left.
    Released {
        /// Holds left (0: freed).
        holds: u32,
    },
    /// Renewed until `expires_at`.
    Renewed {
        /// New expiry (ms).
        expires_at: i64,
    },
    /// The owner held no such lock.
    NotHeld,
    /// The owner's lock had lapsed.
    Expired,
}

impl Answer {
    fn of(call: &LockCall, r: crate::Result<Lock>) -> Option<Answer> {
        Some(match (call, r) {
            (LockCall::Acquire { .. }, Ok(l)) => Answer::Granted {
                token: l.token,
                holds: l.holds,
                mode: l.mode,
                expires_at: l.expires_at.as_millis(),
            },
            (LockCall::Release, Ok(l)) => Answer::Released { holds: l.holds },
            (LockCall::Renew { .. }, Ok(l)) => Answer::Renewed {
                expires_at: l.expires_at.as_millis(),
            },
            (_, Err(Error::Conflict { holders, .. })) => Answer::Conflict {
                waiters_only: holders.iter().all(|h| h.expires_at.is_none()),
            },
            (_, Err(Error::Timeout { .. })) => Answer::Timeout,
            (_, Err(Error::NotHeld { .. })) => Answer::NotHeld,
            (_, Err(Error::Expired { .. })) => Answer::Expired,
            (_, Err(_)) => return None,
        })
    }
}

/// A recorded history of lock calls.
pub type LockHistory = History<LockOp, LockRet>;

/// A random workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Concurrent agents (threads, or the processes of a multi-process run, each its own owner).
    pub threads: usize,
    /// Calls per agent.
    pub ops: usize,
    /// Seed of the random choices: the same seed makes the same calls.
    pub seed: u64,
    /// TTLs are drawn from this range, in milliseconds of the manager's clock.
    pub ttl_ms: (u64, u64),
    /// Longest wait of a waiting acquire, in real milliseconds.
    pub max_wait_ms: u64,
    /// Longest pause between two calls of an agent, in real microseconds.
    pub pause_us: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            threads: 6,
            ops: 60,
            seed: 1,
            ttl_ms: (1_000, 3_000),
            max_wait_ms: 20,
            pause_us: 1_000,
        }
    }
}

/// The next call of `owner`, who believes it holds `held` (resource indexes).
fn next_call(rng: &mut SplitMix, w: &Workload, held: &[usize]) -> (usize, LockCall) {
    let ttl_ms = w.ttl_ms.0 + rng.below(w.ttl_ms.1.saturating_sub(w.ttl_ms.0) + 1);
    let any = rng.below(RESOURCES.len() as u64) as usize;
    let mine = rng.pick(held).copied();
    match rng.below(100) {
        0..45 => {
            let mode = if rng.chance(50) {
                LockMode::Exclusive
            } else {
                LockMode::Shared
            };
            let wait_ms = if rng.chance(30) {
                rng.below(w.max_wait_ms + 1)
            } else {
                0
            };
            let r = if rng.chance(20) {
                mine.unwrap_or(any)
            } else {
                any
            };
            (
                r,
                LockCall::Acquire {
                    mode,
                    ttl_ms,
                    wait_ms,
                },
            )
        }
        45..82 => (
            if rng.chance(85) {
                mine.unwrap_or(any)
            } else {
                any
            },
            LockCall::Release,
        ),
        _ => (mine.unwrap_or(any), LockCall::Renew { ttl_ms }),
    }
}

/// Runs one call on `m`.
fn perform(m: &dyn LockManager, op: &LockOp) -> crate::Result<Lock> {
    let resource = Resource::new(&op.resource)?;
    let owner = Owner::new(&op.owner)?;
    match op.call {
        LockCall::Acquire {
            mode,
            ttl_ms,
            wait_ms,
        } => m.acquire(
            &LockRequest::from_parts(resource, owner, mode).ttl(Duration::from_millis(ttl_ms)),
            Duration::from_millis(wait_ms),
        ),
        LockCall::Release => m.release(&resource, &owner),
        LockCall::Renew { ttl_ms } => {
            m.renew(&resource, &owner, Some(Duration::from_millis(ttl_ms)))
        }
    }
}

/// The time around a call, read without I/O so that it brackets the call closely: the manual
/// clock the store reads in a thread run, the wall clock otherwise (the clock of SQLite's
/// stores, and PostgreSQL's when it runs on this host; `slack_ms` covers the rest). The
/// store's own `now()` would do: but PostgreSQL's is a round trip, which can return late.
fn read_clock(clock: Option<&ManualClock>) -> i64 {
    use oc_time::Clock;
    clock.map_or_else(oc_lincheck::wall_ms, |c| c.now().as_millis())
}

/// One agent's loop, recording each call in `sink`; stops at the first failure to record.
fn agent<S: Sink<LockOp, LockRet>>(
    m: &dyn LockManager,
    w: &Workload,
    id: u64,
    now: &dyn Fn() -> i64,
    sink: &mut S,
) -> io::Result<()> {
    let mut rng = SplitMix::new(w.seed.wrapping_mul(1_000_003).wrapping_add(id));
    let owner = format!("p{id}");
    let mut held: Vec<usize> = Vec::new();
    for _ in 0..w.ops {
        let (r, call) = next_call(&mut rng, w, &held);
        let op = LockOp {
            owner: owner.clone(),
            resource: RESOURCES[r].to_owned(),
            call,
            at: now(),
        };
        let ret = sink.record(op, |op| {
            let answer = Answer::of(&op.call, perform(m, op));
            answer.map(|answer| LockRet { at: now(), answer })
        })?;
        match ret.map(|r| r.answer) {
            Some(Answer::Granted { .. }) => held.push(r),
            Some(Answer::Released { .. } | Answer::NotHeld | Answer::Expired) => {
                if let Some(i) = held.iter().position(|&h| h == r) {
                    held.swap_remove(i);
                }
            }
            _ => {}
        }
        if w.pause_us > 0 {
            std::thread::sleep(Duration::from_micros(rng.below(w.pause_us)));
        }
    }
    Ok(())
}

/// Runs the workload on `w.threads` threads against `m` and returns the recorded history.
/// With `clock` (the manual clock `m` reads), a ticker thread moves it 100 ms per real
/// millisecond meanwhile, so TTLs of a few seconds lapse during the run.
pub fn record(m: &dyn LockManager, w: &Workload, clock: Option<&ManualClock>) -> LockHistory {
    let tick = clock.map(|c| move || c.advance(Duration::from_millis(100)));
    oc_lincheck::run_threads(
        w.threads,
        tick.as_ref().map(|t| t as &(dyn Fn() + Sync)),
        |id, sink| {
            // A thread's history cannot fail to record.
            let _ = agent(m, w, id, &|| read_clock(clock), sink);
        },
    )
}

/// Runs agent `id`'s part of the workload against `m`, appending its calls to `log`: the body
/// of one process of a multi-process run (killed at any moment, it leaves its calls behind).
pub fn run_process(
    m: &dyn LockManager,
    w: &Workload,
    id: u64,
    log: &mut ProcessLog,
) -> io::Result<()> {
    agent(m, w, id, &|| read_clock(None), log)
}

/// A lock as the model holds it; `None` where an operation of unknown outcome left it unknown.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hold {
    mode: LockMode,
    holds: Option<u32>,
    token: Option<u64>,
    expires: Option<i64>,
}

/// The model's state: each owner's lock per resource, and the greatest token granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LockState {
    holds: BTreeMap<(String, String), Hold>,
    max_token: u64,
}

/// The sequential model of the lock rules; `slack_ms` widens every time comparison, for
/// managers whose clocks differ a little (processes reading their own clock).
#[derive(Debug, Clone, Copy)]
pub struct LockModel {
    /// Clock difference tolerated, in milliseconds.
    pub slack_ms: i64,
}

fn overlaps(a: &str, b: &str) -> bool {
    let nested = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    a == b || nested(a, b) || nested(b, a)
}

impl LockModel {
    fn may_live(&self, h: &Hold, at: i64) -> bool {
        h.expires.is_none_or(|e| e > at - self.slack_ms)
    }

    fn may_lapse(&self, h: &Hold, at: i64) -> bool {
        h.expires.is_none_or(|e| e <= at + self.slack_ms)
    }

    /// Other owners' locks that conflict with `owner` asking `mode` on `resource`.
    fn rivals<'a>(
        &self,
        s: &'a LockState,
        owner: &'a str,
        resource: &'a str,
        mode: LockMode,
    ) -> impl Iterator<Item = (&'a (String, String), &'a Hold)> + 'a {
        s.holds.iter().filter(move |((r, o), h)| {
            o != owner && overlaps(r, resource) && mode.conflicts_with(h.mode)
        })
    }

    fn acquire(
        &self,
        s: &LockState,
        op: &LockOp,
        mode: LockMode,
        ttl_ms: u64,
        ret: Option<&LockRet>,
    ) -> Vec<LockState> {
        let key = (op.resource.clone(), op.owner.clone());
        let own = s.holds.get(&key);
        // A grant we know nothing precise of: how many holds, which token, until when.
        let mut vague = s.clone();
        vague.holds.insert(
            key.clone(),
            Hold {
                mode: own.map_or(mode, |h| h.mode.min(mode)),
                holds: None,
                token: None,
                expires: None,
            },
        );
        let Some(ret) = ret else {
            // Unknown: nothing happened, or that grant.
            return vec![s.clone(), vague];
        };
        match ret.answer {
            Answer::Granted {
                token,
                holds,
                mode: got,
                expires_at,
            } => {
                // A grant that lapsed before it returned is no grant (etcd-io/etcd#11456), and
                // the TTL asked is honoured.
                let ttl = i64::try_from(ttl_ms).unwrap_or(i64::MAX);
                if expires_at <= ret.at - self.slack_ms
                    || expires_at < op.at.saturating_add(ttl) - self.slack_ms
                {
                    return vec![];
                }
                // Every rival must have lapsed by the time the call returned.
                if self
                    .rivals(s, &op.owner, &op.resource, mode)
                    .any(|(_, h)| !self.may_lapse(h, ret.at))
                {
                    return vec![];
                }
                let mut out = Vec::new();
                if let Some(h) = own
                    && self.may_live(h, op.at)
                    && h.token.is_none_or(|t| t == token)
                    && h.holds.is_none_or(|n| n + 1 == holds)
                    && got == h.mode.min(mode)
                {
                    let mut next = s.clone();
                    next.max_token = next.max_token.max(token);
                    next.holds.insert(
                        key.clone(),
                        Hold {
                            mode: got,
                            holds: Some(holds),
                            token: Some(token),
                            expires: Some(expires_at),
                        },
                    );
                    out.push(next);
                }
                if holds == 1
                    && token > s.max_token
                    && got == mode
                    && own.is_none_or(|h| self.may_lapse(h, ret.at))
                {
                    let mut next = s.clone();
                    // Rivals on the same resource lapsed: the grant cleared them.
                    next.holds.retain(|(r, o), h| {
                        !(r == &op.resource && o != &op.owner && mode.conflicts_with(h.mode))
                    });
                    next.max_token = token;
                    next.holds.insert(
                        key,
                        Hold {
                            mode,
                            holds: Some(1),
                            token: Some(token),
                            expires: Some(expires_at),
                        },
                    );
                    out.push(next);
                }
                out
            }
            Answer::Conflict { waiters_only } => {
                let blocked = waiters_only
                    || self
                        .rivals(s, &op.owner, &op.resource, mode)
                        .any(|(_, h)| self.may_live(h, op.at));
                if blocked { vec![s.clone()] } else { vec![] }
            }
            Answer::Timeout => vec![s.clone()],
            // Granted, but lapsed before the answer arrived (the manager said so rather than
            // return a dead grant). The lock was held meanwhile, for a while nobody outside can
            // tell: it may have stood in others' way, or not.
            Answer::Expired => vec![vague],
            _ => vec![],
        }
    }

    /// `release` and `renew`: what they do to the owner's lock.
    fn touch(&self, s: &LockState, op: &LockOp, ret: Option<&LockRet>) -> Vec<LockState> {
        let key = (op.resource.clone(), op.owner.clone());
        let own = s.holds.get(&key);
        let mut gone = s.clone();
        gone.holds.remove(&key);
        let Some(ret) = ret else {
            let Some(h) = own else {
                return vec![s.clone()];
            };
            let mut changed = s.clone();
            let mut h = h.clone();
            match op.call {
                LockCall::Renew { .. } => h.expires = None,
                _ => h.holds = h.holds.map(|n| n.saturating_sub(1)).filter(|&n| n > 0),
            }
            changed.holds.insert(key, h);
            return vec![s.clone(), gone, changed];
        };
        match (&op.call, &ret.answer) {
            (LockCall::Release, Answer::Released { holds }) => match own {
                Some(h) if self.may_live(h, op.at) && h.holds.is_none_or(|n| n == holds + 1) => {
                    if *holds == 0 {
                        vec![gone]
                    } else {
                        let mut next = s.clone();
                        let mut h = h.clone();
                        h.holds = Some(*holds);
                        next.holds.insert(key, h);
                        vec![next]
                    }
                }
                _ => vec![],
            },
            (LockCall::Renew { ttl_ms }, Answer::Renewed { expires_at }) => match own {
                Some(h)
                    if self.may_live(h, op.at)
                        && *expires_at
                            >= op
                                .at
                                .saturating_add(i64::try_from(*ttl_ms).unwrap_or(i64::MAX))
                                - self.slack_ms =>
                {
                    let mut next = s.clone();
                    let mut h = h.clone();
                    h.expires = Some(*expires_at);
                    next.holds.insert(key, h);
                    vec![next]
                }
                _ => vec![],
            },
            (_, Answer::NotHeld | Answer::Expired) => match own {
                None => vec![s.clone()],
                Some(h) => {
                    let mut out = Vec::new();
                    if self.may_lapse(h, ret.at) {
                        out.push(gone);
                    }
                    // A renewal that took effect but lapsed before its answer arrived: the
                    // lock lived on for a while nobody outside can tell.
                    if matches!(
                        (&op.call, &ret.answer),
                        (LockCall::Renew { .. }, Answer::Expired)
                    ) && self.may_live(h, op.at)
                    {
                        let mut renewed = s.clone();
                        let mut h = h.clone();
                        h.expires = None;
                        renewed.holds.insert(key, h);
                        out.push(renewed);
                    }
                    out
                }
            },
            _ => vec![],
        }
    }
}

impl Model for LockModel {
    type Op = LockOp;
    type Ret = LockRet;
    type State = LockState;

    fn init(&self) -> LockState {
        LockState::default()
    }

    fn step(&self, s: &LockState, op: &LockOp, ret: Option<&LockRet>) -> Vec<LockState> {
        match op.call {
            LockCall::Acquire { mode, ttl_ms, .. } => self.acquire(s, op, mode, ttl_ms, ret),
            LockCall::Release | LockCall::Renew { .. } => self.touch(s, op, ret),
        }
    }
}

/// The grants of new locks (first holds) in a history, for [`oc_lincheck::check_tokens`].
pub fn grants(h: &LockHistory) -> Vec<Grant> {
    h.events
        .iter()
        .filter_map(|e| match e.ret().map(|r| &r.answer) {
            Some(Answer::Granted {
                token, holds: 1, ..
            }) => Some(Grant {
                invoked: e.invoked,
                returned: e.returned(),
                token: *token,
            }),
            _ => None,
        })
        .collect()
}

/// How many calls ended in each kind of answer (`unknown` for no answer): evidence that a
/// workload exercised refusals, waits and lapses, not only grants.
pub fn tally(h: &LockHistory) -> BTreeMap<&'static str, usize> {
    let mut t = BTreeMap::new();
    for e in &h.events {
        let kind = match e.ret().map(|r| &r.answer) {
            None => "unknown",
            Some(Answer::Granted { holds: 1, .. }) => "granted",
            Some(Answer::Granted { .. }) => "reentered",
            Some(Answer::Conflict { .. }) => "conflict",
            Some(Answer::Timeout) => "timeout",
            Some(Answer::Released { .. }) => "released",
            Some(Answer::Renewed { .. }) => "renewed",
            Some(Answer::NotHeld) => "not_held",
            Some(Answer::Expired) => "expired",
        };
        *t.entry(kind).or_insert(0) += 1;
    }
    t
}

/// Checks a history: linearizable against [`LockModel`] (one part per subtree, by the first
/// segment of the resource), and fencing tokens unique and growing in real time.
pub fn check(h: &LockHistory, slack_ms: i64) -> Checked {
    let model = LockModel { slack_ms };
    let linearizability = oc_lincheck::check_by(&model, h, |e| {
        e.op.resource.split('/').next().map(str::to_owned)
    });
    Checked {
        linearizability,
        tokens: oc_lincheck::check_tokens(&grants(h)),
    }
}
