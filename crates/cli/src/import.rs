//! `oc db import-files`: moves a data directory's task files (logs, decisions, state,
//! checkpoints) into PostgreSQL, resumably (decision 0036), and the note other commands print
//! about a task whose files are still in the data directory.
//!
//! The data directory is read as [`TaskFiles`] reads it (no link followed); each stream goes
//! in batches of [`IMPORT_BATCH_LINES`] lines, each committed with its cursor by
//! [`PgFileImports::import_batch`]. Nothing is deleted.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use oc_jsonl::{
    Checkpoint, Error as FileError, JsonlReader, LineCounts, ReadReport, TaskFiles,
    check_checkpoint_id,
};
use oc_postgres::{
    Batch, Fate, IMPORT_BATCH_BYTES, IMPORT_BATCH_LINES, ImportCursor, ImportStream, PgFileImports,
    check_source,
};
use parking_lot::Mutex;
use serde::Serialize;

use crate::args::{CheckpointCmd, Command, DecisionsCmd, LogsCmd};
use crate::output::{Clean, Output, thousands};
use crate::{Site, UsageError};

/// The file holding a data directory's id, its `source` in the import cursors.
const SOURCE_FILE: &str = ".oc-source";
/// The most bytes of [`SOURCE_FILE`] read.
const MAX_SOURCE_FILE_BYTES: u64 = 128;

/// What one stream's import did.
#[derive(Debug, Default, Clone, Serialize)]
struct StreamReport {
    /// Lines moved now.
    moved: u64,
    /// Lines already moved by an earlier import.
    skipped: u64,
    /// Lines too long to be read (longer than `MAX_LINE_BYTES`), not moved.
    unreadable: u64,
}

impl StreamReport {
    fn add(&mut self, o: &StreamReport) {
        self.moved += o.moved;
        self.skipped += o.skipped;
        self.unreadable += o.unreadable;
    }
}

/// What became of a task's checkpoints.
#[derive(Debug, Default, Clone, Serialize)]
struct CheckpointReport {
    moved: u64,
    present: u64,
    conflict: u64,
    corrupt: u64,
}

impl CheckpointReport {
    fn add(&mut self, o: &CheckpointReport) {
        self.moved += o.moved;
        self.present += o.present;
        self.conflict += o.conflict;
        self.corrupt += o.corrupt;
    }
}

/// What one task's import did.
#[derive(Debug, Clone, Serialize)]
struct TaskReport {
    task: String,
    logs: StreamReport,
    decisions: StreamReport,
    /// `moved`, `same`, `conflict` (the database's kept), `none` (no state on disk),
    /// `corrupt` (the file on disk fails its checksum), or `skipped` (the task stopped).
    state: &'static str,
    checkpoints: CheckpointReport,
    /// What needs a person: conflicts, corruption, a source replaced since the last import.
    problems: Vec<String>,
}

/// Totals over the tasks.
#[derive(Debug, Default, Serialize)]
struct Totals {
    tasks: u64,
    logs: StreamReport,
    decisions: StreamReport,
    states_moved: u64,
    states_same: u64,
    states_conflict: u64,
    states_corrupt: u64,
    checkpoints: CheckpointReport,
    problems: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    data_dir: PathBuf,
    source: String,
    database: String,
    tasks: Vec<TaskReport>,
    total: Totals,
}

