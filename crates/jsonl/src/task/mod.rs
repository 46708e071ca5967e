//! `TaskFiles`: the per-task persistence layers under `<data>/tasks/<id>/`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use oc_time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod checkpoint;

pub use checkpoint::{
    Checkpoint, CheckpointBodies, CheckpointFile, MAX_DESCRIPTION, MAX_MANIFEST_BYTES,
    check_checkpoint_id,
};
pub(crate) use checkpoint::{checkpoint_page_in, over_bytes};

use crate::fsx::Dir;
use crate::{
    Decision, Error, Follower, JsonlReader, JsonlWriter, LogEntry, ReadReport, Result,
    TaskFileStore, WriterOptions,
};

/// Checks `id` by the task-id rules of `oc-tasks` (1–128 of `[A-Za-z0-9._:-]`, not starting
/// with `.`), so it is one safe path segment; this crate stays a leaf and repeats the rule.
pub fn check_task_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("must not be empty")
    } else if id.len() > 128 {
        Some("must be at most 128 characters")
    } else if id.starts_with('.') {
        Some("must not start with '.'")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        Some("may contain only letters, digits, '.', '_', ':' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidTaskId {
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically: a temporary file created exclusively under a fresh name
/// (never an existing file, never through a link; removed if anything fails), `fsync`, rename,
/// directory `fsync`. After a crash `path` holds the old bytes or the new ones, never a mix. The
/// directories on the way are the caller's (created if missing); `path` itself, if it is a link,
/// is replaced, not followed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (dir, name) = Dir::of(path, true)?;
    dir.write_atomic(&name, bytes)
}

/// Reads the whole of `path`, at most `max` bytes (`Corrupt` past that); `None` if it does not
/// exist. The file itself is never reached through a symbolic link and must be a regular file
/// (else [`Error::Unsafe`]): a state file planted as a link to a secret or to `/dev/zero` is
/// refused, not read. The directories on the way are the caller's.
pub fn read_file(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let name = path.file_name().ok_or_else(|| Error::InvalidInput {
        field: "path",
        reason: format!("{} does not name a file", path.display()),
    })?;
    match Dir::open(path.parent().unwrap_or(Path::new("")))? {
        Some(dir) => dir.read_bounded(name, max),
        None => Ok(None),
    }
}

/// What `state.json` holds: the state and the checksum of its canonical JSON.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    checksum: String,
    #[serde(rename = "savedAt")]
    saved_at: Timestamp,
    state: Value,
}

/// The largest `state.json` saved or loaded, in bytes (as written: pretty-printed, with its
/// checksum): it is read from the data directory, so it is bounded before it is parsed.
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// The persistence layers of one task: `state.json`, `logs.jsonl`, `decisions.jsonl` and
/// `checkpoints/`.
///
/// Everything in the data directory is untrusted: every path is built from validated names
/// (the task id, the fixed file names, checkpoint ids of the generated form), and `tasks/`,
/// `tasks/<id>/`, `checkpoints/` and `checkpoints/<id>/` are each opened without following a
/// link, with every file reached relative to its directory's handle, again without following
/// (see [`Error::Unsafe`]). Only the data directory itself is opened by its path.
///
/// [`DirFileStore`](crate::DirFileStore) is built on it: its state, checkpoints, restores and
/// listings are these, and its writers are the guarded ones [`log_writer`](Self::log_writer)
/// gives (each write-out under the log's `LOCK_EX`, reopening a log replaced meanwhile), and its
/// readers read a live file only below a length taken under its `LOCK_SH`. Prefer
/// the store in new code; this type stays for callers not yet switched to the trait.
///
/// ```
/// use oc_jsonl::{Level, LogEntry, TaskFiles};
/// use oc_time::Timestamp;
/// let dir = tempfile::tempdir()?;
/// let t = TaskFiles::new(dir.path(), "task-1")?;
/// t.append_log(&LogEntry::new(Timestamp::now(), Level::Info, "task-1", "started"))?;
/// t.save_state(&serde_json::json!({"step": 3}))?;
/// let cp = t.create_checkpoint("before the risky part", Timestamp::now())?;
/// t.save_state(&serde_json::json!({"step": 4}))?;
/// t.restore_checkpoint(&cp.id)?;
/// assert_eq!(t.load_state()?, Some(serde_json::json!({"step": 3})));
/// assert!(TaskFiles::new(dir.path(), "../escape").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TaskFiles {
    task_id: String,
    data_dir: PathBuf,
    dir: PathBuf,
}

impl TaskFiles {
    /// The layers of `task_id` under `<data_dir>/tasks/<task_id>/` (created on first write).
    pub fn new(data_dir: &Path, task_id: &str) -> Result<Self> {
        check_task_id(task_id)?;
        Ok(TaskFiles {
            task_id: task_id.to_owned(),
            data_dir: data_dir.to_owned(),
            dir: data_dir.join("tasks").join(task_id),
        })
    }

