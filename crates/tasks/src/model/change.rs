//! Changes to a task and the pure functions every backend follows: [`TaskPatch`], [`Change`],
//! [`transition`] (the row a change writes, and the [`EventKind`] of the change) and [`reap`]
//! (what a lapsed lease becomes).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    EventKind, Lease, MAX_NAME_LEN, MAX_TEXT_LEN, Task, TaskStatus, check_agent, check_lease,
    check_run_at, check_text, invalid,
};
use crate::graph::check_labels;
use crate::{Error, Result, RetryPolicy, Timestamp};

/// A partial update: only the fields that are `Some` change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskPatch {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New owner (`Some(None)` clears it).
    pub owner: Option<Option<String>>,
    /// New priority.
    pub priority: Option<i32>,
    /// A JSON merge patch (RFC 7396) applied to the metadata: keys set to `null` are removed.
    pub metadata: Option<Map<String, Value>>,
    /// New attempt budget.
    pub max_attempts: Option<u32>,
    /// New labels, replacing the old ones.
    pub labels: Option<Vec<String>>,
    /// New `run_at` (`Some(None)` clears it).
    pub run_at: Option<Option<Timestamp>>,
    /// New retry policy.
    pub retry: Option<RetryPolicy>,
}

impl TaskPatch {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the name.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// Sets or clears the description.
    pub fn description(mut self, d: Option<String>) -> Self {
        self.description = Some(d);
        self
    }
    /// Sets or clears the owner.
    pub fn owner(mut self, o: Option<String>) -> Self {
        self.owner = Some(o);
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = Some(p);
        self
    }
    /// Merges `m` into the metadata.
    pub fn merge_metadata(mut self, m: Map<String, Value>) -> Self {
        self.metadata = Some(m);
        self
    }
    /// Sets the attempt budget.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Replaces the labels.
    pub fn labels(mut self, l: Vec<String>) -> Self {
        self.labels = Some(l);
        self
    }
    /// Sets or clears `run_at`.
    pub fn run_at(mut self, at: Option<Timestamp>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Sets the retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = Some(p);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            check_text("name", n, 1, MAX_NAME_LEN)?;
        }
        if let Some(Some(d)) = &self.description {
            check_text("description", d, 0, MAX_TEXT_LEN)?;
        }
        if let Some(Some(o)) = &self.owner {
            check_text("owner", o, 1, MAX_NAME_LEN)?;
        }
        if self.max_attempts == Some(0) {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        if let Some(l) = &self.labels {
            check_labels(l)?;
        }
        if let Some(r) = &self.retry {
            r.validate()?;
        }
        Ok(())
    }
}

/// One change to one task, applied atomically by [`crate::TaskStore::apply`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// pending → running, owned by `agent`, without a lease.
    Start {
        /// The agent starting the task.
        agent: String,
    },
    /// pending → running, owned by `owner`, with a lease of `ttl` and a fresh fencing token.
    Claim {
        /// The claiming agent.
        owner: String,
        /// Lease length.
        ttl: Duration,
    },
    /// Extends the lease identified by `token` to now + `ttl`.
    Heartbeat {
        /// The current lease's token.
        token: u64,
        /// New lease length from now.
        ttl: Duration,
    },
    /// running → completed; `token` must match the lease (or be `None` for a task started without one).
    Complete {
        /// The lease token, if the task was claimed.
        token: Option<u64>,
        /// What to record as the result.
        result: Option<Value>,
    },
    /// running → failed; the token rule is as for `Complete`.
    Fail {
        /// The lease token, if the task was claimed.
        token: Option<u64>,
        /// The failure message.
        error: String,
    },
    /// pending | running → cancelled.
    Cancel,
    /// failed | cancelled → pending.
    Retry,
    /// running → pending: the holder of the lease identified by `token` gives the task back
    /// (the lease ends, the attempt is refunded, the owner is kept as the reaper keeps it).
    /// A lease operation like [`Change::Heartbeat`]: only the current lease's token passes,
    /// and only a running task holds one.
    Release {
        /// The current lease's token.
        token: u64,
    },
    /// Changes fields without touching the status.
    Update(TaskPatch),
}

