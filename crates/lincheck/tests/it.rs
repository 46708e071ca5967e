//! The checker against known histories, against stateright's `LinearizabilityTester` on random
//! short histories, and the process log format.

#![allow(clippy::unwrap_used)]

use oc_lincheck::{
    Grant, History, Model, ProcessLog, Recorder, check, check_by, check_tokens, read_logs,
};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// A compare-and-set register of a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum RegOp {
    Write(u8),
    Read,
    Cas(u8, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum RegRet {
    Done,
    Value(u8),
    Swapped(bool),
}

struct Register;

fn reg_apply(s: u8, op: RegOp) -> (u8, RegRet) {
    match op {
        RegOp::Write(v) => (v, RegRet::Done),
        RegOp::Read => (s, RegRet::Value(s)),
        RegOp::Cas(old, new) if s == old => (new, RegRet::Swapped(true)),
        RegOp::Cas(..) => (s, RegRet::Swapped(false)),
    }
}

impl Model for Register {
    type Op = RegOp;
    type Ret = RegRet;
    type State = u8;
    fn init(&self) -> u8 {
        0
    }
    fn step(&self, s: &u8, op: &RegOp, ret: Option<&RegRet>) -> Vec<u8> {
        let (next, want) = reg_apply(*s, *op);
        if ret.is_none_or(|r| *r == want) {
            vec![next]
        } else {
            vec![]
        }
    }
}

#[derive(Clone, Default)]
struct RegSpec(u8);

impl SequentialSpec for RegSpec {
    type Op = RegOp;
    type Ret = RegRet;
    fn invoke(&mut self, op: &RegOp) -> RegRet {
        let (next, ret) = reg_apply(self.0, *op);
        self.0 = next;
        ret
    }
}

/// A mutex handing out fencing tokens: a grant is valid when the mutex is free and its token
/// exceeds every earlier one (the implementation chooses the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MutexOp {
    Acquire(u8),
    Release(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MutexRet {
    Granted(u64),
    Busy,
    Released,
    NotHeld,
}

struct Mutex;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct MutexState {
    holder: Option<u8>,
    max: u64,
}

impl MutexState {
    /// The answer and the state after, `None` when `ret` is impossible; `ret: None` answers as
    /// the implementation would with the next token.
    fn apply(&self, op: MutexOp, ret: Option<MutexRet>) -> Option<(MutexState, MutexRet)> {
        let mut s = self.clone();
        let want = match op {
            MutexOp::Acquire(o) => match (s.holder, ret) {
                (None, Some(MutexRet::Granted(t))) if t > s.max => {
                    s.holder = Some(o);
                    s.max = t;
                    MutexRet::Granted(t)
                }
                (None, None) => {
                    s.holder = Some(o);
                    s.max += 1;
                    MutexRet::Granted(s.max)
                }
                (None, _) => return None,
                (Some(_), _) => MutexRet::Busy,
            },
            MutexOp::Release(o) if s.holder == Some(o) => {
                s.holder = None;
                MutexRet::Released
            }
            MutexOp::Release(_) => MutexRet::NotHeld,
        };
        ret.is_none_or(|r| r == want).then_some((s, want))
    }
}

impl Model for Mutex {
    type Op = MutexOp;
    type Ret = MutexRet;
    type State = MutexState;
    fn init(&self) -> MutexState {
        MutexState::default()
    }
    fn step(&self, s: &MutexState, op: &MutexOp, ret: Option<&MutexRet>) -> Vec<MutexState> {
        s.apply(*op, ret.copied())
            .map(|(s, _)| s)
            .into_iter()
            .collect()
    }
}

#[derive(Clone, Default)]
struct MutexSpec(MutexState);

impl SequentialSpec for MutexSpec {
    type Op = MutexOp;
    type Ret = MutexRet;
    fn invoke(&mut self, op: &MutexOp) -> MutexRet {
        let (next, ret) = self.0.apply(*op, None).unwrap();
        self.0 = next;
        ret
    }
    fn is_valid_step(&mut self, op: &MutexOp, ret: &MutexRet) -> bool {
        match self.0.apply(*op, Some(*ret)) {
            Some((next, _)) => {
                self.0 = next;
                true
            }
            None => false,
        }
    }
}

use oc_lincheck::SplitMix as Rng;

/// A random history of 2–4 threads with up to 4 operations each, interleaved at random, with
/// random answers (most histories are not linearizable, many are), fed to both checkers; the
/// last operations may stay in flight.
fn random_history<Op: Copy + std::fmt::Debug, Ret: Copy + PartialEq + std::fmt::Debug, S>(
    rng: &mut Rng,
    op: impl Fn(&mut Rng, u8) -> Op,
    ret: impl Fn(&mut Rng, Op) -> Ret,
    spec: S,
) -> (History<Op, Ret>, bool)
where
    S: SequentialSpec<Op = Op, Ret = Ret> + Clone,
{
    let threads = 2 + rng.below(3) as u8;
    let mut left: Vec<u64> = (0..threads).map(|_| 1 + rng.below(4)).collect();
    let mut flying: Vec<Option<(Op, u64)>> = vec![None; threads as usize];
    let mut tester = LinearizabilityTester::new(spec);
    let mut h = History::new();
    let mut t = 0u64;
    let steps = rng.below(20) + 4;
    for _ in 0..steps {
        let th = rng.below(u64::from(threads)) as usize;
        t += 1;
        match flying[th].take() {
            Some((o, inv)) => {
                let r = ret(rng, o);
                tester.on_return(th, r).unwrap();
                h.push(th as u64, o, inv, Some((t, r)));
            }
            None if left[th] > 0 => {
                left[th] -= 1;
                let o = op(rng, th as u8);
                tester.on_invoke(th, o).unwrap();
                flying[th] = Some((o, t));
            }
            None => {}
        }
    }
    for (th, f) in flying.into_iter().enumerate() {
        if let Some((o, inv)) = f {
            h.push(th as u64, o, inv, None);
        }
    }
    (h, tester.is_consistent())
}

#[test]
fn agrees_with_stateright_on_random_register_histories() {
    let (mut yes, mut no) = (0, 0);
    for seed in 0..4_000u64 {
        let mut rng = Rng::new(seed);
        let (h, theirs) = random_history(
            &mut rng,
            |r, _| match r.below(3) {
                0 => RegOp::Write(r.below(3) as u8),
                1 => RegOp::Read,
                _ => RegOp::Cas(r.below(3) as u8, r.below(3) as u8),
            },
            |r, o| match o {
                RegOp::Write(_) => RegRet::Done,
                RegOp::Read => RegRet::Value(r.below(3) as u8),
                RegOp::Cas(..) => RegRet::Swapped(r.below(2) == 0),
            },
            RegSpec::default(),
        );
        let ours = check(&Register, &h).is_linearizable();
        assert_eq!(ours, theirs, "seed {seed}: {h:#?}");
        if ours { yes += 1 } else { no += 1 }
    }
    // Both verdicts are common, so agreement is not agreement on one answer.
    assert!(yes > 500 && no > 500, "linearizable {yes}, not {no}");
}

#[test]
fn agrees_with_stateright_on_random_fencing_mutex_histories() {
    let (mut yes, mut no) = (0, 0);
    for seed in 0..4_000u64 {
        let mut rng = Rng::new(seed ^ 0xfeed);
        let (h, theirs) = random_history(
            &mut rng,
            |r, th| {
                if r.below(2) == 0 {
                    MutexOp::Acquire(th)
                } else {
                    MutexOp::Release(th)
                }
            },
            |r, o| match o {
                MutexOp::Acquire(_) if r.below(3) == 0 => MutexRet::Busy,
                MutexOp::Acquire(_) => MutexRet::Granted(1 + r.below(4)),
                MutexOp::Release(_) if r.below(2) == 0 => MutexRet::NotHeld,
                MutexOp::Release(_) => MutexRet::Released,
            },
            MutexSpec::default(),
        );
        let ours = check(&Mutex, &h).is_linearizable();
        assert_eq!(ours, theirs, "seed {seed}: {h:#?}");
        if ours { yes += 1 } else { no += 1 }
    }
    assert!(yes > 300 && no > 300, "linearizable {yes}, not {no}");
}

#[test]
fn real_time_order_is_respected() {
    // A write returns before a read starts: the read must see it.
    let mut h = History::new();
    h.push(1, RegOp::Write(2), 0, Some((10, RegRet::Done)));
    h.push(2, RegOp::Read, 11, Some((12, RegRet::Value(0))));
    assert!(!check(&Register, &h).is_linearizable());
    // Overlapping, either order goes.
    let mut h = History::new();
    h.push(1, RegOp::Write(2), 0, Some((10, RegRet::Done)));
    h.push(2, RegOp::Read, 9, Some((12, RegRet::Value(0))));
    assert!(check(&Register, &h).is_linearizable());
}

#[test]
fn an_unknown_outcome_may_or_may_not_take_effect() {
    // The crashed write explains a later read of 5...
    let mut h = History::new();
    h.push(1, RegOp::Write(5), 0, None);
    h.push(2, RegOp::Read, 10, Some((11, RegRet::Value(5))));
    h.push(2, RegOp::Read, 20, Some((21, RegRet::Value(5))));
    assert!(check(&Register, &h).is_linearizable());
    // ... or its absence a read of 0, but not 0 after 5.
    h.push(2, RegOp::Read, 30, Some((31, RegRet::Value(0))));
    let report = check(&Register, &h);
    assert!(!report.is_linearizable());
    assert_eq!(report.unknown, 1);
    let failure = report.failures[0].to_string();
    assert!(failure.contains("Read -> Value(0)"), "{failure}");
}

#[test]
fn partitions_are_checked_separately_and_named() {
    let mut h: History<(u8, RegOp), RegRet> = History::new();
    let ok = |k| {
        [
            ((k, RegOp::Write(1)), 0, 5, RegRet::Done),
            ((k, RegOp::Read), 6, 7, RegRet::Value(1)),
        ]
    };
    for (op, inv, ret, r) in ok(0).into_iter().chain(ok(1)) {
        h.push(1, op, inv, Some((ret, r)));
    }
    h.push(3, (2, RegOp::Read), 0, Some((1, RegRet::Value(1))));
    struct Keyed;
    impl Model for Keyed {
        type Op = (u8, RegOp);
        type Ret = RegRet;
        type State = u8;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, s: &u8, op: &(u8, RegOp), ret: Option<&RegRet>) -> Vec<u8> {
            Register.step(s, &op.1, ret)
        }
    }
    let report = check_by(&Keyed, &h, |e| Some(e.op.0));
    assert_eq!(report.partitions, 3);
    assert_eq!(report.operations, 5);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].partition, "2");
    // As one register (keys ignored) the read of key 2 finds what key 0's write left: only the
    // partition tells the objects apart.
    assert!(check(&Keyed, &h).is_linearizable());
}