    /// The ids of the tasks that have a directory under `<data_dir>/tasks`, sorted: names
    /// that are valid task ids of real directories, listed through the directory's handle
    /// (`tasks/` itself opened without following a link; a link or a file in it is left out).
    /// Empty if there is no `tasks/`.
    pub fn list(data_dir: &Path) -> Result<Vec<String>> {
        let Some(root) = Dir::open(data_dir)? else {
            return Ok(Vec::new());
        };
        let Some(tasks) = root.sub("tasks")? else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for (name, kind) in tasks.entries()? {
            let Some(id) = name.to_str() else { continue };
            if check_task_id(id).is_err() {
                continue;
            }
            let kind = match kind {
                rustix::fs::FileType::Unknown => tasks.kind(id)?,
                k => Some(k),
            };
            if kind == Some(rustix::fs::FileType::Directory) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The task directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `tasks/<id>/`, opened without following links; `None` if it does not exist.
    pub(crate) fn task_dir(&self) -> Result<Option<Dir>> {
        let Some(root) = Dir::open(&self.data_dir)? else {
            return Ok(None);
        };
        match root.sub("tasks")? {
            Some(tasks) => tasks.sub(&self.task_id),
            None => Ok(None),
        }
    }

    /// `tasks/<id>/`, created if missing, without following links.
    pub(crate) fn task_dir_create(&self) -> Result<Dir> {
        Dir::create(&self.data_dir)?
            .sub_create("tasks")?
            .sub_create(&self.task_id)
    }

    /// `logs.jsonl`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs.jsonl")
    }

    /// A writer on `logs.jsonl`, for agents that log a lot (keep it open).
    ///
    /// Each of its write-outs holds `LOCK_EX` on the log (so the store's readers see it whole
    /// or not at all) and, if a restore or a retention replaced the log meanwhile, reopens it
    /// and writes there: no append is lost to them.
    pub fn log_writer(&self, opts: WriterOptions) -> Result<JsonlWriter> {
        JsonlWriter::open_guarded(self.task_dir_create()?, OsStr::new("logs.jsonl"), opts)
    }

    /// Appends one entry to `logs.jsonl` (opening the file for this call).
    ///
    /// The same append as [`DirFileStore`](crate::DirFileStore)'s, acknowledged
    /// [`Written`](crate::Ack::Written), through a store of this call's own.
    pub fn append_log(&self, entry: &LogEntry) -> Result<()> {
        crate::DirFileStore::new(&self.data_dir)
            .append_logs(
                &self.task_id,
                std::slice::from_ref(entry),
                &crate::Append::written(),
            )
            .map(drop)
    }

    /// A reader of `logs.jsonl` and its rotated files.
    ///
    /// The reader holds the task directory open (reached without following links) and opens
    /// each file relative to it, without following it. If a directory on the way is a link,
    /// every read returns [`Error::Unsafe`]; if the directory is missing, the reader is empty.
    pub fn logs(&self) -> JsonlReader {
        self.reader("logs.jsonl")
    }

    /// A follower of `logs.jsonl` from its current end (`oc logs tail --follow`). Every poll
    /// walks to the log through directory handles and opens it without following a link: a
    /// link on the way, even one swapped in while following, is refused ([`Error::Unsafe`]).
    pub fn log_follower(&self) -> Follower {
        Follower::of_task(self.clone())
    }

    /// A reader of `name` in the task directory (see [`logs`](Self::logs)): empty if the
    /// directory is missing, carrying the error if it cannot be opened safely. The files are
    /// never reached by their paths.
    fn reader(&self, name: &str) -> JsonlReader {
        match self.task_dir() {
            Ok(Some(dir)) => JsonlReader::open_in(dir, name).unwrap_or_else(JsonlReader::failed),
            Ok(None) => JsonlReader::empty(),
            Err(e) => JsonlReader::failed(e),
        }
    }

    /// Appends a decision to `decisions.jsonl`.
    ///
    /// The same append as [`DirFileStore`](crate::DirFileStore)'s, acknowledged
    /// [`Written`](crate::Ack::Written), through a store of this call's own.
    pub fn append_decision(&self, d: &Decision) -> Result<()> {
        crate::DirFileStore::new(&self.data_dir)
            .append_decision(&self.task_id, d, &crate::Append::written())
            .map(drop)
    }

    /// A reader of `decisions.jsonl`, for a page of the newest ([`JsonlReader::tail_lines`])
    /// without reading them all. It holds the task directory open, reached without following
    /// links (a link on the way is refused here, [`Error::Unsafe`]), and opens the file
    /// relative to it, without following it.
    pub fn decision_log(&self) -> Result<JsonlReader> {
        match self.task_dir()? {
            Some(dir) => JsonlReader::open_in(dir, "decisions.jsonl"),
            None => Ok(JsonlReader::empty()),
        }
    }

    /// Every decision, oldest first.
    pub fn decisions(&self) -> Result<(Vec<Decision>, ReadReport)> {
        self.decision_log()?.records()
    }

    /// The whole of `name` in the task directory (`None` if it or the directory is missing),
    /// never through a link, refused past `max` bytes: for the crate's own fixed-name files
    /// (the shipper's cursors).
    pub(crate) fn read_file(&self, name: &'static str, max: u64) -> Result<Option<Vec<u8>>> {
        match self.task_dir()? {
            Some(dir) => dir.read_bounded(name, max),
            None => Ok(None),
        }
    }

    /// Replaces `name` in the task directory atomically (see [`write_atomic`]), reaching the
    /// directory without following links.
    pub(crate) fn write_file(&self, name: &'static str, bytes: &[u8]) -> Result<()> {
        self.task_dir_create()?.write_atomic(name, bytes)
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Replaces `state.json` atomically, with a checksum of the state. A state whose file
    /// would be larger than [`MAX_STATE_BYTES`] is refused (`InvalidInput`, nothing written):
    /// it could not be loaded back.
    pub fn save_state(&self, state: &Value) -> Result<()> {
        self.save_state_within(state, MAX_STATE_BYTES)
    }

    /// [`save_state`](Self::save_state) with a bound of `max` bytes.
    fn save_state_within(&self, state: &Value, max: u64) -> Result<()> {
        let canonical = serde_json::to_vec(state).map_err(|source| Error::Json {
            path: self.state_path(),
            source,
        })?;
        let file = StateFile {
            checksum: sha256_hex(&canonical),
            saved_at: Timestamp::now(),
            state: state.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|source| Error::Json {
            path: self.state_path(),
            source,
        })?;
        if bytes.len() as u64 > max {
            return Err(Error::InvalidInput {
                field: "state",
                reason: format!(
                    "its file would take {} bytes; at most {max} are read back",
                    bytes.len()
                ),
            });
        }
        self.task_dir_create()?.write_atomic("state.json", &bytes)
    }

    /// The saved state, `None` if never saved; `Corrupt` if the file does not verify or is
    /// larger than [`MAX_STATE_BYTES`] (it is left as it is, for inspection).
    pub fn load_state(&self) -> Result<Option<Value>> {
        self.load_state_within(MAX_STATE_BYTES)
    }

    /// [`load_state`](Self::load_state) with a bound of `max` bytes.
    fn load_state_within(&self, max: u64) -> Result<Option<Value>> {
        let path = self.state_path();
        let Some(dir) = self.task_dir()? else {
            return Ok(None);
        };
        let Some(bytes) = dir.read_bounded("state.json", max)? else {
            return Ok(None);
        };
        let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: format!("not a state file: {e}"),
        })?;
        let canonical = serde_json::to_vec(&file.state).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        let actual = sha256_hex(&canonical);
        if actual != file.checksum {
            return Err(Error::Corrupt {
                path,
                reason: format!(
                    "checksum {actual} does not match the recorded {}",
                    file.checksum
                ),
            });
        }
        Ok(Some(file.state))
    }
}

