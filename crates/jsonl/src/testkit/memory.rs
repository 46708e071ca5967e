//! [`ModelStore`]: a complete [`TaskFileStore`] in memory, written from the trait's documents
//! with plain lists, the model of [`model`](super::model) and the first store the suite ran on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use oc_time::Timestamp;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Corrupter;
use crate::{
    After, Append, Appended, Checkpoint, CheckpointFile, Decision, EntryId, Error, FileCounts,
    KeyedCheckpoint, Level, LogAnalysis, LogCursor, LogEntry, LogVolume, MAX_DEPTH,
    MAX_DESCRIPTION, MAX_LINE_BYTES, MAX_STATE_BYTES, Page, Query, ReadReport, Result, Retention,
    Stored, TaskFileStore, check_append_key, check_checkpoint_id, check_task_id,
};

/// One stored record: its id, its key (with the count of the append it began), its line's
/// bytes.
#[derive(Debug, Clone)]
struct Line<T> {
    id: u64,
    record: T,
    key: Option<(String, Appended)>,
    /// Appended with a key (every line of a keyed batch).
    keyed: bool,
    bytes: u64,
}

/// A checkpoint: its manifest, the files as bytes (what the corrupter damages and the hashes
/// cover) and the records they were made from.
#[derive(Debug, Clone)]
struct Snapshot {
    cp: Checkpoint,
    /// The idempotency key it was created under.
    key: Option<String>,
    files: BTreeMap<&'static str, Vec<u8>>,
    log: Vec<Line<LogEntry>>,
    decisions: Vec<Line<Decision>>,
    state: Option<Value>,
}

#[derive(Debug, Default)]
struct Task {
    log: Vec<Line<LogEntry>>,
    decisions: Vec<Line<Decision>>,
    state: Option<Value>,
    /// Oldest first.
    checkpoints: Vec<Snapshot>,
    /// Bumped when the log is replaced (restored, retained).
    generation: u64,
    cursors: BTreeMap<String, LogCursor>,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: BTreeMap<String, Task>,
    next_id: u64,
}

/// A [`TaskFileStore`] in memory: lists behind one mutex. Ids are one counter for the whole
/// store (never reused), cursors `m:<generation>:<id>`.
///
/// ```
/// use oc_jsonl::{Level, LogEntry, TaskFileStore, testkit::{ModelStore, START}};
/// let s = ModelStore::new();
/// s.append_log("t1", &LogEntry::new(START, Level::Info, "t1", "hi"))?;
/// assert_eq!(s.counts("t1")?.log_entries, 1);
/// # Ok::<(), oc_jsonl::Error>(())
/// ```
#[derive(Default)]
pub struct ModelStore {
    inner: Mutex<Inner>,
}

impl fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelStore").finish_non_exhaustive()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Arrays and objects nested in `v` (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The line of `record` (without its newline), refused past [`MAX_DEPTH`] or
/// [`MAX_LINE_BYTES`].
fn line_of<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(record).map_err(|e| Error::InvalidInput {
        field: "record",
        reason: e.to_string(),
    })?;
    if depth(&value) > MAX_DEPTH {
        return Err(Error::InvalidInput {
            field: "record",
            reason: format!("nested more than {MAX_DEPTH} deep; nothing was written"),
        });
    }
    let bytes = serde_json::to_vec(record).map_err(|e| Error::InvalidInput {
        field: "record",
        reason: e.to_string(),
    })?;
    if bytes.len() > MAX_LINE_BYTES {
        return Err(Error::InvalidInput {
            field: "record",
            reason: format!("longer than {MAX_LINE_BYTES} bytes; nothing was written"),
        });
    }
    Ok(bytes)
}

fn lines<T: Serialize>(stream: &[Line<T>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in stream {
        if let Ok(b) = serde_json::to_vec(&l.record) {
            out.extend_from_slice(&b);
            out.push(b'\n');
        }
    }
    out
}

fn not_found(what: String) -> Error {
    Error::NotFound { what }
}

/// The page of `stream` of the `n` records before the newest `skip` that `keep` accepts,
/// oldest first; `next_skip` counts every record passed, kept or not.
fn tail_page<T: Clone>(
    stream: &[Line<T>],
    skip: usize,
    n: usize,
    keep: impl Fn(&T) -> bool,
) -> Page<T> {
    let end = stream.len().saturating_sub(skip);
    let mut at = end;
    let mut picked = Vec::new();
    while at > 0 && picked.len() < n {
        at -= 1;
        if keep(&stream[at].record) {
            picked.push(Stored {
                id: EntryId(stream[at].id),
                record: stream[at].record.clone(),
            });
        }
    }
    picked.reverse();
    let more = stream[..at].iter().any(|l| keep(&l.record));
    let read = ReadReport {
        lines: (end - at) as u64,
        ..ReadReport::default()
    };
    Page::new(picked, more, (skip + (end - at)) as u64, read)
}

/// `lines` with new ids from `next_id` on, their keys' answers renumbered alike.
fn renumber<T: Clone>(next_id: &mut u64, lines: &[Line<T>]) -> Vec<Line<T>> {
    let mut firsts = BTreeMap::new();
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        *next_id += 1;
        let mut l = l.clone();
        firsts.insert(l.id, *next_id);
        l.id = *next_id;
        out.push(l);
    }
    for l in &mut out {
        if let Some((_, a)) = &mut l.key {
            a.first = EntryId(firsts.get(&a.first.0).copied().unwrap_or(a.first.0));
        }
    }
    out
}

