//! `oc task ...` and `oc task-stats`.

use std::io::Write;

use anyhow::Context;
use oc_tasks::{
    Cursor, IdempotencyKey, Keyed, NewTask, Task, TaskFilter, TaskQuery, TaskStats, TaskStatus,
    TaskStore,
};
use serde_json::{Map, Value};

use crate::args::{TaskCmd, When, task_id};
use crate::output::{Clean, Output, print_page, thousands};
use crate::{Site, UsageError};
use oc_hooks::{Committed, Hooks, TaskLifecycle};

fn json_arg(flag: &str, s: &str) -> anyhow::Result<Value> {
    serde_json::from_str(s)
        .map_err(|e| UsageError(format!("--{flag} is not valid JSON: {e}")).into())
}

fn json_object(flag: &str, s: &str) -> anyhow::Result<Map<String, Value>> {
    match json_arg(flag, s)? {
        Value::Object(m) => Ok(m),
        other => Err(UsageError(format!("--{flag} must be a JSON object, not {other}")).into()),
    }
}

/// The agent whose `--idempotency-key` a command naming no agent uses (heartbeat, release,
/// complete, fail).
pub(crate) const CLI_AGENT: &str = "oc";

/// The `--idempotency-key` of a command acting as `agent`, checked by the libraries' rule.
fn task_key(key: Option<&str>, agent: &str) -> anyhow::Result<Option<IdempotencyKey>> {
    key.map(|k| {
        IdempotencyKey::new(agent, k)
            .map_err(|e| UsageError(format!("--idempotency-key: {e}")).into())
    })
    .transpose()
}

/// Says on stderr that the answer printed is the first call's, replayed.
pub(crate) fn note_replayed(replayed: bool) {
    if replayed {
        eprintln!(
            "oc: replayed: this is the answer of the first call with this --idempotency-key; nothing changed now"
        );
    }
}

/// An unkeyed outcome as a keyed one that was not replayed.
fn fresh<T>(value: T) -> Keyed<T> {
    Keyed {
        value,
        replayed: false,
    }
}

