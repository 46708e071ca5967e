//! `oc logs ...`, `oc task-history`, `oc decisions ...`, `oc checkpoint ...`.
//!
//! Every one reads and writes through [`Site::files`], the store of task files chosen once (the
//! data directory, or PostgreSQL with `--database`), so on one database every host answers
//! alike. `oc logs ship` keeps its cursor per collector in that store, and `--all` there (as
//! `oc logs retain --all`) is every task with anything stored, read a page at a time.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oc_jsonl::{
    Append, Decision, EntryId, Level, LogEntry, Query, Retention, ShipOptions, Shipper, Stored,
    TaskFileStore, check_append_key,
};
use oc_tasks::{EventKind, HistoryEntry, TaskId, TaskStore};
use oc_time::Timestamp;
use serde_json::{Map, Value};

use crate::args::{CheckpointCmd, DecisionsCmd, LogsCmd, QueryArgs};
use crate::output::{Clean, Output};
use crate::{Site, UsageError};

/// The store of task files ([`Site::files`]), after checking `task`'s id; with `must_exist`,
/// the task must be in the task store (so writes never store files for a task that does not
/// exist).
fn task_files(site: &Site, task: &str, must_exist: bool) -> anyhow::Result<Arc<dyn TaskFileStore>> {
    oc_jsonl::check_task_id(task)?;
    if must_exist {
        site.store()?.require(&TaskId::new(task)?)?;
    }
    site.files()
}

/// How many task ids one read of [`TaskFileStore::tasks`] takes, for `--all`.
const TASKS_PAGE: usize = 1_000;

/// `task`, or with `all` every task with anything in the store (read a page at a time), in id
/// order; `each` is called on each id in turn.
fn each_task(
    files: &dyn TaskFileStore,
    task: Option<String>,
    mut each: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(t) = task {
        oc_jsonl::check_task_id(&t)?;
        return each(&t);
    }
    let mut after: Option<String> = None;
    loop {
        let page = files.tasks(after.as_deref(), TASKS_PAGE)?;
        for t in &page {
            each(t)?;
        }
        match page.last() {
            Some(last) if page.len() == TASKS_PAGE => after = Some(last.clone()),
            _ => return Ok(()),
        }
    }
}

fn json_object(flag: &str, s: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    match s.map(serde_json::from_str::<Value>) {
        None => Ok(Map::new()),
        Some(Ok(Value::Object(m))) => Ok(m),
        Some(Ok(other)) => {
            Err(UsageError(format!("--{flag} must be a JSON object, not {other}")).into())
        }
        Some(Err(e)) => Err(UsageError(format!("--{flag} is not valid JSON: {e}")).into()),
    }
}

/// Text an agent wrote, escaped; unless `full`, cut to [`oc_jsonl::SHOWN_BYTES`] with a note of
/// its whole length and of `--full`.
fn shown(w: &mut dyn Write, text: &str, full: bool) -> std::io::Result<()> {
    let (text, whole) = if full {
        (text, None)
    } else {
        oc_jsonl::cut(text, oc_jsonl::SHOWN_BYTES)
    };
    write!(w, "{}", Clean(text))?;
    match whole {
        Some(n) => write!(
            w,
            "… (cut: {} bytes; --full for all)",
            oc_jsonl::thousands(n as u64)
        ),
        None => Ok(()),
    }
}

/// One entry as a line: `2026-02-19T10:00:00.000Z [INFO] message {"data":...}`, the message
/// and the data each cut past 4 KiB unless `full`.
pub(crate) fn render_entry(w: &mut dyn Write, e: &LogEntry, full: bool) -> std::io::Result<()> {
    write!(w, "{} [{}] ", e.timestamp, e.level.as_str().to_uppercase(),)?;
    shown(w, &e.message, full)?;
    // JSON escapes C0 itself, but not DEL or C1.
    if !e.data.is_empty() {
        write!(w, " ")?;
        shown(w, &Value::Object(e.data.clone()).to_string(), full)?;
    }
    writeln!(w)
}

/// Entries as `oc logs tail` prints them: one line each with text, one JSON entry per line
/// with `json` (for following).
fn print_stored(
    w: &mut dyn Write,
    entries: &[Stored<LogEntry>],
    json: bool,
    full: bool,
) -> std::io::Result<()> {
    for e in entries {
        if json {
            serde_json::to_writer(&mut *w, &e.record)?;
            writeln!(w)?;
        } else {
            render_entry(w, &e.record, full)?;
        }
    }
    Ok(())
}

