//! A model of the lock rules, for property tests of any [`LockManager`] (feature `testkit`):
//! random acquire/release/renew/expire sequences run against the manager and an independent
//! model; after every step they agree, the lock table never holds two conflicting locks, and
//! fencing tokens only grow.
//!
//! ```
//! use std::sync::Arc;
//! use oc_locks::{ManualClock, MemoryLockManager, Timestamp, TtlPolicy, testkit::model};
//! use proptest::prelude::*;
//! proptest!(ProptestConfig::with_cases(8), |(ops in model::ops())| {
//!     let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
//!     let m = MemoryLockManager::with(Arc::new(clock.clone()), TtlPolicy::default());
//!     model::run(&m, &clock, &ops);
//! });
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::{Clock, Error, LockManager, LockMode, LockRequest, ManualClock, Owner, Resource};

const RESOURCES: [&str; 6] = ["a", "a/b", "a/b/c", "a/d", "e", "e/f"];
const OWNERS: [&str; 3] = ["x", "y", "z"];

/// One operation: (owner, resource, exclusive, ttl in seconds) indexes into fixed names.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Acquire(usize, usize, bool, u64),
    Release(usize, usize),
    Renew(usize, usize, u64),
    Advance(u64),
    Sweep,
    ReleaseOwner(usize),
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    let r = 0..RESOURCES.len();
    let o = 0..OWNERS.len();
    prop_oneof![
        5 => (o.clone(), r.clone(), any::<bool>(), 1..20u64).prop_map(|(o, r, x, t)| Op::Acquire(o, r, x, t)),
        3 => (o.clone(), r.clone()).prop_map(|(o, r)| Op::Release(o, r)),
        1 => (o.clone(), r, 1..20u64).prop_map(|(o, r, t)| Op::Renew(o, r, t)),
        2 => (1..10u64).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        1 => o.prop_map(Op::ReleaseOwner),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct M {
    mode: LockMode,
    holds: u32,
    token: u64,
    expires: i64,
}

#[derive(Debug, PartialEq)]
enum Out {
    Ok,
    Conflict,
    NotHeld,
    Expired,
}

fn out<T>(r: Result<T, Error>) -> Out {
    match r {
        Ok(_) => Out::Ok,
        Err(Error::Conflict { .. }) => Out::Conflict,
        Err(Error::NotHeld { .. }) => Out::NotHeld,
        Err(Error::Expired { .. }) => Out::Expired,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn overlap(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// Up to 80 random operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

/// Runs `ops` against `m` (empty, on `clock`) and the model, panicking at the first
/// disagreement.
pub fn run(m: &dyn LockManager, clock: &ManualClock, ops: &[Op]) {
    // (resource, owner) -> lock
    let mut model: BTreeMap<(usize, usize), M> = BTreeMap::new();
    let mut last_token = 0u64;
    let mut now = clock.now().as_millis();
    for (step, op) in ops.iter().enumerate() {
        let live = |model: &BTreeMap<(usize, usize), M>, now: i64| -> Vec<((usize, usize), M)> {
            model
                .iter()
                .filter(|(_, l)| l.expires > now)
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
        let (got, want) = match *op {
            Op::Acquire(o, r, exclusive, ttl) => {
                let mode = if exclusive {
                    LockMode::Exclusive
                } else {
                    LockMode::Shared
                };
                let conflicts = live(&model, now).iter().any(|((r2, o2), l)| {
                    *o2 != o
                        && overlap(RESOURCES[r], RESOURCES[*r2])
                        && (exclusive || l.mode == LockMode::Exclusive)
                });
                let own_live = model.get(&(r, o)).filter(|l| l.expires > now).cloned();
                let want = match own_live {
                    Some(own) if !(own.mode == LockMode::Shared && exclusive && conflicts) => {
                        let l = model.get_mut(&(r, o)).unwrap();
                        l.holds += 1;
                        l.expires = l.expires.max(now + (ttl * 1000) as i64);
                        if exclusive {
                            l.mode = LockMode::Exclusive;
                        }
                        Out::Ok
                    }
                    Some(_) => Out::Conflict,
                    None if conflicts => Out::Conflict,
                    None => {
                        last_token += 1;
                        model.insert(
                            (r, o),
                            M {
                                mode,
                                holds: 1,
                                token: last_token,
                                expires: now + (ttl * 1000) as i64,
                            },
                        );
                        Out::Ok
                    }
                };
                if want == Out::Ok {
                    // A grant on a resource clears its lapsed locks.
                    model.retain(|(r2, _), l| *r2 != r || l.expires > now);
                }
                let req = LockRequest::new(RESOURCES[r], OWNERS[o], mode)
                    .unwrap()
                    .ttl(Duration::from_secs(ttl));
                let got = m.try_acquire(&req);
                if let Ok(l) = &got {
                    assert_eq!(l.token, model[&(r, o)].token, "step {step}: token");
                    assert_eq!(l.holds, model[&(r, o)].holds, "step {step}: holds");
                }
                (out(got), want)
            }
            Op::Release(o, r) => {
                let want = match model.get_mut(&(r, o)) {
                    None => Out::NotHeld,
                    Some(l) if l.expires <= now => {
                        model.remove(&(r, o));
                        Out::Expired
                    }
                    Some(l) => {
                        l.holds -= 1;
                        if l.holds == 0 {
                            model.remove(&(r, o));
                        }
                        Out::Ok
                    }
                };
                (
                    out(m.release(
                        &Resource::new(RESOURCES[r]).unwrap(),
                        &Owner::new(OWNERS[o]).unwrap(),
                    )),
                    want,
                )
            }
            Op::Renew(o, r, ttl) => {
                let want = match model.get_mut(&(r, o)) {
                    None => Out::NotHeld,
                    Some(l) if l.expires <= now => {
                        model.remove(&(r, o));
                        Out::Expired
                    }
                    Some(l) => {
                        l.expires = now + (ttl * 1000) as i64;
                        Out::Ok
                    }
                };
                let got = m.renew(
                    &Resource::new(RESOURCES[r]).unwrap(),
                    &Owner::new(OWNERS[o]).unwrap(),
                    Some(Duration::from_secs(ttl)),
                );
                (out(got), want)
            }
            Op::Advance(s) => {
                clock.advance(Duration::from_secs(s));
                now += (s * 1000) as i64;
                (Out::Ok, Out::Ok)
            }
            Op::Sweep => {
                let want = model.values().filter(|l| l.expires <= now).count();
                model.retain(|_, l| l.expires > now);
                assert_eq!(m.sweep_expired().unwrap().len(), want, "step {step}: swept");
                (Out::Ok, Out::Ok)
            }
            Op::ReleaseOwner(o) => {
                let want = model.keys().filter(|(_, o2)| *o2 == o).count();
                model.retain(|(_, o2), _| *o2 != o);
                assert_eq!(
                    m.release_owner(&Owner::new(OWNERS[o]).unwrap())
                        .unwrap()
                        .len(),
                    want,
                    "step {step}: released"
                );
                (Out::Ok, Out::Ok)
            }
        };
        assert_eq!(got, want, "step {step}: {op:?}");
        // The live table matches the model and never holds two conflicting locks.
        let listed = m.list().unwrap();
        let expected: Vec<(String, String, LockMode, u32, u64)> = live(&model, now)
            .into_iter()
            .map(|((r, o), l)| {
                (
                    RESOURCES[r].to_owned(),
                    OWNERS[o].to_owned(),
                    l.mode,
                    l.holds,
                    l.token,
                )
            })
            .collect();
        let mut actual: Vec<(String, String, LockMode, u32, u64)> = listed
            .iter()
            .map(|l| {
                (
                    l.resource.to_string(),
                    l.owner.to_string(),
                    l.mode,
                    l.holds,
                    l.token,
                )
            })
            .collect();
        actual.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(actual, expected, "step {step}: live locks");
        for a in &listed {
            for b in &listed {
                if a.owner != b.owner && a.resource.overlaps(&b.resource) {
                    assert!(
                        a.mode == LockMode::Shared && b.mode == LockMode::Shared,
                        "step {step}: {a:?} conflicts with {b:?}"
                    );
                }
            }
        }
    }
}
