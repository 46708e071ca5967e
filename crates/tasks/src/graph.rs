//! The work graph and job semantics: dependencies, readiness, parents, labels, scheduled
//! retries and unique keys.
//!
//! A task is **ready** when it is pending, every task it depends on is completed, and its
//! `run_at` (if any) has passed; `claim_next` and `claim_many` hand out ready tasks only.
//! Stores keep readiness incrementally (a count of unfinished dependencies per task, written
//! in the transaction that completes a dependency), never by walking the graph on a claim.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Task, TaskId, TaskStatus, Timestamp};

/// Most labels a task may carry.
pub const MAX_LABELS: usize = 32;
/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 64;
/// Most dependencies a task may be created with.
pub const MAX_DEPENDENCIES: usize = 10_000;
/// Longest unique key, in bytes.
pub const MAX_UNIQUE_KEY_LEN: usize = 256;
/// Latest `run_at` accepted: this far after the store's clock.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// Longest backoff a retry policy may wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30 * 24 * 3600);

/// What happens when a run fails (an agent's `fail`, or a lapsed lease the reaper finds)
/// while the task has attempts left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// A failure is final (`failed`, retried only by hand); a lapsed lease goes straight
    /// back to pending. The seed's behaviour.
    #[default]
    None,
    /// The task goes back to pending with a `run_at` of now plus `base × 2^(attempt − 1)`,
    /// at most `cap`, shortened by up to `jitter_pct` percent (the same for the same task and
    /// attempt on every backend, and different across tasks, so retries spread out), until
    /// `max_attempts` runs are spent; then the failure is final.
    Backoff {
        /// The first wait.
        #[serde(with = "millis")]
        base: Duration,
        /// The longest wait.
        #[serde(with = "millis")]
        cap: Duration,
        /// How much of each wait may be taken off at random (0–100).
        jitter_pct: u8,
    },
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl RetryPolicy {
    /// Exponential backoff from `base` up to `cap`, without jitter.
    pub fn backoff(base: Duration, cap: Duration) -> Self {
        RetryPolicy::Backoff {
            base,
            cap,
            jitter_pct: 0,
        }
    }

    /// The same policy with up to `pct` percent of each wait taken off.
    pub fn jitter(self, pct: u8) -> Self {
        match self {
            RetryPolicy::Backoff { base, cap, .. } => RetryPolicy::Backoff {
                base,
                cap,
                jitter_pct: pct,
            },
            RetryPolicy::None => RetryPolicy::None,
        }
    }

    /// How long to wait before run `attempts + 1` of `task`, after run `attempts` failed;
    /// `None` without a policy.
    pub fn delay(&self, task: &TaskId, attempts: u32) -> Option<Duration> {
        let RetryPolicy::Backoff {
            base,
            cap,
            jitter_pct,
        } = *self
        else {
            return None;
        };
        let base = base.as_millis();
        let cap = cap.as_millis();
        let shift = attempts.saturating_sub(1).min(63);
        let full = base.saturating_mul(1u128 << shift).min(cap);
        // A fraction in [0, 1) fixed by the task and the attempt: FNV-1a, high 32 bits.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in task.as_str().bytes().chain(attempts.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let frac = u128::from(h >> 32);
        let off = full * u128::from(jitter_pct.min(100)) * frac / (100u128 << 32);
        Some(Duration::from_millis(
            u64::try_from(full - off).unwrap_or(u64::MAX),
        ))
    }

    /// Checks the bounds: a base of at least 1 ms, a cap between the base and
    /// [`MAX_BACKOFF`], a jitter of at most 100 %.
    pub fn validate(&self) -> Result<()> {
        let RetryPolicy::Backoff {
            base,
            cap,
            jitter_pct,
        } = *self
        else {
            return Ok(());
        };
        let bad = |reason: String| Error::InvalidInput {
            field: "retry",
            reason,
        };
        if base < Duration::from_millis(1) {
            return Err(bad("the backoff base must be at least 1ms".into()));
        }
        if cap < base {
            return Err(bad(format!(
                "the backoff cap ({}) is below its base ({})",
                humantime::format_duration(cap),
                humantime::format_duration(base)
            )));
        }
        if cap > MAX_BACKOFF {
            return Err(bad(format!(
                "the backoff cap must be at most {}",
                humantime::format_duration(MAX_BACKOFF)
            )));
        }
        if jitter_pct > 100 {
            return Err(bad("the jitter must be at most 100 percent".into()));
        }
        Ok(())
    }
}