impl ModelStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hook the suite needs: flips a byte in the middle of a checkpoint's file.
    pub fn corrupter(self: &Arc<Self>) -> Corrupter {
        let me = Arc::clone(self);
        Box::new(move |task: &str, cp: &str, file: &str| {
            let mut inner = me.inner.lock();
            let snap = inner
                .tasks
                .get_mut(task)
                .and_then(|t| t.checkpoints.iter_mut().find(|s| s.cp.id == cp))
                .unwrap_or_else(|| panic!("no checkpoint {cp} of {task} to corrupt"));
            let bytes = snap
                .files
                .get_mut(file)
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| panic!("checkpoint {cp} of {task} holds no {file}"));
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
        })
    }

    /// Whether a live log entry of `task` was appended with a key (its bytes are then the
    /// backend's own, see the module's conventions).
    pub(crate) fn keyed_entries(&self, task: &str) -> bool {
        self.inner
            .lock()
            .tasks
            .get(task)
            .is_some_and(|t| t.log.iter().any(|l| l.keyed))
    }

    fn path(task: &str, rest: &str) -> PathBuf {
        PathBuf::from(format!("model:tasks/{task}/{rest}"))
    }

    fn cursor(t: &Task) -> LogCursor {
        let last = t.log.last().map_or(0, |l| l.id);
        LogCursor::new(format!("m:{}:{last}", t.generation)).unwrap_or_else(|_| unreachable!())
    }

    /// Appends `records` to the stream `pick` chooses, keyed per `how`.
    fn append<T: Serialize + Clone>(
        &self,
        task: &str,
        records: &[T],
        how: &Append<'_>,
        pick: impl Fn(&mut Task) -> &mut Vec<Line<T>>,
    ) -> Result<Appended> {
        check_task_id(task)?;
        if let Some(k) = how.key {
            check_append_key(k)?;
        }
        let mut sized = Vec::with_capacity(records.len());
        for r in records {
            sized.push((r.clone(), line_of(r)?.len() as u64 + 1));
        }
        let count = u32::try_from(records.len()).map_err(|_| Error::InvalidInput {
            field: "entries",
            reason: "more than 2^32 in one append".into(),
        })?;
        let mut inner = self.inner.lock();
        let first_id = inner.next_id + 1;
        let t = inner.tasks.entry(task.to_owned()).or_default();
        let stream = pick(t);
        if let Some(k) = how.key
            && let Some((_, first)) = stream
                .iter()
                .find_map(|l| l.key.as_ref().filter(|(key, _)| key == k))
        {
            return Ok(Appended {
                duplicate: true,
                ..*first
            });
        }
        let answer = Appended {
            first: EntryId(first_id),
            count,
            duplicate: false,
        };
        if records.is_empty() {
            return Ok(answer);
        }
        for (i, (record, bytes)) in sized.into_iter().enumerate() {
            stream.push(Line {
                id: first_id + i as u64,
                record,
                key: (i == 0)
                    .then(|| how.key.map(|k| (k.to_owned(), answer)))
                    .flatten(),
                keyed: how.key.is_some(),
                bytes,
            });
        }
        inner.next_id += u64::from(count);
        Ok(answer)
    }

    fn with_task<R>(&self, task: &str, f: impl FnOnce(Option<&Task>) -> R) -> Result<R> {
        check_task_id(task)?;
        Ok(f(self.inner.lock().tasks.get(task)))
    }
}

