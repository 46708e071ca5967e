//! `TaskFiles`: the per-task persistence layers under `<data>/tasks/<id>/`.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oc_time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::io;
use crate::fsx::{Access, Dir};
use crate::{
    Decision, Error, Follower, JsonlReader, JsonlWriter, LogEntry, MAX_CHECKPOINT_FILE_BYTES,
    ReadReport, Result, TaskFileStore, WriterOptions,
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

/// Checks that `id` has the form [`TaskFiles::create_checkpoint`] gives ids
/// (`cp-<millis>-<n>`: `cp-`, 1–19 digits, `-`, 1–10 digits), so it is one safe path segment
/// under `checkpoints/` and nothing else.
pub fn check_checkpoint_id(id: &str) -> Result<()> {
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    let ok = id
        .strip_prefix("cp-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(millis, n)| digits(millis, 19) && digits(n, 10));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "checkpoint id",
            reason: format!(
                "{:?} is not a checkpoint id (cp-<millis>-<n>)",
                id.chars().take(80).collect::<String>()
            ),
        })
    }
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `src` to `dst` in 64 KiB chunks; returns the bytes copied and their SHA-256 (hex).
fn copy_hashing(src: &mut impl Read, dst: &mut impl Write) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
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

/// A file recorded in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    /// Its name in the task directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// A checkpoint's files as read, by name: `(name, bytes)`, in the manifest's order.
pub type CheckpointBodies = Vec<(String, Vec<u8>)>;

/// A checkpoint's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Id (`cp-<millis>-<n>`), unique within the task, sorting by creation.
    pub id: String,
    /// The task.
    #[serde(rename = "taskId")]
    pub task_id: String,
    /// When it was taken.
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
    /// Why.
    pub description: String,
    /// The files it holds, with their hashes.
    pub files: Vec<CheckpointFile>,
}

impl Checkpoint {
    /// Bytes of the files it holds (saturating: a manifest is untrusted input).
    pub fn bytes(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.bytes))
    }
}

/// The files a task has, and the only ones a checkpoint copies or a manifest may name.
const LAYERS: [&str; 3] = ["state.json", "logs.jsonl", "decisions.jsonl"];

/// The most a manifest may hold: it is read from the data directory, so it is bounded before it
/// is parsed. Our own stay far below it ([`MAX_DESCRIPTION`] and three file entries).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The largest `state.json` saved or loaded, in bytes (as written: pretty-printed, with its
/// checksum): it is read from the data directory, so it is bounded before it is parsed.
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// The longest checkpoint description accepted, in bytes.
pub const MAX_DESCRIPTION: usize = 64 * 1024;

/// How many checkpoints may be created within one millisecond (`cp-<millis>-0` ...).
const MAX_PER_MILLI: u32 = 1000;

/// What is wrong with a manifest read from `checkpoints/<dir_name>/`, if anything: every field
/// is checked before anything is built from it.
fn manifest_fault(cp: &Checkpoint, dir_name: &str, task_id: &str) -> Option<String> {
    if cp.id != dir_name {
        return Some(format!(
            "its id {:?} does not match its directory {dir_name}",
            cp.id.chars().take(80).collect::<String>()
        ));
    }
    if cp.task_id != task_id {
        return Some(format!(
            "it belongs to another task ({:?})",
            cp.task_id.chars().take(80).collect::<String>()
        ));
    }
    if cp.description.len() > MAX_DESCRIPTION {
        return Some(format!(
            "its description is longer than {MAX_DESCRIPTION} bytes"
        ));
    }
    if cp.files.len() > LAYERS.len() {
        return Some(format!(
            "it lists {} files; a task has {}",
            cp.files.len(),
            LAYERS.len()
        ));
    }
    for (i, f) in cp.files.iter().enumerate() {
        if !LAYERS.contains(&f.name.as_str()) {
            return Some(format!(
                "{:?} is not a file a task has ({})",
                f.name.chars().take(200).collect::<String>(),
                LAYERS.join(", ")
            ));
        }
        if cp.files[..i].iter().any(|g| g.name == f.name) {
            return Some(format!("{} is listed twice", f.name));
        }
        if f.sha256.len() != 64
            || !f
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Some(format!("the hash of {} is not a SHA-256", f.name));
        }
    }
    None
}

