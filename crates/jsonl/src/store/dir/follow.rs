//! `log_end`, `read_after` and `wait` on the data directory: cursors naming a file by its
//! identity, an offset and a hash of the bytes before it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::io;
use crate::fsx::{Access, Dir};
use crate::reader::{Lines, Next};
use crate::task::log_generation;
use crate::{
    After, EntryId, Error, FOLLOW_CHUNK, LogCursor, LogEntry, MAX_GZ_BYTES, ReadReport, Result,
    Stored,
};

use super::scan::{complete_end, hash_before};

/// What a data-directory cursor says: the log file (device, inode), the offset after the last
/// line read, and a hash of the bytes before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DiskCursor {
    dev: u64,
    ino: u64,
    offset: u64,
    hash: String,
    /// How many times the log had been replaced ([`log_generation`]).
    generation: u64,
}

impl DiskCursor {
    /// The start of whatever log there will be.
    fn start(generation: u64) -> Self {
        DiskCursor {
            dev: 0,
            ino: 0,
            offset: 0,
            hash: "-".into(),
            generation,
        }
    }

    fn at(file: &File, offset: u64, path: &Path, generation: u64) -> Result<Self> {
        let meta = file.metadata().map_err(io(path))?;
        Ok(DiskCursor {
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            hash: hash_before(file, offset, path)?,
            generation,
        })
    }