impl fmt::Display for RetryPolicy {
    /// `none`, or `backoff:1s..5m` (with `:20` for 20 % jitter): the form [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryPolicy::None => f.write_str("none"),
            RetryPolicy::Backoff {
                base,
                cap,
                jitter_pct,
            } => {
                write!(
                    f,
                    "backoff:{}..{}",
                    humantime::format_duration(*base),
                    humantime::format_duration(*cap)
                )?;
                if *jitter_pct > 0 {
                    write!(f, ":{jitter_pct}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for RetryPolicy {
    type Err = Error;
    /// `none`, or `backoff:BASE..CAP[:JITTER_PCT]` with durations such as `500ms`, `1s`, `5m`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput {
            field: "retry",
            reason: format!(
                "{s:?} is not `none` or `backoff:BASE..CAP[:JITTER_PCT]` (say backoff:1s..5m:20)"
            ),
        };
        if s == "none" {
            return Ok(RetryPolicy::None);
        }
        let rest = s.strip_prefix("backoff:").ok_or_else(bad)?;
        let (range, jitter) = match rest.split_once(':') {
            Some((r, j)) => (r, j.parse::<u8>().map_err(|_| bad())?),
            None => (rest, 0),
        };
        let (base, cap) = range.split_once("..").ok_or_else(bad)?;
        let d = |t: &str| humantime::parse_duration(t.trim()).map_err(|_| bad());
        let p = RetryPolicy::backoff(d(base)?, d(cap)?).jitter(jitter);
        p.validate()?;
        Ok(p)
    }
}

/// How long a task's unique key keeps others with the same key from being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueScope {
    /// While the task is pending or running: once it completes, fails or is cancelled, a new
    /// task with the key may be created (and retrying the old one is then refused with
    /// [`Error::UniqueKeyHeld`] while the new one is unfinished).
    #[default]
    Unfinished,
    /// As long as the task exists, whatever its status.
    Always,
}

impl UniqueScope {
    /// `unfinished` or `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueScope::Unfinished => "unfinished",
            UniqueScope::Always => "always",
        }
    }

    /// Whether a task in `status` holds its key under this scope.
    pub fn holds(self, status: TaskStatus) -> bool {
        self == UniqueScope::Always || !status.is_finished()
    }
}

impl FromStr for UniqueScope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "unfinished" => Ok(UniqueScope::Unfinished),
            "always" => Ok(UniqueScope::Always),
            _ => Err(Error::InvalidInput {
                field: "unique scope",
                reason: format!("{s:?} is not `unfinished` or `always`"),
            }),
        }
    }
}

/// A task's unique key: creating another task with the same key while this one holds it
/// returns this one instead (see [`Created::duplicate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unique {
    /// The key (1–256 bytes).
    pub key: String,
    /// While the key is held.
    #[serde(default)]
    pub scope: UniqueScope,
}

impl Unique {
    /// Whether `task` holds its key now.
    pub fn held_by(task: &Task) -> Option<&str> {
        task.unique
            .as_ref()
            .filter(|u| u.scope.holds(task.status))
            .map(|u| u.key.as_str())
    }
}

/// What creating one task did: made it, or found a task holding its unique key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The new task, or the one holding the key.
    pub task: Task,
    /// True when `task` already existed and nothing was created.
    pub duplicate: bool,
}

/// Which labels a claim or listing takes: every label in `all`, none in `none`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LabelFilter {
    /// Labels a task must carry (all of them).
    #[serde(default)]
    pub all: Vec<String>,
    /// Labels a task must not carry (any of them excludes it).
    #[serde(default)]
    pub none: Vec<String>,
}