#[test]
fn a_search_over_budget_is_undecided_not_passed() {
    // 14 concurrent writes of distinct values and a final read of a value never written.
    let mut h = History::new();
    for i in 0..14u8 {
        h.push(
            u64::from(i),
            RegOp::Write(i + 1),
            0,
            Some((100, RegRet::Done)),
        );
    }
    h.push(99, RegOp::Read, 0, Some((100, RegRet::Value(200))));
    let report = oc_lincheck::check_with(&Register, &h, |_| Some(()), 1_000);
    assert!(!report.is_linearizable());
    assert!(report.failures.is_empty());
    assert_eq!(report.undecided.len(), 1);
    // With the default budget the memoized search settles it.
    let report = check(&Register, &h);
    assert_eq!(report.failures.len(), 1, "{report}");
}

#[test]
fn threads_record_real_intervals() {
    let rec: Recorder<RegOp, RegRet> = Recorder::new();
    let cell = parking_lot::Mutex::new(0u8);
    std::thread::scope(|s| {
        for p in 0..4u64 {
            let rec = &rec;
            let cell = &cell;
            s.spawn(move || {
                for i in 0..50u8 {
                    let op = if i % 2 == 0 {
                        RegOp::Write(i % 5)
                    } else {
                        RegOp::Read
                    };
                    let call = rec.invoke(p, op);
                    let mut c = cell.lock();
                    let (next, ret) = reg_apply(*c, op);
                    *c = next;
                    drop(c);
                    call.returned(ret);
                }
                // A call dropped without an answer counts as unknown.
                let _lost = rec.invoke(p, RegOp::Write(4));
            });
        }
    });
    let h = rec.into_history();
    assert_eq!(h.len(), 204);
    assert_eq!(h.unknown(), 4);
    assert!(h.events.iter().all(|e| e.invoked <= e.returned()));
    let report = check(&Register, &h);
    assert!(report.is_linearizable(), "{report}");
}