/// How many entries one read of a followed log takes at most.
const FOLLOW_BATCH: usize = 1_000;
/// How long a follower waits for the log to grow before reading again.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// The append key of a command: `--key`, or the global `--idempotency-key` (the same key if
/// both are given).
fn append_key(key: Option<String>, global: Option<&str>) -> anyhow::Result<Option<String>> {
    match (key, global) {
        (Some(k), Some(g)) if k != g => Err(UsageError(
            "--key and --idempotency-key name different keys: give one".into(),
        )
        .into()),
        (Some(k), _) => Ok(Some(k)),
        (None, g) => Ok(g.map(str::to_owned)),
    }
}

/// Refuses `--idempotency-key` on a command it does not go with.
fn no_key(global: Option<&str>, what: &str) -> anyhow::Result<()> {
    match global {
        Some(_) => Err(UsageError(format!("--idempotency-key goes with {what}")).into()),
        None => Ok(()),
    }
}

pub(crate) fn logs(
    site: &Site,
    cmd: LogsCmd,
    global: Option<&str>,
    out: &mut Output,
) -> anyhow::Result<()> {
    if !matches!(cmd, LogsCmd::Append { .. }) {
        no_key(global, "logs append")?;
    }
    match cmd {
        LogsCmd::Append {
            task,
            level,
            message,
            data,
            key,
        } => {
            let key = append_key(key, global)?;
            let data = json_object("data", data.as_deref())?;
            if let Some(k) = &key {
                check_append_key(k).map_err(|e| UsageError(format!("--key: {e}")))?;
            }
            let files = task_files(site, &task, true)?;
            let mut e = LogEntry::new(Timestamp::now(), level, &task, message);
            e.data = data;
            let how = match &key {
                Some(k) => Append::durable().key(k),
                None => Append::durable(),
            };
            let done = files.append_logs(&task, std::slice::from_ref(&e), &how)?;
            if done.duplicate {
                // A retry: what the first append wrote, if it is still there.
                if let Some(first) = files.log_entry(&task, done.first)? {
                    e = first;
                }
            }
            let mut doc = serde_json::to_value(&e)?;
            if let Value::Object(m) = &mut doc {
                m.insert("id".into(), done.first.0.into());
                m.insert("duplicate".into(), done.duplicate.into());
            }
            out.emit("logs.append", &doc, |w, o| {
                if o.quiet {
                    Ok(())
                } else if done.duplicate {
                    write!(w, "(duplicate: already appended with this key) ")?;
                    render_entry(w, &e, false)
                } else {
                    render_entry(w, &e, false)
                }
            })
        }
        LogsCmd::Tail {
            task,
            lines,
            follow,
            full,
        } => {
            let files = task_files(site, &task, false)?;
            // Where following starts, taken before the tail: what is appended in between is
            // both in the tail and after the cursor, and is shown once.
            let mut cursor = if follow {
                Some(files.log_end(&task)?)
            } else {
                None
            };
            let last = files.log_tail(&task, 0, lines)?;
            let Some(mut at) = cursor.take() else {
                let entries: Vec<&LogEntry> = last.entries.iter().map(|e| &e.record).collect();
                return out.emit("logs.tail", &entries, |w, o| {
                    print_stored(w, &last.entries, false, full)?;
                    if !o.quiet && last.read.malformed > 0 {
                        writeln!(w, "({} malformed line(s) skipped)", last.read.malformed)?;
                    }
                    Ok(())
                });
            };
            // Following prints as it goes: one JSON entry per line with --json (entries written
            // anew: never the raw bytes of a malformed line), text otherwise.
            let stdout = std::io::stdout();
            let emit = |entries: &[Stored<LogEntry>]| -> std::io::Result<()> {
                let mut w = stdout.lock();
                print_stored(&mut w, entries, out.json, full)?;
                w.flush()
            };
            emit(&last.entries)?;
            // The tail's entries, until each is met again after the cursor (or the log is
            // replaced): an id alone could name a newer entry once the log rotated.
            let mut overlap: HashMap<EntryId, LogEntry> =
                last.entries.into_iter().map(|e| (e.id, e.record)).collect();
            loop {
                let next = files.read_after(&task, Some(&at), FOLLOW_BATCH)?;
                at = next.cursor;
                if next.restarted {
                    // The log was replaced (restored): it is shown again from its start.
                    overlap.clear();
                }
                let fresh: Vec<Stored<LogEntry>> = next
                    .entries
                    .into_iter()
                    .filter(|e| match overlap.get(&e.id) {
                        Some(seen) if *seen == e.record => {
                            overlap.remove(&e.id);
                            false
                        }
                        _ => true,
                    })
                    .collect();
                if fresh.is_empty() {
                    files.wait(&task, &at, FOLLOW_WAIT)?;
                } else {
                    emit(&fresh)?;
                }
            }
        }
        LogsCmd::Query(q) => query(site, "logs.query", q, out),
        LogsCmd::Ship {
            task,
            all,
            to,
            level,
        } => {
            let shipper = Shipper::new(&to, ShipOptions::default().min_level(level))?;
            debug_assert!(all || task.is_some());
            // Through the store: on PostgreSQL, what any host appended, after the cursor any
            // host moved for this collector.
            let files = site.files()?;
            let mut reports = Vec::new();
            each_task(&*files, task, |t| {
                let r = shipper
                    .ship_task(&*files, t)
                    .with_context(|| format!("shipping the log of {t}"))?;
                reports.push(serde_json::json!({ "task": t, "report": r }));
                Ok(())
            })?;
            out.emit("logs.ship", &reports, |w, o| {
                if o.quiet {
                    return Ok(());
                }
                for r in &reports {
                    writeln!(
                        w,
                        "{}: shipped {} entr(ies) in {} batch(es)",
                        r["task"].as_str().unwrap_or(""),
                        r["report"]["shipped"],
                        r["report"]["batches"]
                    )?;
                }
                Ok(())
            })
        }
        LogsCmd::Retain {
            task,
            all,
            max_age,
            max_entries,
            max_bytes,
        } => {
            debug_assert!(all || task.is_some());
            let mut bounds = Retention::new();
            if let Some(d) = max_age {
                bounds = bounds.max_age(d);
            }
            if let Some(n) = max_entries {
                bounds = bounds.max_entries(n);
            }
            if let Some(b) = max_bytes {
                bounds = bounds.max_bytes(b);
            }
            let files = site.files()?;
            let now = Timestamp::now();
            let mut done: Vec<(String, u64)> = Vec::new();
            each_task(&*files, task, |t| {
                let deleted = files
                    .retain(t, &bounds, now)
                    .with_context(|| format!("retaining the log of {t}"))?;
                done.push((t.to_owned(), deleted));
                Ok(())
            })?;
            let total: u64 = done.iter().map(|(_, n)| n).sum();
            let doc = serde_json::json!({
                "tasks": done
                    .iter()
                    .map(|(t, n)| serde_json::json!({ "task": t, "deleted": n }))
                    .collect::<Vec<_>>(),
                "total": { "tasks": done.len(), "deleted": total },
            });
            out.emit("logs.retain", &doc, |w, o| {
                if o.quiet {
                    return Ok(());
                }
                for (t, n) in &done {
                    writeln!(w, "{t}: deleted {n} entr(ies)")?;
                }
                writeln!(
                    w,
                    "Deleted {total} entr(ies) from the logs of {} task(s)",
                    done.len()
                )
            })
        }
        LogsCmd::Analyze { task } => {
            let files = task_files(site, &task, false)?;
            let a = files.analyze(&task)?;
            out.emit("logs.analyze", &a, |w, _| {
                writeln!(w, "Log Analysis: {task}")?;
                writeln!(w, "Total Logs: {}", a.total_logs)?;
                writeln!(w, "Level Counts:")?;
                for (l, n) in &a.level_counts {
                    writeln!(w, "  - {l}: {n}")?;
                }
                writeln!(w, "Errors: {} ({:.2}%)", a.error_count, a.error_rate)?;
                if let (Some(f), Some(l)) = (a.first, a.last) {
                    writeln!(w, "Time Span: {f} to {l} ({} ms)", a.span_ms)?;
                }
                if a.read.malformed > 0 || a.read.torn_tail_bytes > 0 {
                    writeln!(
                        w,
                        "Skipped: {} malformed line(s), {} torn byte(s)",
                        a.read.malformed, a.read.torn_tail_bytes
                    )?;
                }
                Ok(())
            })
        }
    }
}