/// `<data>/.oc-source`, read bounded and never through a link; `None` if there is none.
fn read_source(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join(SOURCE_FILE);
    let Some(bytes) = oc_jsonl::read_file(&path, MAX_SOURCE_FILE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?
    else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(&bytes).trim().to_owned();
    check_source(&id).with_context(|| {
        format!(
            "{} does not hold a data directory's id; move it away to import under a new one \
             (which moves every line again)",
            path.display()
        )
    })?;
    Ok(Some(id))
}

/// The data directory's id, written on first use: a fresh file linked into place, so two
/// first imports at once agree on one id and nothing planted is written through.
fn source(data_dir: &Path) -> anyhow::Result<String> {
    if let Some(id) = read_source(data_dir)? {
        return Ok(id);
    }
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let tmp = data_dir.join(format!("{SOURCE_FILE}.{}", &h[..16]));
    let path = data_dir.join(SOURCE_FILE);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written.with_context(|| format!("cannot write {}", path.display()))?;
    read_source(data_dir)?.with_context(|| format!("{} vanished", path.display()))
}

/// Why a stream's import stopped short.
enum Stop {
    /// The source no longer holds the line the cursor moved last.
    Replaced(String),
    /// The database failed.
    Failed(anyhow::Error),
}

/// Moves the lines of `reader` not yet moved, batch by batch.
fn import_stream(
    imports: &PgFileImports,
    source: &str,
    task: &str,
    stream: ImportStream,
    reader: &JsonlReader,
    file: &Path,
) -> Result<StreamReport, Stop> {
    let mut cursor = imports
        .cursor(source, task, stream)
        .map_err(|e| Stop::Failed(e.into()))?
        .unwrap_or_default();
    let mut rep = StreamReport::default();
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut stop: Option<Stop> = None;
    let mut met_cursor = cursor.lines == 0;
    let flush = |batch: &mut Vec<(u64, Vec<u8>)>,
                 cursor: &mut ImportCursor,
                 rep: &mut StreamReport|
     -> Result<(), Stop> {
        if batch.is_empty() {
            return Ok(());
        }
        match imports
            .import_batch(source, task, stream, cursor, batch)
            .map_err(|e| Stop::Failed(e.into()))?
        {
            Batch::Moved(next) => {
                rep.moved += batch.len() as u64;
                *cursor = next;
                batch.clear();
                Ok(())
            }
            Batch::Stale(now) => Err(Stop::Failed(anyhow::anyhow!(
                "another import moved lines of {} meanwhile (its cursor is at line {}); run \
                 oc db import-files again",
                file.display(),
                now.lines
            ))),
        }
    };
    let read: oc_jsonl::Result<ReadReport> = reader.for_each_line(|n, line| {
        if n < cursor.lines {
            rep.skipped += 1;
            return true;
        }
        if n == cursor.lines {
            rep.skipped += 1;
            met_cursor = true;
            if !cursor.ends_with(line) {
                stop = Some(Stop::Replaced(format!(
                    "{} was replaced or rotated since the last import (its line {n} is not the \
                     one moved then); nothing more of it is moved",
                    file.display()
                )));
                return false;
            }
            return true;
        }
        if batch.len() >= IMPORT_BATCH_LINES || batch_bytes + line.len() + 1 > IMPORT_BATCH_BYTES {
            if let Err(e) = flush(&mut batch, &mut cursor, &mut rep) {
                stop = Some(e);
                return false;
            }
            batch_bytes = 0;
        }
        batch_bytes += line.len() + 1;
        batch.push((n, line.to_vec()));
        true
    });
    if let Some(s) = stop {
        return Err(s);
    }
    let read = read.map_err(|e| Stop::Failed(e.into()))?;
    if !met_cursor {
        return Err(Stop::Replaced(format!(
            "{} was replaced or rotated since the last import (it has {} lines; {} were moved); \
             nothing more of it is moved",
            file.display(),
            read.lines,
            cursor.lines
        )));
    }
    flush(&mut batch, &mut cursor, &mut rep)?;
    // Lines too long to hold were counted but never given: neither moved nor skipped.
    rep.unreadable = read.malformed;
    Ok(rep)
}

/// Whether `path` is a directory itself (not a link to one).
fn real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// Checkpoint directories whose manifest is missing or does not validate (listing leaves
/// them out).
fn unlisted_checkpoints(dir: &Path, listed: &[Checkpoint]) -> Vec<String> {
    let cps = dir.join("checkpoints");
    if !real_dir(dir) || !real_dir(&cps) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&cps) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| check_checkpoint_id(n).is_ok() && !listed.iter().any(|c| c.id == *n))
        .collect();
    out.sort();
    out
}

fn import_task(
    imports: &PgFileImports,
    data_dir: &Path,
    source: &str,
    task: &str,
) -> anyhow::Result<TaskReport> {
    let files = TaskFiles::new(data_dir, task)?;
    let dir = files.dir().to_owned();
    let mut rep = TaskReport {
        task: task.to_owned(),
        logs: StreamReport::default(),
        decisions: StreamReport::default(),
        state: "skipped",
        checkpoints: CheckpointReport::default(),
        problems: Vec::new(),
    };
    let streams = [
        (ImportStream::Log, files.logs(), dir.join("logs.jsonl")),
        (
            ImportStream::Decision,
            files.decision_log()?,
            dir.join("decisions.jsonl"),
        ),
    ];
    for (stream, reader, path) in streams {
        match import_stream(imports, source, task, stream, &reader, &path) {
            Ok(r) => match stream {
                ImportStream::Log => rep.logs = r,
                ImportStream::Decision => rep.decisions = r,
            },
            Err(Stop::Replaced(why)) => {
                rep.problems.push(why);
                return Ok(rep);
            }
            Err(Stop::Failed(e)) => return Err(e.context(format!("importing task {task}"))),
        }
    }
    rep.state = match files.load_state() {
        Ok(None) => "none",
        Ok(Some(state)) => match imports.import_state(task, &state)? {
            Fate::Moved => "moved",
            Fate::Present => "same",
            Fate::Conflict => {
                rep.problems.push(format!(
                    "{} differs from the database's state, which is kept",
                    dir.join("state.json").display()
                ));
                "conflict"
            }
        },
        Err(e @ FileError::Corrupt { .. }) => {
            rep.problems.push(format!("not moved: {e}"));
            "corrupt"
        }
        Err(e) => return Err(e.into()),
    };
    let listed = files.checkpoints()?;
    for id in unlisted_checkpoints(&dir, &listed) {
        rep.checkpoints.corrupt += 1;
        rep.problems.push(format!(
            "not moved: {} has no manifest that validates",
            dir.join("checkpoints").join(id).display()
        ));
    }
    for cp in &listed {
        let fate = files
            .read_checkpoint(&cp.id)
            .map_err(anyhow::Error::from)
            .and_then(|(_, bodies)| Ok(imports.import_checkpoint(task, cp, &bodies)?));
        match fate {
            Ok(Fate::Moved) => rep.checkpoints.moved += 1,
            Ok(Fate::Present) => rep.checkpoints.present += 1,
            Ok(Fate::Conflict) => {
                rep.checkpoints.conflict += 1;
                rep.problems.push(format!(
                    "checkpoint {} differs from the database's of that id, which is kept",
                    cp.id
                ));
            }
            Err(e) if is_corrupt(&e) => {
                rep.checkpoints.corrupt += 1;
                rep.problems.push(format!(
                    "not moved: checkpoint {}: {}",
                    cp.id,
                    crate::one_line(&e)
                ));
            }
            Err(e) => return Err(e.context(format!("importing checkpoint {}", cp.id))),
        }
    }
    Ok(rep)
}

