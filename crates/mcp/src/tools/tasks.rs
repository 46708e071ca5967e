//! Task tools: create, list, get, claim (with a wait for a ready task that reports progress
//! and can be cancelled), heartbeat, finish, release, statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oc_hooks::{Committed, Refusal};
use oc_tasks::{
    IdempotencyKey, Keyed, LabelFilter, NewTask, Readiness, Task, TaskFilter, TaskId, TaskQuery,
    TaskStatus, Waiting,
};
use serde_json::{Value, json};

use super::{
    Args, CallContext, Claimed, Tool, ToolError, Toolbox, agent, any_object, boolean,
    idempotency_key, integer, list, replayed, string, strings,
};

/// The longest wait for a ready task a call may ask for.
const MAX_WAIT_MS: u64 = 300_000;

/// How many recent tasks `task_stats` shows.
const RECENT: usize = 5;

fn task_json(t: &Task) -> Result<Value, ToolError> {
    serde_json::to_value(t).map_err(|e| ToolError::Internal(e.to_string()))
}

fn brief(t: &Task) -> Value {
    json!({ "id": t.id.as_str(), "name": t.name, "status": t.status, "owner": t.owner,
            "priority": t.priority, "labels": t.labels, "depends_on": t.depends_on })
}

/// Marks a keyed answer: `replayed` is said only by a call that passed a key.
fn mark(mut out: Value, keyed: bool, replayed: bool) -> Value {
    if keyed && let Value::Object(m) = &mut out {
        m.insert("replayed".into(), Value::Bool(replayed));
    }
    out
}

/// An unkeyed outcome as a keyed one that was not replayed.
fn fresh<T>(value: T) -> Keyed<T> {
    Keyed {
        value,
        replayed: false,
    }
}

fn task_create(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let agent = a.agent(tb)?;
    let key = a.task_key(&agent)?;
    let mut new = NewTask::new(a.str("name")?).owner(agent);
    if let Some(d) = a.opt_str("description")? {
        new = new.description(d);
    }
    if let Some(p) = a.opt_u64("priority", 1_000_000)? {
        new = new.priority(i32::try_from(p).unwrap_or(i32::MAX));
    }
    for d in a.strings("depends_on")? {
        new = new
            .depends_on(oc_tasks::TaskId::new(d).map_err(|e| ToolError::invalid("depends_on", e))?);
    }
    for l in a.strings("labels")? {
        new = new.label(l);
    }
    if a.opt_str("parent")?.is_some() {
        new = new.parent(a.task_id("parent")?);
    }
    let c = match &key {
        Some(k) => tb.life.create_keyed(k, new)?,
        None => fresh(tb.life.create(new)?),
    };
    let out = json!({ "task": task_json(c.value.task())?, "duplicate": c.value.duplicate });
    Ok(mark(out, key.is_some(), c.replayed))
}

fn task_get(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let id = a.task_id("task_id")?;
    match tb.life.store().get(&id)? {
        Some(t) => Ok(json!({ "task": task_json(&t)? })),
        None => Err(ToolError::refused("NOT_FOUND", format!("no task {id}"))),
    }
}

fn task_list(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let mut filter = TaskFilter::new();
    if let Some(s) = a.opt_str("status")? {
        let status: TaskStatus = s.parse().map_err(|e| ToolError::invalid("status", e))?;
        filter = filter.status(status);
    }
    if let Some(o) = a.opt_str("owner")? {
        filter = filter.owner(o);
    }
    for l in a.strings("labels")? {
        filter = filter.label(l);
    }
    if a.opt_bool("ready")? == Some(true) {
        filter = filter.readiness(Readiness::Ready);
    }
    let limit = a.opt_u64("limit", 100)?.unwrap_or(20) as usize;
    let page = tb.life.store().list(&TaskQuery::new(filter).limit(limit))?;
    let full = a.opt_bool("full")? == Some(true);
    let tasks: Vec<Value> = page
        .tasks
        .iter()
        .map(|t| if full { task_json(t) } else { Ok(brief(t)) })
        .collect::<Result<_, _>>()?;
    Ok(json!({ "tasks": tasks, "truncated": page.next.is_some() }))
}

