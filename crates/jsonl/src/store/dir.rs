//! `DirFileStore`: [`TaskFileStore`] on the data directory (decision 0036), built on
//! [`TaskFiles`], [`JsonlWriter`] and [`JsonlReader`] with their hardening (decision 0004: every
//! path built from validated names, no link followed; decision 0002: bounded views).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oc_time::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::fsx::Dir;
use crate::reader::count::LineCounts;
use crate::writer::Wrote;
use crate::{
    Ack, After, Append, Appended, Checkpoint, Decision, EntryId, Error, FileCounts, JsonlReader,
    JsonlWriter, KeyedCheckpoint, LogAnalysis, LogCursor, LogEntry, LogVolume, MAX_LINE_BYTES,
    Overview, OverviewRequest, Page, Query, Result, Retention, TaskFileStore, TaskFiles,
    WriterOptions, check_append_key, check_task_id,
};

use super::MAX_CHECKPOINT_FILE_BYTES;

mod follow;
mod pages;
mod retain;
mod scan;
mod ship;

use pages::{by_id, decision_page, tail_page};

/// With an agent filter, the most decision lines one [`TaskFileStore::decisions`] call reads.
pub const DECISIONS_SCANNED: usize = 10_000;

/// How many writers a [`DirFileStore`] keeps open (the least recently used is closed).
pub const MAX_OPEN_WRITERS: usize = 64;

/// A task's two append-only streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stream {
    Logs,
    Decisions,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Logs => "logs.jsonl",
            Stream::Decisions => "decisions.jsonl",
        }
    }
}

/// The writers kept open, least recently used first out.
#[derive(Debug, Default)]
struct Writers {
    open: Vec<(String, Stream, Arc<JsonlWriter>, u64)>,
    tick: u64,
}

/// The task files of a data directory (`<data>/tasks/<id>/`) as a [`TaskFileStore`].
///
/// Appends go through up to [`MAX_OPEN_WRITERS`] writers kept open, so concurrent
/// [`Ack::Durable`] appends to one task share their `fdatasync`s (group commit). Each write
/// holds `LOCK_EX` on the file (an idempotency key is looked for under it, in the stream's
/// last [`KEY_WINDOW_ENTRIES`](crate::KEY_WINDOW_ENTRIES) lines, first); a restore or a
/// retention replaces the file under `LOCK_EX` too, and a writer that finds its file replaced
/// writes to the new one, so no append is lost, from this process or another. Every read of
/// a live file reads only below a length taken under its `LOCK_SH` (held for an `fstat`
/// alone): a batch is seen whole or not at all.
///
/// An [`EntryId`] is the file's generation (0 for the live file) in its top 16 bits and the
/// line's byte offset below. A cursor ([`LogCursor`]) names the log file by device and inode,
/// an offset and a hash of the bytes before it: a log replaced since reads as `restarted`.
///
/// ```
/// use oc_jsonl::{Append, DirFileStore, Level, LogEntry, TaskFileStore};
/// use oc_time::Timestamp;
/// let dir = tempfile::tempdir()?;
/// let store = DirFileStore::new(dir.path());
/// let e = LogEntry::new(Timestamp::from_millis(1), Level::Info, "t1", "started");
/// let a = store.append_logs("t1", &[e.clone()], &Append::durable().key("k1"))?;
/// let again = store.append_logs("t1", &[e.clone()], &Append::durable().key("k1"))?;
/// assert!(again.duplicate && again.first == a.first);
/// let page = store.log_tail("t1", 0, 10)?;
/// assert_eq!(page.entries.len(), 1);
/// assert_eq!(store.log_entry("t1", a.first)?, Some(e));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DirFileStore {
    data_dir: PathBuf,
    writers: parking_lot::Mutex<Writers>,
    counts: parking_lot::Mutex<LineCounts>,
}

impl DirFileStore {
    /// The store of `<data_dir>/tasks/` (created on the first write).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        DirFileStore {
            data_dir: data_dir.into(),
            writers: parking_lot::Mutex::new(Writers::default()),
            counts: parking_lot::Mutex::new(LineCounts::new()),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The layers of `task` (checked).
    fn files(&self, task: &str) -> Result<TaskFiles> {
        TaskFiles::new(&self.data_dir, task)
    }