pub(crate) fn run(
    site: &Site,
    cmd: TaskCmd,
    key: Option<&str>,
    out: &mut Output,
) -> anyhow::Result<()> {
    // Validate everything the user typed before the database is touched (or created).
    let store = || site.store();
    let life = || lifecycle(site);
    if key.is_some()
        && !matches!(
            cmd,
            TaskCmd::Create { .. }
                | TaskCmd::Claim { .. }
                | TaskCmd::Heartbeat { .. }
                | TaskCmd::Release { .. }
                | TaskCmd::Complete { .. }
                | TaskCmd::Fail { .. }
        )
    {
        return Err(UsageError(
            "--idempotency-key goes with task create, claim, heartbeat, release, complete and fail"
                .into(),
        )
        .into());
    }
    match cmd {
        TaskCmd::Create {
            name,
            id,
            description,
            owner,
            priority,
            metadata,
            max_attempts,
            depends_on,
            parent,
            labels,
            run_at,
            unique_key,
            unique_always,
            retry,
        } => {
            let mut new = NewTask::new(name).priority(priority);
            for d in &depends_on {
                new = new.depends_on(task_id(d)?);
            }
            if let Some(p) = parent {
                new = new.parent(task_id(&p)?);
            }
            for l in labels {
                new = new.label(l);
            }
            if let Some(k) = unique_key {
                new = if unique_always {
                    new.unique_key_always(k)
                } else {
                    new.unique_key(k)
                };
            }
            if let Some(r) = retry {
                new = new.retry(r);
            }
            if let Some(id) = id {
                new = new.id(task_id(&id)?);
            }
            if let Some(d) = description {
                new = new.description(d);
            }
            let key = task_key(key, owner.as_deref().unwrap_or(CLI_AGENT))?;
            if let Some(o) = owner {
                new = new.owner(o);
            }
            if let Some(m) = metadata {
                new = new.metadata(json_object("metadata", &m)?);
            }
            if let Some(n) = max_attempts {
                new = new.max_attempts(n);
            }
            let l = life()?;
            if let Some(when) = run_at {
                new = new.run_at(match when {
                    When::At(t) => t,
                    When::In(d) => l.store().now().saturating_add(d),
                });
            }
            let c = match &key {
                Some(k) => l.create_keyed(k, new)?,
                None => fresh(l.create(new)?),
            };
            note_replayed(c.replayed);
            let duplicate = c.value.duplicate;
            let t = committed(c.value);
            let mut doc = serde_json::to_value(&t)?;
            doc["duplicate"] = duplicate.into();
            out.emit("task.create", &doc, |w, o| {
                if o.quiet {
                    writeln!(w, "{}", t.id)
                } else if duplicate {
                    let key = t.unique.as_ref().map_or("", |u| u.key.as_str());
                    writeln!(
                        w,
                        "Task {} ({}) holds unique key {}: nothing created",
                        t.id,
                        o.status(t.status),
                        Clean(key)
                    )
                } else {
                    writeln!(w, "Created task {} ({})", t.id, o.status(t.status))
                }
            })
        }
        TaskCmd::List {
            status,
            owner,
            labels,
            parent,
            limit,
            order,
            after,
        } => {
            let mut filter = TaskFilter::new();
            filter.statuses = status.into_iter().map(TaskStatus::from).collect();
            filter.owner = owner;
            filter.labels = labels.filter();
            filter.parent = parent.as_deref().map(task_id).transpose()?;
            let after = after.map(|c| c.parse::<Cursor>()).transpose()?;
            let page = store()?.list(
                &TaskQuery::new(filter)
                    .order(order.into())
                    .limit(limit)
                    .after(after),
            )?;
            print_page("task.list", &page, out)
        }
        TaskCmd::Find {
            query,
            status,
            owner,
            limit,
        } => {
            let mut filter = TaskFilter::new().search(query);
            filter.statuses = status.into_iter().map(TaskStatus::from).collect();
            filter.owner = owner;
            let page = store()?.list(&TaskQuery::new(filter).limit(limit))?;
            print_page("task.find", &page, out)
        }
        TaskCmd::Show { id } => {
            let id = task_id(&id)?;
            let s = store()?;
            let t = s.require(&id)?;
            let blockers = s.blockers(&id)?;
            let children = s.rollup(&id)?;
            out.emit("task.show", &t, |w, o| {
                print_task(w, o, &t)?;
                crate::graph::print_graph_fields(w, &t, &blockers, &children)
            })
        }
        TaskCmd::Start { id, agent } => {
            let id = task_id(&id)?;
            transition(out, "task.start", committed(life()?.start(&id, &agent)?))
        }
        TaskCmd::Claim {
            id,
            next,
            labels,
            agent,
            lease,
            wait,
        } => {
            let id = id.as_deref().map(task_id).transpose()?;
            let filter = labels.filter();
            if id.is_some() && !filter.is_any() {
                return Err(UsageError("--label and --without-label go with --next".into()).into());
            }
            if id.is_some() && !wait.is_zero() {
                return Err(UsageError("--wait goes with --next".into()).into());
            }
            let key = task_key(key, &agent)?;
            let l = life()?;
            let got = match (id, &key) {
                (Some(id), Some(k)) => l
                    .claim_keyed(k, &id, &agent, lease)
                    .map_err(|e| explain(&l, &id, "claim", e))?
                    .map(Some),
                (Some(id), None) => fresh(Some(
                    l.claim(&id, &agent, lease)
                        .map_err(|e| explain(&l, &id, "claim", e))?,
                )),
                (None, Some(k)) if wait.is_zero() => {
                    l.claim_next_keyed(k, &agent, lease, &filter)?
                }
                (None, None) if wait.is_zero() => {
                    debug_assert!(next);
                    fresh(l.claim_next_matching(&agent, lease, &filter)?)
                }
                (None, key) => {
                    // A wait woken by this process's writes, polling for other processes'
                    // (and, on PostgreSQL, woken by their notifications).
                    let w = oc_tasks::Waiting::new(wait);
                    match key {
                        Some(k) => l.claim_next_watched_keyed(k, &agent, lease, &filter, &w)?,
                        None => fresh(l.claim_next_watched(&agent, lease, &filter, &w)?),
                    }
                }
            };
            note_replayed(got.replayed);
            let t = got.value.map(committed);
            out.emit("task.claim", &t, |w, o| match &t {
                None => {
                    if o.quiet {
                        Ok(())
                    } else {
                        writeln!(w, "No ready task to claim")
                    }
                }
                Some(t) => {
                    let lease = t.lease.map(|l| (l.token, l.expires_at));
                    let (token, expires) =
                        lease.map_or((0, String::new()), |(t, e)| (t, e.to_string()));
                    if o.quiet {
                        writeln!(w, "{} {token}", t.id)
                    } else {
                        writeln!(
                            w,
                            "Claimed {} for {}: lease token {token}, expires {expires}",
                            t.id,
                            Clean(&agent)
                        )
                    }
                }
            })
        }
        TaskCmd::Heartbeat { id, token, lease } => {
            let id = task_id(&id)?;
            let key = task_key(key, CLI_AGENT)?;
            let l = life()?;
            let t = match &key {
                Some(k) => l.heartbeat_keyed(k, &id, token, lease),
                None => l.heartbeat(&id, token, lease).map(fresh),
            }
            .map_err(|e| explain(&l, &id, "renew", e))?;
            note_replayed(t.replayed);
            transition(out, "task.heartbeat", t.value)
        }
        TaskCmd::Release { id, token } => {
            let id = task_id(&id)?;
            let key = task_key(key, CLI_AGENT)?;
            let l = life()?;
            let c = match &key {
                Some(k) => l.release_keyed(k, &id, token),
                None => l.release(&id, token).map(fresh),
            }
            .map_err(|e| explain(&l, &id, "release", e))?;
            note_replayed(c.replayed);
            transition(out, "task.release", committed(c.value))
        }
        TaskCmd::Complete { id, token, result } => {
            let id = task_id(&id)?;
            let key = task_key(key, CLI_AGENT)?;
            let result = result
                .as_deref()
                .map(|r| json_arg("result", r))
                .transpose()?;
            let l = life()?;
            let c = match &key {
                Some(k) => l.complete_keyed(k, &id, token, result),
                None => l.complete(&id, token, result).map(fresh),
            }
            .map_err(|e| explain(&l, &id, "complete", e))?;
            note_replayed(c.replayed);
            transition(out, "task.complete", committed(c.value))
        }
        TaskCmd::Fail { id, token, error } => {
            let id = task_id(&id)?;
            let key = task_key(key, CLI_AGENT)?;
            let l = life()?;
            let c = match &key {
                Some(k) => l.fail_keyed(k, &id, token, &error),
                None => l.fail(&id, token, &error).map(fresh),
            }
            .map_err(|e| explain(&l, &id, "fail", e))?;
            note_replayed(c.replayed);
            transition(out, "task.fail", committed(c.value))
        }
        TaskCmd::Cancel { id } => {
            let id = task_id(&id)?;
            transition(out, "task.cancel", committed(life()?.cancel(&id)?))
        }
        TaskCmd::Retry { id } => {
            let id = task_id(&id)?;
            transition(out, "task.retry", committed(life()?.retry(&id)?))
        }
        TaskCmd::Delete {
            id,
            cascade,
            drop_edges,
        } => {
            let id = task_id(&id)?;
            let mode = match (cascade, drop_edges) {
                (true, _) => oc_tasks::OnDependents::Cascade,
                (_, true) => oc_tasks::OnDependents::DropEdges,
                _ => oc_tasks::OnDependents::Refuse,
            };
            let gone: Vec<Task> = life()?
                .delete_with(&id, mode)?
                .into_iter()
                .map(committed)
                .collect();
            // One task as before; a cascade reports every task it deleted.
            let doc = match gone.as_slice() {
                [one] => serde_json::to_value(one)?,
                many => serde_json::to_value(many)?,
            };
            out.emit("task.delete", &doc, |w, o| {
                if o.quiet {
                    return Ok(());
                }
                for t in &gone {
                    writeln!(w, "Deleted task {} ({})", t.id, o.status(t.status))?;
                }
                Ok(())
            })
        }
        TaskCmd::Dep(cmd) => crate::graph::dep(site, cmd, out),
        TaskCmd::Ready {
            labels,
            limit,
            after,
        } => crate::graph::ready(site, &labels, limit, after, out),
        TaskCmd::Blocked { limit, after } => crate::graph::blocked(site, limit, after, out),
        TaskCmd::Tree { id } => crate::graph::tree(site, &task_id(&id)?, out),
        TaskCmd::Graph { format, root } => {
            let root = root.as_deref().map(task_id).transpose()?;
            crate::graph::graph(site, format, root.as_ref(), out)
        }
        TaskCmd::Reap => {
            let l = life()?;
            let reaped: Vec<oc_tasks::ReapedTask> = l
                .reap(l.store().now())
                .context("reaping expired leases")?
                .into_iter()
                .filter_map(|c| match c.event {
                    oc_hooks::TaskEvent::LeaseExpired {
                        task,
                        expired_owner,
                        expired_lease,
                    } => Some(oc_tasks::ReapedTask {
                        task,
                        expired_owner,
                        expired_lease,
                    }),
                    _ => None,
                })
                .collect();
            out.emit("task.reap", &reaped, |w, o| {
                if !o.quiet {
                    writeln!(w, "Reaped {} task(s) with lapsed leases", reaped.len())?;
                }
                for r in &reaped {
                    writeln!(
                        w,
                        "  {} -> {} (was {}, token {})",
                        r.task.id,
                        o.status(r.task.status),
                        Clean(r.expired_owner.as_deref().unwrap_or("none")),
                        r.expired_lease.token
                    )?;
                }
                Ok(())
            })
        }
    }
}

