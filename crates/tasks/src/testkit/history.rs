//! Linearizability of a [`TaskStore`] (feature `testkit`): agents claim (the next ready task
//! or a given one), heartbeat, complete, fail, retry, cancel, read and reap, concurrently, on
//! pairs of tasks where the second depends on the first; the history is recorded from threads
//! ([`record`]) and checked against [`TaskModel`], a sequential model of claims, transitions,
//! versions, fencing tokens and readiness, and for tokens ([`check`]).
//!
//! Each pair is an independent part of the check. A call that concerns every part (a reap, a
//! claim that found nothing ready) is checked in each part as that part's share of it: a
//! necessary condition, so a failure is always a real anomaly.
//!
//! ```
//! use std::sync::Arc;
//! use oc_tasks::{MemoryTaskStore, ManualClock, testkit::{self, history}};
//! let clock = ManualClock::new(testkit::START);
//! let store = MemoryTaskStore::with_clock(Arc::new(clock.clone()));
//! let w = history::Workload { threads: 3, ops: 30, seed: 7, ..Default::default() };
//! let h = history::record(&store, &w, Some(&clock));
//! let checked = history::check(&h);
//! assert!(checked.is_ok(), "{checked}");
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use oc_lincheck::{Checked, Grant, History, Model, Outcome, Sink, SplitMix};
use serde::{Deserialize, Serialize};

use crate::{Error, ManualClock, NewTask, Task, TaskId, TaskStatus, TaskStore};

/// One call, as asked, with the store's time just before it (milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOp {
    /// The agent.
    pub agent: String,
    /// The call.
    pub call: TaskCall,
    /// The store's clock before the call.
    pub at: i64,
}

/// The calls a workload makes; tasks are named by pair and position (`(pair, 0)` comes first,
/// `(pair, 1)` depends on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskCall {
    /// `claim_next`.
    ClaimNext,
    /// `claim` of one task.
    Claim(u32, u8),
    /// `heartbeat` with a token.
    Heartbeat(u32, u8, u64),
    /// `complete` with a token.
    Complete(u32, u8, u64),
    /// `fail` with a token.
    Fail(u32, u8, u64),
    /// `retry`.
    Retry(u32, u8),
    /// `cancel`.
    Cancel(u32, u8),
    /// `get`.
    Get(u32, u8),
    /// `reap_expired` at the time of the call.
    Reap,
}

/// A task as an answer shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seen {
    /// Pair and position.
    pub task: (u32, u8),
    /// Status after the call.
    pub status: TaskStatus,
    /// Version after the call.
    pub version: u64,
    /// Lease token after the call.
    pub token: Option<u64>,
    /// Lease expiry after the call (milliseconds).
    pub expires: Option<i64>,
}

/// What a call answered; errors a caller cannot tell from a crash are no answer (unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskAnswer {
    /// The task after the change (or as read).
    Task(Seen),
    /// `claim_next` found nothing ready.
    Nothing,
    /// The tasks a reap returned to pending or failed.
    Reaped(Vec<Seen>),
    /// Refused: the status does not allow it.
    InvalidTransition,
    /// Refused: the token is not the current lease's.
    LeaseLost,
}

/// An answer with the store's time after the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRet {
    /// The store's clock after the call.
    pub at: i64,
    /// The answer.
    pub answer: TaskAnswer,
}

/// A recorded history of task calls.
pub type TaskHistory = History<TaskOp, TaskRet>;

/// A random workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Concurrent agents.
    pub threads: usize,
    /// Calls per agent.
    pub ops: usize,
    /// Pairs of tasks.
    pub pairs: u32,
    /// Seed of the random choices.
    pub seed: u64,
    /// Lease TTL in milliseconds of the store's clock.
    pub lease_ms: u64,
    /// Longest pause between two calls of an agent, in real microseconds.
    pub pause_us: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            threads: 6,
            ops: 60,
            pairs: 6,
            seed: 1,
            lease_ms: 2_000,
            pause_us: 1_000,
        }
    }
}

fn task_id(pair: u32, pos: u8) -> TaskId {
    // Generated from numbers: always a valid id.
    TaskId::new(format!("pair{pair}-{pos}")).unwrap_or_else(|_| unreachable!())
}