impl LabelFilter {
    /// Every task.
    pub fn any() -> Self {
        Self::default()
    }
    /// Also requires `label`.
    pub fn require(mut self, label: impl Into<String>) -> Self {
        self.all.push(label.into());
        self
    }
    /// Also excludes `label`.
    pub fn exclude(mut self, label: impl Into<String>) -> Self {
        self.none.push(label.into());
        self
    }
    /// Whether it lets every task through.
    pub fn is_any(&self) -> bool {
        self.all.is_empty() && self.none.is_empty()
    }
    /// Whether a task carrying `labels` passes.
    pub fn matches(&self, labels: &[String]) -> bool {
        self.all.iter().all(|l| labels.contains(l)) && !self.none.iter().any(|l| labels.contains(l))
    }
    /// Checks every label by the label rules.
    pub fn validate(&self) -> Result<()> {
        self.all
            .iter()
            .chain(&self.none)
            .try_for_each(|l| check_label(l))
    }
}

/// Ready or blocked, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Pending, every dependency completed, `run_at` passed: `claim_next` may take it.
    Ready,
    /// Pending but waiting: on a dependency, or for its `run_at`.
    Blocked,
}

/// What a delete does to the tasks that depend on the deleted one, or are its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDependents {
    /// Refuse with [`Error::HasDependents`] while any exist.
    #[default]
    Refuse,
    /// Delete them too, and theirs, transitively.
    Cascade,
    /// Keep them: drop their edges to the deleted task (a dependent no longer waits for it)
    /// and clear their parent.
    DropEdges,
}

/// Why a pending task is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blockers {
    /// The task.
    pub task: TaskId,
    /// The dependencies not completed, with their status (`failed` or `cancelled` ones wait
    /// for a retry by hand).
    pub waiting_on: Vec<(TaskId, TaskStatus)>,
    /// The `run_at` it waits for, when still in the future.
    pub run_at: Option<Timestamp>,
}

impl Blockers {
    /// Whether nothing blocks the task (it is ready, if pending).
    pub fn is_empty(&self) -> bool {
        self.waiting_on.is_empty() && self.run_at.is_none()
    }

    /// One line for people: `waits for a (running), b (failed); runs at 2026-…`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.waiting_on.is_empty() {
            let deps: Vec<String> = self
                .waiting_on
                .iter()
                .map(|(id, s)| format!("{id} ({s})"))
                .collect();
            parts.push(format!("waits for {}", deps.join(", ")));
        }
        if let Some(at) = self.run_at {
            parts.push(format!("runs at {at}"));
        }
        parts.join("; ")
    }
}

/// A parent's progress: its children by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// The parent.
    pub parent: TaskId,
    /// Children.
    pub total: u64,
    /// Children per status, every status present, in [`TaskStatus::ALL`] order.
    pub by_status: Vec<(TaskStatus, u64)>,
}

impl Rollup {
    /// Children completed.
    pub fn completed(&self) -> u64 {
        self.by_status
            .iter()
            .find(|(s, _)| *s == TaskStatus::Completed)
            .map_or(0, |(_, n)| *n)
    }
}

/// Whether `task` is ready at `now`, given how many of its dependencies are unfinished.
pub fn is_ready(task: &Task, unfinished_deps: usize, now: Timestamp) -> bool {
    task.status == TaskStatus::Pending
        && unfinished_deps == 0
        && task.run_at.is_none_or(|at| at <= now)
}

pub(crate) fn check_label(l: &str) -> Result<()> {
    let bad = |reason: String| Error::InvalidInput {
        field: "label",
        reason,
    };
    if l.is_empty() || l.len() > MAX_LABEL_LEN {
        return Err(bad(format!(
            "{l:?} must be 1 to {MAX_LABEL_LEN} bytes long"
        )));
    }
    if !l
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
    {
        return Err(bad(format!(
            "{:?} may hold only ASCII letters, digits and - _ . : /",
            l.escape_debug().to_string()
        )));
    }
    Ok(())
}

/// Checks a task's labels: the label rules, at most [`MAX_LABELS`], no duplicates.
pub(crate) fn check_labels(labels: &[String]) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(Error::InvalidInput {
            field: "labels",
            reason: format!("at most {MAX_LABELS} labels, got {}", labels.len()),
        });
    }
    let mut seen = HashSet::new();
    for l in labels {
        check_label(l)?;
        if !seen.insert(l) {
            return Err(Error::InvalidInput {
                field: "labels",
                reason: format!("label {l:?} given twice"),
            });
        }
    }
    Ok(())
}