/// A checkpoint that failed its verification, or whose files could not be read as files.
fn is_corrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<FileError>(),
            Some(FileError::Corrupt { .. } | FileError::Unsafe { .. })
        )
    }) || e.chain().count() == 1 && e.downcast_ref::<FileError>().is_none()
}

/// `oc db import-files [--task ID]…`.
pub(crate) fn run(site: &Site, tasks: &[String], out: &mut Output) -> anyhow::Result<()> {
    let Some(opts) = site.postgres()? else {
        return Err(UsageError(
            "oc db import-files moves task files into PostgreSQL: give --database".to_owned(),
        )
        .into());
    };
    let target = opts.target();
    let database = target.to_string();
    let imports = PgFileImports::connect(opts)
        .with_context(|| format!("cannot open the task files on {target}"))?;
    let data_dir = site.data_dir.clone();
    let ids = if tasks.is_empty() {
        TaskFiles::list(&data_dir)?
    } else {
        for t in tasks {
            oc_jsonl::check_task_id(t)?;
        }
        tasks.to_vec()
    };
    let source = source(&data_dir)?;
    let mut report = Report {
        data_dir: data_dir.clone(),
        source: source.clone(),
        database,
        tasks: Vec::new(),
        total: Totals::default(),
    };
    for id in &ids {
        let r = import_task(&imports, &data_dir, &source, id)?;
        let t = &mut report.total;
        t.tasks += 1;
        t.logs.add(&r.logs);
        t.decisions.add(&r.decisions);
        match r.state {
            "moved" => t.states_moved += 1,
            "same" => t.states_same += 1,
            "conflict" => t.states_conflict += 1,
            "corrupt" => t.states_corrupt += 1,
            _ => {}
        }
        t.checkpoints.add(&r.checkpoints);
        t.problems += r.problems.len() as u64;
        report.tasks.push(r);
    }
    out.emit("db.import-files", &report, |w, o| {
        if o.quiet {
            return Ok(());
        }
        for r in &report.tasks {
            writeln!(
                w,
                "{}: {}; {}; state {}; {}",
                Clean(&r.task),
                stream_line("log entries", &r.logs),
                stream_line("decisions", &r.decisions),
                r.state,
                checkpoint_line(&r.checkpoints)
            )?;
            for p in &r.problems {
                writeln!(w, "  problem: {}", Clean(p))?;
            }
        }
        let t = &report.total;
        writeln!(
            w,
            "total: {} task(s); {}; {}; states {} moved, {} same, {} conflicting, {} corrupt; {}",
            thousands(t.tasks),
            stream_line("log entries", &t.logs),
            stream_line("decisions", &t.decisions),
            thousands(t.states_moved),
            thousands(t.states_same),
            thousands(t.states_conflict),
            thousands(t.states_corrupt),
            checkpoint_line(&t.checkpoints)
        )
    })?;
    if report.total.problems > 0 {
        anyhow::bail!(
            "{} problem(s) to look at (conflicts, corruption or replaced logs); nothing was \
             deleted",
            report.total.problems
        );
    }
    Ok(())
}

fn stream_line(what: &str, s: &StreamReport) -> String {
    let mut line = format!(
        "{} {what} moved, {} skipped",
        thousands(s.moved),
        thousands(s.skipped)
    );
    if s.unreadable > 0 {
        line.push_str(&format!(", {} unreadable", thousands(s.unreadable)));
    }
    line
}

