//! Checkpoints of a task's files: their manifests, creating, listing, restoring and pruning them.

use std::ffi::OsString;
use std::io::{Read, Write};

use oc_time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{TaskFiles, bump_log_generation, hex};
use crate::error::io;
use crate::fsx::{Access, Dir};
use crate::{
    Error, KeyedCheckpoint, MAX_APPEND_KEY_BYTES, MAX_CHECKPOINT_FILE_BYTES, Result,
    check_append_key,
};

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

impl TaskFiles {
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
        self.make_checkpoint(description, None, now, max)
    }

    /// [`create_checkpoint`](Self::create_checkpoint) under the idempotency key `key` (per
    /// task): under an exclusive `flock` on the task's `checkpoints` directory, the complete
    /// checkpoints are searched for one whose `key` file holds `key`; found, it is answered
    /// `replayed` (the same description) or refused ([`Error::IdempotencyConflict`]); else a
    /// checkpoint is made with `key` written into its directory before its manifest, so the key
    /// is published with the checkpoint or not at all.
    pub fn create_checkpoint_keyed(
        &self,
        description: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        self.create_checkpoint_keyed_within(description, key, now, MAX_CHECKPOINT_FILE_BYTES)
    }

    /// [`create_checkpoint_keyed`](Self::create_checkpoint_keyed) with files bounded by `max`.
    pub(crate) fn create_checkpoint_keyed_within(
        &self,
        description: &str,
        key: &str,
        now: Timestamp,
        max: u64,
    ) -> Result<KeyedCheckpoint> {
        check_append_key(key)?;
        let root = self.task_dir_create()?.sub_create("checkpoints")?;
        let _held = root.lock(true)?;
        let mut names: Vec<String> = root
            .entries()?
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| check_checkpoint_id(name).is_ok())
            .collect();
        names.sort_unstable();
        for name in names {
            let Some(cdir) = root.sub(&name)? else {
                continue;
            };
            if cdir
                .read_bounded("key", MAX_APPEND_KEY_BYTES as u64)?
                .as_deref()
                != Some(key.as_bytes())
            {
                continue;
            }
            let Some(cp) = read_manifest(&cdir, &name, &self.task_id)? else {
                continue;
            };
            if cp.description != description {
                return Err(Error::IdempotencyConflict {
                    task: self.task_id.clone(),
                    key: key.to_owned(),
                });
            }
            return Ok(KeyedCheckpoint {
                checkpoint: cp,
                replayed: true,
            });
        }
        Ok(KeyedCheckpoint {
            checkpoint: self.make_checkpoint(description, Some(key), now, max)?,
            replayed: false,
        })
    }

    /// Makes a checkpoint, recording `key` (if any) in its directory before its manifest.
    fn make_checkpoint(
        &self,
        description: &str,
        key: Option<&str>,
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
            if let Some(key) = key {
                cdir.write_atomic("key", key.as_bytes())?;
            }
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

    /// Keeps the newest checkpoints whose files together fit in `max_bytes`, and always the
    /// newest one (as [`TaskFileStore::prune_checkpoints_to_bytes`]); returns the ids deleted.
    ///
    /// [`TaskFileStore::prune_checkpoints_to_bytes`]: crate::TaskFileStore::prune_checkpoints_to_bytes
    pub fn prune_checkpoints_to_bytes(&self, max_bytes: u64) -> Result<Vec<String>> {
        let all = self.checkpoints()?;
        let doomed = over_bytes(&all, max_bytes);
        self.delete_checkpoints(all.into_iter().filter(|c| doomed.contains(&c.id)))
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

/// The ids of `newest_first` past the newest that fit in `max_bytes` together, the newest one
/// always kept: what a prune to `max_bytes` deletes.
pub(crate) fn over_bytes(newest_first: &[Checkpoint], max_bytes: u64) -> Vec<String> {
    let mut total = 0u64;
    let mut doomed = Vec::new();
    for (i, c) in newest_first.iter().enumerate() {
        total = total.saturating_add(c.bytes());
        if i > 0 && total > max_bytes {
            doomed.push(c.id.clone());
        }
    }
    doomed
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
