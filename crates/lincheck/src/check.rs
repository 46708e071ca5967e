//! The linearizability search.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::Hash;

use crate::{Event, History};

/// A sequential specification: the object as if one operation ran at a time.
pub trait Model {
    /// An operation as asked.
    type Op: fmt::Debug;
    /// An answer.
    type Ret: fmt::Debug;
    /// The object's state; compared and hashed to memoize the search, so keep it small and
    /// canonical (sorted collections, no timestamps that do not matter).
    type State: Clone + Eq + Hash + fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Every state `op` may leave `state` in when it answered `ret` (`None`: the answer is
    /// unknown, so every answer it could have given). Empty when that answer is impossible.
    fn step(&self, state: &Self::State, op: &Self::Op, ret: Option<&Self::Ret>)
    -> Vec<Self::State>;
}

/// A part of a history for which no linearization exists.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The part's key (`check_by`), or `"all"`.
    pub partition: String,
    /// How many operations the part has.
    pub operations: usize,
    /// The longest linearizable prefix found, last operations last (at most 12 shown).
    pub prefix: Vec<String>,
    /// The operations that could come next after that prefix, none of which the model accepts.
    pub stuck: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "partition {}: no linearization of its {} operations",
            self.partition, self.operations
        )?;
        writeln!(f, "  longest linearizable prefix ends with:")?;
        for op in &self.prefix {
            writeln!(f, "    {op}")?;
        }
        writeln!(f, "  then none of these is accepted:")?;
        for op in &self.stuck {
            writeln!(f, "    {op}")?;
        }
        Ok(())
    }
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Independent parts checked.
    pub partitions: usize,
    /// Operations checked (those a partition key left out are not counted).
    pub operations: usize,
    /// Operations among them with an unknown outcome.
    pub unknown: usize,
    /// Search configurations visited, over all parts.
    pub nodes: u64,
    /// The largest part, in operations.
    pub largest: usize,
    /// Parts with no linearization.
    pub failures: Vec<Failure>,
    /// Parts whose search exceeded the budget: neither passed nor failed.
    pub undecided: Vec<String>,
}

impl Report {
    /// Whether every part has a linearization.
    pub fn is_linearizable(&self) -> bool {
        self.failures.is_empty() && self.undecided.is_empty()
    }

    /// Adds another report's figures to this one.
    pub fn merge(&mut self, other: Report) {
        self.partitions += other.partitions;
        self.operations += other.operations;
        self.unknown += other.unknown;
        self.nodes += other.nodes;
        self.largest = self.largest.max(other.largest);
        self.failures.extend(other.failures);
        self.undecided.extend(other.undecided);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} operations ({} of unknown outcome) in {} partitions (largest {}), {} search nodes: {} not linearizable, {} undecided",
            self.operations,
            self.unknown,
            self.partitions,
            self.largest,
            self.nodes,
            self.failures.len(),
            self.undecided.len()
        )?;
        for failure in &self.failures {
            write!(f, "{failure}")?;
        }
        for part in &self.undecided {
            writeln!(f, "partition {part}: search budget exceeded")?;
        }
        Ok(())
    }
}

/// Search configurations one part may visit before it is reported undecided.
const BUDGET: u64 = 5_000_000;

/// Checks the whole history as one part.
pub fn check<M: Model>(model: &M, history: &History<M::Op, M::Ret>) -> Report {
    check_by(model, history, |_| Some("all"))
}

/// Checks each part of the history separately: `key` names the part an operation belongs to
/// (`None` leaves it out). Sound when the parts are independent objects, so that the model's
/// state is the product of the parts' (Herlihy and Wing's locality).
pub fn check_by<M: Model, K: Ord + fmt::Debug>(
    model: &M,
    history: &History<M::Op, M::Ret>,
    key: impl Fn(&Event<M::Op, M::Ret>) -> Option<K>,
) -> Report {
    check_with(model, history, key, BUDGET)
}

