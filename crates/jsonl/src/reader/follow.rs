//! `Follower`: following a growing JSONL file, as `tail -f` does.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::io;
use crate::fsx::Access;
use crate::{Error, MAX_LINE_BYTES, Result};

/// Follows a growing JSONL file, as `tail -f` does: each [`Follower::poll`] returns the complete
/// lines appended since the last one. A rotated or truncated file is followed from its start.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// The task whose log this is, when the follower was made by
    /// [`TaskFiles::log_follower`](crate::TaskFiles::log_follower): every poll then walks to
    /// the log again through directory handles, never following a link.
    task: Option<crate::TaskFiles>,
    pos: u64,
    id: Option<(u64, u64)>,
    /// The start of a line not yet complete, at most [`MAX_LINE_BYTES`].
    partial: Vec<u8>,
    /// Whether the line not yet complete is longer than [`MAX_LINE_BYTES`] (then not kept).
    long: bool,
}

/// The most bytes one [`Follower::poll`] reads: the rest is read by the next polls.
pub const FOLLOW_CHUNK: u64 = 4 << 20;

pub(super) fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

impl Follower {
    /// Follows `path` from its current end (or from the start once it appears).
    ///
    /// The file is opened without following a link, and must be a regular file.
    pub fn from_end(path: impl AsRef<Path>) -> Self {
        Self::starting(path.as_ref().to_owned(), None)
    }

    /// Follows the log of `task` from its current end, walking to it through directory
    /// handles at each poll.
    pub(crate) fn of_task(task: crate::TaskFiles) -> Self {
        Self::starting(task.log_path(), Some(task))
    }

    fn starting(path: PathBuf, task: Option<crate::TaskFiles>) -> Self {
        let mut f = Follower {
            path,
            task,
            pos: 0,
            id: None,
            partial: Vec::new(),
            long: false,
        };
        // Missing or unreadable now: followed from its start once it can be read.
        if let Ok(Some(meta)) = f.open().and_then(|file| {
            file.map(|file| file.metadata().map_err(io(&f.path)))
                .transpose()
        }) {
            f.pos = meta.len();
            f.id = file_id(&meta);
        }
        f
    }

    /// The file, never through a link; `None` if it does not exist (yet).
    fn open(&self) -> Result<Option<File>> {
        if let Some(task) = &self.task {
            return match task.task_dir()? {
                Some(dir) => dir.open_file("logs.jsonl", Access::Read),
                None => Ok(None),
            };
        }
        match crate::fsx::open_read(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The complete lines appended since the last call (without newlines), reading at most
    /// [`FOLLOW_CHUNK`] bytes (the next call goes on from there). A line longer than
    /// [`MAX_LINE_BYTES`] is skipped without being held.
    pub fn poll(&mut self) -> Result<Vec<Vec<u8>>> {
        let Some(mut f) = self.open()? else {
            return Ok(Vec::new());
        };
        let meta = f.metadata().map_err(io(&self.path))?;
        let id = file_id(&meta);
        if meta.len() < self.pos || id != self.id {
            // A new file (rotation) or a truncated one: start over.
            self.pos = 0;
            self.partial.clear();
            self.long = false;
            self.id = id;
        }
        if meta.len() == self.pos {
            return Ok(Vec::new());
        }
        f.seek(SeekFrom::Start(self.pos)).map_err(io(&self.path))?;
        let mut buf = Vec::new();
        f.take(FOLLOW_CHUNK)
            .read_to_end(&mut buf)
            .map_err(io(&self.path))?;
        self.pos += buf.len() as u64;
        let mut lines = Vec::new();
        let mut rest = &buf[..];
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let part = &rest[..nl];
            if !self.long && self.partial.len() + part.len() <= MAX_LINE_BYTES {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(part);
                lines.push(line);
            }
            self.partial.clear();
            self.long = false;
            rest = &rest[nl + 1..];
        }
        if !self.long && self.partial.len() + rest.len() <= MAX_LINE_BYTES {
            self.partial.extend_from_slice(rest);
        } else {
            self.long = true;
            self.partial = Vec::new();
        }
        Ok(lines)
    }
}