fn checkpoint_line(c: &CheckpointReport) -> String {
    format!(
        "checkpoints {} moved, {} present, {} conflicting, {} corrupt",
        thousands(c.moved),
        thousands(c.present),
        thousands(c.conflict),
        thousands(c.corrupt)
    )
}

/// The task a command reads the files of, for [`note`].
pub(crate) fn task_of(cmd: &Command) -> Option<&str> {
    match cmd {
        Command::Logs(LogsCmd::Tail { task, .. } | LogsCmd::Analyze { task }) => Some(task),
        Command::Logs(LogsCmd::Query(q)) => Some(&q.task),
        Command::Decisions(DecisionsCmd::List { task, .. }) => Some(task),
        Command::Checkpoint(CheckpointCmd::List { task }) => Some(task),
        _ => None,
    }
}

/// On PostgreSQL, says on stderr when `task`'s files are still in the data directory: how
/// many of its lines are not in the database, or that they were imported and are no longer
/// read. Quiet when there is nothing to say or it cannot tell.
pub(crate) fn note(site: &Site, task: &str) {
    if let Some(line) = Notes::new(site).and_then(|n| n.line(task)) {
        eprintln!("note: {}", Clean(&line));
    }
}

/// The most tasks whose line counts [`Notes`] keeps.
const NOTED_TASKS: usize = 256;

/// What to say about a task's files left in the data directory, on PostgreSQL: for the note
/// of a command and the banner of a task's page. Counts lines as [`LineCounts`] does (what was
/// appended since the last count, at most [`oc_jsonl::COUNT_BUDGET`] bytes a call), and opens
/// the import cursors once.
pub(crate) struct Notes {
    data_dir: PathBuf,
    opts: oc_postgres::PgOptions,
    imports: Mutex<Option<Arc<PgFileImports>>>,
    counts: Mutex<HashMap<String, LineCounts>>,
}

impl Notes {
    /// `None` when the task files are in the data directory (no `--database`).
    pub(crate) fn new(site: &Site) -> Option<Notes> {
        Some(Notes {
            data_dir: site.data_dir.clone(),
            opts: site.postgres().ok().flatten()?,
            imports: Mutex::new(None),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// The note on `task`, if its directory is in the data directory.
    pub(crate) fn line(&self, task: &str) -> Option<String> {
        self.try_line(task).ok().flatten()
    }

    fn imports(&self) -> anyhow::Result<Arc<PgFileImports>> {
        let mut held = self.imports.lock();
        if let Some(i) = &*held {
            return Ok(i.clone());
        }
        let i = Arc::new(PgFileImports::connect(self.opts.clone())?);
        *held = Some(i.clone());
        Ok(i)
    }

    fn try_line(&self, task: &str) -> anyhow::Result<Option<String>> {
        let files = TaskFiles::new(&self.data_dir, task)?;
        let dir = files.dir().to_owned();
        if !real_dir(&dir) {
            return Ok(None);
        }
        let (logs, decisions) = {
            let mut all = self.counts.lock();
            if all.len() >= NOTED_TASKS && !all.contains_key(task) {
                all.clear();
            }
            let cache = all.entry(task.to_owned()).or_default();
            let logs = files.logs().count_lines(cache)?.lines;
            let decisions = files.decision_log()?.count_lines(cache)?.lines;
            cache.sweep();
            (logs, decisions)
        };
        let source = read_source(&self.data_dir)?;
        let (mut moved_logs, mut moved_decisions) = (0, 0);
        if let Some(source) = &source {
            let imports = self.imports()?;
            let at = |s| -> anyhow::Result<u64> {
                Ok(imports
                    .cursor(source, task, s)?
                    .map_or(0, |c: ImportCursor| c.lines))
            };
            moved_logs = at(ImportStream::Log)?;
            moved_decisions = at(ImportStream::Decision)?;
        }
        let (l, d) = (
            logs.saturating_sub(moved_logs),
            decisions.saturating_sub(moved_decisions),
        );
        let dir = dir.display();
        Ok(Some(match (l, d) {
            (0, 0) if source.is_some() => {
                format!("{dir} was imported into the database and is no longer read")
            }
            (0, 0) => format!(
                "{dir} holds files not in the database (never imported); oc db import-files \
                 moves them"
            ),
            (l, 0) => format!(
                "{dir} has {} log entries not in the database; oc db import-files moves them",
                thousands(l)
            ),
            (0, d) => format!(
                "{dir} has {} decisions not in the database; oc db import-files moves them",
                thousands(d)
            ),
            (l, d) => format!(
                "{dir} has {} log entries and {} decisions not in the database; oc db \
                 import-files moves them",
                thousands(l),
                thousands(d)
            ),
        }))
    }
}