fn name_of(id: &TaskId) -> Option<(u32, u8)> {
    let (pair, pos) = id.as_str().strip_prefix("pair")?.split_once('-')?;
    Some((pair.parse().ok()?, pos.parse().ok()?))
}

fn seen(t: &Task) -> Option<Seen> {
    Some(Seen {
        task: name_of(&t.id)?,
        status: t.status,
        version: t.version,
        token: t.lease.map(|l| l.token),
        expires: t.lease.map(|l| l.expires_at.as_millis()),
    })
}

/// Creates the workload's tasks (all pending, the second of each pair depending on the first).
pub fn setup(store: &dyn TaskStore, w: &Workload) -> crate::Result<()> {
    let mut batch = Vec::new();
    for p in 0..w.pairs {
        batch.push(
            NewTask::new(format!("pair {p} first"))
                .id(task_id(p, 0))
                .max_attempts(100),
        );
        batch.push(
            NewTask::new(format!("pair {p} second"))
                .id(task_id(p, 1))
                .max_attempts(100)
                .depends_on(task_id(p, 0)),
        );
    }
    store.create_many(batch).map(drop)
}

fn answer(r: crate::Result<Task>) -> Option<TaskAnswer> {
    match r {
        Ok(t) => seen(&t).map(TaskAnswer::Task),
        Err(Error::InvalidTransition { .. }) => Some(TaskAnswer::InvalidTransition),
        Err(Error::LeaseLost { .. }) => Some(TaskAnswer::LeaseLost),
        Err(_) => None,
    }
}

fn perform(store: &dyn TaskStore, agent: &str, op: &TaskOp, lease: Duration) -> Option<TaskAnswer> {
    let id = |p: u32, i: u8| task_id(p, i);
    match op.call {
        TaskCall::ClaimNext => match store.claim_next(agent, lease) {
            Ok(Some(t)) => seen(&t).map(TaskAnswer::Task),
            Ok(None) => Some(TaskAnswer::Nothing),
            Err(_) => None,
        },
        TaskCall::Claim(p, i) => answer(store.claim(&id(p, i), agent, lease)),
        TaskCall::Heartbeat(p, i, t) => answer(store.heartbeat(&id(p, i), t, lease)),
        TaskCall::Complete(p, i, t) => answer(store.complete(&id(p, i), Some(t), None)),
        TaskCall::Fail(p, i, t) => answer(store.fail(&id(p, i), Some(t), "planned failure")),
        TaskCall::Retry(p, i) => answer(store.retry(&id(p, i))),
        TaskCall::Cancel(p, i) => answer(store.cancel(&id(p, i))),
        TaskCall::Get(p, i) => match store.get(&id(p, i)) {
            Ok(Some(t)) => seen(&t).map(TaskAnswer::Task),
            _ => None,
        },
        TaskCall::Reap => match store.reap_expired(oc_time::Timestamp::from_millis(op.at)) {
            Ok(reaped) => Some(TaskAnswer::Reaped(
                reaped.iter().filter_map(|r| seen(&r.task)).collect(),
            )),
            Err(_) => None,
        },
    }
}