    /// The open writer of `task`'s `stream`, opened if it is not.
    fn writer(&self, task: &str, stream: Stream) -> Result<Arc<JsonlWriter>> {
        {
            let mut w = self.writers.lock();
            w.tick += 1;
            let tick = w.tick;
            if let Some(entry) = w
                .open
                .iter_mut()
                .find(|(t, s, _, _)| t == task && *s == stream)
            {
                entry.3 = tick;
                return Ok(entry.2.clone());
            }
        }
        // Opened without the lock held: opening may wait for a restore's `LOCK_EX`.
        let dir = self.files(task)?.task_dir_create()?;
        let writer = Arc::new(JsonlWriter::open_guarded(
            dir,
            OsStr::new(stream.name()),
            WriterOptions::default(),
        )?);
        let mut w = self.writers.lock();
        let tick = w.tick;
        if let Some(entry) = w.open.iter().find(|(t, s, _, _)| t == task && *s == stream) {
            return Ok(entry.2.clone());
        }
        if w.open.len() >= MAX_OPEN_WRITERS
            && let Some(oldest) = w
                .open
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.3)
                .map(|(i, _)| i)
        {
            w.open.swap_remove(oldest);
        }
        w.open.push((task.to_owned(), stream, writer.clone(), tick));
        Ok(writer)
    }

    /// Forgets `writer` (after it failed: the next append opens the file again).
    fn forget(&self, writer: &Arc<JsonlWriter>) {
        self.writers
            .lock()
            .open
            .retain(|(_, _, w, _)| !Arc::ptr_eq(w, writer));
    }

    /// Appends `records` to `task`'s `stream` in one write, all or none.
    fn append<T: Serialize>(
        &self,
        task: &str,
        stream: Stream,
        records: &[T],
        how: &Append<'_>,
    ) -> Result<Appended> {
        let files = self.files(task)?;
        if let Some(key) = how.key {
            check_append_key(key)?;
        }
        let count = u32::try_from(records.len()).map_err(|_| Error::InvalidInput {
            field: "entries",
            reason: format!("{} in one append; at most {}", records.len(), u32::MAX),
        })?;
        let path = files.dir().join(stream.name());
        let mut lines = Vec::with_capacity(256 * records.len());
        for (i, r) in records.iter().enumerate() {
            let start = lines.len();
            crate::json::write(&mut lines, r).map_err(|e| e.at(&path))?;
            if i + 1 == records.len()
                && let Some(key) = how.key
            {
                let mut last = lines.split_off(start);
                scan::add_key(&mut last, key, count, start as u64)?;
                if last.len() > MAX_LINE_BYTES {
                    return Err(Error::InvalidInput {
                        field: "record",
                        reason: format!(
                            "{} bytes of JSON with its key; a record may take at most \
                             {MAX_LINE_BYTES}",
                            last.len()
                        ),
                    });
                }
                lines.extend_from_slice(&last);
            }
            lines.push(b'\n');
        }
        if records.is_empty() {
            let end = follow::DiskCursor::parse(&self.log_end_of(task, stream)?)?;
            return Ok(Appended {
                first: EntryId(end.offset()),
                count: 0,
                duplicate: false,
            });
        }
        let durable = how.ack == Ack::Durable;
        let mut retried = false;
        loop {
            let writer = self.writer(task, stream)?;
            let mut known = |file: &std::fs::File, len: u64| match how.key {
                Some(key) => scan::find_key(file, len, key, &path),
                None => Ok(None),
            };
            match writer.append_store(
                &lines,
                u64::from(count),
                how.key.is_some(),
                durable,
                &mut known,
            ) {
                Ok(Wrote::At(first)) => {
                    return Ok(Appended {
                        first: EntryId(first),
                        count,
                        duplicate: false,
                    });
                }
                Ok(Wrote::Known(first, count)) => {
                    return Ok(Appended {
                        first: EntryId(first),
                        count,
                        duplicate: true,
                    });
                }
                Err(e) => {
                    self.forget(&writer);
                    // The task directory was removed under a writer kept open: once more
                    // with a fresh one.
                    let gone = matches!(&e, Error::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound);
                    if retried || !gone {
                        return Err(e);
                    }
                    retried = true;
                }
            }
        }
    }

    fn log_end_of(&self, task: &str, stream: Stream) -> Result<LogCursor> {
        let tdir = self.files(task)?.task_dir()?;
        follow::log_end(tdir.as_ref(), stream.name())
    }

    /// The reader of `stream` in the task directory `tdir` (empty without one).
    fn reader(tdir: Option<&Arc<Dir>>, stream: Stream) -> Result<JsonlReader> {
        match tdir {
            Some(d) => JsonlReader::open_in(d.clone(), stream.name()),
            None => Ok(JsonlReader::empty()),
        }
    }

    fn task_dir(&self, task: &str) -> Result<Option<Arc<Dir>>> {
        Ok(self.files(task)?.task_dir()?.map(Arc::new))
    }
}