#[test]
fn process_logs_join_and_keep_unfinished_operations() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    let mut la = ProcessLog::open(&a, 1).unwrap();
    let id = la.invoke(&RegOp::Write(3)).unwrap();
    la.returned(id, &RegRet::Done).unwrap();
    la.invoke(&RegOp::Write(4)).unwrap(); // killed here
    let mut lb = ProcessLog::open(&b, 2).unwrap();
    let id = lb.invoke(&RegOp::Read).unwrap();
    lb.returned(id, &RegRet::Value(4)).unwrap();
    // A torn line, as a process killed inside its write leaves.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&b)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"k\":\"invoke\",\"p\":2,\"i"))
        .unwrap();
    let h: History<RegOp, RegRet> = read_logs(&[&a, &b]).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h.unknown(), 1);
    assert!(check(&Register, &h).is_linearizable());
    let saved = dir.path().join("history.json");
    h.save(&saved).unwrap();
    assert_eq!(History::load(&saved).unwrap(), h);
}

#[test]
fn tokens_must_be_unique_and_grow_in_real_time() {
    let g = |invoked, returned, token| Grant {
        invoked,
        returned,
        token,
    };
    // Overlapping grants may come in either order.
    assert!(check_tokens(&[g(0, 10, 2), g(5, 12, 1), g(13, 14, 3)]).is_ok());
    let r = check_tokens(&[g(0, 10, 5), g(11, 12, 4), g(20, 21, 4)]);
    assert_eq!(r.duplicates, vec![4]);
    assert_eq!(r.reorders, vec![(5, 4), (5, 4)]);
    assert!(
        r.to_string()
            .contains("1 tokens repeated, 2 out of real-time order")
    );
}