/// The path from `from` to `to` along dependency edges (`from` depends on … depends on
/// `to`), found breadth first, level by level: `deps_of` returns the edges `(task, on)` of
/// the tasks it is given. `None` when `to` cannot be reached.
///
/// A store calls it before adding the edge `to → from` (`to` depends on `from`): a path means
/// the edge would close the cycle `to → from → … → to`.
pub fn find_path(
    from: &TaskId,
    to: &TaskId,
    mut deps_of: impl FnMut(&[TaskId]) -> Result<Vec<(TaskId, TaskId)>>,
) -> Result<Option<Vec<TaskId>>> {
    let mut came_from: HashMap<TaskId, TaskId> = HashMap::new();
    let mut frontier = vec![from.clone()];
    let mut seen: HashSet<TaskId> = HashSet::from([from.clone()]);
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (task, on) in deps_of(&frontier)? {
            if seen.insert(on.clone()) {
                came_from.insert(on.clone(), task);
                if &on == to {
                    let mut path = VecDeque::from([on]);
                    while let Some(prev) = path.front().and_then(|p| came_from.get(p)) {
                        path.push_front(prev.clone());
                    }
                    return Ok(Some(path.into()));
                }
                next.push(on);
            }
        }
        frontier = next;
    }
    Ok(None)
}

/// The error for an edge `task → on` that would close a cycle, given the path from `on` to
/// `task` ([`find_path`]).
pub(crate) fn cycle_error(task: &TaskId, path: Vec<TaskId>) -> Error {
    let mut cycle = vec![task.clone()];
    cycle.extend(path);
    Error::Cycle { cycle }
}

/// Checks the graph fields of a batch of new tasks against each other: no self-dependency,
/// no duplicate dependency, and no cycle among the batch (a new task can only depend on
/// tasks that exist or come in the same batch, so only the batch can close a cycle).
pub(crate) fn check_batch(tasks: &[Task]) -> Result<()> {
    if tasks
        .iter()
        .all(|t| t.depends_on.is_empty() && t.parent.is_none())
    {
        return Ok(());
    }
    let ids: HashMap<&TaskId, &Task> = tasks.iter().map(|t| (&t.id, t)).collect();
    for t in tasks {
        let mut seen = HashSet::new();
        for d in &t.depends_on {
            if d == &t.id {
                return Err(Error::Cycle {
                    cycle: vec![t.id.clone(), t.id.clone()],
                });
            }
            if !seen.insert(d) {
                return Err(Error::InvalidInput {
                    field: "depends_on",
                    reason: format!("task {} names dependency {d} twice", t.id),
                });
            }
        }
        if t.parent.as_ref() == Some(&t.id) {
            return Err(Error::InvalidInput {
                field: "parent",
                reason: format!("task {} cannot be its own parent", t.id),
            });
        }
    }
    // Cycles within the batch: Kahn's algorithm over the batch's own edges, in O(n + e);
    // whatever it cannot order lies on or behind a cycle, which is then walked to name it.
    let mut waiting: HashMap<&TaskId, usize> = HashMap::new();
    let mut dependents: HashMap<&TaskId, Vec<&TaskId>> = HashMap::new();
    for t in tasks {
        let inner: Vec<&TaskId> = t
            .depends_on
            .iter()
            .filter(|d| ids.contains_key(d))
            .collect();
        waiting.insert(&t.id, inner.len());
        for d in inner {
            dependents.entry(d).or_default().push(&t.id);
        }
    }
    let mut free: Vec<&TaskId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    while let Some(done) = free.pop() {
        waiting.remove(done);
        for d in dependents.get(done).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    free.push(d);
                }
            }
        }
    }
    let Some(start) = waiting.keys().min().copied() else {
        return Ok(());
    };
    // Every task left waits on another task left: follow them until one repeats.
    let mut walk: Vec<&TaskId> = vec![start];
    loop {
        let last = walk[walk.len() - 1];
        let Some(next) = ids
            .get(last)
            .and_then(|t| t.depends_on.iter().find(|d| waiting.contains_key(d)))
        else {
            return Ok(());
        };
        if let Some(at) = walk.iter().position(|w| *w == next) {
            let mut cycle: Vec<TaskId> = walk[at..].iter().map(|t| (*t).clone()).collect();
            cycle.push(next.clone());
            return Err(Error::Cycle { cycle });
        }
        walk.push(next);
    }
}