/// The lifecycle every transition goes through: the store, hooks, and the task logs.
pub(crate) fn lifecycle(site: &Site) -> anyhow::Result<TaskLifecycle> {
    Ok(TaskLifecycle::new(
        site.store()?,
        std::sync::Arc::new(Hooks::new()),
    ))
}

/// A refused claim or token-checked change, said from what the task is now
/// ([`oc_hooks::Refusal`], in the MCP server's words too; its exit code stays the store's): a
/// running task names who holds it and until when, a finished one says it is finished and
/// when, rather than a bare "cannot go from running to running" or a lost lease.
fn explain(
    l: &TaskLifecycle,
    id: &oc_tasks::TaskId,
    action: &str,
    e: oc_hooks::Error,
) -> anyhow::Error {
    match l.refusal(id, action, &e) {
        Some(said) => anyhow::Error::new(e).context(said.to_string()),
        None => e.into(),
    }
}

/// The task of a committed transition; hook failures and log problems are warnings on stderr.
pub(crate) fn committed(c: Committed) -> Task {
    for f in &c.hooks.failures {
        eprintln!(
            "oc: warning: hook {} failed on {}: {}",
            Clean(&f.hook),
            f.event,
            Clean(&f.error)
        );
    }
    c.into_task()
}

fn transition(out: &mut Output, command: &str, t: Task) -> anyhow::Result<()> {
    out.emit(command, &t, |w, o| {
        if o.quiet {
            Ok(())
        } else {
            writeln!(
                w,
                "Task {} is {} (version {})",
                t.id,
                o.status(t.status),
                t.version
            )
        }
    })
}

