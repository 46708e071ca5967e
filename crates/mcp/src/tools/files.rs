//! A task's files as tools: append to and query its log, record and list decisions, create,
//! list and restore checkpoints, through the [`TaskFileStore`] the server was given (the same
//! store `oc logs`, `oc decisions` and `oc checkpoint` use).

use oc_jsonl::{Append, Decision, Level, LogEntry, Query, TaskFileStore};
use oc_time::Timestamp;
use serde_json::{Map, Value, json};

use super::{
    Args, CallContext, Tool, ToolError, Toolbox, agent, any_object, boolean, idempotency_key,
    integer, list, replayed, string,
};

impl From<oc_jsonl::Error> for ToolError {
    fn from(e: oc_jsonl::Error) -> ToolError {
        let message = e.to_string();
        match &e {
            _ if e.is_not_found() => ToolError::refused("NOT_FOUND", message),
            _ if e.is_invalid_input() => ToolError::refused("INVALID_ARGUMENT", message),
            oc_jsonl::Error::Corrupt { .. } => ToolError::refused("CORRUPT", message),
            _ if e.is_conflict() => ToolError::refused(
                "IDEMPOTENCY_CONFLICT",
                format!(
                    "{message}: a checkpoint's idempotency key names one description (per task, while its checkpoint is kept); retry that request with it, or use a new key"
                ),
            ),
            // A link, a special file or a directory swapped into the data directory: refused,
            // nothing followed; the agent is told which path and why.
            _ if e.is_unsafe() => ToolError::refused("UNSAFE_PATH", message),
            _ => ToolError::Internal(message),
        }
    }
}

/// The store of task files and the task's id; for a write (`must_exist`), the task must be in
/// the task store, so a write never stores files for a task that does not exist.
fn task_files<'t>(
    tb: &'t Toolbox,
    a: &Args<'_>,
    must_exist: bool,
) -> Result<(&'t dyn TaskFileStore, String), ToolError> {
    let id = a.task_id("task_id")?;
    let Some(files) = &tb.files else {
        return Err(ToolError::Internal(
            "this server keeps no task files".into(),
        ));
    };
    if must_exist {
        tb.life.store().require(&id)?;
    }
    Ok((&**files, id.as_str().to_owned()))
}

fn object_arg<'a>(a: &Args<'a>, name: &str) -> Result<Map<String, Value>, ToolError> {
    match a.map.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(ToolError::invalid(
            name,
            format!("must be an object, not {other}"),
        )),
    }
}

fn time_arg(a: &Args<'_>, name: &str) -> Result<Option<Timestamp>, ToolError> {
    a.opt_str(name)?
        .map(|s| {
            Timestamp::parse_rfc3339(s)
                .ok_or_else(|| ToolError::invalid(name, format!("{s:?} is not an RFC 3339 time")))
        })
        .transpose()
}

fn level_arg(a: &Args<'_>, name: &str) -> Result<Option<Level>, ToolError> {
    a.opt_str(name)?
        .map(|s| s.parse().map_err(|e| ToolError::invalid(name, e)))
        .transpose()
}

fn json_of(v: &impl serde::Serialize) -> Result<Value, ToolError> {
    serde_json::to_value(v).map_err(|e| ToolError::Internal(e.to_string()))
}

fn log_append(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let agent = a.agent(tb)?;
    let key = a.idempotency_key()?;
    let (files, task) = task_files(tb, a, true)?;
    let level = level_arg(a, "level")?.unwrap_or(Level::Info);
    let mut entry = LogEntry::new(tb.life.store().now(), level, &task, a.str("message")?);
    entry.data = object_arg(a, "data")?;
    entry.data.insert("agent".into(), json!(agent));
    let how = match key {
        Some(k) => Append::durable().key(k),
        None => Append::durable(),
    };
    let done = files.append_logs(&task, std::slice::from_ref(&entry), &how)?;
    if done.duplicate {
        // A retry: answer the entry the first call wrote, if it is still there.
        if let Some(first) = files.log_entry(&task, done.first)? {
            entry = first;
        }
    }
    let mut out =
        json!({ "entry": json_of(&entry)?, "id": done.first.0, "duplicate": done.duplicate });
    if key.is_some() {
        out["replayed"] = Value::Bool(done.duplicate);
    }
    Ok(out)
}

fn log_query(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let (files, task) = task_files(tb, a, false)?;
    let limit = a.opt_u64("limit", 500)?.unwrap_or(50) as usize;
    let mut query = Query::new()
        .between(time_arg(a, "since")?, time_arg(a, "until")?)
        .page(0, Some(limit + 1));
    if let Some(l) = level_arg(a, "level")? {
        query = query.min_level(l);
    }
    if a.opt_bool("newest")? == Some(true) {
        query = query.newest();
    }
    let page = files.query(&task, &query)?;
    let truncated = page.entries.len() > limit || page.more;
    let entries: Vec<LogEntry> = page
        .entries
        .into_iter()
        .take(limit)
        .map(|s| s.record)
        .collect();
    Ok(
        json!({ "entries": json_of(&entries)?, "truncated": truncated,
               "skipped_malformed_lines": page.read.malformed }),
    )
}