pub(crate) fn query(
    site: &Site,
    command: &str,
    q: QueryArgs,
    out: &mut Output,
) -> anyhow::Result<()> {
    let files = task_files(site, &q.task, false)?;
    let mut query = Query::new()
        .between(q.since, q.until)
        .page(q.offset, Some(q.limit));
    if let Some(l) = q.level {
        query = query.min_level(l);
    }
    if q.newest {
        query = query.newest();
    }
    let page = files.query(&q.task, &query)?;
    let entries: Vec<LogEntry> = page.entries.into_iter().map(|e| e.record).collect();
    print_entries(out, command, &entries, &page.read, q.full)
}

/// Entries as a page: one line each (cut past 4 KiB unless `full`), and what was skipped.
fn print_entries(
    out: &mut Output,
    command: &str,
    entries: &[LogEntry],
    report: &oc_jsonl::ReadReport,
    full: bool,
) -> anyhow::Result<()> {
    let data = serde_json::json!({ "entries": entries, "read": report });
    out.emit(command, &data, |w, o| {
        for e in entries {
            render_entry(w, e, full)?;
        }
        if !o.quiet && report.malformed > 0 {
            writeln!(
                w,
                "({} malformed line(s) skipped: lines {:?})",
                report.malformed, report.malformed_lines
            )?;
        }
        Ok(())
    })
}