/// The tasks a delete of `root` removes under `mode`, `root` first: with a cascade, also what
/// depends on it or is its child, transitively (`below` lists those of one task); with
/// [`OnDependents::Refuse`], [`Error::HasDependents`] when `root` has any.
pub fn doomed(
    root: &TaskId,
    mode: OnDependents,
    mut below: impl FnMut(&TaskId) -> Result<Vec<TaskId>>,
) -> Result<Vec<TaskId>> {
    let mut doomed = vec![root.clone()];
    let mut i = 0;
    while i < doomed.len() {
        let under = below(&doomed[i])?;
        match mode {
            OnDependents::Refuse if !under.is_empty() => {
                return Err(Error::HasDependents {
                    id: root.clone(),
                    dependents: under,
                });
            }
            OnDependents::Cascade => {
                for d in under {
                    if !doomed.contains(&d) {
                        doomed.push(d);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(doomed)
}

/// Plans a [`TaskStore::submit_many`](crate::TaskStore::submit_many) of `tasks` (built by
/// [`NewTask::into_task`](crate::NewTask::into_task)), the same way on every backend:
///
/// 1. the batch's own edges are checked (no self-dependency, no duplicate, no cycle, no task
///    its own parent) and its ids must differ;
/// 2. a task whose unique key is held, by a stored task (`holder`) or an earlier task of the
///    batch, becomes a duplicate of its holder, and the batch's edges to it point at the
///    holder instead;
/// 3. every dependency and parent must be in the batch or stored (`exists`).
///
/// Returns one [`Created`] per task, in order; the ones with `duplicate == false` are to be
/// inserted, with their final edges.
pub fn plan_submit(
    tasks: Vec<Task>,
    mut holder: impl FnMut(&str) -> Result<Option<Task>>,
    mut exists: impl FnMut(&TaskId) -> Result<bool>,
) -> Result<Vec<Created>> {
    check_batch(&tasks)?;
    let mut seen_ids = HashSet::with_capacity(tasks.len());
    for t in &tasks {
        if !seen_ids.insert(&t.id) {
            return Err(Error::AlreadyExists { id: t.id.clone() });
        }
    }
    drop(seen_ids);
    if tasks
        .iter()
        .all(|t| t.depends_on.is_empty() && t.parent.is_none() && t.unique.is_none())
    {
        // Nothing to look up: every task is new as it is.
        return Ok(tasks
            .into_iter()
            .map(|task| Created {
                task,
                duplicate: false,
            })
            .collect());
    }
    let mut out: Vec<Created> = Vec::with_capacity(tasks.len());
    let mut held: HashMap<String, usize> = HashMap::new();
    let mut renamed: HashMap<TaskId, TaskId> = HashMap::new();
    for t in tasks {
        if let Some(key) = Unique::held_by(&t) {
            if let Some(&i) = held.get(key) {
                renamed.insert(t.id.clone(), out[i].task.id.clone());
                out.push(Created {
                    task: out[i].task.clone(),
                    duplicate: true,
                });
                continue;
            }
            if let Some(h) = holder(key)? {
                renamed.insert(t.id.clone(), h.id.clone());
                out.push(Created {
                    task: h,
                    duplicate: true,
                });
                continue;
            }
            held.insert(key.to_owned(), out.len());
        }
        out.push(Created {
            task: t,
            duplicate: false,
        });
    }
    if !renamed.is_empty() {
        for c in out.iter_mut().filter(|c| !c.duplicate) {
            let t = &mut c.task;
            for d in &mut t.depends_on {
                if let Some(to) = renamed.get(d) {
                    *d = to.clone();
                }
            }
            t.depends_on.sort();
            t.depends_on.dedup();
            if let Some(to) = t.parent.as_ref().and_then(|p| renamed.get(p)) {
                t.parent = Some(to.clone());
            }
        }
        let fresh: Vec<Task> = out
            .iter()
            .filter(|c| !c.duplicate)
            .map(|c| c.task.clone())
            .collect();
        check_batch(&fresh)?;
    }
    let batch: HashSet<TaskId> = out
        .iter()
        .filter(|c| !c.duplicate)
        .map(|c| c.task.id.clone())
        .collect();
    let mut known: HashSet<TaskId> = HashSet::new();
    for c in out.iter().filter(|c| !c.duplicate) {
        let t = &c.task;
        let refs = t
            .depends_on
            .iter()
            .map(|d| ("depends_on", d))
            .chain(t.parent.iter().map(|p| ("parent", p)));
        for (field, r) in refs {
            if batch.contains(r) || known.contains(r) {
                continue;
            }
            if !exists(r)? {
                return Err(Error::MissingReference {
                    field,
                    id: r.clone(),
                });
            }
            known.insert(r.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TaskId {
        TaskId::new(s).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let p = RetryPolicy::backoff(Duration::from_secs(1), Duration::from_secs(10));
        let d: Vec<u64> = (1..=6)
            .map(|n| p.delay(&id("t"), n).unwrap().as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 10, 10]);
        let j = p.jitter(50);
        let mut differ = false;
        for n in 1..=6 {
            let full = p.delay(&id("t"), n).unwrap();
            let got = j.delay(&id("t"), n).unwrap();
            assert!(got <= full && got >= full / 2, "{got:?} of {full:?}");
            assert_eq!(got, j.delay(&id("t"), n).unwrap(), "deterministic");
            differ |= got != j.delay(&id("u"), n).unwrap();
        }
        assert!(differ, "jitter spreads different tasks");
        assert_eq!(RetryPolicy::None.delay(&id("t"), 1), None);
    }

    #[test]
    fn retry_policies_parse_print_and_refuse_absurd_bounds() {
        let p: RetryPolicy = "backoff:1s..5m:20".parse().unwrap();
        assert_eq!(
            p,
            RetryPolicy::backoff(Duration::from_secs(1), Duration::from_secs(300)).jitter(20)
        );
        assert_eq!(p.to_string(), "backoff:1s..5m:20");
        assert_eq!(p.to_string().parse::<RetryPolicy>().unwrap(), p);
        for bad in [
            "backoff:5m..1s",
            "backoff:0s..1s",
            "backoff:1s..400days",
            "backoff:1s..2s:101",
            "backoff:1s",
            "exponential",
        ] {
            let e = bad.parse::<RetryPolicy>().unwrap_err();
            assert!(e.is_invalid_input(), "{bad}: {e}");
        }
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_labels(&["frontend".into(), "area/db".into()]).is_ok());
        for bad in [
            vec!["a".into(), "a".into()],
            vec!["".into()],
            vec!["a b".into()],
        ] {
            assert!(check_labels(&bad).unwrap_err().is_invalid_input());
        }
        let too_many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}")).collect();
        assert!(check_labels(&too_many).is_err());
    }

    #[test]
    fn paths_and_cycles_are_named() {
        let edges = [("a", "b"), ("b", "c"), ("c", "d"), ("x", "a")];
        let deps = |f: &[TaskId]| {
            Ok(edges
                .iter()
                .filter(|(t, _)| f.iter().any(|x| x.as_str() == *t))
                .map(|(t, o)| (id(t), id(o)))
                .collect())
        };
        assert_eq!(
            find_path(&id("a"), &id("d"), deps).unwrap(),
            Some(vec![id("a"), id("b"), id("c"), id("d")])
        );
        assert_eq!(find_path(&id("d"), &id("a"), deps).unwrap(), None);
        // d → a would close d → a → b → c → d.
        let path = find_path(&id("a"), &id("d"), deps).unwrap().unwrap();
        let e = cycle_error(&id("d"), path);
        assert_eq!(e.to_string(), "dependency cycle: d -> a -> b -> c -> d");
    }
}
