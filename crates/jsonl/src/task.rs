//! `TaskFiles`: the per-task persistence layers under `<data>/tasks/<id>/`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use oc_time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::io;
use crate::{
    Decision, Error, JsonlReader, JsonlWriter, LogEntry, ReadReport, Result, WriterOptions,
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
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `bytes` to `path` atomically: a temporary file, `fsync`, rename, directory `fsync`.
/// After a crash `path` holds the old bytes or the new ones, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::InvalidInput {
        field: "path",
        reason: format!("{} has no directory", path.display()),
    })?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    crate::sync_dir(path)
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
    /// Bytes of the files it holds.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// The files a checkpoint copies.
const LAYERS: [&str; 3] = ["state.json", "logs.jsonl", "decisions.jsonl"];

/// The persistence layers of one task: `state.json`, `logs.jsonl`, `decisions.jsonl` and
/// `checkpoints/`.
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
    dir: PathBuf,
}

impl TaskFiles {
    /// The layers of `task_id` under `<data_dir>/tasks/<task_id>/` (created on first write).
    pub fn new(data_dir: &Path, task_id: &str) -> Result<Self> {
        check_task_id(task_id)?;
        Ok(TaskFiles {
            task_id: task_id.to_owned(),
            dir: data_dir.join("tasks").join(task_id),
        })
    }

    /// The task directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `logs.jsonl`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs.jsonl")
    }

    /// A writer on `logs.jsonl`, for agents that log a lot (keep it open).
    pub fn log_writer(&self, opts: WriterOptions) -> Result<JsonlWriter> {
        JsonlWriter::open(self.log_path(), opts)
    }

    /// Appends one entry to `logs.jsonl` (opening the file for this call).
    pub fn append_log(&self, entry: &LogEntry) -> Result<()> {
        self.log_writer(WriterOptions::default())?.append(entry)
    }

    /// A reader of `logs.jsonl` and its rotated files.
    pub fn logs(&self) -> JsonlReader {
        JsonlReader::open(self.log_path())
    }

    /// Appends a decision to `decisions.jsonl`.
    pub fn append_decision(&self, d: &Decision) -> Result<()> {
        JsonlWriter::open(self.dir.join("decisions.jsonl"), WriterOptions::default())?.append(d)
    }

    /// Every decision, oldest first.
    pub fn decisions(&self) -> Result<(Vec<Decision>, ReadReport)> {
        JsonlReader::open(self.dir.join("decisions.jsonl")).records()
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Replaces `state.json` atomically, with a checksum of the state.
    pub fn save_state(&self, state: &Value) -> Result<()> {
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
        write_atomic(&self.state_path(), &bytes)
    }

    /// The saved state, `None` if never saved; `Corrupt` if the file does not verify
    /// (it is left as it is, for inspection).
    pub fn load_state(&self) -> Result<Option<Value>> {
        let path = self.state_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { path, source: e }),
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

    fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// Copies the live files into `checkpoints/<id>/` with a manifest of their hashes.
    /// The manifest is written last, so a checkpoint interrupted by a crash is never listed.
    pub fn create_checkpoint(&self, description: &str, now: Timestamp) -> Result<Checkpoint> {
        let root = self.checkpoints_dir();
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let (id, dir) = (0..)
            .map(|n| {
                let id = format!("cp-{:013}-{n}", now.as_millis());
                let dir = root.join(&id);
                (id, dir)
            })
            .find(|(_, d)| !d.exists())
            .ok_or_else(|| Error::InvalidInput {
                field: "checkpoint",
                reason: "no free id".into(),
            })?;
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        let mut files = Vec::new();
        for name in LAYERS {
            let src = self.dir.join(name);
            let bytes = match std::fs::read(&src) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Io {
                        path: src,
                        source: e,
                    });
                }
            };
            write_atomic(&dir.join(name), &bytes)?;
            files.push(CheckpointFile {
                name: name.to_owned(),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            });
        }
        let cp = Checkpoint {
            id,
            task_id: self.task_id.clone(),
            created_at: now,
            description: description.to_owned(),
            files,
        };
        let manifest = dir.join("manifest.json");
        let bytes = serde_json::to_vec_pretty(&cp).map_err(|source| Error::Json {
            path: manifest.clone(),
            source,
        })?;
        write_atomic(&manifest, &bytes)?;
        Ok(cp)
    }

    /// Complete checkpoints, newest first (incomplete or unreadable ones are skipped).
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let root = self.checkpoints_dir();
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    path: root,
                    source: e,
                });
            }
        };
        let mut v: Vec<Checkpoint> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("manifest.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        v.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(v)
    }

    fn checkpoint(&self, id: &str) -> Result<Checkpoint> {
        check_task_id(id).map_err(|_| Error::InvalidInput {
            field: "checkpoint id",
            reason: format!("{id:?} is not a checkpoint id"),
        })?;
        self.checkpoints()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::NotFound {
                what: format!("checkpoint {id} of task {}", self.task_id),
            })
    }

    /// Replaces the live files with the checkpoint's, after verifying every one against the
    /// manifest (nothing is touched if one does not match). Live files the checkpoint does not
    /// hold are removed, so the task is exactly as it was. Close log writers first.
    pub fn restore_checkpoint(&self, id: &str) -> Result<Checkpoint> {
        let cp = self.checkpoint(id)?;
        let dir = self.checkpoints_dir().join(&cp.id);
        let mut verified = Vec::new();
        for f in &cp.files {
            let path = dir.join(&f.name);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let actual = sha256_hex(&bytes);
            if actual != f.sha256 {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("hash {actual} does not match the manifest's {}", f.sha256),
                });
            }
            verified.push((f.name.clone(), bytes));
        }
        for name in LAYERS {
            let live = self.dir.join(name);
            match verified.iter().find(|(n, _)| n == name) {
                Some((_, bytes)) => write_atomic(&live, bytes)?,
                None if live.exists() => std::fs::remove_file(&live).map_err(io(&live))?,
                None => {}
            }
        }
        Ok(cp)
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
            total += c.bytes();
            total > max_bytes
        });
        match cut {
            Some(i) => self.delete_checkpoints(all.into_iter().skip(i)),
            None => Ok(Vec::new()),
        }
    }

    fn delete_checkpoints(&self, doomed: impl Iterator<Item = Checkpoint>) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for c in doomed {
            let dir = self.checkpoints_dir().join(&c.id);
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            gone.push(c.id);
        }
        Ok(gone)
    }
}