impl TaskFileStore for DirFileStore {
    fn location(&self) -> String {
        self.data_dir.display().to_string()
    }

    fn tasks(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        if let Some(a) = after {
            check_task_id(a)?;
        }
        Ok(TaskFiles::list(&self.data_dir)?
            .into_iter()
            .filter(|id| after.is_none_or(|a| id.as_str() > a))
            .take(limit)
            .collect())
    }

    fn counts(&self, task: &str) -> Result<FileCounts> {
        let files = self.files(task)?;
        let Some(tdir) = files.task_dir()?.map(Arc::new) else {
            return Ok(FileCounts::default());
        };
        let mut cache = self.counts.lock();
        let logs = cache.count_all(&Self::reader(Some(&tdir), Stream::Logs)?)?;
        let decisions = cache.count_all(&Self::reader(Some(&tdir), Stream::Decisions)?)?;
        drop(cache);
        let checkpoints = match tdir.sub("checkpoints")? {
            Some(root) => root
                .entries()?
                .into_iter()
                .filter(|(name, _)| {
                    name.to_str()
                        .is_some_and(|n| crate::check_checkpoint_id(n).is_ok())
                })
                .count() as u64,
            None => 0,
        };
        Ok(FileCounts {
            log_entries: logs.lines,
            log_bytes: logs.bytes,
            decisions: decisions.lines,
            checkpoints,
            state: tdir.kind("state.json")?.is_some(),
        })
    }

    fn volume(&self) -> Result<LogVolume> {
        let mut v = LogVolume::default();
        let ids = match TaskFiles::list(&self.data_dir) {
            Ok(ids) => ids,
            // A linked `tasks/` (or data directory) is not followed: no task logs to count.
            Err(e) if e.is_unsafe() => return Ok(v),
            Err(e) => return Err(e),
        };
        let mut cache = self.counts.lock();
        for id in ids {
            let Ok(files) = self.files(&id) else {
                continue;
            };
            let reader = files.logs();
            if reader.files().is_empty() {
                continue;
            }
            let count = match reader.count_lines(&mut cache) {
                Ok(c) => c,
                Err(e) if e.is_unsafe() => continue,
                Err(e) => return Err(e),
            };
            v.tasks += 1;
            v.entries += count.lines;
            v.files += count.files;
            v.bytes += count.bytes;
        }
        cache.sweep();
        Ok(v)
    }

    fn append_logs(&self, task: &str, entries: &[LogEntry], how: &Append<'_>) -> Result<Appended> {
        self.append(task, Stream::Logs, entries, how)
    }

    fn query(&self, task: &str, q: &Query) -> Result<Page<LogEntry>> {
        let reader = Self::reader(self.task_dir(task)?.as_ref(), Stream::Logs)?;
        pages::query(&reader, q)
    }

    fn log_tail(&self, task: &str, skip: usize, n: usize) -> Result<Page<LogEntry>> {
        let reader = Self::reader(self.task_dir(task)?.as_ref(), Stream::Logs)?;
        tail_page(&reader, skip, n)
    }

    fn log_entry(&self, task: &str, id: EntryId) -> Result<Option<LogEntry>> {
        let reader = Self::reader(self.task_dir(task)?.as_ref(), Stream::Logs)?;
        by_id(&reader, id)
    }

    fn analyze(&self, task: &str) -> Result<LogAnalysis> {
        self.files(task)?.logs().analyze()
    }

