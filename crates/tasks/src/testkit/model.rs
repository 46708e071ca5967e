//! A model of the state machine and the work graph, for property tests of any [`TaskStore`]
//! (feature `testkit`): random sequences of operations run against the store and the model,
//! which must agree on every outcome, status, token, attempt count, version, dependency,
//! label and `run_at`, and on exactly which tasks are ready and which blocked.
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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use crate::{
    Clock, Error, LabelFilter, ManualClock, NewTask, OnDependents, Order, Readiness, RetryPolicy,
    TaskFilter, TaskId, TaskQuery, TaskStatus, TaskStore, Timestamp,
};

const KEYS: u8 = 4;

/// What a created task carries besides its key.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Spec {
    /// Bit `i` set: depends on `k{i}` (its own bit is a self-dependency).
    pub deps: u8,
    /// Label `l0` or `l1`.
    pub label: Option<u8>,
    /// Not ready for this many seconds.
    pub delay: Option<u64>,
    /// Retries by backoff (1 s, then 2 s) instead of failing for good.
    pub backoff: bool,
    /// Unique key `u0` or `u1`.
    pub key: Option<u8>,
}

/// One operation on the task keyed `k0`..`k3`.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Create(u8, Spec),
    Start(u8),
    Claim(u8, u64),
    /// Claims the next ready task (with label `l{n}` when given).
    ClaimNext(u64, Option<u8>),
    Heartbeat(u8, TokenPick),
    Release(u8, TokenPick),
    Complete(u8, TokenPick),
    Fail(u8, TokenPick),
    Cancel(u8),
    Retry(u8),
    Delete(u8, OnDependents),
    AddDep(u8, u8),
    RemoveDep(u8, u8),
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

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![2 => Just(0u8), 3 => (0..KEYS).prop_map(|d| 1u8 << d), 1 => 0..(1u8 << KEYS)],
        proptest::option::of(0..2u8),
        proptest::option::weighted(0.2, 1..5u64),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.3, 0..2u8),
    )
        .prop_map(|(deps, label, delay, backoff, key)| Spec {
            deps,
            label,
            delay,
            backoff,
            key,
        })
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS;
    let pick = prop_oneof![
        4 => Just(TokenPick::Current),
        1 => Just(TokenPick::Stale),
        1 => Just(TokenPick::Missing)
    ];
    let mode = prop_oneof![
        Just(OnDependents::Refuse),
        Just(OnDependents::Cascade),
        Just(OnDependents::DropEdges)
    ];
    prop_oneof![
        4 => (k.clone(), spec()).prop_map(|(k, s)| Op::Create(k, s)),
        1 => k.clone().prop_map(Op::Start),
        2 => (k.clone(), 1..50u64).prop_map(|(k, t)| Op::Claim(k, t)),
        4 => (1..50u64, proptest::option::weighted(0.3, 0..2u8))
            .prop_map(|(t, l)| Op::ClaimNext(t, l)),
        1 => (k.clone(), pick.clone()).prop_map(|(k, p)| Op::Heartbeat(k, p)),
        1 => (k.clone(), pick.clone()).prop_map(|(k, p)| Op::Release(k, p)),
        4 => (k.clone(), pick.clone()).prop_map(|(k, p)| Op::Complete(k, p)),
        2 => (k.clone(), pick).prop_map(|(k, p)| Op::Fail(k, p)),
        1 => k.clone().prop_map(Op::Cancel),
        1 => k.clone().prop_map(Op::Retry),
        1 => (k.clone(), mode).prop_map(|(k, m)| Op::Delete(k, m)),
        2 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::AddDep(a, b)),
        2 => (k.clone(), k).prop_map(|(a, b)| Op::RemoveDep(a, b)),
        2 => (1..8u64).prop_map(Op::Advance),
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
    deps: BTreeSet<u8>,
    label: Option<u8>,
    run_at: Option<i64>,
    backoff: bool,
    key: Option<u8>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    None,
    NotFound,
    Exists,
    Invalid,
    LeaseLost,
    Duplicate(TaskId),
    Cycle,
    Missing,
    HasDependents,
    KeyHeld,
}