fn print_task(w: &mut dyn Write, o: &Output, t: &Task) -> std::io::Result<()> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    writeln!(w, "Task:        {}", t.id)?;
    writeln!(w, "Name:        {}", Clean(&t.name))?;
    writeln!(w, "Status:      {}", o.status(t.status))?;
    writeln!(
        w,
        "Owner:       {}",
        Clean(t.owner.as_deref().unwrap_or("-"))
    )?;
    writeln!(w, "Priority:    {}", t.priority)?;
    writeln!(w, "Attempts:    {} of {}", t.attempts, t.max_attempts)?;
    writeln!(w, "Version:     {}", t.version)?;
    writeln!(w, "Created:     {}", t.created_at)?;
    writeln!(w, "Updated:     {}", t.updated_at)?;
    writeln!(
        w,
        "Started:     {}",
        opt(t.started_at.map(|t| t.to_string()))
    )?;
    writeln!(
        w,
        "Finished:    {}",
        opt(t.finished_at.map(|t| t.to_string()))
    )?;
    if let Some(l) = t.lease {
        writeln!(
            w,
            "Lease:       token {}, expires {}",
            l.token, l.expires_at
        )?;
    }
    if let Some(d) = &t.description {
        writeln!(w, "Description: {}", Clean(d))?;
    }
    // JSON escapes C0 itself, but not DEL or C1.
    if !t.metadata.is_empty() {
        let m = Value::Object(t.metadata.clone()).to_string();
        writeln!(w, "Metadata:    {}", Clean(&m))?;
    }
    if let Some(r) = &t.result {
        writeln!(w, "Result:      {}", Clean(&r.to_string()))?;
    }
    if let Some(e) = &t.error {
        writeln!(w, "Error:       {}", Clean(e))?;
    }
    Ok(())
}

/// How many recent tasks `task-stats` shows.
pub(crate) const RECENT: usize = 5;

/// The seed's "Task Statistics" layout.
pub(crate) fn render_stats(w: &mut dyn Write, st: &TaskStats) -> std::io::Result<()> {
    writeln!(w, "Task Statistics")?;
    writeln!(w, "===============")?;
    writeln!(w, "Total Tasks: {}", thousands(st.total))?;
    writeln!(w, "Status Distribution:")?;
    for (s, n) in &st.by_status {
        writeln!(w, "  - {s}: {}", thousands(*n))?;
    }
    writeln!(w)?;
    writeln!(w, "Owner Distribution:")?;
    for (owner, n) in &st.by_owner {
        writeln!(
            w,
            "  - {}: {}",
            Clean(owner.as_deref().unwrap_or("none")),
            thousands(*n)
        )?;
    }
    writeln!(w)?;
    writeln!(w, "Recent Tasks (Last {RECENT}):")?;
    for (i, t) in st.recent.iter().enumerate() {
        writeln!(
            w,
            "  {}. {} ({}) - {}",
            i + 1,
            t.id,
            t.status,
            t.created_at.to_rfc3339_seconds()
        )?;
    }
    writeln!(w)?;
    writeln!(w, "Work Graph:")?;
    writeln!(w, "  - ready: {}", thousands(st.ready))?;
    writeln!(w, "  - blocked: {}", thousands(st.blocked))?;
    Ok(())
}

pub(crate) fn stats(site: &Site, out: &mut Output) -> anyhow::Result<()> {
    let st = site.store()?.stats(RECENT)?;
    out.emit("task-stats", &st.to_json(), |w, _| render_stats(w, &st))
}