fn claimed(t: &Task) -> Result<Value, ToolError> {
    let lease = t
        .lease
        .ok_or_else(|| ToolError::Internal(format!("claimed task {} has no lease", t.id)))?;
    Ok(
        json!({ "claimed": true, "task_id": t.id.as_str(), "fencing_token": lease.token,
               "lease_expires_at": lease.expires_at.to_string(), "task": task_json(t)? }),
    )
}

/// A refused change of task `id` explained from what the task is now
/// ([`oc_hooks::Refusal`], the CLI's words too), so the agent can act: a running task names
/// who holds it and until when (`ALREADY_CLAIMED` for a claim), a finished one says so and when
/// (`ALREADY_FINISHED`), a lost lease says where the task went (`LEASE_LOST`). The store's own
/// answer (`INVALID_TRANSITION`, `LEASE_LOST`) stays when the task says no more.
fn explain(tb: &Toolbox, id: &TaskId, action: &str, e: oc_hooks::Error) -> ToolError {
    let Some(r) = tb.life.refusal(id, action, &e) else {
        return e.into();
    };
    let details = match &r {
        Refusal::AlreadyFinished {
            status, at, owner, ..
        } => json!({ "status": status, "finished_at": at.map(|f| f.to_string()), "owner": owner }),
        Refusal::AlreadyClaimed { owner, until, .. }
        | Refusal::LeaseLost {
            holder: Some((owner, until)),
            ..
        } => {
            let retry_ms = until
                .as_millis()
                .saturating_sub(tb.life.store().now().as_millis())
                .max(0);
            json!({ "status": TaskStatus::Running, "owner": owner,
                    "lease_expires_at": until.to_string(), "retry_after_ms": retry_ms })
        }
        Refusal::LeaseLost { holder: None, .. } => json!({ "status": TaskStatus::Pending }),
        _ => Value::Null,
    };
    ToolError::Refused {
        code: r.code(),
        message: r.to_string(),
        details,
    }
}