/// A store history entry as a log line, so `task-history` shows it among the agent's entries.
fn history_line(h: &HistoryEntry) -> LogEntry {
    let level = match h.kind {
        EventKind::Failed => Level::Error,
        EventKind::Cancelled | EventKind::LeaseExpired => Level::Warn,
        _ => Level::Info,
    };
    let mut e = LogEntry::new(h.at, level, h.task.as_str(), h.describe())
        .with("source", "store")
        .with("event", h.kind.as_str())
        .with("from", h.from.map_or("none", |s| s.as_str()))
        .with("to", h.to.as_str())
        .with("version", h.version);
    if let Some(a) = &h.actor {
        e = e.with("by", a.as_str());
    }
    if let Some(t) = h.token {
        e = e.with("token", t);
    }
    if let Some(err) = &h.error {
        e = e.with("error", err.as_str());
    }
    e
}

/// `oc task-history`: the store's record of every transition, merged in time order with the
/// agent's own log entries from the store of task files (on PostgreSQL, both the same from
/// every host).
pub(crate) fn history(site: &Site, q: QueryArgs, out: &mut Output) -> anyhow::Result<()> {
    let id = TaskId::new(q.task.as_str())?;
    let recorded = site.store()?.history(&id)?;
    let files = task_files(site, &q.task, false)?;
    let mut filter = Query::new().between(q.since, q.until);
    if let Some(l) = q.level {
        filter = filter.min_level(l);
    }
    let page = files.query(&q.task, &filter)?;
    let report = page.read;
    let logged = page.entries.into_iter().map(|e| e.record);
    let mut entries: Vec<LogEntry> = recorded
        .iter()
        .map(history_line)
        .filter(|e| filter.matches(e))
        .chain(logged)
        .collect();
    // Stable: at the same millisecond, the transition comes before what the agent logged.
    entries.sort_by_key(|e| e.timestamp);
    if q.newest {
        entries.reverse();
    }
    let entries: Vec<LogEntry> = entries.into_iter().skip(q.offset).take(q.limit).collect();
    print_entries(out, "task-history", &entries, &report, q.full)
}

pub(crate) fn decisions(
    site: &Site,
    cmd: DecisionsCmd,
    global: Option<&str>,
    out: &mut Output,
) -> anyhow::Result<()> {
    if !matches!(cmd, DecisionsCmd::Add { .. }) {
        no_key(global, "decisions add")?;
    }
    match cmd {
        DecisionsCmd::Add {
            task,
            agent,
            decision,
            reasoning,
            metadata,
        } => {
            if let Some(k) = global {
                check_append_key(k).map_err(|e| UsageError(format!("--idempotency-key: {e}")))?;
            }
            let metadata = json_object("metadata", metadata.as_deref())?;
            let files = task_files(site, &task, true)?;
            let d = Decision {
                timestamp: Timestamp::now(),
                agent,
                decision,
                reasoning,
                metadata,
            };
            let how = match global {
                Some(k) => Append::durable().key(k),
                None => Append::durable(),
            };
            let done = files.append_decision(&task, &d, &how)?;
            crate::task::note_replayed(done.duplicate);
            out.emit("decisions.add", &d, |w, o| {
                if o.quiet {
                    Ok(())
                } else {
                    writeln!(w, "Recorded decision of {} on {task}", Clean(&d.agent))
                }
            })
        }
        DecisionsCmd::List { task, agent, full } => {
            let files = task_files(site, &task, false)?;
            let all = every_decision(&*files, &task)?;
            let total = all.len();
            let shown: Vec<Decision> = all
                .into_iter()
                .filter(|d| agent.as_ref().is_none_or(|a| &d.agent == a))
                .collect();
            out.emit("decisions.list", &shown, |w, _| {
                for d in &shown {
                    write!(w, "{} {}: ", d.timestamp, Clean(&d.agent))?;
                    self::shown(w, &d.decision, full)?;
                    writeln!(w)?;
                    // Reasoning keeps its lines, each escaped, and is cut past 4 KiB in all.
                    let (reasoning, whole) = if full {
                        (d.reasoning.as_str(), None)
                    } else {
                        oc_jsonl::cut(&d.reasoning, oc_jsonl::SHOWN_BYTES)
                    };
                    let mut lines = reasoning.lines().peekable();
                    while let Some(line) = lines.next() {
                        write!(w, "    {}", Clean(line))?;
                        if let (None, Some(n)) = (lines.peek(), whole) {
                            write!(
                                w,
                                "… (cut: {} bytes; --full for all)",
                                oc_jsonl::thousands(n as u64)
                            )?;
                        }
                        writeln!(w)?;
                    }
                }
                writeln!(w, "Showing {} of {total} decision(s)", shown.len())
            })
        }
    }
}