    /// The offset after the last line read.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    pub(super) fn to_cursor(&self) -> Result<LogCursor> {
        LogCursor::new(format!(
            "f1:{}:{}:{}:{}:{}",
            self.dev, self.ino, self.offset, self.hash, self.generation
        ))
    }

    pub(super) fn parse(c: &LogCursor) -> Result<Self> {
        let bad = || Error::InvalidInput {
            field: "log cursor",
            reason: format!(
                "{:?} is not a cursor of a data directory's log",
                c.as_str().chars().take(80).collect::<String>()
            ),
        };
        let mut parts = c.as_str().split(':');
        if parts.next() != Some("f1") {
            return Err(bad());
        }
        let mut num = || {
            parts
                .next()
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        let (dev, ino, offset) = (num()?, num()?, num()?);
        let hash = parts.next().ok_or_else(bad)?.to_owned();
        let generation = parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(bad)?;
        let hash_ok = hash == "-"
            || hash == "short"
            || (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        if parts.next().is_some() || !hash_ok {
            return Err(bad());
        }
        Ok(DiskCursor {
            dev,
            ino,
            offset,
            hash,
            generation,
        })
    }

    /// Whether `file` is still the log this cursor was made on, and holds what it did before
    /// its offset.
    fn still(&self, file: &File, path: &Path) -> Result<bool> {
        let meta = file.metadata().map_err(io(path))?;
        Ok(meta.dev() == self.dev
            && meta.ino() == self.ino
            && meta.len() >= self.offset
            && hash_before(file, self.offset, path)? == self.hash)
    }
}

/// A cursor after the last complete line of the log in `tdir` (`None`: no task directory).
pub(super) fn log_end(tdir: Option<&Dir>, name: &str) -> Result<LogCursor> {
    let generation = generation(tdir)?;
    let Some(file) = open(tdir, name)? else {
        return DiskCursor::start(generation).to_cursor();
    };
    let path = tdir.map(|d| d.join(name)).unwrap_or_default();
    // Taken under `LOCK_SH`: never inside a batch being written.
    let len = crate::fsx::settled_len(&file, &path)?;
    let end = complete_end(&file, len, &path)?;
    DiskCursor::at(&file, end, &path, generation)?.to_cursor()
}

/// How many times the log of `tdir` was replaced (0 without a task directory).
fn generation(tdir: Option<&Dir>) -> Result<u64> {
    tdir.map_or(Ok(0), log_generation)
}

/// A cursor at `offset` of the log in `tdir` (after the lines before it).
pub(super) fn cursor_at(tdir: Option<&Dir>, name: &str, offset: u64) -> Result<LogCursor> {
    let generation = generation(tdir)?;
    let Some(file) = open(tdir, name)? else {
        return DiskCursor::start(generation).to_cursor();
    };
    let path = tdir.map(|d| d.join(name)).unwrap_or_default();
    DiskCursor::at(&file, offset, &path, generation)?.to_cursor()
}

fn open(tdir: Option<&Dir>, name: &str) -> Result<Option<File>> {
    match tdir {
        Some(d) => d.open_file(name, Access::Read),
        None => Ok(None),
    }
}

/// At most `n` entries after `after` in the log `name` of `tdir`, reading at most
/// [`FOLLOW_CHUNK`] bytes of lines (and always at least one line).
pub(super) fn read_after(
    tdir: Option<&Dir>,
    name: &str,
    after: Option<&LogCursor>,
    n: usize,
) -> Result<After> {
    let from = after.map(DiskCursor::parse).transpose()?;
    let generation = generation(tdir)?;
    // Replaced since the cursor was made, even where no file shows it (a log restored from
    // nothing to nothing).
    let replaced = from.as_ref().is_some_and(|c| c.generation != generation);
    let Some(mut file) = open(tdir, name)? else {
        let restarted = replaced || from.is_some_and(|c| c.ino != 0 || c.offset > 0);
        let cursor = DiskCursor::start(generation).to_cursor()?;
        return Ok(After::new(
            Vec::new(),
            cursor,
            restarted,
            ReadReport::default(),
        ));
    };
    let path = tdir.map(|d| d.join(name)).unwrap_or_default();
    // Lines are read only below a length taken under `LOCK_SH`, when no write-out (each under
    // `LOCK_EX`) is under way: a batch is read whole or not at all.
    let len = crate::fsx::settled_len(&file, &path)?;
    // A cursor made before the log existed names no file: what is there now follows it.
    let (mut pos, restarted) = match &from {
        None => (0, false),
        Some(_) if replaced => (0, true),
        Some(c) if c.ino == 0 && c.offset == 0 => (0, false),
        Some(c) if c.still(&file, &path)? => (c.offset, false),
        Some(_) => (0, true),
    };
    let mut entries = Vec::new();
    let mut report = ReadReport::default();
    file.seek(SeekFrom::Start(pos)).map_err(io(&path))?;
    let within = file
        .try_clone()
        .map_err(io(&path))?
        .take(len.saturating_sub(pos));
    let mut lines = Lines::new(within, &path, MAX_GZ_BYTES);
    let mut buf = Vec::new();
    let mut read = 0u64;
    while entries.len() < n && (read < FOLLOW_CHUNK || report.lines == 0) {
        let (next, used) = lines.next(&mut buf)?;
        match next {
            Next::End | Next::Torn => break,
            Next::TooLong => {
                report.lines += 1;
                report.malformed += 1;
            }
            Next::Line => {
                report.lines += 1;
                match serde_json::from_slice::<LogEntry>(&buf) {
                    Ok(record) => entries.push(Stored {
                        id: EntryId(pos),
                        record,
                    }),
                    Err(_) => report.malformed += 1,
                }
            }
        }
        pos += used;
        read += used;
    }
    let cursor = DiskCursor::at(&file, pos, &path, generation)?.to_cursor()?;
    Ok(After::new(entries, cursor, restarted, report))
}

/// How often [`wait`] looks at the log.
const WAIT_STEP: Duration = Duration::from_millis(10);

/// Returns once the log `name` is no longer as `at` left it (grown, replaced), or after
/// `timeout`, looking every [`WAIT_STEP`].
pub(super) fn wait(
    tdir: impl Fn() -> Result<Option<Dir>>,
    name: &str,
    at: &LogCursor,
    timeout: Duration,
) -> Result<()> {
    let c = DiskCursor::parse(at)?;
    let deadline = Instant::now() + timeout;
    loop {
        let dir = tdir()?;
        if let Some(file) = open(dir.as_ref(), name)? {
            let path = Path::new(name);
            let meta = file.metadata().map_err(io(path))?;
            if meta.dev() != c.dev || meta.ino() != c.ino || meta.len() < c.offset {
                return Ok(());
            }
            // Grown by complete lines (a torn tail alone is nothing to read).
            if meta.len() > c.offset && complete_end(&file, meta.len(), path)? > c.offset {
                return Ok(());
            }
        } else if c.offset > 0 {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep(WAIT_STEP.min(deadline - now));
    }
}