fn task_claim(tb: &Toolbox, a: &Args<'_>, ctx: &CallContext<'_>) -> Result<Value, ToolError> {
    let agent = a.agent(tb)?;
    let key = a.task_key(&agent)?;
    let ttl = a.secs("lease_secs", 300)?;
    let wait_ms = a.opt_u64("wait_ms", MAX_WAIT_MS)?.unwrap_or(0);
    if a.opt_str("task_id")?.is_some() {
        if wait_ms > 0 {
            return Err(ToolError::invalid(
                "wait_ms",
                "waits only for the next ready task: leave out task_id, or wait_ms",
            ));
        }
        let id = a.task_id("task_id")?;
        let c = match &key {
            Some(k) => tb.life.claim_keyed(k, &id, &agent, ttl),
            None => tb.life.claim(&id, &agent, ttl).map(fresh),
        }
        .map_err(|e| explain(tb, &id, "claim", e))?;
        record(ctx, &c.value, c.replayed, &key);
        return Ok(mark(claimed(c.value.task())?, key.is_some(), c.replayed));
    }
    let mut filter = LabelFilter::any();
    for l in a.strings("labels")? {
        filter = filter.require(l);
    }
    let got = if wait_ms == 0 {
        match &key {
            Some(k) => tb.life.claim_next_keyed(k, &agent, ttl, &filter)?,
            None => fresh(tb.life.claim_next_matching(&agent, ttl, &filter)?),
        }
    } else {
        // Progress about once a second while waiting; a cancelled call stops waiting and
        // gives back a task it claimed as it was cancelled (forgetting its key).
        let reported = AtomicU64::new(0);
        let watcher = |waited: Duration| {
            if ctx.is_cancelled() {
                return false;
            }
            let secs = waited.as_secs();
            if secs > reported.load(Ordering::Relaxed) {
                reported.store(secs, Ordering::Relaxed);
                ctx.report(
                    waited.as_millis() as f64,
                    Some(wait_ms as f64),
                    &format!(
                        "waiting {secs} s of {} s for a ready task",
                        wait_ms.div_ceil(1000)
                    ),
                );
            }
            true
        };
        let wait = Waiting::new(Duration::from_millis(wait_ms)).watch(&watcher);
        let got = match &key {
            Some(k) => tb
                .life
                .claim_next_watched_keyed(k, &agent, ttl, &filter, &wait)?,
            None => fresh(tb.life.claim_next_watched(&agent, ttl, &filter, &wait)?),
        };
        if got.value.is_none() && !got.replayed && ctx.is_cancelled() {
            return Err(ToolError::Cancelled);
        }
        got
    };
    let replay = got.replayed;
    match got.value {
        // Claimed as the client cancelled: a cancelled call takes nothing (a replayed grant
        // is the first call's, not this one's to give back).
        Some(c) if ctx.is_cancelled() && !replay => {
            if let Some(l) = c.task().lease {
                tb.give_back_claims(&[Claimed {
                    id: c.task().id.clone(),
                    token: l.token,
                    key: key.clone(),
                }]);
            }
            Err(ToolError::Cancelled)
        }
        Some(c) => {
            // Released again if the answer cannot reach the client.
            record(ctx, &c, replay, &key);
            Ok(mark(claimed(c.task())?, key.is_some(), replay))
        }
        None if replay => Ok(mark(
            json!({ "claimed": false, "reason": "the first call with this idempotency key claimed nothing" }),
            true,
            true,
        )),
        None if wait_ms > 0 => Ok(mark(
            json!({ "claimed": false,
                    "reason": format!("no ready task matched within {wait_ms} ms") }),
            key.is_some(),
            false,
        )),
        None => Ok(mark(
            json!({ "claimed": false, "reason": "no ready task matches" }),
            key.is_some(),
            false,
        )),
    }
}

/// Records a claim the call made, to give back should its answer not be delivered; a replayed
/// one is the first call's (answered then, or given back then with its key forgotten).
fn record(ctx: &CallContext<'_>, c: &Committed, replayed: bool, key: &Option<IdempotencyKey>) {
    if let (false, Some(l)) = (replayed, c.task().lease) {
        ctx.claimed(Claimed {
            id: c.task().id.clone(),
            token: l.token,
            key: key.clone(),
        });
    }
}

fn token_arg(a: &Args<'_>) -> Result<u64, ToolError> {
    a.opt_u64("fencing_token", u64::MAX)?.ok_or_else(|| {
        ToolError::invalid(
            "fencing_token",
            "is required: the token task_claim returned",
        )
    })
}

fn task_heartbeat(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let key = a.task_key(&a.agent(tb)?)?;
    let id = a.task_id("task_id")?;
    let (token, ttl) = (token_arg(a)?, a.secs("lease_secs", 300)?);
    let t = match &key {
        Some(k) => tb.life.heartbeat_keyed(k, &id, token, ttl),
        None => tb.life.heartbeat(&id, token, ttl).map(fresh),
    }
    .map_err(|e| explain(tb, &id, "renew", e))?;
    let expires = t.value.lease.map(|l| l.expires_at.to_string());
    let out = json!({ "task_id": t.value.id.as_str(), "lease_expires_at": expires });
    Ok(mark(out, key.is_some(), t.replayed))
}

