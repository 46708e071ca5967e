//! A model of the state machine, for property tests of any [`TaskStore`] (feature `testkit`):
//! random sequences of operations run against the store and the model, which must agree on
//! every outcome, status, token, expiry, attempt count and version.
//!
//! The model is written independently of the crate's own `transition` function, so a bug there
//! cannot hide by agreeing with itself.
//!
//! ```
//! use std::sync::Arc;
//! use oc_tasks::{ManualClock, MemoryTaskStore, Timestamp, testkit::model};
//! use proptest::prelude::*;
//! proptest!(ProptestConfig::with_cases(8), |(ops in model::ops())| {
//!     let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
//!     model::run(&MemoryTaskStore::with_clock(Arc::new(clock.clone())), &clock, &ops);
//! });
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::{Clock, Error, ManualClock, NewTask, TaskId, TaskStatus, TaskStore, Timestamp};

const KEYS: u8 = 4;

/// One operation on the task keyed `k0`..`k3`.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Create(u8),
    Start(u8),
    Claim(u8, u64),
    ClaimNext(u64),
    Heartbeat(u8, TokenPick),
    Complete(u8, TokenPick),
    Fail(u8, TokenPick),
    Cancel(u8),
    Retry(u8),
    Delete(u8),
    Advance(u64),
    Reap,
}

/// Which token an op presents: the task's current one, an old one, or none.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub enum TokenPick {
    Current,
    Stale,
    Missing,
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS;
    let pick = prop_oneof![
        Just(TokenPick::Current),
        Just(TokenPick::Stale),
        Just(TokenPick::Missing)
    ];
    prop_oneof![
        3 => k.clone().prop_map(Op::Create),
        1 => k.clone().prop_map(Op::Start),
        2 => (k.clone(), 1..50u64).prop_map(|(k, t)| Op::Claim(k, t)),
        2 => (1..50u64).prop_map(Op::ClaimNext),
        1 => (k.clone(), pick.clone()).prop_map(|(k, p)| Op::Heartbeat(k, p)),
        2 => (k.clone(), pick.clone()).prop_map(|(k, p)| Op::Complete(k, p)),
        2 => (k.clone(), pick).prop_map(|(k, p)| Op::Fail(k, p)),
        1 => k.clone().prop_map(Op::Cancel),
        1 => k.clone().prop_map(Op::Retry),
        1 => k.prop_map(Op::Delete),
        2 => (1..60u64).prop_map(Op::Advance),
        1 => Just(Op::Reap),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct M {
    status: TaskStatus,
    token: Option<u64>,
    expires: i64,
    attempts: u32,
    version: u64,
    created: u64,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    None,
    NotFound,
    Exists,
    Invalid,
    LeaseLost,
}

fn outcome<T>(r: Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(Error::AlreadyExists { .. }) => Outcome::Exists,
        Err(Error::InvalidTransition { .. }) => Outcome::Invalid,
        Err(Error::LeaseLost { .. }) => Outcome::LeaseLost,
        Err(e) => panic!("unexpected error {e}"),
    }
}

const MAX_ATTEMPTS: u32 = 2;

struct Model {
    tasks: BTreeMap<u8, M>,
    last_token: u64,
    now: i64,
    created: u64,
}

impl Model {
    fn claim(&mut self, k: u8, ttl: u64) -> Outcome {
        let now = self.now;
        match self.tasks.get_mut(&k) {
            None => Outcome::NotFound,
            Some(m) if m.status != TaskStatus::Pending => Outcome::Invalid,
            Some(m) => {
                self.last_token += 1;
                *m = M {
                    status: TaskStatus::Running,
                    token: Some(self.last_token),
                    expires: now + i64::try_from(ttl * 1000).unwrap(),
                    attempts: m.attempts + 1,
                    version: m.version + 1,
                    created: m.created,
                };
                Outcome::Ok
            }
        }
    }