/// The manifest of the checkpoint in `cdir` (named `id`), bounded and validated; `None` if it
/// has none (a checkpoint interrupted before its manifest was written).
fn read_manifest(cdir: &Dir, id: &str, task_id: &str) -> Result<Option<Checkpoint>> {
    let Some(bytes) = cdir.read_bounded("manifest.json", MAX_MANIFEST_BYTES)? else {
        return Ok(None);
    };
    let path = cdir.join("manifest.json");
    let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        reason: format!("not a manifest: {e}"),
    })?;
    match manifest_fault(&cp, id, task_id) {
        Some(reason) => Err(Error::Corrupt { path, reason }),
        None => Ok(Some(cp)),
    }
}

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

    /// Copies the live files into `checkpoints/<id>/` with a manifest of their hashes.
    /// The manifest is written last, so a checkpoint interrupted by a crash is never listed; on
    /// an error, what was copied is removed. A live file that is a link or not a regular file
    /// fails the checkpoint ([`Error::Unsafe`]): nothing is copied through it.
    ///
    /// A live file larger than [`MAX_CHECKPOINT_FILE_BYTES`] is refused (`InvalidInput`,
    /// nothing written). The log and the decisions are copied under their `LOCK_EX`, so a copy
    /// never ends in half an append.
    pub fn create_checkpoint(&self, description: &str, now: Timestamp) -> Result<Checkpoint> {
        self.create_checkpoint_within(description, now, MAX_CHECKPOINT_FILE_BYTES)
    }

    /// [`create_checkpoint`](Self::create_checkpoint) with files bounded by `max` bytes.
    pub(crate) fn create_checkpoint_within(
        &self,
        description: &str,
        now: Timestamp,
        max: u64,
    ) -> Result<Checkpoint> {
        let too_big = |name: &str, len: u64| Error::InvalidInput {
            field: "checkpoint",
            reason: format!("{name} is {len} bytes; a checkpoint's file may hold at most {max}"),
        };
        if let Some(tdir) = self.task_dir()? {
            for name in LAYERS {
                if let Some(f) = tdir.open_file(name, Access::Read)? {
                    let len = f.metadata().map_err(io(&tdir.join(name)))?.len();
                    if len > max {
                        return Err(too_big(name, len));
                    }
                }
            }
        }
        if description.len() > MAX_DESCRIPTION {
            return Err(Error::InvalidInput {
                field: "description",
                reason: format!(
                    "{} bytes; at most {MAX_DESCRIPTION} are kept",
                    description.len()
                ),
            });
        }
        let tdir = self.task_dir_create()?;
        let root = tdir.sub_create("checkpoints")?;
        let millis = now.as_millis().max(0);
        let mut id = None;
        for n in 0..MAX_PER_MILLI {
            let candidate = format!("cp-{millis:013}-{n}");
            if root.mkdir(&candidate)? {
                id = Some(candidate);
                break;
            }
        }
        let id = id.ok_or_else(|| Error::InvalidInput {
            field: "checkpoint",
            reason: format!("no free id: {MAX_PER_MILLI} checkpoints in the same millisecond"),
        })?;
        let made = (|| {
            let cdir = root.sub(&id)?.ok_or_else(|| Error::NotFound {
                what: format!("checkpoint {id} of task {}", self.task_id),
            })?;
            let mut files = Vec::new();
            for name in LAYERS {
                let src = if name == "state.json" {
                    tdir.open_file(name, Access::Read)?.map(Held::Plain)
                } else {
                    tdir.lock_file(name, true)?.map(Held::Locked)
                };
                let Some(src) = src else {
                    continue;
                };
                let mut copied = None;
                cdir.replace_with(name, |dst| {
                    copied = Some(copy_hashing(
                        &mut src.file().take(max.saturating_add(1)),
                        dst,
                    )?);
                    Ok(())
                })?;
                drop(src);
                if let Some((bytes, _)) = copied
                    && bytes > max
                {
                    return Err(too_big(name, bytes));
                }
                if let Some((bytes, sha256)) = copied {
                    files.push(CheckpointFile {
                        name: name.to_owned(),
                        bytes,
                        sha256,
                    });
                }
            }
            let cp = Checkpoint {
                id: id.clone(),
                task_id: self.task_id.clone(),
                created_at: now,
                description: description.to_owned(),
                files,
            };
            let bytes = serde_json::to_vec_pretty(&cp).map_err(|source| Error::Json {
                path: cdir.join("manifest.json"),
                source,
            })?;
            cdir.write_atomic("manifest.json", &bytes)?;
            root.sync()?;
            Ok(cp)
        })();
        if made.is_err() {
            // Best effort: an unlisted directory without a manifest is harmless if it stays.
            let _ = root.remove_tree(&id);
        }
        made
    }

    /// Complete checkpoints, newest first. Incomplete ones, unreadable ones and any whose
    /// manifest does not validate (an id other than its directory's, another task, a file a task
    /// does not have, more than [`MAX_MANIFEST_BYTES`]) are skipped; so are directories that are
    /// links or whose names are not checkpoint ids.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        Ok(self.checkpoint_page(0, usize::MAX)?.0)
    }

    /// A page of [`checkpoints`](Self::checkpoints), newest first, reading only the manifests
    /// of the page: the checkpoint directories are listed and sorted by name (their ids), the
    /// `skip` newest passed over, and the manifests of the next `n` read (those that do not
    /// validate are left out, so a page may hold fewer). Also whether older ones follow.
    pub fn checkpoint_page(&self, skip: usize, n: usize) -> Result<(Vec<Checkpoint>, bool)> {
        match self.task_dir()? {
            Some(tdir) => checkpoint_page_in(&tdir, &self.task_id, skip, n),
            None => Ok((Vec::new(), false)),
        }
    }

    /// Checkpoint `id`'s manifest and files, as `oc db import-files` moves them: each file read
    /// through the checkpoint's directory handle (no link followed on the way or at the end),
    /// no further than the size its manifest records, and checked against that size and hash
    /// (else [`Error::Corrupt`]).
    pub fn read_checkpoint(&self, id: &str) -> Result<(Checkpoint, CheckpointBodies)> {
        check_checkpoint_id(id)?;
        let not_found = || Error::NotFound {
            what: format!("checkpoint {id} of task {}", self.task_id),
        };
        let cdir = self
            .task_dir()?
            .ok_or_else(not_found)?
            .sub("checkpoints")?
            .ok_or_else(not_found)?
            .sub(id)?
            .ok_or_else(not_found)?;
        let cp = read_manifest(&cdir, id, &self.task_id)?.ok_or_else(not_found)?;
        let mut files = Vec::with_capacity(cp.files.len());
        for f in &cp.files {
            let path = cdir.join(&f.name);
            let corrupt = |reason: String| Error::Corrupt {
                path: path.clone(),
                reason,
            };
            let body = cdir
                .read_bounded(&f.name, f.bytes.min(MAX_CHECKPOINT_FILE_BYTES))?
                .ok_or_else(|| corrupt("it is missing".into()))?;
            let (len, sha256) =
                copy_hashing(&mut body.as_slice(), &mut std::io::sink()).map_err(io(&path))?;
            if len != f.bytes || sha256 != f.sha256 {
                return Err(corrupt(format!(
                    "it is {len} bytes with SHA-256 {sha256}; the manifest records {} bytes and {}",
                    f.bytes, f.sha256
                )));
            }
            files.push((f.name.clone(), body));
        }
        Ok((cp, files))
    }

    /// Replaces the live files with the checkpoint's, after verifying every one against the
    /// manifest (nothing is touched if one does not match). Live files the checkpoint does not
    /// hold are removed, so the task is exactly as it was. The log and the decisions are
    /// replaced under their `LOCK_EX`: a writer appending meanwhile (through
    /// [`log_writer`](Self::log_writer) or a store) writes to the restored file after.
    ///
    /// The id must have the generated form and the manifest must validate (see
    /// [`checkpoints`](Self::checkpoints)); each file is read only up to the size the manifest
    /// records, from the checkpoint's own directory, never through a link, and copied into a
    /// fresh temporary file that is renamed over the live one once all have verified.
    pub fn restore_checkpoint(&self, id: &str) -> Result<Checkpoint> {
        check_checkpoint_id(id)?;
        let not_found = || Error::NotFound {
            what: format!("checkpoint {id} of task {}", self.task_id),
        };
        let tdir = self.task_dir()?.ok_or_else(not_found)?;
        let cdir = tdir
            .sub("checkpoints")?
            .ok_or_else(not_found)?
            .sub(id)?
            .ok_or_else(not_found)?;
        let cp = read_manifest(&cdir, id, &self.task_id)?.ok_or_else(not_found)?;
        let mut staged: Vec<(OsString, &'static str)> = Vec::new();
        let verified = cp.files.iter().try_for_each(|f| {
            staged.push(stage(&cdir, &tdir, f)?);
            Ok(())
        });
        let installed = verified.and_then(|()| {
            let mut held = Vec::new();
            for name in ["logs.jsonl", "decisions.jsonl"] {
                held.extend(tdir.lock_file(name, true)?);
            }
            bump_log_generation(&tdir)?;
            for name in LAYERS {
                match staged.iter().find(|(_, n)| *n == name) {
                    Some((tmp, _)) => {
                        tdir.rename(tmp, name)?;
                    }
                    None => {
                        tdir.remove_file(name)?;
                    }
                }
            }
            tdir.sync()
        });
        if installed.is_err() {
            // Every temporary name staged: those already renamed are gone (harmless).
            for (tmp, _) in &staged {
                let _ = tdir.remove_file(tmp);
            }
        }
        installed.map(|()| cp)
    }

    /// Deletes all but the newest `keep` checkpoints; returns the ids deleted.
    pub fn prune_checkpoints(&self, keep: usize) -> Result<Vec<String>> {
        let all = self.checkpoints()?;
        self.delete_checkpoints(all.into_iter().skip(keep))
    }

    /// Deletes the oldest checkpoints until the rest hold at most `max_bytes`.
    pub fn prune_checkpoints_to_bytes(&self, max_bytes: u64) -> Result<Vec<String>> {
        let all = self.checkpoints()?;
        let mut total = 0u64;
        let cut = all.iter().position(|c| {
            total = total.saturating_add(c.bytes());
            total > max_bytes
        });
        match cut {
            Some(i) => self.delete_checkpoints(all.into_iter().skip(i)),
            None => Ok(Vec::new()),
        }
    }

    /// Removes `checkpoints/<id>` for each of `ids` that exists (each checked first: a bad id is
    /// `InvalidInput` and nothing is removed); returns the ids removed.
    pub(crate) fn delete_checkpoint_ids(&self, ids: &[String]) -> Result<Vec<String>> {
        for id in ids {
            check_checkpoint_id(id)?;
        }
        let mut gone = Vec::new();
        let Some(root) = self
            .task_dir()?
            .map(|t| t.sub("checkpoints"))
            .transpose()?
            .flatten()
        else {
            return Ok(gone);
        };
        for id in ids {
            if gone.contains(id) || root.kind(id)?.is_none() {
                continue;
            }
            root.remove_tree(id)?;
            gone.push(id.clone());
        }
        if !gone.is_empty() {
            root.sync()?;
        }
        Ok(gone)
    }

    /// Removes `checkpoints/<id>` for each listed (so validated) checkpoint, relative to the
    /// handle of `checkpoints/`: a link found there is removed itself, never followed.
    fn delete_checkpoints(&self, doomed: impl Iterator<Item = Checkpoint>) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        let Some(root) = self
            .task_dir()?
            .map(|t| t.sub("checkpoints"))
            .transpose()?
            .flatten()
        else {
            return Ok(gone);
        };
        for c in doomed {
            check_checkpoint_id(&c.id)?;
            root.remove_tree(&c.id)?;
            gone.push(c.id);
        }
        if !gone.is_empty() {
            root.sync()?;
        }
        Ok(gone)
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

/// A live file being copied into a checkpoint: the log and the decisions with their lock.
enum Held {
    Plain(std::fs::File),
    Locked(crate::fsx::Locked),
}

impl Held {
    fn file(&self) -> &std::fs::File {
        match self {
            Held::Plain(f) => f,
            Held::Locked(l) => &l.file,
        }
    }
}

/// A page of the checkpoints of `task_id` in its directory `tdir` (see
/// [`TaskFiles::checkpoint_page`]).
pub(crate) fn checkpoint_page_in(
    tdir: &Dir,
    task_id: &str,
    skip: usize,
    n: usize,
) -> Result<(Vec<Checkpoint>, bool)> {
    let Some(root) = tdir.sub("checkpoints")? else {
        return Ok((Vec::new(), false));
    };
    let mut names: Vec<String> = root
        .entries()?
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| check_checkpoint_id(name).is_ok())
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    let more = names.len() > skip.saturating_add(n);
    let mut v = Vec::new();
    for name in names.iter().skip(skip).take(n) {
        let read = root.sub(name).and_then(|cdir| match cdir {
            Some(cdir) => read_manifest(&cdir, name, task_id),
            None => Ok(None),
        });
        match read {
            Ok(Some(cp)) => v.push(cp),
            Ok(None) => {}
            Err(e) => tracing::debug!(
                target: "oc_jsonl",
                checkpoint = name,
                error = %e,
                "checkpoint skipped"
            ),
        }
    }
    Ok((v, more))
}