fn decision_record(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let agent = a.agent(tb)?;
    let (files, task) = task_files(tb, a, true)?;
    let d = Decision {
        timestamp: tb.life.store().now(),
        agent,
        decision: a.str("decision")?.to_owned(),
        reasoning: a.opt_str("reasoning")?.unwrap_or_default().to_owned(),
        metadata: object_arg(a, "metadata")?,
    };
    let key = a.idempotency_key()?;
    let how = match key {
        Some(k) => Append::durable().key(k),
        None => Append::durable(),
    };
    let done = files.append_decision(&task, &d, &how)?;
    let mut out = json!({ "decision": json_of(&d)? });
    if key.is_some() {
        // A retry: the task's decisions keep the first, and this one was not written.
        out["duplicate"] = Value::Bool(done.duplicate);
        out["replayed"] = Value::Bool(done.duplicate);
    }
    Ok(out)
}

/// The most decisions one `decision_list` answers (and its default).
const DECISIONS_MAX: u64 = 1000;
const DECISIONS_DEFAULT: u64 = 50;
/// A page of decisions counted from the newest end (`skip` the newest, then the `limit` before
/// them), read by the store at the cost of what it shows ([`TaskFileStore::decisions`]): with
/// an `agent` filter a page may hold fewer with `more` set, and `next_skip` goes on.
fn decision_list(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let (files, task) = task_files(tb, a, false)?;
    let by = a.opt_str("agent")?;
    let limit = a
        .opt_u64("limit", DECISIONS_MAX)?
        .unwrap_or(DECISIONS_DEFAULT) as usize;
    if limit == 0 {
        return Err(ToolError::invalid("limit", "must be at least 1"));
    }
    let skip = a.opt_u64("skip", u64::from(u32::MAX))?.unwrap_or(0) as usize;
    let newest_first = a.opt_bool("newest")? == Some(true);
    let page = files.decisions(&task, by, skip, limit)?;
    let mut shown: Vec<Decision> = page.entries.into_iter().map(|s| s.record).collect();
    if newest_first {
        shown.reverse();
    }
    Ok(
        json!({ "decisions": json_of(&shown)?, "more": page.more, "next_skip": page.next_skip,
               "skipped_malformed_lines": page.read.malformed }),
    )
}

fn checkpoint_create(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    a.agent(tb)?;
    let key = a.idempotency_key()?;
    let (files, task) = task_files(tb, a, true)?;
    let (description, now) = (a.str("description")?, tb.life.store().now());
    match key {
        Some(k) => {
            let made = files.create_checkpoint_keyed(&task, description, k, now)?;
            Ok(json!({ "checkpoint": json_of(&made.checkpoint)?, "replayed": made.replayed }))
        }
        None => {
            let cp = files.create_checkpoint(&task, description, now)?;
            Ok(json!({ "checkpoint": json_of(&cp)? }))
        }
    }
}

fn checkpoint_list(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let (files, task) = task_files(tb, a, false)?;
    Ok(json!({ "checkpoints": json_of(&files.checkpoints(&task)?)? }))
}

fn checkpoint_restore(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    a.agent(tb)?;
    let (files, task) = task_files(tb, a, true)?;
    let cp = files.restore_checkpoint(&task, a.str("checkpoint_id")?)?;
    Ok(json!({ "checkpoint": json_of(&cp)? }))
}