fn outcome<T>(r: Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(Error::AlreadyExists { .. }) => Outcome::Exists,
        Err(Error::InvalidTransition { .. }) => Outcome::Invalid,
        Err(Error::LeaseLost { .. }) => Outcome::LeaseLost,
        Err(Error::Cycle { .. }) => Outcome::Cycle,
        Err(Error::MissingReference { .. }) => Outcome::Missing,
        Err(Error::HasDependents { .. }) => Outcome::HasDependents,
        Err(Error::UniqueKeyHeld { .. }) => Outcome::KeyHeld,
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
    fn ready(&self, k: u8) -> bool {
        let Some(t) = self.tasks.get(&k) else {
            return false;
        };
        t.status == TaskStatus::Pending
            && t.run_at.is_none_or(|at| at <= self.now)
            && t.deps.iter().all(|d| {
                self.tasks
                    .get(d)
                    .is_some_and(|x| x.status == TaskStatus::Completed)
            })
    }

    /// The task other than `except` holding key `u`: pending or running.
    fn holder(&self, u: u8, except: Option<u8>) -> Option<u8> {
        self.tasks
            .iter()
            .find(|(k, t)| {
                Some(**k) != except
                    && t.key == Some(u)
                    && matches!(t.status, TaskStatus::Pending | TaskStatus::Running)
            })
            .map(|(k, _)| *k)
    }

    /// Whether `to` can be reached from `from` along dependencies.
    fn reaches(&self, from: u8, to: u8) -> bool {
        let mut stack = vec![from];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if seen.insert(x)
                && let Some(t) = self.tasks.get(&x)
            {
                stack.extend(t.deps.iter().copied());
            }
        }
        false
    }

    /// The 1 s, 2 s, 2 s… backoff of a failed run, if the task has one and attempts left.
    fn backoff(&self, t: &M) -> Option<i64> {
        (t.backoff && t.attempts < MAX_ATTEMPTS)
            .then(|| self.now + 1000 * (1i64 << t.attempts.saturating_sub(1).min(1)))
    }

    fn claim(&mut self, k: u8, ttl: u64) -> Outcome {
        let now = self.now;
        match self.tasks.get_mut(&k) {
            None => Outcome::NotFound,
            Some(m) if m.status != TaskStatus::Pending => Outcome::Invalid,
            Some(m) => {
                self.last_token += 1;
                m.status = TaskStatus::Running;
                m.token = Some(self.last_token);
                m.expires = now + i64::try_from(ttl * 1000).unwrap();
                m.attempts += 1;
                m.version += 1;
                Outcome::Ok
            }
        }
    }

    fn finish(&mut self, k: u8, presented: Option<u64>, to: Option<TaskStatus>) -> Outcome {
        let now = self.now;
        let Some(m) = self.tasks.get(&k).cloned() else {
            return Outcome::NotFound;
        };
        if m.token != presented && (presented.is_some() || m.status == TaskStatus::Running) {
            return Outcome::LeaseLost;
        }
        if m.status != TaskStatus::Running {
            return Outcome::Invalid;
        }
        let retry_at = self.backoff(&m);
        let Some(t) = self.tasks.get_mut(&k) else {
            return Outcome::NotFound;
        };
        match (to, retry_at) {
            (Some(TaskStatus::Failed), Some(at)) => {
                t.status = TaskStatus::Pending;
                t.token = None;
                t.run_at = Some(at);
            }
            (Some(s), _) => {
                t.status = s;
                t.token = None;
            }
            (None, _) => t.expires = now + 30_000,
        }
        t.version += 1;
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

    fn create(&mut self, k: u8, s: &Spec) -> Outcome {
        let deps: BTreeSet<u8> = (0..KEYS).filter(|i| s.deps & (1 << i) != 0).collect();
        if deps.contains(&k) {
            return Outcome::Cycle;
        }
        if let Some(h) = s.key.and_then(|u| self.holder(u, None)) {
            return Outcome::Duplicate(id(h));
        }
        if deps.iter().any(|d| !self.tasks.contains_key(d)) {
            return Outcome::Missing;
        }
        if self.tasks.contains_key(&k) {
            return Outcome::Exists;
        }
        self.created += 1;
        self.tasks.insert(
            k,
            M {
                status: TaskStatus::Pending,
                token: None,
                expires: 0,
                attempts: 0,
                version: 1,
                created: self.created,
                deps,
                label: s.label,
                run_at: s.delay.map(|d| self.now + i64::try_from(d * 1000).unwrap()),
                backoff: s.backoff,
                key: s.key,
            },
        );
        Outcome::Ok
    }

    fn delete(&mut self, k: u8, mode: OnDependents) -> Outcome {
        if !self.tasks.contains_key(&k) {
            return Outcome::NotFound;
        }
        let dependents = |m: &Model, x: u8| -> Vec<u8> {
            m.tasks
                .iter()
                .filter(|(_, t)| t.deps.contains(&x))
                .map(|(d, _)| *d)
                .collect()
        };
        let mut doomed = vec![k];
        let mut i = 0;
        while i < doomed.len() {
            let below = dependents(self, doomed[i]);
            match mode {
                OnDependents::Refuse if !below.is_empty() => return Outcome::HasDependents,
                OnDependents::Cascade => {
                    for d in below {
                        if !doomed.contains(&d) {
                            doomed.push(d);
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        for d in &doomed {
            self.tasks.remove(d);
        }
        for t in self.tasks.values_mut() {
            let before = t.deps.len();
            t.deps.retain(|d| !doomed.contains(d));
            if t.deps.len() != before {
                t.version += 1;
            }
        }
        Outcome::Ok
    }
}

fn id(k: u8) -> TaskId {
    TaskId::new(format!("k{k}")).unwrap()
}

fn label(l: u8) -> String {
    format!("l{l}")
}

/// Up to 80 random operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

fn listed(store: &dyn TaskStore, r: Readiness) -> Vec<TaskId> {
    let q = TaskQuery::new(TaskFilter::new().readiness(r))
        .order(Order::Oldest)
        .limit(100);
    let mut ids: Vec<TaskId> = store
        .list(&q)
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.id)
        .collect();
    ids.sort();
    ids
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
        let (got, want) = match op {
            Op::Create(k, spec) => {
                let want = m.create(*k, spec);
                let mut new = NewTask::new("t").id(id(*k)).max_attempts(MAX_ATTEMPTS);
                for d in (0..KEYS).filter(|i| spec.deps & (1 << i) != 0) {
                    new = new.depends_on(id(d));
                }
                if let Some(l) = spec.label {
                    new = new.label(label(l));
                }
                if let Some(d) = spec.delay {
                    new = new.run_at(clock.now().saturating_add(Duration::from_secs(d)));
                }
                if spec.backoff {
                    new = new.retry(RetryPolicy::backoff(
                        Duration::from_secs(1),
                        Duration::from_secs(2),
                    ));
                }
                if let Some(u) = spec.key {
                    new = new.unique_key(format!("u{u}"));
                }
                let got = match store.submit(new) {
                    Ok(c) if c.duplicate => Outcome::Duplicate(c.task.id),
                    other => outcome(other),
                };
                // Distinct creation times keep claim_next's order fully determined.
                clock.advance(Duration::from_millis(1));
                m.now += 1;
                (got, want)
            }
            Op::Start(k) => {
                let want = match m.tasks.get_mut(k) {
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
                (outcome(store.start(&id(*k), "s")), want)
            }
            Op::Claim(k, ttl) => {
                let want = m.claim(*k, *ttl);
                let got = store.claim(&id(*k), "c", Duration::from_secs(*ttl));
                if let Ok(t) = &got {
                    assert_eq!(
                        t.lease.map(|l| l.token),
                        m.tasks[k].token,
                        "step {step}: token"
                    );
                }
                (outcome(got), want)
            }
            Op::ClaimNext(ttl, l) => {
                let next = m
                    .tasks
                    .iter()
                    .filter(|(k, t)| m.ready(**k) && l.is_none_or(|l| t.label == Some(l)))
                    .min_by_key(|(_, t)| t.created)
                    .map(|(k, _)| *k);
                let filter = match l {
                    Some(l) => LabelFilter::any().require(label(*l)),
                    None => LabelFilter::any(),
                };
                let got = store
                    .claim_next_matching("n", Duration::from_secs(*ttl), &filter)
                    .unwrap();
                assert_eq!(
                    got.as_ref().map(|t| t.id.clone()),
                    next.map(id),
                    "step {step}: claim_next picks"
                );
                let want = match next {
                    Some(k) => m.claim(k, *ttl),
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
                let tok = m.presented(*k, *pick);
                let want = match tok {
                    None => match m.tasks.get(k) {
                        None => Outcome::NotFound,
                        // Heartbeats always name a token; model "missing" as token 0, never handed out.
                        Some(_) => Outcome::LeaseLost,
                    },
                    Some(t) => m.finish(*k, Some(t), None),
                };
                (
                    outcome(store.heartbeat(&id(*k), tok.unwrap_or(0), Duration::from_secs(30))),
                    want,
                )
            }
            Op::Release(k, pick) => {
                let tok = m.presented(*k, *pick);
                let want = match m.tasks.get_mut(k) {
                    None => Outcome::NotFound,
                    // Only the current lease's token gives a task back, and only a running
                    // task holds one.
                    Some(t) if tok.is_none() || t.token != tok => Outcome::LeaseLost,
                    Some(t) => {
                        t.status = TaskStatus::Pending;
                        t.token = None;
                        t.attempts -= 1;
                        t.version += 1;
                        Outcome::Ok
                    }
                };
                (outcome(store.release(&id(*k), tok.unwrap_or(0))), want)
            }
            Op::Complete(k, pick) => {
                let tok = m.presented(*k, *pick);
                let want = m.finish(*k, tok, Some(TaskStatus::Completed));
                (outcome(store.complete(&id(*k), tok, None)), want)
            }
            Op::Fail(k, pick) => {
                let tok = m.presented(*k, *pick);
                let want = m.finish(*k, tok, Some(TaskStatus::Failed));
                (outcome(store.fail(&id(*k), tok, "f")), want)
            }
            Op::Cancel(k) => {
                let want = match m.tasks.get_mut(k) {
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
                (outcome(store.cancel(&id(*k))), want)
            }
            Op::Retry(k) => {
                let held = m
                    .tasks
                    .get(k)
                    .and_then(|t| t.key)
                    .and_then(|u| m.holder(u, Some(*k)));
                let want = match m.tasks.get_mut(k) {
                    None => Outcome::NotFound,
                    Some(t) if !matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled) => {
                        Outcome::Invalid
                    }
                    Some(_) if held.is_some() => Outcome::KeyHeld,
                    Some(t) => {
                        t.status = TaskStatus::Pending;
                        t.version += 1;
                        Outcome::Ok
                    }
                };
                (outcome(store.retry(&id(*k))), want)
            }
            Op::Delete(k, mode) => {
                let want = m.delete(*k, *mode);
                (outcome(store.delete_with(&id(*k), None, *mode)), want)
            }
            Op::AddDep(k, on) => {
                let want = if !m.tasks.contains_key(k) {
                    Outcome::NotFound
                } else if k == on {
                    Outcome::Cycle
                } else if !m.tasks.contains_key(on) {
                    Outcome::Missing
                } else if m.tasks[k].deps.contains(on) {
                    Outcome::Ok
                } else if m.reaches(*on, *k) {
                    Outcome::Cycle
                } else {
                    let t = m.tasks.get_mut(k).unwrap();
                    t.deps.insert(*on);
                    t.version += 1;
                    Outcome::Ok
                };
                (outcome(store.add_dependency(&id(*k), &id(*on))), want)
            }
            Op::RemoveDep(k, on) => {
                let want = match m.tasks.get_mut(k) {
                    None => Outcome::NotFound,
                    Some(t) => {
                        if t.deps.remove(on) {
                            t.version += 1;
                        }
                        Outcome::Ok
                    }
                };
                (outcome(store.remove_dependency(&id(*k), &id(*on))), want)
            }
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(*secs));
                m.now += i64::try_from(secs * 1000).unwrap();
                (Outcome::Ok, Outcome::Ok)
            }
            Op::Reap => {
                let now = m.now;
                let mut want: Vec<u8> = Vec::new();
                let keys: Vec<u8> = m.tasks.keys().copied().collect();
                for k in keys {
                    let t = m.tasks[&k].clone();
                    if t.status == TaskStatus::Running && t.token.is_some() && t.expires <= now {
                        let retry_at = m.backoff(&t);
                        let t = m.tasks.get_mut(&k).unwrap();
                        if t.attempts >= MAX_ATTEMPTS {
                            t.status = TaskStatus::Failed;
                        } else {
                            t.status = TaskStatus::Pending;
                            if retry_at.is_some() {
                                t.run_at = retry_at;
                            }
                        }
                        t.token = None;
                        t.version += 1;
                        want.push(k);
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
                    let deps: Vec<TaskId> = mt.deps.iter().map(|d| id(*d)).collect();
                    assert_eq!(t.depends_on, deps, "step {step}: k{k} dependencies");
                    assert_eq!(
                        t.run_at.map(|r| r.as_millis()),
                        mt.run_at,
                        "step {step}: k{k} run_at"
                    );
                    assert_eq!(
                        t.labels,
                        mt.label.map(label).into_iter().collect::<Vec<_>>(),
                        "step {step}: k{k} labels"
                    );
                }
                (s, mt) => panic!("step {step}: k{k} store {s:?} model {mt:?}"),
            }
        }
        let ready: Vec<TaskId> = (0..KEYS).filter(|k| m.ready(*k)).map(id).collect();
        let blocked: Vec<TaskId> = m
            .tasks
            .iter()
            .filter(|(k, t)| t.status == TaskStatus::Pending && !m.ready(**k))
            .map(|(k, _)| id(*k))
            .collect();
        assert_eq!(
            listed(store, Readiness::Ready),
            ready,
            "step {step}: ready set"
        );
        assert_eq!(
            listed(store, Readiness::Blocked),
            blocked,
            "step {step}: blocked set"
        );
        let stats = store.stats(0).unwrap();
        let split = (ready.len() as u64, blocked.len() as u64);
        assert_eq!(
            (stats.ready, stats.blocked),
            split,
            "step {step}: ready and blocked counts"
        );
        let by_status =
            TaskStatus::ALL.map(|s| m.tasks.values().filter(|t| t.status == s).count() as u64);
        for cap in [1, 3, u64::MAX] {
            super::graph::assert_counts(store, cap, by_status, split, &format!("step {step}"));
        }
    }
}