fn next_call(rng: &mut SplitMix, w: &Workload, held: &[((u32, u8), u64)]) -> TaskCall {
    let any = (rng.below(u64::from(w.pairs)) as u32, rng.below(2) as u8);
    let Some(&(task, token)) = rng.pick(held) else {
        // Holding nothing: look for work, mostly, and now and then use a made-up token, which
        // must be refused.
        return match rng.below(100) {
            0..45 => TaskCall::ClaimNext,
            45..58 => TaskCall::Claim(any.0, any.1),
            58..72 => TaskCall::Retry(any.0, any.1),
            72..76 => TaskCall::Cancel(any.0, any.1),
            76..86 => TaskCall::Get(any.0, any.1),
            86..92 => TaskCall::Reap,
            _ => TaskCall::Complete(any.0, any.1, rng.below(50) + 1),
        };
    };
    // A token used on another task now and then: stale, so refused.
    let (p, i) = if rng.chance(10) { any } else { task };
    match rng.below(100) {
        0..35 => TaskCall::Complete(p, i, token),
        35..50 => TaskCall::Fail(p, i, token),
        50..68 => TaskCall::Heartbeat(p, i, token),
        68..80 => TaskCall::ClaimNext,
        80..88 => TaskCall::Get(p, i),
        88..94 => TaskCall::Cancel(p, i),
        _ => TaskCall::Reap,
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
fn agent<S: Sink<TaskOp, TaskRet>>(
    store: &dyn TaskStore,
    w: &Workload,
    n: u64,
    now: &dyn Fn() -> i64,
    sink: &mut S,
) -> std::io::Result<()> {
    let lease = Duration::from_millis(w.lease_ms);
    let mut rng = SplitMix::new(w.seed.wrapping_mul(1_000_003).wrapping_add(n));
    let agent = format!("agent{n}");
    let mut held: Vec<((u32, u8), u64)> = Vec::new();
    for _ in 0..w.ops {
        let call = next_call(&mut rng, w, &held);
        let op = TaskOp {
            agent: agent.clone(),
            call,
            at: now(),
        };
        let ret = sink.record(op.clone(), |op| {
            perform(store, &agent, op, lease).map(|answer| TaskRet { at: now(), answer })
        })?;
        if let Some(TaskRet {
            answer: TaskAnswer::Task(t),
            ..
        }) = ret
        {
            held.retain(|(task, _)| *task != t.task);
            if t.status == TaskStatus::Running
                && let Some(token) = t.token
                && matches!(op.call, TaskCall::ClaimNext | TaskCall::Claim(..))
            {
                held.push((t.task, token));
            }
        }
        if w.pause_us > 0 {
            std::thread::sleep(Duration::from_micros(rng.below(w.pause_us)));
        }
    }
    Ok(())
}

/// Creates the tasks, runs the workload on `w.threads` threads against `store` and returns the
/// history. With `clock` (the manual clock the store reads), a ticker thread moves it 100 ms per
/// real millisecond, so leases lapse and reaps find them.
pub fn record(store: &dyn TaskStore, w: &Workload, clock: Option<&ManualClock>) -> TaskHistory {
    if let Err(e) = setup(store, w) {
        panic!("creating the workload's tasks failed: {e}");
    }
    let tick = clock.map(|c| move || c.advance(Duration::from_millis(100)));
    oc_lincheck::run_threads(
        w.threads,
        tick.as_ref().map(|t| t as &(dyn Fn() + Sync)),
        |n, sink| {
            // A thread's history cannot fail to record.
            let _ = agent(store, w, n, &|| read_clock(clock), sink);
        },
    )
}

/// Runs agent `n`'s part of the workload against `store` (whose tasks [`setup`] created),
/// appending its calls to `log`: the body of one process of a multi-process run (killed at any
/// moment, it leaves its calls behind).
pub fn run_process(
    store: &dyn TaskStore,
    w: &Workload,
    n: u64,
    log: &mut oc_lincheck::ProcessLog,
) -> std::io::Result<()> {
    agent(store, w, n, &|| read_clock(None), log)
}

/// One task in the model; `None` fields are unknown (left so by a call of unknown outcome).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelTask {
    status: Option<TaskStatus>,
    version: Option<u64>,
    lease: Option<(Option<u64>, Option<i64>)>,
}

/// The model's state of one pair, and the greatest token it handed out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PairState {
    tasks: [ModelTask; 2],
    max_token: u64,
}

/// The sequential model of one pair of tasks, the second depending on the first.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskModel;

/// A call as one pair sees it: `part` is the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOp {
    /// The pair.
    pub part: u32,
    /// The call.
    pub op: TaskOp,
}

fn known<T: PartialEq>(v: Option<T>, want: T) -> bool {
    v.is_none_or(|v| v == want)
}

impl TaskModel {
    fn ready(s: &PairState, pos: u8) -> Option<bool> {
        let t = &s.tasks[pos as usize];
        let dep_done = if pos == 1 {
            s.tasks[0].status.map(|st| st == TaskStatus::Completed)
        } else {
            Some(true)
        };
        Some(t.status? == TaskStatus::Pending && dep_done?)
    }