fn task_finish(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let key = a.task_key(&a.agent(tb)?)?;
    let id = a.task_id("task_id")?;
    let token = Some(token_arg(a)?);
    let c = match a.str("outcome")? {
        "completed" => {
            let result = a.map.get("result").cloned().filter(|v| !v.is_null());
            match &key {
                Some(k) => tb.life.complete_keyed(k, &id, token, result),
                None => tb.life.complete(&id, token, result).map(fresh),
            }
        }
        "failed" => {
            let error = a.opt_str("error")?.unwrap_or("failed");
            match &key {
                Some(k) => tb.life.fail_keyed(k, &id, token, error),
                None => tb.life.fail(&id, token, error).map(fresh),
            }
        }
        other => {
            return Err(ToolError::invalid(
                "outcome",
                format!("must be completed or failed, not {other:?}"),
            ));
        }
    }
    .map_err(|e| explain(tb, &id, "finish", e))?;
    let out = json!({ "task": task_json(c.value.task())? });
    Ok(mark(out, key.is_some(), c.replayed))
}

fn task_release(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let key = a.task_key(&a.agent(tb)?)?;
    let id = a.task_id("task_id")?;
    let token = token_arg(a)?;
    let c = match &key {
        Some(k) => tb.life.release_keyed(k, &id, token),
        None => tb.life.release(&id, token).map(fresh),
    }
    .map_err(|e| explain(tb, &id, "release", e))?;
    let out = json!({ "task": task_json(c.value.task())? });
    Ok(mark(out, key.is_some(), c.replayed))
}

fn task_stats(tb: &Toolbox, _: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    Ok(json!({ "stats": tb.life.store().stats(RECENT)?.to_json() }))
}