pub(super) fn tools() -> Vec<Tool> {
    let task_id = || ("task_id", string("The task's id."));
    let level = |d| {
        (
            "level",
            json!({"type": "string", "enum": ["trace", "debug", "info", "warn", "error"], "description": d}),
        )
    };
    let checkpoint = [("checkpoint", any_object("The checkpoint's manifest."))];
    vec![
        Tool::new(
            "task_log_append",
            "Log progress",
            "Append an entry to a task's log (what you did, found or are about to do), with optional structured data. Entries are durable and shown by task_log_query and `oc logs`. Pass an idempotency_key to retry safely: a retry with the same key writes nothing and answers duplicate=true.",
            log_append,
        )
        .args(
            &[
                agent(),
                task_id(),
                ("message", string("What happened.")),
                level("info (default), or trace, debug, warn, error."),
                ("data", any_object("Structured details.")),
                (
                    "idempotency_key",
                    string("A key naming this append (at most 200 bytes): a retry with the same key writes nothing."),
                ),
            ],
            &["task_id", "message"],
        )
        .answers(
            &[
                ("entry", any_object("The entry written.")),
                ("id", integer("Where the entry is stored.", 0, u64::MAX)),
                (
                    "duplicate",
                    boolean("The key was already used: nothing was written now."),
                ),
                replayed(),
            ],
            &["entry"],
        )
        .on_files()
        .on_held_task("task_id"),
        Tool::new(
            "task_log_query",
            "Read a task's log",
            "A task's log entries, oldest first (newest=true for newest first), at or above a level, within a time window.",
            log_query,
        )
        .args(
            &[
                task_id(),
                level("Only entries at this level or above."),
                ("since", string("At or after this time (RFC 3339).")),
                ("until", string("Before this time (RFC 3339).")),
                ("limit", integer("At most this many (default 50).", 1, 500)),
                ("newest", boolean("Newest first.")),
            ],
            &["task_id"],
        )
        .answers(
            &[
                ("entries", list("The entries.")),
                ("truncated", boolean("More entries match.")),
                (
                    "skipped_malformed_lines",
                    integer("Lines of the file that were not entries.", 0, u64::MAX),
                ),
            ],
            &["entries", "truncated"],
        )
        .read_only()
        .on_files()
        .extra(),
        Tool::new(
            "decision_record",
            "Record a decision",
            "Record a decision you made on a task and why, so other agents and people can follow your reasoning.",
            decision_record,
        )
        .args(
            &[
                agent(),
                task_id(),
                ("decision", string("What you decided.")),
                ("reasoning", string("Why.")),
                ("metadata", any_object("Anything else.")),
                idempotency_key("writes nothing (keys are per task's decisions, as for task_log_append)"),
            ],
            &["task_id", "decision"],
        )
        .answers(
            &[
                ("decision", any_object("The decision recorded (on a replay: as asked now, not written).")),
                (
                    "duplicate",
                    boolean("The key was already used: nothing was written now."),
                ),
                replayed(),
            ],
            &["decision"],
        )
        .on_files()
        .on_held_task("task_id")
        .extra(),
        Tool::new(
            "decision_list",
            "List decisions",
            "The newest decisions recorded on a task (limit, default 50), oldest first (newest=true for newest first), optionally only one agent's. For older ones pass the answer's next_skip as skip while more is true.",
            decision_list,
        )
        .args(
            &[
                task_id(),
                ("agent", string("Only this agent's decisions.")),
                (
                    "limit",
                    integer("At most this many (default 50).", 1, DECISIONS_MAX),
                ),
                (
                    "skip",
                    integer(
                        "Leave out this many of the newest decisions (count every agent's): the previous answer's next_skip.",
                        0,
                        u64::from(u32::MAX),
                    ),
                ),
                ("newest", boolean("Newest first.")),
            ],
            &["task_id"],
        )
        .answers(
            &[
                ("decisions", list("The decisions.")),
                ("more", boolean("Older decisions remain: call again with skip = next_skip.")),
                (
                    "next_skip",
                    integer("The skip that continues with older decisions.", 0, u64::MAX),
                ),
                (
                    "skipped_malformed_lines",
                    integer("Lines read that were not decisions.", 0, u64::MAX),
                ),
            ],
            &["decisions", "more", "next_skip"],
        )
        .read_only()
        .on_files()
        .extra(),
        Tool::new(
            "checkpoint_create",
            "Checkpoint a task",
            "Save a copy of the task's state, log and decisions, to restore if what comes next goes wrong.",
            checkpoint_create,
        )
        .args(
            &[
                agent(),
                task_id(),
                ("description", string("Why.")),
                idempotency_key(
                    "creates nothing (keys are per task, kept while their checkpoint is; the same key names one description)",
                ),
            ],
            &["task_id", "description"],
        )
        .answers(&[checkpoint[0].clone(), replayed()], &["checkpoint"])
        .on_files()
        .on_held_task("task_id")
        .extra(),
        Tool::new(
            "checkpoint_list",
            "List checkpoints",
            "A task's checkpoints, newest first, with their files and sizes.",
            checkpoint_list,
        )
        .args(&[task_id()], &["task_id"])
        .answers(&[("checkpoints", list("The checkpoints."))], &["checkpoints"])
        .read_only()
        .on_files()
        .extra(),
        Tool::new(
            "checkpoint_restore",
            "Restore a checkpoint",
            "Put the task's state, log and decisions back as they were at a checkpoint (after checking every file against it); what was written since is replaced.",
            checkpoint_restore,
        )
        .args(
            &[
                agent(),
                task_id(),
                ("checkpoint_id", string("The checkpoint's id.")),
            ],
            &["task_id", "checkpoint_id"],
        )
        .answers(&checkpoint, &["checkpoint"])
        .idempotent()
        .destructive()
        .on_files()
        .on_held_task("task_id")
        .held_only()
        .extra(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_jsonl::check_append_key;

    #[test]
    fn a_backend_failure_is_internal_and_the_callers_mistakes_are_refusals() {
        // The store's backend failed (PostgreSQL away): the outcome is unknown, as for tasks.
        let down = oc_jsonl::Error::backend("postgres", true, "connection refused");
        assert_eq!(
            ToolError::from(down),
            ToolError::Internal("postgres: connection refused".into())
        );
        let not_found = oc_jsonl::Error::NotFound {
            what: "checkpoint cp-1".into(),
        };
        assert!(matches!(
            ToolError::from(not_found),
            ToolError::Refused {
                code: "NOT_FOUND",
                ..
            }
        ));
        let bad_key = check_append_key("").unwrap_err();
        assert!(matches!(
            ToolError::from(bad_key),
            ToolError::Refused {
                code: "INVALID_ARGUMENT",
                ..
            }
        ));
    }
}