impl Change {
    /// The status this change leads to, if it is a status transition.
    pub fn target(&self) -> Option<TaskStatus> {
        match self {
            Change::Start { .. } | Change::Claim { .. } => Some(TaskStatus::Running),
            Change::Complete { .. } => Some(TaskStatus::Completed),
            Change::Fail { .. } => Some(TaskStatus::Failed),
            Change::Cancel => Some(TaskStatus::Cancelled),
            Change::Retry => Some(TaskStatus::Pending),
            Change::Heartbeat { .. } | Change::Release { .. } | Change::Update(_) => None,
        }
    }

    /// What this change does to `task` if the state machine grants it (this does not check
    /// that it does; [`transition`] does): the kind the store records in the task's history
    /// and returns from [`transition`]. `None` for a heartbeat or an update, which change no
    /// status and are not recorded. A failure is [`EventKind::RetryScheduled`] when the task's
    /// retry policy gives it another run after a backoff, [`EventKind::Failed`] otherwise.
    ///
    /// ```
    /// use oc_tasks::{Change, EventKind, NewTask, RetryPolicy, Timestamp};
    /// use std::time::Duration;
    /// let mut t = NewTask::new("t").into_task(Timestamp::EPOCH)?;
    /// t.attempts = 1;
    /// let fail = Change::Fail { token: None, error: "broke".into() };
    /// assert_eq!(fail.kind(&t), Some(EventKind::Failed));
    /// t.retry = RetryPolicy::backoff(Duration::from_secs(1), Duration::from_secs(60));
    /// assert_eq!(fail.kind(&t), Some(EventKind::RetryScheduled));
    /// assert_eq!(Change::Update(Default::default()).kind(&t), None);
    /// # Ok::<(), oc_tasks::Error>(())
    /// ```
    pub fn kind(&self, task: &Task) -> Option<EventKind> {
        Some(match self {
            Change::Start { .. } => EventKind::Started,
            Change::Claim { .. } => EventKind::Claimed,
            Change::Complete { .. } => EventKind::Completed,
            Change::Fail { .. } if retry_delay(task).is_some() => EventKind::RetryScheduled,
            Change::Fail { .. } => EventKind::Failed,
            Change::Cancel => EventKind::Cancelled,
            Change::Retry => EventKind::Retried,
            Change::Release { .. } => EventKind::Released,
            Change::Heartbeat { .. } | Change::Update(_) => return None,
        })
    }