/// Copies checkpoint file `f` from `cdir` into a fresh temporary file in `tdir`, reading at most
/// the size the manifest records and verifying its hash; returns the temporary name and the
/// live name it replaces. The temporary file is removed on any failure.
fn stage(cdir: &Dir, tdir: &Dir, f: &CheckpointFile) -> Result<(OsString, &'static str)> {
    let Some(name) = LAYERS.into_iter().find(|n| *n == f.name) else {
        return Err(Error::Corrupt {
            path: cdir.join("manifest.json"),
            reason: format!("{:?} is not a file a task has", f.name),
        });
    };
    let path = cdir.join(name);
    let src = cdir
        .open_file(name, Access::Read)?
        .ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            reason: "it is missing".into(),
        })?;
    let len = src.metadata().map_err(io(&path))?.len();
    if len != f.bytes {
        return Err(Error::Corrupt {
            path,
            reason: format!("it is {len} bytes; the manifest records {}", f.bytes),
        });
    }
    let (mut dst, tmp) = tdir.create_temp(name)?;
    let checked = copy_hashing(&mut src.take(f.bytes), &mut dst)
        .and_then(|copied| dst.sync_all().map(|()| copied))
        .map_err(io(&path))
        .and_then(|(bytes, sha256)| {
            if bytes != f.bytes {
                Err(Error::Corrupt {
                    path: path.clone(),
                    reason: format!("it changed while it was read ({bytes} bytes)"),
                })
            } else if sha256 != f.sha256 {
                Err(Error::Corrupt {
                    path: path.clone(),
                    reason: format!("hash {sha256} does not match the manifest's {}", f.sha256),
                })
            } else {
                Ok(())
            }
        });
    drop(dst);
    match checked {
        Ok(()) => Ok((tmp, name)),
        Err(e) => {
            let _ = tdir.remove_file(&tmp);
            Err(e)
        }
    }
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