/// As [`check_by`], with a budget of search configurations per part.
pub fn check_with<M: Model, K: Ord + fmt::Debug>(
    model: &M,
    history: &History<M::Op, M::Ret>,
    key: impl Fn(&Event<M::Op, M::Ret>) -> Option<K>,
    budget: u64,
) -> Report {
    let mut parts: BTreeMap<K, Part<'_, M>> = BTreeMap::new();
    for e in &history.events {
        if let Some(k) = key(e) {
            parts.entry(k).or_default().push(e);
        }
    }
    let mut report = Report::default();
    for (k, events) in parts {
        report.partitions += 1;
        report.operations += events.len();
        report.unknown += events.iter().filter(|e| e.ret().is_none()).count();
        report.largest = report.largest.max(events.len());
        let name = format!("{k:?}");
        let (nodes, verdict) = search(model, events, budget);
        report.nodes += nodes;
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Undecided => report.undecided.push(name),
            Verdict::Not {
                operations,
                prefix,
                stuck,
            } => report.failures.push(Failure {
                partition: name,
                operations,
                prefix,
                stuck,
            }),
        }
    }
    report
}

type Part<'h, M> = Vec<&'h Event<<M as Model>::Op, <M as Model>::Ret>>;

/// The candidates of a configuration on the search path (operation, state after it), and the
/// next one to try.
type Frame<S> = (Vec<(usize, S)>, usize);

enum Verdict {
    Linearizable,
    Undecided,
    Not {
        operations: usize,
        prefix: Vec<String>,
        stuck: Vec<String>,
    },
}

/// A set of operation indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
}

fn describe<O: fmt::Debug, R: fmt::Debug>(e: &Event<O, R>, t0: u64) -> String {
    let inv = e.invoked.saturating_sub(t0) / 1_000;
    match e.ret() {
        Some(r) => format!(
            "p{} [{inv}µs, {}µs] {:?} -> {r:?}",
            e.process,
            e.returned().saturating_sub(t0) / 1_000,
            e.op
        ),
        None => format!("p{} [{inv}µs, ?] {:?} -> unknown", e.process, e.op),
    }
}

/// Depth-first search for a linearization over (operations linearized, model state), visiting
/// each configuration once. An operation may go next when it was invoked before every pending
/// operation with a known answer returned; operations of unknown outcome may go at any point
/// after their invocation, or never.
fn search<M: Model>(model: &M, mut events: Part<'_, M>, budget: u64) -> (u64, Verdict) {
    events.sort_by_key(|e| (e.invoked, e.returned()));
    let n = events.len();
    let known = events.iter().filter(|e| e.ret().is_some()).count();
    let mut done = Bits::new(n);
    let mut known_done = 0;
    let mut states = vec![model.init()];
    let mut path: Vec<usize> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut best_stuck: Vec<usize> = Vec::new();
    let mut frames: Vec<Frame<M::State>> = Vec::new();
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut nodes = 0u64;
    loop {
        if known_done == known {
            return (nodes, Verdict::Linearizable);
        }
        nodes += 1;
        if nodes > budget {
            return (nodes, Verdict::Undecided);
        }
        let state = states.last().cloned().unwrap_or_else(|| model.init());
        let mut candidates = Vec::new();
        if seen.insert((done.clone(), state.clone())) {
            let horizon = (0..n)
                .filter(|&i| !done.get(i))
                .map(|i| events[i].returned())
                .min()
                .unwrap_or(u64::MAX);
            let mut ready = Vec::new();
            for (i, e) in events.iter().enumerate() {
                if e.invoked > horizon {
                    break;
                }
                if done.get(i) {
                    continue;
                }
                ready.push(i);
                for next in model.step(&state, &e.op, e.ret()) {
                    candidates.push((i, next));
                }
            }
            if path.len() > best.len() || best.is_empty() {
                best.clone_from(&path);
                best_stuck = ready;
            }
        }
        frames.push((candidates, 0));
        // Take the next untried candidate, backtracking as far as needed.
        loop {
            let Some((candidates, next)) = frames.last_mut() else {
                let t0 = events.first().map_or(0, |e| e.invoked);
                let shown = best.len().saturating_sub(12);
                return (
                    nodes,
                    Verdict::Not {
                        operations: n,
                        prefix: best[shown..]
                            .iter()
                            .map(|&i| describe(events[i], t0))
                            .collect(),
                        stuck: best_stuck
                            .iter()
                            .map(|&i| describe(events[i], t0))
                            .collect(),
                    },
                );
            };
            if let Some((i, state)) = candidates.get(*next).cloned() {
                *next += 1;
                done.flip(i);
                known_done += usize::from(events[i].ret().is_some());
                path.push(i);
                states.push(state);
                break;
            }
            frames.pop();
            if let Some(i) = path.pop() {
                done.flip(i);
                known_done -= usize::from(events[i].ret().is_some());
                states.pop();
            }
        }
    }
}