    /// A change of task `pos` that answered `seen` (or is unknown): the state after, if valid.
    fn change(
        s: &PairState,
        pos: u8,
        allowed: impl Fn(TaskStatus) -> bool,
        to: TaskStatus,
        ret: Option<&TaskAnswer>,
    ) -> Vec<PairState> {
        let claim = to == TaskStatus::Running;
        let t = &s.tasks[pos as usize];
        let may_allow = t.status.is_none_or(&allowed);
        let may_refuse = t.status.is_none_or(|st| !allowed(st));
        match ret {
            None => {
                let mut out = vec![s.clone()];
                if may_allow {
                    let mut next = s.clone();
                    next.tasks[pos as usize] = ModelTask {
                        status: None,
                        version: None,
                        lease: None,
                    };
                    out.push(next);
                }
                out
            }
            Some(TaskAnswer::Task(seen)) if may_allow => {
                if !known(t.version.map(|v| v + 1), seen.version)
                    || seen.status != to
                    || seen.token.is_some() != claim
                {
                    return vec![];
                }
                let mut next = s.clone();
                if claim {
                    let Some(token) = seen.token else {
                        return vec![];
                    };
                    if token <= s.max_token {
                        return vec![];
                    }
                    next.max_token = token;
                }
                next.tasks[pos as usize] = ModelTask {
                    status: Some(seen.status),
                    version: Some(seen.version),
                    lease: seen.token.map(|tok| (Some(tok), seen.expires)),
                };
                vec![next]
            }
            Some(TaskAnswer::InvalidTransition) if may_refuse => vec![s.clone()],
            _ => vec![],
        }
    }

    /// A token-checked change: the lease must be `token`'s for it to pass.
    fn fenced(
        s: &PairState,
        pos: u8,
        token: u64,
        to: Option<TaskStatus>,
        ret: Option<&TaskAnswer>,
    ) -> Vec<PairState> {
        let t = &s.tasks[pos as usize];
        let holder = t.lease.map(|(tok, _)| tok);
        let may_match = match holder {
            Some(tok) => tok.is_none_or(|x| x == token),
            None => t.status.is_none(),
        };
        let may_differ = !matches!(holder, Some(Some(x)) if x == token);
        match ret {
            Some(TaskAnswer::LeaseLost) if may_differ => vec![s.clone()],
            Some(TaskAnswer::Task(seen)) if may_match => {
                let status_ok = match to {
                    Some(st) => seen.status == st && seen.token.is_none(),
                    None => seen.status == TaskStatus::Running && seen.token == Some(token),
                };
                if !status_ok || !known(t.version.map(|v| v + 1), seen.version) {
                    return vec![];
                }
                let mut next = s.clone();
                next.tasks[pos as usize] = ModelTask {
                    status: Some(seen.status),
                    version: Some(seen.version),
                    lease: seen.token.map(|tok| (Some(tok), seen.expires)),
                };
                vec![next]
            }
            None => {
                let mut out = vec![s.clone()];
                if may_match {
                    let mut next = s.clone();
                    next.tasks[pos as usize] = ModelTask {
                        status: None,
                        version: None,
                        lease: None,
                    };
                    out.push(next);
                }
                out
            }
            _ => vec![],
        }
    }
}

impl Model for TaskModel {
    type Op = PartOp;
    type Ret = TaskRet;
    type State = PairState;

    fn init(&self) -> PairState {
        let fresh = ModelTask {
            status: Some(TaskStatus::Pending),
            version: Some(1),
            lease: None,
        };
        PairState {
            tasks: [fresh.clone(), fresh],
            max_token: 0,
        }
    }

