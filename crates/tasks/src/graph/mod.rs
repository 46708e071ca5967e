//! The work graph and job semantics: dependencies, readiness, parents, labels, scheduled
//! retries and unique keys. Its types are exported at the crate root, its algorithms (in
//! `algorithms.rs`) and the SQL twins of readiness (in `ready.rs`, beside [`is_ready`]) to
//! backends through [`crate::backend`].
//!
//! A task is **ready** when it is pending, every task it depends on is completed, and its
//! `run_at` (if any) has passed; `claim_next` and `claim_many` hand out ready tasks only.
//! Stores keep readiness incrementally (a count of unfinished dependencies per task, written
//! in the transaction that completes a dependency), never by walking the graph on a claim.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Task, TaskId, TaskStatus, Timestamp};

pub(crate) mod algorithms;
pub(crate) mod ready;

pub use ready::is_ready;

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
}