pub(super) fn tools() -> Vec<Tool> {
    let task_id = || ("task_id", string("The task's id."));
    let token = || {
        (
            "fencing_token",
            integer("The token task_claim returned.", 1, u64::MAX),
        )
    };
    let lease = || {
        (
            "lease_secs",
            integer("Lease length in seconds (default 300).", 1, 86_400),
        )
    };
    let one_task = [("task", any_object("The task, every field."))];
    vec![
        Tool::new(
            "task_create",
            "Create a task",
            "Create a pending task, optionally depending on other tasks (it becomes ready once they complete), under a parent, with labels.",
            task_create,
        )
        .args(
            &[
                agent(),
                ("name", string("What the task is.")),
                ("description", string("Details.")),
                (
                    "priority",
                    integer("Higher runs first (default 0).", 0, 1_000_000),
                ),
                (
                    "depends_on",
                    strings("Ids of tasks that must complete first."),
                ),
                ("labels", strings("Labels for routing.")),
                ("parent", string("Id of the parent task.")),
                idempotency_key("creates nothing more"),
            ],
            &["name"],
        )
        .answers(
            &[
                one_task[0].clone(),
                (
                    "duplicate",
                    boolean("An unfinished task with its unique key already existed."),
                ),
                replayed(),
            ],
            &["task"],
        ),
        Tool::new(
            "task_list",
            "List tasks",
            "List tasks, newest first: by status, owner, labels, or only those ready to claim. Brief by default; full=true for every field.",
            task_list,
        )
        .args(
            &[
                (
                    "status",
                    json!({"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]}),
                ),
                ("owner", string("Only this owner's tasks.")),
                ("labels", strings("Only tasks with all these labels.")),
                ("ready", boolean("Only tasks ready to claim.")),
                ("limit", integer("At most this many (default 20).", 1, 100)),
                ("full", boolean("Every field of each task.")),
            ],
            &[],
        )
        .answers(
            &[
                ("tasks", list("The tasks.")),
                ("truncated", boolean("More tasks match.")),
            ],
            &["tasks", "truncated"],
        )
        .read_only(),
        Tool::new(
            "task_get",
            "Get a task",
            "One task with every field: status, owner, lease, dependencies, result or error.",
            task_get,
        )
        .args(&[task_id()], &["task_id"])
        .answers(&one_task, &["task"])
        .read_only(),
        Tool::new(
            "task_claim",
            "Claim a task",
            "Atomically claim the next ready task (or the given one) for `agent`, with a lease; with wait_ms, wait up to that long for a ready task with the labels (progress is reported while waiting, and cancelling the call stops the wait, taking nothing). Returns fencing_token and lease_expires_at: pass the token to task_heartbeat and task_finish, and heartbeat before the lease expires or another agent may take the task. A task another agent holds is refused with ALREADY_CLAIMED (owner, lease_expires_at, retry_after_ms); a finished one with ALREADY_FINISHED.",
            task_claim,
        )
        .args(
            &[
                agent(),
                task_id(),
                lease(),
                (
                    "labels",
                    strings("Claim only a task with all these labels."),
                ),
                (
                    "wait_ms",
                    integer(
                        "How long to wait for a ready task (default 0: answer at once); not with task_id.",
                        0,
                        MAX_WAIT_MS,
                    ),
                ),
                idempotency_key(
                    "returns the first grant (same task, same fencing_token) and claims nothing more, even one that waited",
                ),
            ],
            &[],
        )
        .answers(
            &[
                ("claimed", boolean("Whether a task was claimed.")),
                ("task_id", string("The claimed task.")),
                (
                    "fencing_token",
                    json!({"type": "integer", "description": "Pass it to task_heartbeat, task_finish, task_release."}),
                ),
                ("lease_expires_at", string("When the lease lapses.")),
                ("task", any_object("The claimed task.")),
                ("reason", string("Why nothing was claimed.")),
                replayed(),
            ],
            &["claimed"],
        )
        .waits_on("wait_ms"),
        Tool::new(
            "task_heartbeat",
            "Extend a lease",
            "Extend your lease on a claimed task. Fails with LEASE_LOST if the token is no longer the task's (the lease lapsed and another agent claimed it, or the task is pending again), saying who holds it now: stop working on it then; ALREADY_FINISHED if the task is finished.",
            task_heartbeat,
        )
        .args(
            &[
                agent(),
                task_id(),
                token(),
                lease(),
                idempotency_key("returns the first renewal"),
            ],
            &["task_id", "fencing_token"],
        )
        .answers(
            &[
                ("task_id", string("The task.")),
                ("lease_expires_at", string("The new expiry.")),
                replayed(),
            ],
            &["task_id"],
        )
        .idempotent()
        .on_held_task("task_id"),
        Tool::new(
            "task_finish",
            "Finish a task",
            "Finish a claimed task as completed (with an optional result) or failed (with an error); a failed task may be retried by its retry policy. Needs the fencing token. A task finished already is refused with ALREADY_FINISHED (status, finished_at); LEASE_LOST says who holds it now.",
            task_finish,
        )
        .args(
            &[
                agent(),
                task_id(),
                token(),
                (
                    "outcome",
                    json!({"type": "string", "enum": ["completed", "failed"]}),
                ),
                ("result", any_object("What was done (completed).")),
                ("error", string("What went wrong (failed).")),
                idempotency_key("returns the task as first finished"),
            ],
            &["task_id", "fencing_token", "outcome"],
        )
        .answers(&[one_task[0].clone(), replayed()], &["task"])
        .on_held_task("task_id"),
        Tool::new(
            "task_release",
            "Give a task back",
            "Give back a task you claimed but will not finish: it is pending again at once for another agent, and the attempt does not count. Needs the fencing token.",
            task_release,
        )
        .args(
            &[
                agent(),
                task_id(),
                token(),
                idempotency_key("returns the task as first released"),
            ],
            &["task_id", "fencing_token"],
        )
        .answers(&[one_task[0].clone(), replayed()], &["task"])
        .on_held_task("task_id"),
        Tool::new(
            "task_stats",
            "Task statistics",
            "Totals by status and owner, ready and blocked counts, the most recent tasks.",
            task_stats,
        )
        .answers(
            &[("stats", any_object("The statistics."))],
            &["stats"],
        )
        .read_only()
        .extra(),
    ]
}