    /// The lease token this change must present, if it is token-checked.
    pub(crate) fn token_check(&self) -> Option<Option<u64>> {
        match self {
            Change::Heartbeat { token, .. } | Change::Release { token } => Some(Some(*token)),
            Change::Complete { token, .. } | Change::Fail { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// A short lowercase name (`"claim"`, `"complete"`...).
    pub fn name(&self) -> &'static str {
        match self {
            Change::Start { .. } => "start",
            Change::Claim { .. } => "claim",
            Change::Heartbeat { .. } => "heartbeat",
            Change::Complete { .. } => "complete",
            Change::Fail { .. } => "fail",
            Change::Cancel => "cancel",
            Change::Retry => "retry",
            Change::Release { .. } => "release",
            Change::Update(_) => "update",
        }
    }

    /// Checks the change's own arguments, before any store is touched.
    pub fn validate(&self) -> Result<()> {
        match self {
            Change::Start { agent } => check_agent("agent", agent),
            Change::Claim { owner, ttl } => {
                check_agent("owner", owner)?;
                check_lease(*ttl)
            }
            Change::Heartbeat { ttl, .. } => check_lease(*ttl),
            Change::Fail { error, .. } => check_text("error", error, 0, MAX_TEXT_LEN),
            Change::Update(p) => p.validate(),
            Change::Complete { .. } | Change::Cancel | Change::Retry | Change::Release { .. } => {
                Ok(())
            }
        }
    }
}

/// Applies `change` to `task` at `now`, the reference semantics every store follows.
///
/// `next_token` is called only when the change is granted and needs a fencing token.
/// Returns the task as it is after the change with the kind of the change
/// ([`Change::kind`]: what the store records in the history, `None` for a heartbeat or an
/// update), or the typed reason it was refused.
pub fn transition(
    task: &Task,
    change: &Change,
    expect_version: Option<u64>,
    now: Timestamp,
    next_token: impl FnOnce() -> u64,
) -> Result<(Task, Option<EventKind>)> {
    change.validate()?;
    if let Some(expected) = expect_version
        && expected != task.version
    {
        return Err(Error::VersionMismatch {
            id: task.id.clone(),
            expected,
            actual: task.version,
        });
    }
    if let Some(token) = change.token_check()
        && task.lease.map(|l| l.token) != token
    {
        // A token that is not the current lease's is a lost lease whatever the status; no token
        // on a claimed task is one too, since only the lease holder may finish it.
        if token.is_some() || task.status == TaskStatus::Running {
            tracing::info!(
                target: "oc_tasks",
                task = %task.id,
                token,
                held = task.lease.map(|l| l.token),
                "lease lost"
            );
            return Err(Error::LeaseLost {
                id: task.id.clone(),
                token,
            });
        }
    }
    if let Some(to) = change.target()
        && !task.status.can_transition_to(to)
    {
        return Err(Error::InvalidTransition {
            id: task.id.clone(),
            from: task.status,
            to,
        });
    }
    let kind = change.kind(task);
    let mut t = task.clone();
    match change {
        Change::Start { agent } => {
            start_run(&mut t, agent, now);
        }
        Change::Claim { owner, ttl } => {
            start_run(&mut t, owner, now);
            t.lease = Some(Lease {
                token: next_token(),
                expires_at: now.saturating_add(*ttl),
            });
        }
        Change::Heartbeat { token, ttl } => {
            t.lease = Some(Lease {
                token: *token,
                expires_at: now.saturating_add(*ttl),
            });
        }
        Change::Complete { result, .. } => {
            finish(&mut t, TaskStatus::Completed, now);
            t.result = result.clone();
        }
        Change::Fail { error, .. } => {
            t.error = Some(error.clone());
            if kind == Some(EventKind::RetryScheduled) {
                t.status = TaskStatus::Pending;
                t.lease = None;
                t.run_at = backoff(&t, now);
            } else {
                finish(&mut t, TaskStatus::Failed, now);
            }
        }
        Change::Cancel => finish(&mut t, TaskStatus::Cancelled, now),
        Change::Retry => {
            t.status = TaskStatus::Pending;
            t.finished_at = None;
            t.lease = None;
        }
        Change::Release { .. } => {
            t.status = TaskStatus::Pending;
            t.lease = None;
            t.attempts = t.attempts.saturating_sub(1);
        }
        Change::Update(p) => {
            if let Some(Some(at)) = p.run_at {
                check_run_at(at, now)?;
            }
            apply_patch(&mut t, p);
        }
    }
    t.version += 1;
    t.updated_at = now;
    Ok((t, kind))
}

fn start_run(t: &mut Task, agent: &str, now: Timestamp) {
    t.status = TaskStatus::Running;
    t.owner = Some(agent.to_owned());
    t.attempts = t.attempts.saturating_add(1);
    t.started_at = Some(now);
    t.finished_at = None;
    t.lease = None;
}

fn finish(t: &mut Task, status: TaskStatus, now: Timestamp) {
    t.status = status;
    t.finished_at = Some(now);
    t.lease = None;
}

fn apply_patch(t: &mut Task, p: &TaskPatch) {
    if let Some(n) = &p.name {
        t.name.clone_from(n);
    }
    if let Some(d) = &p.description {
        t.description.clone_from(d);
    }
    if let Some(o) = &p.owner {
        t.owner.clone_from(o);
    }
    if let Some(pr) = p.priority {
        t.priority = pr;
    }
    if let Some(m) = &p.metadata {
        merge_patch(&mut t.metadata, m);
    }
    if let Some(n) = p.max_attempts {
        t.max_attempts = n;
    }
    if let Some(l) = &p.labels {
        let mut l = l.clone();
        l.sort();
        t.labels = l;
    }
    if let Some(at) = p.run_at {
        t.run_at = at;
    }
    if let Some(r) = p.retry {
        t.retry = r;
    }
}

/// How long `t`, whose run `t.attempts` just failed, waits before its next run: `None` when
/// the failure is final (no retry policy, or no attempts left).
fn retry_delay(t: &Task) -> Option<Duration> {
    if t.attempts >= t.max_attempts {
        return None;
    }
    t.retry.delay(&t.id, t.attempts)
}

/// When the next run of `t`, whose run `t.attempts` just failed at `now`, may start: `None`
/// when the failure is final.
fn backoff(t: &Task, now: Timestamp) -> Option<Timestamp> {
    Some(now.saturating_add(retry_delay(t)?))
}

/// RFC 7396 JSON merge patch of an object into an object (the same as SQLite's `json_patch`).
fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// What [`crate::TaskStore::reap_expired`] did to one task whose lease lapsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReapedTask {
    /// The task after reaping: pending again, or failed once its attempts are used up.
    pub task: Task,
    /// The agent whose lease lapsed.
    pub expired_owner: Option<String>,
    /// The lapsed lease.
    pub expired_lease: Lease,
}

/// The error recorded on a task failed by the reaper.
fn reap_error(attempts: u32) -> String {
    format!("lease expired after {attempts} attempt(s)")
}

/// Reaps `task` if its lease lapsed at or before `now`: the reference semantics every store follows.
pub fn reap(task: &Task, now: Timestamp) -> Option<ReapedTask> {
    let lease = task.lease?;
    if task.status != TaskStatus::Running || lease.expires_at > now {
        return None;
    }
    let mut t = task.clone();
    t.lease = None;
    if t.attempts >= t.max_attempts {
        t.status = TaskStatus::Failed;
        t.error = Some(reap_error(t.attempts));
        t.finished_at = Some(now);
    } else {
        t.status = TaskStatus::Pending;
        if let Some(at) = backoff(&t, now) {
            t.run_at = Some(at);
        }
    }
    t.version += 1;
    t.updated_at = now;
    Some(ReapedTask {
        task: t,
        expired_owner: task.owner.clone(),
        expired_lease: lease,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewTask, TaskId};
    use serde_json::json;

    fn pending() -> Task {
        NewTask::new("t")
            .id(TaskId::new("t1").unwrap())
            .into_task(Timestamp::from_millis(0))
            .unwrap()
    }

    #[test]
    fn state_machine_table() {
        use TaskStatus::*;
        let allowed = [
            (Pending, Running),
            (Running, Completed),
            (Running, Failed),
            (Pending, Cancelled),
            (Running, Cancelled),
            (Failed, Pending),
            (Cancelled, Pending),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn status_parses_and_rejects_unknown() {
        assert_eq!("failed".parse::<TaskStatus>().unwrap(), TaskStatus::Failed);
        let e = "done".parse::<TaskStatus>().unwrap_err();
        assert!(e.to_string().contains("done"));
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut m = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
            .as_object()
            .unwrap()
            .clone();
        let p = json!({"a": null, "b": {"c": null, "x": 9}, "f": [1]});
        merge_patch(&mut m, p.as_object().unwrap());
        assert_eq!(
            Value::Object(m),
            json!({"b": {"d": 3, "x": 9}, "e": 4, "f": [1]})
        );
    }

    #[test]
    fn complete_requires_the_current_token() {
        let t = pending();
        let claimed = transition(
            &t,
            &Change::Claim {
                owner: "a".into(),
                ttl: Duration::from_secs(1),
            },
            None,
            Timestamp::from_millis(5),
            || 7,
        )
        .unwrap()
        .0;
        assert_eq!(claimed.lease.unwrap().token, 7);
        for token in [None, Some(6)] {
            let e = transition(
                &claimed,
                &Change::Complete {
                    token,
                    result: None,
                },
                None,
                Timestamp::EPOCH,
                || 0,
            )
            .unwrap_err();
            assert!(matches!(e, Error::LeaseLost { .. }), "{e}");
        }
        let done = transition(
            &claimed,
            &Change::Complete {
                token: Some(7),
                result: None,
            },
            None,
            Timestamp::EPOCH,
            || 0,
        )
        .unwrap()
        .0;
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(done.version, 3);
        assert_eq!(done.lease, None);
    }

    #[test]
    fn reap_returns_to_pending_then_fails_when_attempts_run_out() {
        let mut t = pending();
        t.max_attempts = 2;
        let now = Timestamp::from_millis(0);
        for attempt in 1..=2 {
            t = transition(
                &t,
                &Change::Claim {
                    owner: "a".into(),
                    ttl: Duration::from_millis(10),
                },
                None,
                now,
                || attempt,
            )
            .unwrap()
            .0;
            assert!(reap(&t, now.saturating_add(Duration::from_millis(9))).is_none());
            t = reap(&t, now.saturating_add(Duration::from_millis(10)))
                .unwrap()
                .task;
        }
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!(t.error.as_deref(), Some("lease expired after 2 attempt(s)"));
    }

    /// A task in `status`, run once under a lease of token 7 when running.
    fn in_status(status: TaskStatus) -> Task {
        let mut t = pending();
        t.status = status;
        if status != TaskStatus::Pending {
            t.attempts = 1;
            t.owner = Some("a".into());
        }
        if status == TaskStatus::Running {
            t.lease = Some(Lease {
                token: 7,
                expires_at: Timestamp::from_millis(1_000),
            });
        }
        t
    }

    #[test]
    fn transition_returns_the_kind_of_each_change() {
        use EventKind as K;
        use TaskStatus::*;
        let ttl = Duration::from_secs(1);
        let fail = Change::Fail {
            token: Some(7),
            error: "broke".into(),
        };
        let with_retries = |mut t: Task| {
            t.retry = RetryPolicy::backoff(Duration::from_secs(1), Duration::from_secs(60));
            t
        };
        let out_of_attempts = |mut t: Task| {
            t.max_attempts = t.attempts;
            with_retries(t)
        };
        // A release of a run counted zero times (a row written by hand): the attempt count
        // cannot go down, and the history used to call this a failure's backoff.
        let uncounted = |mut t: Task| {
            t.attempts = 0;
            t
        };
        let cases: Vec<(Task, Change, Option<EventKind>, TaskStatus)> = vec![
            (
                in_status(Pending),
                Change::Start { agent: "a".into() },
                Some(K::Started),
                Running,
            ),
            (
                in_status(Pending),
                Change::Claim {
                    owner: "a".into(),
                    ttl,
                },
                Some(K::Claimed),
                Running,
            ),
            (
                in_status(Running),
                Change::Heartbeat { token: 7, ttl },
                None,
                Running,
            ),
            (
                in_status(Running),
                Change::Complete {
                    token: Some(7),
                    result: None,
                },
                Some(K::Completed),
                Completed,
            ),
            (in_status(Running), fail.clone(), Some(K::Failed), Failed),
            (
                with_retries(in_status(Running)),
                fail.clone(),
                Some(K::RetryScheduled),
                Pending,
            ),
            (
                out_of_attempts(in_status(Running)),
                fail.clone(),
                Some(K::Failed),
                Failed,
            ),
            (
                in_status(Pending),
                Change::Cancel,
                Some(K::Cancelled),
                Cancelled,
            ),
            (
                in_status(Running),
                Change::Cancel,
                Some(K::Cancelled),
                Cancelled,
            ),
            (in_status(Failed), Change::Retry, Some(K::Retried), Pending),
            (
                in_status(Cancelled),
                Change::Retry,
                Some(K::Retried),
                Pending,
            ),
            (
                in_status(Running),
                Change::Release { token: 7 },
                Some(K::Released),
                Pending,
            ),
            (
                uncounted(in_status(Running)),
                Change::Release { token: 7 },
                Some(K::Released),
                Pending,
            ),
            (
                in_status(Pending),
                Change::Update(TaskPatch::new().priority(3)),
                None,
                Pending,
            ),
        ];
        for (task, change, kind, status) in cases {
            let what = format!("{} of a {} task", change.name(), task.status);
            assert_eq!(change.kind(&task), kind, "{what}");
            let (next, got) = transition(&task, &change, None, Timestamp::from_millis(5), || 8)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, kind, "{what}");
            assert_eq!(next.status, status, "{what}");
            let entry = got.map(|k| crate::HistoryEntry::new(k, Some(&task), &next));
            assert_eq!(entry.map(|h| h.kind), kind, "{what}");
        }
    }
}