/// How many decisions one read of `oc decisions list` takes.
const DECISIONS_PAGE: usize = 1_000;

/// Every decision of `task`, oldest first, read from the newest end a page at a time.
fn every_decision(files: &dyn TaskFileStore, task: &str) -> anyhow::Result<Vec<Decision>> {
    let mut pages = Vec::new();
    let mut skip = 0usize;
    loop {
        let page = files.decisions(task, None, skip, DECISIONS_PAGE)?;
        let next = usize::try_from(page.next_skip).unwrap_or(usize::MAX);
        let (more, moved) = (page.more, next > skip);
        pages.push(page.entries);
        if !more || !moved {
            break;
        }
        skip = next;
    }
    Ok(pages
        .into_iter()
        .rev()
        .flatten()
        .map(|d| d.record)
        .collect())
}

pub(crate) fn checkpoint(
    site: &Site,
    cmd: CheckpointCmd,
    global: Option<&str>,
    out: &mut Output,
) -> anyhow::Result<()> {
    if !matches!(cmd, CheckpointCmd::Create { .. }) {
        no_key(global, "checkpoint create")?;
    }
    match cmd {
        CheckpointCmd::Create { task, description } => {
            if let Some(k) = global {
                check_append_key(k).map_err(|e| UsageError(format!("--idempotency-key: {e}")))?;
            }
            let files = task_files(site, &task, true)?;
            let cp = match global {
                Some(k) => {
                    let made =
                        files.create_checkpoint_keyed(&task, &description, k, Timestamp::now())?;
                    crate::task::note_replayed(made.replayed);
                    made.checkpoint
                }
                None => files.create_checkpoint(&task, &description, Timestamp::now())?,
            };
            out.emit("checkpoint.create", &cp, |w, o| {
                if o.quiet {
                    writeln!(w, "{}", Clean(&cp.id))
                } else {
                    writeln!(
                        w,
                        "Created checkpoint {} of {task} ({} file(s), {} bytes)",
                        Clean(&cp.id),
                        cp.files.len(),
                        cp.bytes()
                    )
                }
            })
        }
        CheckpointCmd::List { task } => {
            let files = task_files(site, &task, false)?;
            let cps = files.checkpoints(&task)?;
            out.emit("checkpoint.list", &cps, |w, _| {
                for (i, c) in cps.iter().enumerate() {
                    writeln!(
                        w,
                        "  {}. {} - {} - {} ({} bytes)",
                        i + 1,
                        // A manifest planted in the data directory names any id.
                        Clean(&c.id),
                        c.created_at,
                        Clean(&c.description),
                        c.bytes()
                    )?;
                }
                writeln!(w, "{} checkpoint(s)", cps.len())
            })
        }
        CheckpointCmd::Restore { task, checkpoint } => {
            let files = task_files(site, &task, false)?;
            let cp = files.restore_checkpoint(&task, &checkpoint)?;
            out.emit("checkpoint.restore", &cp, |w, o| {
                if o.quiet {
                    Ok(())
                } else {
                    writeln!(
                        w,
                        "Restored {task} to checkpoint {} ({})",
                        Clean(&cp.id),
                        cp.created_at
                    )
                }
            })
        }
        CheckpointCmd::Prune {
            task,
            keep,
            max_bytes,
        } => {
            let files = task_files(site, &task, false)?;
            let mut gone = match keep {
                Some(keep) => files.prune_checkpoints(&task, keep)?,
                None => Vec::new(),
            };
            if let Some(max) = max_bytes {
                gone.extend(files.prune_checkpoints_to_bytes(&task, max)?);
            }
            out.emit("checkpoint.prune", &gone, |w, o| {
                if o.quiet {
                    Ok(())
                } else {
                    writeln!(w, "Deleted {} checkpoint(s)", gone.len())
                }
            })
        }
    }
}