    fn step(&self, s: &PairState, op: &PartOp, ret: Option<&TaskRet>) -> Vec<PairState> {
        let answer = ret.map(|r| &r.answer);
        match op.op.call {
            TaskCall::ClaimNext => match answer {
                // Found nothing: nothing of this pair was ready.
                Some(TaskAnswer::Nothing) => {
                    if (0..2).any(|i| Self::ready(s, i) == Some(true)) {
                        vec![]
                    } else {
                        vec![s.clone()]
                    }
                }
                Some(TaskAnswer::Task(seen)) => {
                    if Self::ready(s, seen.task.1) == Some(false) {
                        return vec![];
                    }
                    Self::change(s, seen.task.1, |_| true, TaskStatus::Running, answer)
                }
                // Unknown: it may have claimed either task, or none.
                _ => {
                    let mut out = vec![s.clone()];
                    for i in 0..2 {
                        if Self::ready(s, i) != Some(false) {
                            let mut next = s.clone();
                            next.tasks[i as usize] = ModelTask {
                                status: None,
                                version: None,
                                lease: None,
                            };
                            out.push(next);
                        }
                    }
                    out
                }
            },
            TaskCall::Claim(_, i) => Self::change(
                s,
                i,
                |st| st == TaskStatus::Pending,
                TaskStatus::Running,
                answer,
            ),
            TaskCall::Retry(_, i) => Self::change(
                s,
                i,
                |st| matches!(st, TaskStatus::Failed | TaskStatus::Cancelled),
                TaskStatus::Pending,
                answer,
            ),
            TaskCall::Cancel(_, i) => Self::change(
                s,
                i,
                |st| matches!(st, TaskStatus::Pending | TaskStatus::Running),
                TaskStatus::Cancelled,
                answer,
            ),
            TaskCall::Heartbeat(_, i, tok) => Self::fenced(s, i, tok, None, answer),
            TaskCall::Complete(_, i, tok) => {
                Self::fenced(s, i, tok, Some(TaskStatus::Completed), answer)
            }
            TaskCall::Fail(_, i, tok) => Self::fenced(s, i, tok, Some(TaskStatus::Failed), answer),
            TaskCall::Get(_, i) => match answer {
                Some(TaskAnswer::Task(seen)) => {
                    let t = &s.tasks[i as usize];
                    let lease_ok = match t.lease {
                        None => seen.token.is_none() || t.status.is_none(),
                        Some((tok, _)) => tok.is_none_or(|x| Some(x) == seen.token),
                    };
                    if known(t.status, seen.status) && known(t.version, seen.version) && lease_ok {
                        vec![s.clone()]
                    } else {
                        vec![]
                    }
                }
                _ => vec![s.clone()],
            },
            TaskCall::Reap => match answer {
                Some(TaskAnswer::Reaped(list)) => {
                    // Every task the reap reports was running under a lease lapsed at the reap's
                    // time, and is pending after. A reap is atomic per task, not across tasks:
                    // two concurrent reaps may share the work (each reaps what it wins), so a
                    // lapsed task it does not report is no anomaly.
                    let now = op.op.at;
                    let mut next = s.clone();
                    for seen in list.iter().filter(|r| r.task.0 == op.part) {
                        let i = usize::from(seen.task.1.min(1));
                        let t = &s.tasks[i];
                        let lapsed = t.lease.map(|(_, e)| e.map(|e| e <= now));
                        if !known(t.status, TaskStatus::Running)
                            || matches!(lapsed, Some(Some(false)))
                            || t.status.is_some() && t.lease.is_none()
                            || !known(t.version.map(|v| v + 1), seen.version)
                            || seen.status != TaskStatus::Pending
                        {
                            return vec![];
                        }
                        next.tasks[i] = ModelTask {
                            status: Some(seen.status),
                            version: Some(seen.version),
                            lease: None,
                        };
                    }
                    vec![next]
                }
                _ => {
                    // Unknown: any running task may have gone back to pending.
                    let mut out = vec![s.clone()];
                    for i in 0..2 {
                        if known(s.tasks[i].status, TaskStatus::Running) {
                            let mut next = s.clone();
                            next.tasks[i] = ModelTask {
                                status: None,
                                version: None,
                                lease: None,
                            };
                            out.push(next);
                        }
                    }
                    out
                }
            },
        }
    }
}

/// The parts a call belongs to: its task's pair, or every pair for a reap and for a claim that
/// found nothing or whose outcome is unknown.
fn parts(op: &TaskOp, ret: Option<&TaskRet>, pairs: u32) -> Vec<u32> {
    let one = |p| vec![p];
    match (&op.call, ret.map(|r| &r.answer)) {
        (TaskCall::ClaimNext, Some(TaskAnswer::Task(seen))) => one(seen.task.0),
        (TaskCall::ClaimNext | TaskCall::Reap, _) => (0..pairs).collect(),
        (
            TaskCall::Claim(p, _)
            | TaskCall::Heartbeat(p, ..)
            | TaskCall::Complete(p, ..)
            | TaskCall::Fail(p, ..)
            | TaskCall::Retry(p, _)
            | TaskCall::Cancel(p, _)
            | TaskCall::Get(p, _),
            _,
        ) => one(*p),
    }
}

