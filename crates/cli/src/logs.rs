//! `oc logs ...`, `oc task-history`, `oc decisions ...`, `oc checkpoint ...`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use oc_jsonl::{Decision, Level, LogEntry, Query, ShipOptions, Shipper, TaskFiles};
use oc_tasks::{EventKind, HistoryEntry, TaskId, TaskStore};
use oc_time::Timestamp;
use serde_json::{Map, Value};

use crate::args::{CheckpointCmd, DecisionsCmd, LogsCmd, QueryArgs};
use crate::output::{Clean, Output};
use crate::{Site, UsageError};

/// The task's files; with `must_exist`, the task must be in the store (so writes never create
/// the directory of a task that does not exist).
fn task_files(site: &Site, task: &str, must_exist: bool) -> anyhow::Result<TaskFiles> {
    let data_dir = site.data_dir.as_path();
    let files = TaskFiles::new(data_dir, task)?;
    if must_exist {
        site.store()?.require(&TaskId::new(task)?)?;
    }
    Ok(files)
}

/// The ids of every task with a directory under `<data>/tasks`, sorted.
fn task_dirs(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(TaskFiles::list(data_dir)?)
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

fn print_raw_lines(w: &mut dyn Write, lines: &[Vec<u8>], full: bool) -> std::io::Result<()> {
    for l in lines {
        match serde_json::from_slice::<LogEntry>(l) {
            Ok(e) => render_entry(w, &e, full)?,
            Err(_) => {
                shown(w, &String::from_utf8_lossy(l), full)?;
                writeln!(w)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn logs(site: &Site, cmd: LogsCmd, out: &mut Output) -> anyhow::Result<()> {
    let data_dir = site.data_dir.as_path();
    match cmd {
        LogsCmd::Append {
            task,
            level,
            message,
            data,
        } => {
            let data = json_object("data", data.as_deref())?;
            let files = task_files(site, &task, true)?;
            let mut e = LogEntry::new(Timestamp::now(), level, &task, message);
            e.data = data;
            files.append_log(&e)?;
            out.emit("logs.append", &e, |w, o| {
                if o.quiet {
                    Ok(())
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
            let last = files.logs().tail(lines)?;
            let entries: Vec<Value> = last
                .iter()
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect();
            if !follow {
                return out.emit("logs.tail", &entries, |w, _| {
                    print_raw_lines(w, &last, full)
                });
            }
            // Following prints as it goes: one JSON entry per line with --json (only lines that
            // parse, written anew: never the raw bytes of a malformed line), text otherwise.
            // Each poll walks to the log through directory handles: never through a link.
            let mut follower = files.log_follower();
            let stdout = std::io::stdout();
            let emit = |lines: &[Vec<u8>]| -> std::io::Result<()> {
                let mut w = stdout.lock();
                if out.json {
                    for l in lines {
                        let Ok(v) = serde_json::from_slice::<Value>(l) else {
                            continue;
                        };
                        serde_json::to_writer(&mut w, &v)?;
                        writeln!(w)?;
                    }
                } else {
                    print_raw_lines(&mut w, lines, full)?;
                }
                w.flush()
            };
            emit(&last)?;
            loop {
                let new = follower.poll()?;
                if new.is_empty() {
                    std::thread::sleep(Duration::from_millis(200));
                } else {
                    emit(&new)?;
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
            let tasks: Vec<String> = match task {
                Some(t) => vec![t],
                None => {
                    debug_assert!(all);
                    task_dirs(data_dir)?
                }
            };
            let mut reports = Vec::new();
            for t in &tasks {
                let files = task_files(site, t, false)?;
                let r = shipper
                    .ship_task(&files)
                    .with_context(|| format!("shipping the log of {t}"))?;
                reports.push(serde_json::json!({ "task": t, "report": r }));
            }
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
        LogsCmd::Analyze { task } => {
            let files = task_files(site, &task, false)?;
            let a = files.logs().analyze()?;
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
    let (entries, report) = files.logs().query(&query)?;
    print_entries(out, command, &entries, &report, q.full)
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

/// `oc task-history`: the store's record of every transition (the same from every host),
/// merged in time order with the agent's own log entries on this machine.
pub(crate) fn history(site: &Site, q: QueryArgs, out: &mut Output) -> anyhow::Result<()> {
    let id = TaskId::new(q.task.as_str())?;
    let recorded = site.store()?.history(&id)?;
    let files = TaskFiles::new(&site.data_dir, &q.task)?;
    let mut filter = Query::new().between(q.since, q.until);
    if let Some(l) = q.level {
        filter = filter.min_level(l);
    }
    let (logged, report) = files.logs().query(&filter)?;
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

pub(crate) fn decisions(site: &Site, cmd: DecisionsCmd, out: &mut Output) -> anyhow::Result<()> {
    match cmd {
        DecisionsCmd::Add {
            task,
            agent,
            decision,
            reasoning,
            metadata,
        } => {
            let metadata = json_object("metadata", metadata.as_deref())?;
            let files = task_files(site, &task, true)?;
            let d = Decision {
                timestamp: Timestamp::now(),
                agent,
                decision,
                reasoning,
                metadata,
            };
            files.append_decision(&d)?;
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
            let (all, _) = files.decisions()?;
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

pub(crate) fn checkpoint(site: &Site, cmd: CheckpointCmd, out: &mut Output) -> anyhow::Result<()> {
    match cmd {
        CheckpointCmd::Create { task, description } => {
            let files = task_files(site, &task, true)?;
            let cp = files.create_checkpoint(&description, Timestamp::now())?;
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
            let cps = files.checkpoints()?;
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
            let cp = files.restore_checkpoint(&checkpoint)?;
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
                Some(keep) => files.prune_checkpoints(keep)?,
                None => Vec::new(),
            };
            if let Some(max) = max_bytes {
                gone.extend(files.prune_checkpoints_to_bytes(max)?);
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