impl ModelStore {
    /// A checkpoint, under `key` if given: all under the one mutex.
    fn checkpoint_under(
        &self,
        task: &str,
        description: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        check_task_id(task)?;

        if description.len() > MAX_DESCRIPTION {
            return Err(Error::InvalidInput {
                field: "description",
                reason: format!("at most {MAX_DESCRIPTION} bytes"),
            });
        }
        let mut inner = self.inner.lock();
        let t = inner.tasks.entry(task.to_owned()).or_default();
        if let Some(key) = key
            && let Some(s) = t.checkpoints.iter().find(|s| s.key.as_deref() == Some(key))
        {
            if s.cp.description != description {
                return Err(Error::IdempotencyConflict {
                    task: task.to_owned(),
                    key: key.to_owned(),
                });
            }
            return Ok(KeyedCheckpoint {
                checkpoint: s.cp.clone(),
                replayed: true,
            });
        }
        let millis = now.as_millis().max(0);
        let id = (0u64..)
            .map(|n| format!("cp-{millis:013}-{n}"))
            .find(|id| t.checkpoints.iter().all(|s| s.cp.id != *id))
            .unwrap_or_default();
        let mut files = BTreeMap::new();
        if let Some(s) = &t.state {
            files.insert(
                "state.json",
                serde_json::to_vec(s).map_err(|e| Error::InvalidInput {
                    field: "state",
                    reason: e.to_string(),
                })?,
            );
        }
        if !t.log.is_empty() {
            files.insert("logs.jsonl", lines(&t.log));
        }
        if !t.decisions.is_empty() {
            files.insert("decisions.jsonl", lines(&t.decisions));
        }
        let cp = Checkpoint {
            id,
            task_id: task.to_owned(),
            created_at: now,
            description: description.to_owned(),
            files: files
                .iter()
                .map(|(name, b)| CheckpointFile {
                    name: (*name).to_owned(),
                    bytes: b.len() as u64,
                    sha256: sha256_hex(b),
                })
                .collect(),
        };
        let snap = Snapshot {
            cp: cp.clone(),
            key: key.map(str::to_owned),
            files,
            log: t.log.clone(),
            decisions: t.decisions.clone(),
            state: t.state.clone(),
        };
        t.checkpoints.push(snap);
        t.checkpoints.sort_by(|a, b| a.cp.id.cmp(&b.cp.id));
        Ok(KeyedCheckpoint {
            checkpoint: cp,
            replayed: false,
        })
    }
}

impl TaskFileStore for ModelStore {
    fn location(&self) -> String {
        "model:".to_owned()
    }