/// A reap is atomic per task, not across tasks (each task is its own check-and-set): a reap that
/// reports several tasks of `part` becomes one event per task over the same interval, each free
/// to take effect at its own moment. Every other outcome stays whole.
fn per_task(outcome: &Outcome<TaskRet>, part: u32) -> Vec<Outcome<TaskRet>> {
    let Outcome::Returned { at, ret } = outcome else {
        return vec![outcome.clone()];
    };
    let TaskAnswer::Reaped(list) = &ret.answer else {
        return vec![outcome.clone()];
    };
    let mine: Vec<&Seen> = list.iter().filter(|r| r.task.0 == part).collect();
    if mine.len() < 2 {
        return vec![outcome.clone()];
    }
    mine.into_iter()
        .map(|seen| Outcome::Returned {
            at: *at,
            ret: TaskRet {
                at: ret.at,
                answer: TaskAnswer::Reaped(vec![*seen]),
            },
        })
        .collect()
}

/// The claims in a history, for [`oc_lincheck::check_tokens`].
pub fn grants(h: &TaskHistory) -> Vec<Grant> {
    h.events
        .iter()
        .filter(|e| matches!(e.op.call, TaskCall::ClaimNext | TaskCall::Claim(..)))
        .filter_map(|e| match e.ret().map(|r| &r.answer) {
            Some(TaskAnswer::Task(Seen {
                token: Some(token), ..
            })) => Some(Grant {
                invoked: e.invoked,
                returned: e.returned(),
                token: *token,
            }),
            _ => None,
        })
        .collect()
}

/// How many calls ended in each kind of answer.
pub fn tally(h: &TaskHistory) -> BTreeMap<&'static str, usize> {
    let mut t = BTreeMap::new();
    for e in &h.events {
        let kind = match (&e.op.call, e.ret().map(|r| &r.answer)) {
            (_, None) => "unknown",
            (TaskCall::ClaimNext | TaskCall::Claim(..), Some(TaskAnswer::Task(_))) => "claimed",
            (TaskCall::Complete(..), Some(TaskAnswer::Task(_))) => "completed",
            (TaskCall::Fail(..), Some(TaskAnswer::Task(_))) => "failed",
            (TaskCall::Get(..), _) => "read",
            (_, Some(TaskAnswer::Task(_))) => "changed",
            (_, Some(TaskAnswer::Nothing)) => "nothing_ready",
            (_, Some(TaskAnswer::Reaped(r))) if r.is_empty() => "reaped_none",
            (_, Some(TaskAnswer::Reaped(_))) => "reaped",
            (_, Some(TaskAnswer::InvalidTransition)) => "invalid_transition",
            (_, Some(TaskAnswer::LeaseLost)) => "lease_lost",
        };
        *t.entry(kind).or_insert(0) += 1;
    }
    t
}

/// Checks a history of `pairs` pairs: linearizable against [`TaskModel`], one part per pair,
/// and claim tokens unique and growing in real time.
pub fn check_pairs(h: &TaskHistory, pairs: u32) -> Checked {
    let mut split: History<PartOp, TaskRet> = History::new();
    for e in &h.events {
        for part in parts(&e.op, e.ret(), pairs) {
            for outcome in per_task(&e.outcome, part) {
                split.events.push(oc_lincheck::Event {
                    process: e.process,
                    op: PartOp {
                        part,
                        op: e.op.clone(),
                    },
                    invoked: e.invoked,
                    outcome,
                });
            }
        }
    }
    Checked {
        linearizability: oc_lincheck::check_by(&TaskModel, &split, |e| Some(e.op.part)),
        tokens: oc_lincheck::check_tokens(&grants(h)),
    }
}

/// [`check_pairs`] with the default workload's pairs.
pub fn check(h: &TaskHistory) -> Checked {
    check_pairs(h, Workload::default().pairs)
}