    fn log_end(&self, task: &str) -> Result<LogCursor> {
        self.log_end_of(task, Stream::Logs)
    }

    fn read_after(&self, task: &str, after: Option<&LogCursor>, n: usize) -> Result<After> {
        let tdir = self.files(task)?.task_dir()?;
        follow::read_after(tdir.as_ref(), Stream::Logs.name(), after, n)
    }

    fn wait(&self, task: &str, at: &LogCursor, timeout: Duration) -> Result<()> {
        let files = self.files(task)?;
        follow::wait(|| files.task_dir(), Stream::Logs.name(), at, timeout)
    }

    fn append_decision(&self, task: &str, d: &Decision, how: &Append<'_>) -> Result<Appended> {
        self.append(task, Stream::Decisions, std::slice::from_ref(d), how)
    }

    fn decisions(
        &self,
        task: &str,
        agent: Option<&str>,
        skip: usize,
        n: usize,
    ) -> Result<Page<Decision>> {
        let reader = Self::reader(self.task_dir(task)?.as_ref(), Stream::Decisions)?;
        decision_page(&reader, agent, skip, n)
    }

    fn decision(&self, task: &str, id: EntryId) -> Result<Option<Decision>> {
        let reader = Self::reader(self.task_dir(task)?.as_ref(), Stream::Decisions)?;
        by_id(&reader, id)
    }

    fn save_state(&self, task: &str, state: &Value) -> Result<()> {
        self.files(task)?.save_state(state)
    }

    fn load_state(&self, task: &str) -> Result<Option<Value>> {
        self.files(task)?.load_state()
    }

    fn create_checkpoint(
        &self,
        task: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<Checkpoint> {
        self.files(task)?
            .create_checkpoint_within(description, now, MAX_CHECKPOINT_FILE_BYTES)
    }

    fn create_checkpoint_keyed(
        &self,
        task: &str,
        description: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        self.files(task)?.create_checkpoint_keyed_within(
            description,
            key,
            now,
            MAX_CHECKPOINT_FILE_BYTES,
        )
    }

    fn checkpoint_page(
        &self,
        task: &str,
        skip: usize,
        n: usize,
    ) -> Result<(Vec<Checkpoint>, bool)> {
        self.files(task)?.checkpoint_page(skip, n)
    }

    fn restore_checkpoint(&self, task: &str, id: &str) -> Result<Checkpoint> {
        self.files(task)?.restore_checkpoint(id)
    }

    fn delete_checkpoints(&self, task: &str, ids: &[String]) -> Result<Vec<String>> {
        self.files(task)?.delete_checkpoint_ids(ids)
    }

    fn retain(&self, task: &str, r: &Retention, now: Timestamp) -> Result<u64> {
        let files = self.files(task)?;
        match files.task_dir()? {
            Some(tdir) => retain::retain(&tdir, Stream::Logs.name(), r, now),
            None => Ok(0),
        }
    }

    fn ship_cursor(&self, task: &str, collector: &str) -> Result<Option<LogCursor>> {
        ship::cursor(&self.files(task)?, collector)
    }

    fn set_ship_cursor(&self, task: &str, collector: &str, at: &LogCursor) -> Result<()> {
        ship::set_cursor(&self.files(task)?, collector, at)
    }

    /// The log's newest end, the decisions' and a page of checkpoints, through one walk to
    /// the task directory (the default walks three times).
    fn overview(&self, task: &str, r: &OverviewRequest) -> Overview {
        let tdir = match self.task_dir(task) {
            Ok(d) => d,
            Err(e) => {
                let again = e.replay();
                let third = e.replay();
                return Overview::new(Err(e), Err(again), Err(third));
            }
        };
        let log = Self::reader(tdir.as_ref(), Stream::Logs)
            .and_then(|rd| tail_page(&rd, r.log_skip, r.log_n));
        let decisions = Self::reader(tdir.as_ref(), Stream::Decisions)
            .and_then(|rd| decision_page(&rd, None, r.decisions_skip, r.decisions_n));
        let checkpoints = match &tdir {
            Some(d) => {
                crate::task::checkpoint_page_in(d, task, r.checkpoints_skip, r.checkpoints_n)
            }
            None => Ok((Vec::new(), false)),
        };
        Overview::new(log, decisions, checkpoints)
    }
}