    fn finish(&mut self, k: u8, presented: Option<u64>, to: Option<TaskStatus>) -> Outcome {
        let now = self.now;
        let Some(m) = self.tasks.get_mut(&k) else {
            return Outcome::NotFound;
        };
        if m.token != presented && (presented.is_some() || m.status == TaskStatus::Running) {
            return Outcome::LeaseLost;
        }
        if m.status != TaskStatus::Running {
            return Outcome::Invalid;
        }
        match to {
            Some(s) => {
                m.status = s;
                m.token = None;
            }
            None => m.expires = now + 30_000,
        }
        m.version += 1;
        Outcome::Ok
    }

    fn presented(&self, k: u8, pick: TokenPick) -> Option<u64> {
        let current = self.tasks.get(&k).and_then(|m| m.token);
        match pick {
            TokenPick::Current => current,
            // A token handed out at some point but never this task's current one.
            TokenPick::Stale => Some(current.map_or(self.last_token + 1000, |t| t + 1000)),
            TokenPick::Missing => None,
        }
    }
}

fn id(k: u8) -> TaskId {
    TaskId::new(format!("k{k}")).unwrap()
}

/// Up to 60 random operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..60)
}

/// Runs `ops` against `store` (empty, on `clock`) and the model, panicking at the first
/// disagreement with the step and what differed.
pub fn run(store: &dyn TaskStore, clock: &ManualClock, ops: &[Op]) {
    let mut m = Model {
        tasks: BTreeMap::new(),
        last_token: 0,
        now: clock.now().as_millis(),
        created: 0,
    };
    for (step, op) in ops.iter().enumerate() {
        let (got, want) = match *op {
            Op::Create(k) => {
                let want = if m.tasks.contains_key(&k) {
                    Outcome::Exists
                } else {
                    m.created += 1;
                    m.tasks.insert(
                        k,
                        M {
                            status: TaskStatus::Pending,
                            token: None,
                            expires: 0,
                            attempts: 0,
                            version: 1,
                            created: m.created,
                        },
                    );
                    Outcome::Ok
                };
                // Distinct creation times keep claim_next's order fully determined.
                clock.advance(Duration::from_millis(1));
                m.now += 1;
                (
                    outcome(store.create(NewTask::new("t").id(id(k)).max_attempts(MAX_ATTEMPTS))),
                    want,
                )
            }
            Op::Start(k) => {
                let want = match m.tasks.get_mut(&k) {
                    None => Outcome::NotFound,
                    Some(t) if t.status != TaskStatus::Pending => Outcome::Invalid,
                    Some(t) => {
                        t.status = TaskStatus::Running;
                        t.token = None;
                        t.attempts += 1;
                        t.version += 1;
                        Outcome::Ok
                    }
                };
                (outcome(store.start(&id(k), "s")), want)
            }
            Op::Claim(k, ttl) => {
                let want = m.claim(k, ttl);
                let got = store.claim(&id(k), "c", Duration::from_secs(ttl));
                if let Ok(t) = &got {
                    assert_eq!(
                        t.lease.map(|l| l.token),
                        m.tasks[&k].token,
                        "step {step}: token"
                    );
                }
                (outcome(got), want)
            }
            Op::ClaimNext(ttl) => {
                let next = m
                    .tasks
                    .iter()
                    .filter(|(_, t)| t.status == TaskStatus::Pending)
                    .min_by_key(|(_, t)| t.created)
                    .map(|(k, _)| *k);
                let got = store.claim_next("n", Duration::from_secs(ttl)).unwrap();
                assert_eq!(
                    got.as_ref().map(|t| t.id.clone()),
                    next.map(id),
                    "step {step}: claim_next picks"
                );
                let want = match next {
                    Some(k) => m.claim(k, ttl),
                    None => Outcome::None,
                };
                (
                    if got.is_some() {
                        Outcome::Ok
                    } else {
                        Outcome::None
                    },
                    want,
                )
            }
            Op::Heartbeat(k, pick) => {
                let tok = m.presented(k, pick);
                let want = match tok {
                    None => match m.tasks.get(&k) {
                        None => Outcome::NotFound,
                        // Heartbeats always name a token; model "missing" as token 0, never handed out.
                        Some(_) => Outcome::LeaseLost,
                    },
                    Some(t) => m.finish(k, Some(t), None),
                };
                (
                    outcome(store.heartbeat(&id(k), tok.unwrap_or(0), Duration::from_secs(30))),
                    want,
                )
            }
            Op::Complete(k, pick) => {
                let tok = m.presented(k, pick);
                let want = m.finish(k, tok, Some(TaskStatus::Completed));
                (outcome(store.complete(&id(k), tok, None)), want)
            }
            Op::Fail(k, pick) => {
                let tok = m.presented(k, pick);
                let want = m.finish(k, tok, Some(TaskStatus::Failed));
                (outcome(store.fail(&id(k), tok, "f")), want)
            }
            Op::Cancel(k) => {
                let want = match m.tasks.get_mut(&k) {
                    None => Outcome::NotFound,
                    Some(t) if !matches!(t.status, TaskStatus::Pending | TaskStatus::Running) => {
                        Outcome::Invalid
                    }
                    Some(t) => {
                        t.status = TaskStatus::Cancelled;
                        t.token = None;
                        t.version += 1;
                        Outcome::Ok
                    }
                };
                (outcome(store.cancel(&id(k))), want)
            }
            Op::Retry(k) => {
                let want = match m.tasks.get_mut(&k) {
                    None => Outcome::NotFound,
                    Some(t) if !matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled) => {
                        Outcome::Invalid
                    }
                    Some(t) => {
                        t.status = TaskStatus::Pending;
                        t.version += 1;
                        Outcome::Ok
                    }
                };
                (outcome(store.retry(&id(k))), want)
            }
            Op::Delete(k) => {
                let want = if m.tasks.remove(&k).is_some() {
                    Outcome::Ok
                } else {
                    Outcome::NotFound
                };
                (outcome(store.delete(&id(k), None)), want)
            }
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(secs));
                m.now += i64::try_from(secs * 1000).unwrap();
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Reap => {
                let now = m.now;
                let mut want: Vec<u8> = Vec::new();
                for (k, t) in m.tasks.iter_mut() {
                    if t.status == TaskStatus::Running && t.token.is_some() && t.expires <= now {
                        t.status = if t.attempts >= MAX_ATTEMPTS {
                            TaskStatus::Failed
                        } else {
                            TaskStatus::Pending
                        };
                        t.token = None;
                        t.version += 1;
                        want.push(*k);
                    }
                }
                let got: Vec<TaskId> = store
                    .reap_expired(Timestamp::from_millis(now))
                    .unwrap()
                    .into_iter()
                    .map(|r| r.task.id)
                    .collect();
                assert_eq!(
                    got,
                    want.into_iter().map(id).collect::<Vec<_>>(),
                    "step {step}: reaped"
                );
                (Outcome::Ok, Outcome::Ok)
            }
        };
        assert_eq!(got, want, "step {step}: {op:?}");
        // The whole store agrees with the model after every step.
        for k in 0..KEYS {
            let stored = store.get(&id(k)).unwrap();
            match (stored, m.tasks.get(&k)) {
                (None, None) => {}
                (Some(t), Some(mt)) => {
                    assert_eq!(t.status, mt.status, "step {step}: k{k} status");
                    assert_eq!(
                        t.lease.map(|l| l.token),
                        mt.token,
                        "step {step}: k{k} token"
                    );
                    assert_eq!(t.attempts, mt.attempts, "step {step}: k{k} attempts");
                    assert_eq!(t.version, mt.version, "step {step}: k{k} version");
                }
                (s, mt) => panic!("step {step}: k{k} store {s:?} model {mt:?}"),
            }
        }
    }
}