    fn tasks(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        Ok(self
            .inner
            .lock()
            .tasks
            .keys()
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }

    fn counts(&self, task: &str) -> Result<FileCounts> {
        self.with_task(task, |t| {
            t.map_or_else(FileCounts::default, |t| FileCounts {
                log_entries: t.log.len() as u64,
                log_bytes: t.log.iter().map(|l| l.bytes).sum(),
                decisions: t.decisions.len() as u64,
                checkpoints: t.checkpoints.len() as u64,
                state: t.state.is_some(),
            })
        })
    }

    fn volume(&self) -> Result<LogVolume> {
        let inner = self.inner.lock();
        let mut v = LogVolume::default();
        for t in inner.tasks.values().filter(|t| !t.log.is_empty()) {
            v.tasks += 1;
            v.files += 1;
            v.entries += t.log.len() as u64;
            v.bytes += t.log.iter().map(|l| l.bytes).sum::<u64>();
        }
        Ok(v)
    }

    fn append_logs(&self, task: &str, entries: &[LogEntry], how: &Append<'_>) -> Result<Appended> {
        self.append(task, entries, how, |t| &mut t.log)
    }

    fn query(&self, task: &str, q: &Query) -> Result<Page<LogEntry>> {
        self.with_task(task, |t| {
            let mut hits: Vec<Stored<LogEntry>> = t
                .map(|t| t.log.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|l| q.matches(&l.record))
                .map(|l| Stored {
                    id: EntryId(l.id),
                    record: l.record.clone(),
                })
                .collect();
            if q.newest_first {
                hits.reverse();
            }
            let total = hits.len();
            let page: Vec<_> = hits
                .into_iter()
                .skip(q.offset)
                .take(q.limit.unwrap_or(usize::MAX))
                .collect();
            let end = q.offset.saturating_add(page.len());
            Page::new(page, end < total, end as u64, ReadReport::default())
        })
    }

    fn log_tail(&self, task: &str, skip: usize, n: usize) -> Result<Page<LogEntry>> {
        self.with_task(task, |t| {
            tail_page(
                t.map(|t| t.log.as_slice()).unwrap_or_default(),
                skip,
                n,
                |_| true,
            )
        })
    }

    fn log_entry(&self, task: &str, id: EntryId) -> Result<Option<LogEntry>> {
        self.with_task(task, |t| {
            t.and_then(|t| t.log.iter().find(|l| l.id == id.0))
                .map(|l| l.record.clone())
        })
    }

    fn analyze(&self, task: &str) -> Result<LogAnalysis> {
        self.with_task(task, |t| {
            let mut a = LogAnalysis::default();
            for l in Level::ALL {
                a.level_counts.insert(l.to_string(), 0);
            }
            for l in t.map(|t| t.log.as_slice()).unwrap_or_default() {
                let e = &l.record;
                a.total_logs += 1;
                *a.level_counts.entry(e.level.to_string()).or_default() += 1;
                a.first = Some(a.first.map_or(e.timestamp, |f| f.min(e.timestamp)));
                a.last = Some(a.last.map_or(e.timestamp, |f| f.max(e.timestamp)));
            }
            a.error_count = a.level_counts.get("error").copied().unwrap_or(0);
            a.error_rate = if a.total_logs == 0 {
                0.0
            } else {
                a.error_count as f64 * 100.0 / a.total_logs as f64
            };
            if let (Some(f), Some(l)) = (a.first, a.last) {
                a.span_ms = (l.as_millis() - f.as_millis()).max(0) as u64;
            }
            a.read.lines = a.total_logs;
            a
        })
    }

    fn log_end(&self, task: &str) -> Result<LogCursor> {
        self.with_task(task, |t| match t {
            Some(t) => Self::cursor(t),
            None => Self::cursor(&Task::default()),
        })
    }

    fn read_after(&self, task: &str, after: Option<&LogCursor>, n: usize) -> Result<After> {
        check_task_id(task)?;
        let at = match after {
            None => None,
            Some(c) => {
                let parsed = c
                    .as_str()
                    .strip_prefix("m:")
                    .and_then(|r| r.split_once(':'))
                    .and_then(|(g, i)| Some((g.parse::<u64>().ok()?, i.parse::<u64>().ok()?)));
                Some(parsed.ok_or_else(|| Error::InvalidInput {
                    field: "log cursor",
                    reason: format!("{:?} is not this store's", c.as_str()),
                })?)
            }
        };
        let inner = self.inner.lock();
        let empty = Task::default();
        let t = inner.tasks.get(task).unwrap_or(&empty);
        let (restarted, from) = match at {
            None => (false, 0),
            Some((g, _)) if g != t.generation => (true, 0),
            Some((_, id)) => (false, id),
        };
        let entries: Vec<Stored<LogEntry>> = t
            .log
            .iter()
            .filter(|l| l.id > from)
            .take(n)
            .map(|l| Stored {
                id: EntryId(l.id),
                record: l.record.clone(),
            })
            .collect();
        let last = entries.last().map_or(from, |s| s.id.0);
        let cursor = LogCursor::new(format!("m:{}:{last}", t.generation))?;
        Ok(After::new(
            entries,
            cursor,
            restarted,
            ReadReport::default(),
        ))
    }

    fn append_decision(&self, task: &str, d: &Decision, how: &Append<'_>) -> Result<Appended> {
        self.append(task, std::slice::from_ref(d), how, |t| &mut t.decisions)
    }

    fn decisions(
        &self,
        task: &str,
        agent: Option<&str>,
        skip: usize,
        n: usize,
    ) -> Result<Page<Decision>> {
        self.with_task(task, |t| {
            tail_page(
                t.map(|t| t.decisions.as_slice()).unwrap_or_default(),
                skip,
                n,
                |d: &Decision| agent.is_none_or(|a| d.agent == a),
            )
        })
    }

    fn decision(&self, task: &str, id: EntryId) -> Result<Option<Decision>> {
        self.with_task(task, |t| {
            t.and_then(|t| t.decisions.iter().find(|l| l.id == id.0))
                .map(|l| l.record.clone())
        })
    }

    fn save_state(&self, task: &str, state: &Value) -> Result<()> {
        check_task_id(task)?;
        let bytes = serde_json::to_vec(state).map_err(|e| Error::InvalidInput {
            field: "state",
            reason: e.to_string(),
        })?;
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(Error::InvalidInput {
                field: "state",
                reason: format!("{} bytes; at most {MAX_STATE_BYTES}", bytes.len()),
            });
        }
        self.inner
            .lock()
            .tasks
            .entry(task.to_owned())
            .or_default()
            .state = Some(state.clone());
        Ok(())
    }

    fn load_state(&self, task: &str) -> Result<Option<Value>> {
        self.with_task(task, |t| t.and_then(|t| t.state.clone()))
    }