/// The file counting how many times a task's log was replaced (restored, retained), for
/// cursors to tell a replaced log from a grown one even when it had no file
/// ([`DirFileStore`](crate::DirFileStore)'s `read_after`).
const LOG_GENERATION: &str = "logs.generation";

/// How many times the log in `tdir` was replaced: 0 without a (readable) count.
pub(crate) fn log_generation(tdir: &Dir) -> Result<u64> {
    Ok(tdir
        .read_bounded(LOG_GENERATION, 32)
        .unwrap_or(None)
        .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse().ok())
        .unwrap_or(0))
}

/// Counts one more replacement of the log in `tdir` (called under the log's `LOCK_EX`).
pub(crate) fn bump_log_generation(tdir: &Dir) -> Result<()> {
    let next = log_generation(tdir)?.wrapping_add(1);
    tdir.write_atomic(LOG_GENERATION, format!("{next}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn state_is_bounded_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let t = TaskFiles::new(dir.path(), "t").unwrap();
        let max = 64 * 1024;
        let big = Value::String("a".repeat(max));
        let e = t.save_state_within(&big, max as u64).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        // A valid state file past the bound, planted: refused before it is parsed.
        t.save_state(&big).unwrap();
        assert_eq!(t.load_state().unwrap(), Some(big));
        let e = t.load_state_within(max as u64).unwrap_err();
        assert!(
            e.is_corrupt() && e.to_string().contains("larger than"),
            "{e}"
        );
    }
}