    fn create_checkpoint(
        &self,
        task: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<Checkpoint> {
        Ok(self
            .checkpoint_under(task, description, None, now)?
            .checkpoint)
    }

    fn create_checkpoint_keyed(
        &self,
        task: &str,
        description: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        check_append_key(key)?;
        self.checkpoint_under(task, description, Some(key), now)
    }

    fn checkpoint_page(
        &self,
        task: &str,
        skip: usize,
        n: usize,
    ) -> Result<(Vec<Checkpoint>, bool)> {
        self.with_task(task, |t| {
            let all = t.map(|t| t.checkpoints.as_slice()).unwrap_or_default();
            let page = all
                .iter()
                .rev()
                .skip(skip)
                .take(n)
                .map(|s| s.cp.clone())
                .collect();
            (page, all.len() > skip.saturating_add(n))
        })
    }

    fn restore_checkpoint(&self, task: &str, id: &str) -> Result<Checkpoint> {
        check_task_id(task)?;
        check_checkpoint_id(id)?;
        let mut inner = self.inner.lock();
        let Inner { tasks, next_id } = &mut *inner;
        let missing = || not_found(format!("checkpoint {id} of task {task}"));
        let t = tasks.get_mut(task).ok_or_else(missing)?;
        let snap = t
            .checkpoints
            .iter()
            .find(|s| s.cp.id == id)
            .ok_or_else(missing)?
            .clone();
        for f in &snap.cp.files {
            let bytes = snap
                .files
                .get(f.name.as_str())
                .ok_or_else(|| Error::Corrupt {
                    path: Self::path(task, &format!("checkpoints/{id}/{}", f.name)),
                    reason: "it is missing".into(),
                })?;
            if bytes.len() as u64 != f.bytes || sha256_hex(bytes) != f.sha256 {
                return Err(Error::Corrupt {
                    path: Self::path(task, &format!("checkpoints/{id}/{}", f.name)),
                    reason: "its hash does not match the manifest's".into(),
                });
            }
        }
        // New ids, as a backend that rewrites the file or the rows gives; a key answers its
        // append's new first id.
        t.log = renumber(next_id, &snap.log);
        t.decisions = renumber(next_id, &snap.decisions);
        t.state = snap.state.clone();
        t.generation += 1;
        Ok(snap.cp)
    }

    fn delete_checkpoints(&self, task: &str, ids: &[String]) -> Result<Vec<String>> {
        check_task_id(task)?;
        for id in ids {
            check_checkpoint_id(id)?;
        }
        let mut inner = self.inner.lock();
        let Some(t) = inner.tasks.get_mut(task) else {
            return Ok(Vec::new());
        };
        let mut gone = Vec::new();
        for id in ids {
            if let Some(i) = t.checkpoints.iter().position(|s| s.cp.id == *id) {
                t.checkpoints.remove(i);
                gone.push(id.clone());
            }
        }
        Ok(gone)
    }

    fn retain(&self, task: &str, r: &Retention, now: Timestamp) -> Result<u64> {
        check_task_id(task)?;
        let mut inner = self.inner.lock();
        let Some(t) = inner.tasks.get_mut(task) else {
            return Ok(0);
        };
        let before = t.log.len();
        if let Some(age) = r.max_age {
            let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cut = now.as_millis().saturating_sub(age);
            // The oldest entries go: those before the first one young enough to stay.
            let old = t
                .log
                .iter()
                .take_while(|l| l.record.timestamp.as_millis() < cut)
                .count();
            t.log.drain(..old);
        }
        let mut keep = t.log.len();
        if let Some(n) = r.max_entries {
            keep = keep.min(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(max) = r.max_bytes {
            let mut total = 0u64;
            let fit = t
                .log
                .iter()
                .rev()
                .take_while(|l| {
                    total = total.saturating_add(l.bytes);
                    total <= max
                })
                .count();
            keep = keep.min(fit);
        }
        let drop = t.log.len() - keep;
        t.log.drain(..drop);
        let gone = (before - t.log.len()) as u64;
        if gone > 0 {
            t.generation += 1;
        }
        Ok(gone)
    }

    fn ship_cursor(&self, task: &str, collector: &str) -> Result<Option<LogCursor>> {
        self.with_task(task, |t| t.and_then(|t| t.cursors.get(collector).cloned()))
    }

    fn set_ship_cursor(&self, task: &str, collector: &str, at: &LogCursor) -> Result<()> {
        check_task_id(task)?;
        self.inner
            .lock()
            .tasks
            .entry(task.to_owned())
            .or_default()
            .cursors
            .insert(collector.to_owned(), at.clone());
        Ok(())
    }
}
