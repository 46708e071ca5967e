//! `JsonlReader`: complete lines, across rotated files, in bounded memory.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oc_time::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::io;
use crate::fsx::{Access, Dir};
use crate::writer::{existing_rotated, existing_rotated_in};
use crate::{Error, Level, LogEntry, MAX_LINE_BYTES, Result};

/// Malformed line numbers kept in a report (the count goes on).
const KEEP_MALFORMED: usize = 100;

/// What a read met besides the records it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReport {
    /// Complete lines read.
    pub lines: u64,
    /// Lines that were not valid JSON of the expected shape (skipped).
    pub malformed: u64,
    /// Line numbers (1-based, across the files in order) of the first malformed lines.
    pub malformed_lines: Vec<u64>,
    /// Bytes after the last newline of a file: a record cut short by a crash.
    pub torn_tail_bytes: u64,
    /// Gzipped files read only up to [`MAX_GZ_BYTES`] decompressed (the rest was not read).
    #[serde(default)]
    pub gz_cut: u64,
}

/// The last lines of a log, from [`JsonlReader::tail_lines`], with what reading them cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tail {
    /// The lines, oldest first.
    pub lines: Vec<TailLine>,
    /// Whether older lines come before them.
    pub more: bool,
    /// Bytes searched for newlines (a byte searched twice counts twice).
    pub scanned: u64,
    /// Bytes copied into lines or between buffers (a byte copied twice counts twice).
    pub copied: u64,
}

/// One complete line of a [`Tail`] and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TailLine {
    /// The line, without its newline.
    pub text: Vec<u8>,
    /// Where it starts, for [`JsonlReader::line_at`].
    pub at: LineAt,
}

/// Where a line starts: a file of the reader and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LineAt {
    /// The file, counted from the newest (0 is the file being written, 1 the one rotated last).
    pub file: u32,
    /// Bytes before the line in that file (after decompression, for a gzipped one).
    pub offset: u64,
}

/// Reads the JSONL file at `path` and its rotated predecessors, oldest first.
///
/// Each file is opened without following a symbolic link and must be a regular file (else
/// [`Error::Unsafe`]). A reader from [`TaskFiles`](crate::TaskFiles) also
/// holds its directory open and reaches the files relative to it, so a directory on the way
/// swapped for a link after the reader was made is not followed either.
#[derive(Debug, Clone)]
pub struct JsonlReader {
    files: Vec<PathBuf>,
    /// The directory the files are in, opened without following links, when the reader was
    /// made from one; the files are then opened by their names relative to it.
    dir: Option<Arc<Dir>>,
    /// Why the reader could not be made: every read returns it.
    failed: Option<Arc<Error>>,
    /// The most bytes a gzipped file is decompressed to ([`MAX_GZ_BYTES`]).
    gz_cap: u64,
}

impl JsonlReader {
    /// The reader of `path` together with `path.1`, `path.2`, … (rotated files).
    pub fn open(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let mut rotated: Vec<PathBuf> = (1..).map_while(|n| existing_rotated(path, n)).collect();
        rotated.reverse();
        rotated.push(path.to_owned());
        JsonlReader {
            files: rotated.into_iter().filter(|p| p.exists()).collect(),
            dir: None,
            failed: None,
            gz_cap: MAX_GZ_BYTES,
        }
    }

    /// A reader with no files: it reads nothing.
    pub(crate) fn empty() -> Self {
        JsonlReader {
            files: Vec::new(),
            dir: None,
            failed: None,
            gz_cap: MAX_GZ_BYTES,
        }
    }

    /// A reader that could not be made: every read returns `e`.
    pub(crate) fn failed(e: Error) -> Self {
        JsonlReader {
            failed: Some(Arc::new(e)),
            ..Self::empty()
        }
    }

    /// The error the reader was made with, if any.
    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.replay()),
            None => Ok(()),
        }
    }

    /// The reader of `name` and its rotated files in `dir`, all reached relative to it.
    pub(crate) fn open_in(dir: Dir, name: &str) -> Result<Self> {
        let name = OsStr::new(name);
        let mut names = Vec::new();
        for n in 1.. {
            match existing_rotated_in(&dir, name, n)? {
                Some(rotated) => names.push(rotated),
                None => break,
            }
        }
        names.reverse();
        if dir.kind(name)?.is_some() {
            names.push(name.to_owned());
        }
        Ok(JsonlReader {
            files: names.iter().map(|n| dir.join(n)).collect(),
            dir: Some(Arc::new(dir)),
            failed: None,
            gz_cap: MAX_GZ_BYTES,
        })
    }

    /// A reader of one of this reader's files.
    #[cfg(test)]
    fn only(&self, path: &Path) -> JsonlReader {
        JsonlReader {
            files: vec![path.to_owned()],
            dir: self.dir.clone(),
            failed: self.failed.clone(),
            gz_cap: self.gz_cap,
        }
    }

    /// Opens one of the reader's files: never through a link, a regular file only.
    fn open_file(&self, path: &Path) -> Result<File> {
        let (Some(dir), Some(name)) = (&self.dir, path.file_name()) else {
            return crate::fsx::open_read(path);
        };
        dir.open_file(name, Access::Read)?.ok_or_else(|| Error::Io {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// The files read, oldest first.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Calls `f` with every complete line (without its newline), oldest first; stops early when
    /// `f` returns `false`. Memory use is one line at a time: a line longer than
    /// [`MAX_LINE_BYTES`] is not held (nor passed to `f`) but counted as malformed, and a
    /// gzipped file is read up to [`MAX_GZ_BYTES`] decompressed (see [`ReadReport::gz_cut`]).
    pub fn for_each_line(&self, mut f: impl FnMut(u64, &[u8]) -> bool) -> Result<ReadReport> {
        self.check()?;
        let mut report = ReadReport::default();
        let mut long = Vec::new();
        let mut buf = Vec::with_capacity(512);
        for path in &self.files {
            let mut lines = self.lines_of(path)?;
            loop {
                let (next, n) = lines.next(&mut buf)?;
                match next {
                    Next::End => break,
                    Next::Torn => {
                        report.torn_tail_bytes += n;
                        break;
                    }
                    Next::TooLong => {
                        report.lines += 1;
                        long.push(report.lines);
                    }
                    Next::Line => {
                        report.lines += 1;
                        if !f(report.lines, &buf) {
                            note_malformed(&mut report, long);
                            return Ok(report);
                        }
                    }
                }
            }
            report.gz_cut += u64::from(lines.cut());
        }
        note_malformed(&mut report, long);
        Ok(report)
    }

    /// The lines of one of the reader's files, decompressed if it is gzipped.
    fn lines_of(&self, path: &Path) -> Result<Lines> {
        let file = self.open_file(path)?;
        Ok(Lines::new(file, path, self.gz_cap))
    }

    /// Every record that parses as `T`, oldest first; malformed lines are skipped and reported.
    pub fn records<T: DeserializeOwned>(&self) -> Result<(Vec<T>, ReadReport)> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let mut report = self.for_each_line(|n, line| {
            match serde_json::from_slice::<T>(line) {
                Ok(v) => out.push(v),
                Err(_) => bad.push(n),
            }
            true
        })?;
        note_malformed(&mut report, bad);
        Ok((out, report))
    }

    /// Log entries matching `q`, read in one streaming pass that keeps at most
    /// `offset + limit` entries when reading from the newest end.
    pub fn query(&self, q: &Query) -> Result<(Vec<LogEntry>, ReadReport)> {
        let mut bad = Vec::new();
        let mut kept: VecDeque<LogEntry> = VecDeque::new();
        let mut skipped = 0usize;
        let window = q.limit.map(|l| l.saturating_add(q.offset));
        let mut report = self.for_each_line(|n, line| {
            let Ok(e) = serde_json::from_slice::<LogEntry>(line) else {
                bad.push(n);
                return true;
            };
            if !q.matches(&e) {
                return true;
            }
            if q.newest_first {
                kept.push_back(e);
                if window.is_some_and(|w| kept.len() > w) {
                    kept.pop_front();
                }
                true
            } else if skipped < q.offset {
                skipped += 1;
                true
            } else {
                kept.push_back(e);
                q.limit.is_none_or(|l| kept.len() < l)
            }
        })?;
        note_malformed(&mut report, bad);
        let out: Vec<LogEntry> = if q.newest_first {
            kept.into_iter()
                .rev()
                .skip(q.offset)
                .take(q.limit.unwrap_or(usize::MAX))
                .collect()
        } else {
            kept.into()
        };
        Ok((out, report))
    }

    /// The last `n` complete lines, oldest first, read backwards from the end of the newest
    /// files without reading the rest (see [`JsonlReader::tail_lines`]).
    pub fn tail(&self, n: usize) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .tail_lines(0, n)?
            .lines
            .into_iter()
            .map(|l| l.text)
            .collect())
    }

    /// The `n` complete lines before the last `skip`, oldest first, with where each starts and
    /// what reading them cost: a page of the log counted from its newest end.
    ///
    /// Files are read backwards in blocks of [`TAIL_BLOCK`] bytes and each block is searched
    /// for newlines once, so the cost is the bytes of the `skip + n` lines and at most one
    /// block more, however long the lines are; skipped lines are searched, not copied nor kept.
    /// A torn tail (bytes after the last newline) is not a line. A line longer than
    /// [`MAX_LINE_BYTES`] is given with empty text (a page shows it as malformed), never held.
    /// A gzipped rotated file is streamed whole instead, twice (to count its lines, then to keep
    /// only the lines asked for).
    pub fn tail_lines(&self, skip: usize, n: usize) -> Result<Tail> {
        self.tail_by(skip, n, TAIL_BLOCK)
    }

    /// [`JsonlReader::tail_lines`] reading `block` bytes at a time.
    fn tail_by(&self, skip: usize, n: usize, block: u64) -> Result<Tail> {
        self.check()?;
        let mut c = Collect {
            skip,
            want: skip.saturating_add(n),
            found: 0,
            newest_first: Vec::new(),
            scanned: 0,
            copied: 0,
        };
        let mut more = false;
        for (i, path) in self.files.iter().rev().enumerate() {
            if c.done() {
                break;
            }
            let file = u32::try_from(i).unwrap_or(u32::MAX);
            let earlier = if is_gz(path) {
                tail_gz(self, path, file, &mut c)?
            } else {
                tail_file(self, path, file, block, &mut c)?
            };
            // Rotated files are cut at line ends and never empty: an older one has lines.
            more = c.done() && (earlier || i + 1 < self.files.len());
        }
        let mut lines = c.newest_first;
        lines.reverse();
        Ok(Tail {
            lines,
            more,
            scanned: c.scanned,
            copied: c.copied,
        })
    }

    /// The complete line that starts at `at` (as [`TailLine::at`] gave it), or `None` if no line
    /// starts there (any more): the offset is inside a line or past the last newline, or the
    /// file is gone; `None` too for a line longer than [`MAX_LINE_BYTES`], which is not read
    /// into memory.
    pub fn line_at(&self, at: LineAt) -> Result<Option<Vec<u8>>> {
        self.check()?;
        let Some(path) = usize::try_from(at.file)
            .ok()
            .and_then(|i| self.files.len().checked_sub(i.checked_add(1)?))
            .and_then(|i| self.files.get(i))
        else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        if is_gz(path) {
            let mut lines = self.lines_of(path)?;
            let mut offset = 0u64;
            while offset <= at.offset {
                let (next, n) = lines.next(&mut buf)?;
                match next {
                    Next::Line if offset == at.offset => return Ok(Some(buf)),
                    Next::Line | Next::TooLong => offset += n,
                    Next::End | Next::Torn => break,
                }
            }
            return Ok(None);
        }
        let mut f = self.open_file(path)?;
        let len = f.metadata().map_err(io(path))?.len();
        if at.offset >= len {
            return Ok(None);
        }
        if let Some(before) = at.offset.checked_sub(1) {
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(before)).map_err(io(path))?;
            f.read_exact(&mut b).map_err(io(path))?;
            if b[0] != b'\n' {
                return Ok(None);
            }
        } else {
            f.seek(SeekFrom::Start(0)).map_err(io(path))?;
        }
        match Lines::new(f, path, self.gz_cap).next(&mut buf)?.0 {
            Next::Line => Ok(Some(buf)),
            Next::TooLong | Next::End | Next::Torn => Ok(None),
        }
    }
}

/// Complete lines counted in files by their identity, so that counting them again costs only
/// what was appended since ([`JsonlReader::count_lines`]), and at most a budget of bytes per
/// round: a file larger than the budget is counted over several rounds (its count lags until
/// then). Holds one entry per file counted last round.
#[derive(Debug)]
pub struct LineCounts {
    /// (device, inode) → what was counted there.
    known: std::collections::HashMap<(u64, u64), Counted>,
    /// The files met by the round under way.
    seen: std::collections::HashMap<(u64, u64), Counted>,
    /// Bytes a round may read.
    budget: u64,
    /// Bytes the round under way may still read.
    left: u64,
}

impl Default for LineCounts {
    fn default() -> Self {
        Self::with_budget(COUNT_BUDGET)
    }
}

/// The bytes one round of [`JsonlReader::count_lines`] reads at most, by default.
pub const COUNT_BUDGET: u64 = 64 << 20;

impl LineCounts {
    /// An empty cache reading at most [`COUNT_BUDGET`] bytes per round.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache reading at most `budget` bytes per round.
    pub fn with_budget(budget: u64) -> Self {
        LineCounts {
            known: Default::default(),
            seen: Default::default(),
            budget,
            left: budget,
        }
    }

    /// Ends a round of counts: files not met since the last call are forgotten, and the
    /// budget is whole again.
    pub fn sweep(&mut self) {
        self.known = std::mem::take(&mut self.seen);
        self.left = self.budget;
    }
}

/// What [`LineCounts`] knows of one file.
#[derive(Debug, Clone, Default)]
struct Counted {
    /// Bytes counted.
    at: u64,
    /// Complete lines in them.
    lines: u64,
    /// The file's first bytes (at most [`HEAD_BYTES`]): a file whose inode was reused for
    /// another after a deletion does not start as the counted one did, and is counted anew.
    head: Vec<u8>,
}

/// How many of a file's first bytes [`LineCounts`] compares.
const HEAD_BYTES: usize = 64;

/// What [`JsonlReader::count_lines`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineCount {
    /// The files.
    pub files: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// Complete lines counted in them (decompressed, for a gzipped file: up to
    /// [`MAX_GZ_BYTES`]); fewer than they hold while the round's budget did not reach them.
    pub lines: u64,
    /// Bytes not counted yet for want of budget (a gzipped file: its size on disk).
    pub behind: u64,
}

impl JsonlReader {
    /// The files, their bytes on disk and their complete lines, reading only what `cache` has
    /// not counted, within the round's budget: a file counted before (same device and inode)
    /// that has only grown, and still starts with the bytes it started with, is read from where
    /// the last count stopped (logs are appended to); an unchanged one not at all. Call [`LineCounts::sweep`] after a round over every reader.
    pub fn count_lines(&self, cache: &mut LineCounts) -> Result<LineCount> {
        self.check()?;
        let mut c = LineCount::default();
        for path in &self.files {
            let mut f = self.open_file(path)?;
            let meta = f.metadata().map_err(io(path))?;
            let len = meta.len();
            let id = file_id(&meta).unwrap_or((0, 0));
            let mut head = vec![0u8; HEAD_BYTES.min(usize::try_from(len).unwrap_or(HEAD_BYTES))];
            f.read_exact(&mut head).map_err(io(path))?;
            let (mut at, mut lines) = cache
                .seen
                .get(&id)
                .or_else(|| cache.known.get(&id))
                .filter(|k| k.at <= len && head.starts_with(&k.head))
                .map_or((0, 0), |k| (k.at, k.lines));
            if is_gz(path) {
                if at != len {
                    if cache.left > 0 {
                        f.seek(SeekFrom::Start(0)).map_err(io(path))?;
                        let mut n = 0;
                        let mut read = Lines::new(f, path, self.gz_cap);
                        let mut buf = Vec::new();
                        while let (Next::Line | Next::TooLong, _) = read.next(&mut buf)? {
                            n += 1;
                        }
                        cache.left = cache.left.saturating_sub(read.read);
                        (at, lines) = (len, n);
                    } else {
                        (at, lines) = (0, 0);
                    }
                }
            } else if at < len {
                let upto = len.min(at.saturating_add(cache.left));
                f.seek(SeekFrom::Start(at)).map_err(io(path))?;
                lines += newlines(f.take(upto - at), path)?;
                cache.left -= upto - at;
                at = upto;
            }
            head.truncate(usize::try_from(at).unwrap_or(HEAD_BYTES));
            cache.seen.insert(id, Counted { at, lines, head });
            c.files += 1;
            c.bytes += len;
            c.lines += lines;
            c.behind += len - at;
        }
        Ok(c)
    }
}

/// The newlines in what `r` gives, read 64 KiB at a time (a count that stopped inside a line
/// goes on from where it stopped: each line is counted at its newline).
fn newlines(mut r: impl Read, path: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        };
        n += count_newlines(&buf[..got]);
    }
}

/// The newlines in `bytes`, eight bytes at a time.
fn count_newlines(bytes: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const NL: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut chunks = bytes.chunks_exact(8);
    let mut n = 0u64;
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let x = u64::from_ne_bytes(word) ^ NL;
        // The high bit of each byte of `x` that is zero (a newline), and of no other.
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        n += u64::from(zero.count_ones());
    }
    n + chunks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

/// The bytes [`JsonlReader::tail_lines`] reads at a time, backwards from the end of a file.
pub const TAIL_BLOCK: u64 = 64 * 1024;

/// Lines gathered from the newest end, across files.
struct Collect {
    skip: usize,
    /// `skip + n`.
    want: usize,
    /// Lines met so far, skipped ones included.
    found: usize,
    newest_first: Vec<TailLine>,
    scanned: u64,
    copied: u64,
}

impl Collect {
    fn done(&self) -> bool {
        self.found >= self.want
    }

    /// A line met going backwards: `head`, then `pieces` in reverse order (each piece is the
    /// part of an earlier-read, later block before its first newline).
    fn line(&mut self, at: LineAt, head: &[u8], pieces: &[Vec<u8>]) {
        if self.found >= self.skip {
            let len = head.len() + pieces.iter().map(Vec::len).sum::<usize>();
            let mut text = Vec::with_capacity(len);
            text.extend_from_slice(head);
            for p in pieces.iter().rev() {
                text.extend_from_slice(p);
            }
            self.copied += len as u64;
            self.newest_first.push(TailLine { text, at });
        }
        self.found += 1;
    }
}

/// Adds the malformed line numbers `bad` (ascending, after any already noted) to `report`.
fn note_malformed(report: &mut ReadReport, bad: Vec<u64>) {
    report.malformed += bad.len() as u64;
    report.malformed_lines.extend(bad);
    report.malformed_lines.sort_unstable();
    report.malformed_lines.truncate(KEEP_MALFORMED);
}

/// The most bytes a gzipped rotated file is decompressed to when read: what lies past it is
/// not read (a gzip bomb planted as `logs.jsonl.1.gz` costs this much time, and no memory
/// beyond one line), and [`ReadReport::gz_cut`] counts the file.
pub const MAX_GZ_BYTES: u64 = 1 << 30;

/// What [`Lines::next`] met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The end of the file.
    End,
    /// A complete line, in the buffer.
    Line,
    /// A complete line longer than [`MAX_LINE_BYTES`], consumed but not kept.
    TooLong,
    /// Bytes after the last newline.
    Torn,
}

/// The lines of one file, each at most [`MAX_LINE_BYTES`] held.
struct Lines {
    inner: Box<dyn BufRead>,
    path: PathBuf,
    /// The most bytes a gzipped file is decompressed to; `None` for a plain file.
    gz: Option<u64>,
    /// Bytes consumed.
    read: u64,
}

impl Lines {
    /// The lines of `file` (from where it is), decompressed up to [`MAX_GZ_BYTES`] if `path`
    /// names a gzipped file (`cap`: [`MAX_GZ_BYTES`] but in tests).
    fn new(file: File, path: &Path, cap: u64) -> Lines {
        let gz = is_gz(path).then_some(cap);
        let inner: Box<dyn BufRead> = match gz {
            Some(cap) => Box::new(BufReader::with_capacity(
                64 * 1024,
                flate2::read::GzDecoder::new(file).take(cap),
            )),
            None => Box::new(BufReader::with_capacity(64 * 1024, file)),
        };
        Lines {
            inner,
            path: path.to_owned(),
            gz,
            read: 0,
        }
    }

    /// Reads the next line into `buf` (cleared first, without its newline); returns what it met
    /// and the bytes it consumed, the newline included. A line longer than [`MAX_LINE_BYTES`] is
    /// read on to its newline without being kept (`buf` is left empty).
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<(Next, u64)> {
        buf.clear();
        let mut n = 0u64;
        let mut long = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(&self.path)(e)),
            };
            if avail.is_empty() {
                let next = if n == 0 { Next::End } else { Next::Torn };
                return Ok((next, n));
            }
            let nl = avail.iter().position(|&b| b == b'\n');
            let part = &avail[..nl.unwrap_or(avail.len())];
            if !long && buf.len() + part.len() <= MAX_LINE_BYTES {
                buf.extend_from_slice(part);
            } else {
                long = true;
                buf.clear();
            }
            let used = part.len() + usize::from(nl.is_some());
            self.inner.consume(used);
            n += used as u64;
            self.read += used as u64;
            if nl.is_some() {
                return Ok((if long { Next::TooLong } else { Next::Line }, n));
            }
        }
    }

    /// Whether a gzipped file was cut at [`MAX_GZ_BYTES`] (after [`next`](Self::next) met its
    /// end).
    fn cut(&self) -> bool {
        self.gz.is_some_and(|cap| self.read >= cap)
    }
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Gathers lines of one plain file from its end into `c`, reading blocks backwards;
/// returns whether the file has lines before those met. The blocks of a line are kept only if
/// the line is wanted (not skipped) and while they stay within [`MAX_LINE_BYTES`]: a skipped
/// line costs one block of memory, a longer one is given empty.
fn tail_file(
    r: &JsonlReader,
    path: &Path,
    file: u32,
    block_size: u64,
    c: &mut Collect,
) -> Result<bool> {
    let mut f = r.open_file(path)?;
    let len = f.metadata().map_err(io(path))?.len();
    // Bytes from `pos` on have been read; those of the line being met are in `pieces`, the
    // block read last first, unless the line is skipped or too long.
    let mut pos = len;
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    // Bytes of the line being met in later blocks (kept in `pieces` or not).
    let mut later = 0usize;
    // Whether the file's last newline was met: what follows it is a torn tail, not a line.
    let mut ended = false;
    while pos > 0 {
        let start = pos.saturating_sub(block_size.max(1));
        let size = usize::try_from(pos - start).map_err(|_| Error::InvalidInput {
            field: "tail block",
            reason: format!("{} bytes do not fit in memory", pos - start),
        })?;
        let mut block = vec![0u8; size];
        f.seek(SeekFrom::Start(start)).map_err(io(path))?;
        f.read_exact(&mut block).map_err(io(path))?;
        // `block[..end]` is not yet part of a line met.
        let mut end = block.len();
        while let Some(nl) = block[..end].iter().rposition(|&b| b == b'\n') {
            c.scanned += (end - nl) as u64;
            if ended {
                let at = LineAt {
                    file,
                    offset: start + nl as u64 + 1,
                };
                let head = &block[nl + 1..end];
                if later.saturating_add(head.len()) > MAX_LINE_BYTES {
                    c.line(at, &[], &[]);
                } else {
                    c.line(at, head, &pieces);
                }
            }
            ended = true;
            pieces.clear();
            later = 0;
            end = nl;
            if c.done() {
                // The newline at `nl` ends an earlier line.
                return Ok(true);
            }
        }
        c.scanned += end as u64;
        // Before the last newline is met, what was read is a torn tail: not kept, so a file
        // with no newline costs one block of memory, whatever its length; nor is a line that
        // is skipped or too long.
        if ended {
            later = later.saturating_add(end);
            if c.found >= c.skip && later <= MAX_LINE_BYTES {
                block.truncate(end);
                pieces.push(block);
            } else {
                pieces.clear();
            }
        }
        pos = start;
    }
    if ended {
        // The bytes before the first newline: the file's first line.
        let at = LineAt { file, offset: 0 };
        if later > MAX_LINE_BYTES {
            c.line(at, &[], &[]);
        } else {
            c.line(at, &[], &pieces);
        }
    }
    Ok(false)
}

/// Gathers lines of a gzipped rotated file into `c`, streaming it twice: once to count its
/// lines, once to keep only those wanted (not those skipped), each at most [`MAX_LINE_BYTES`]
/// (a longer one is given empty). Returns whether it has lines before those met.
fn tail_gz(r: &JsonlReader, path: &Path, file: u32, c: &mut Collect) -> Result<bool> {
    let mut buf = Vec::new();
    let mut total = 0usize;
    let mut lines = r.lines_of(path)?;
    loop {
        let (next, n) = lines.next(&mut buf)?;
        c.scanned += n;
        match next {
            Next::Line | Next::TooLong => total += 1,
            Next::End | Next::Torn => break,
        }
    }
    // Lines `first..total` are met: the newest `skipping` of them skipped, the rest kept.
    let meet = (c.want - c.found).min(total);
    let first = total - meet;
    let skipping = c.skip.saturating_sub(c.found).min(meet);
    let kept_end = total - skipping;
    let mut kept: Vec<(LineAt, Vec<u8>)> = Vec::new();
    if first < kept_end {
        let mut lines = r.lines_of(path)?;
        let mut offset = 0u64;
        for i in 0..kept_end {
            let (next, n) = lines.next(&mut buf)?;
            c.scanned += n;
            let at = LineAt { file, offset };
            offset += n;
            match next {
                Next::Line if i >= first => kept.push((at, std::mem::take(&mut buf))),
                Next::TooLong if i >= first => kept.push((at, Vec::new())),
                Next::Line | Next::TooLong => {}
                // Changed since counted: what is there is what is kept.
                Next::End | Next::Torn => break,
            }
        }
    }
    for _ in 0..skipping {
        c.line(LineAt { file, offset: 0 }, &[], &[]);
    }
    for (at, text) in kept.into_iter().rev() {
        c.line(at, &text, &[]);
    }
    Ok(first > 0)
}

/// Filters and paging for [`JsonlReader::query`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// Entries at this level or more severe.
    pub min_level: Option<Level>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Entries whose `data` has these fields with these values.
    pub fields: Vec<(String, serde_json::Value)>,
    /// Skip this many matches (from the chosen end).
    pub offset: usize,
    /// Return at most this many.
    pub limit: Option<usize>,
    /// Newest first, counting offset and limit from the newest end.
    pub newest_first: bool,
}

impl Query {
    /// Everything, oldest first.
    pub fn new() -> Self {
        Self::default()
    }
    /// At least this severe.
    pub fn min_level(mut self, l: Level) -> Self {
        self.min_level = Some(l);
        self
    }
    /// Within `[since, until)`.
    pub fn between(mut self, since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        self.since = since;
        self.until = until;
        self
    }
    /// With `data.key == value`.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }
    /// Paging.
    pub fn page(mut self, offset: usize, limit: Option<usize>) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }
    /// Newest first.
    pub fn newest(mut self) -> Self {
        self.newest_first = true;
        self
    }

    /// Whether `e` passes the filters.
    pub fn matches(&self, e: &LogEntry) -> bool {
        self.min_level.is_none_or(|l| e.level >= l)
            && self.since.is_none_or(|s| e.timestamp >= s)
            && self.until.is_none_or(|u| e.timestamp < u)
            && self.fields.iter().all(|(k, v)| e.data.get(k) == Some(v))
    }
}

/// The seed's log analysis: counts by level, errors, error rate, time span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogAnalysis {
    /// Entries read.
    pub total_logs: u64,
    /// Entries per level, every level present.
    pub level_counts: std::collections::BTreeMap<String, u64>,
    /// Error entries.
    pub error_count: u64,
    /// Errors as a percentage of all entries (0 when there are none).
    pub error_rate: f64,
    /// Oldest entry.
    pub first: Option<Timestamp>,
    /// Newest entry.
    pub last: Option<Timestamp>,
    /// Milliseconds from the oldest to the newest entry.
    pub span_ms: u64,
    /// Malformed lines skipped and torn bytes seen.
    pub read: ReadReport,
}

impl JsonlReader {
    /// Analyses every log entry in one streaming pass.
    pub fn analyze(&self) -> Result<LogAnalysis> {
        let mut a = LogAnalysis::default();
        for l in Level::ALL {
            a.level_counts.insert(l.to_string(), 0);
        }
        let mut bad = Vec::new();
        let mut report = self.for_each_line(|n, line| {
            match serde_json::from_slice::<LogEntry>(line) {
                Ok(e) => {
                    a.total_logs += 1;
                    *a.level_counts.entry(e.level.to_string()).or_default() += 1;
                    a.first = Some(a.first.map_or(e.timestamp, |f| f.min(e.timestamp)));
                    a.last = Some(a.last.map_or(e.timestamp, |l| l.max(e.timestamp)));
                }
                Err(_) => bad.push(n),
            }
            true
        })?;
        note_malformed(&mut report, bad);
        a.error_count = a.level_counts.get("error").copied().unwrap_or(0);
        a.error_rate = if a.total_logs == 0 {
            0.0
        } else {
            a.error_count as f64 * 100.0 / a.total_logs as f64
        };
        a.span_ms = match (a.first, a.last) {
            (Some(f), Some(l)) => u64::try_from(l.since(f).as_millis()).unwrap_or(u64::MAX),
            _ => 0,
        };
        a.read = report;
        Ok(a)
    }
}

/// Parses every line as `T`, for callers that want typed records with the report.
pub fn read_records<T: DeserializeOwned>(path: &Path) -> Result<(Vec<T>, ReadReport)> {
    JsonlReader::open(path).records()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let body: String = (0..1000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        std::fs::write(&p, format!("{body}{{\"torn\"")).unwrap();
        let r = JsonlReader::open(&p);
        let t = r.tail(3).unwrap();
        let t: Vec<String> = t
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(t, ["{\"i\":997}", "{\"i\":998}", "{\"i\":999}"]);
        assert_eq!(r.tail(5000).unwrap().len(), 1000);
    }

    /// The lines of the reader's files as `for_each_line` reads them, oldest first, with where
    /// each starts.
    fn model(r: &JsonlReader) -> Vec<(Vec<u8>, LineAt)> {
        let mut all = Vec::new();
        for (i, path) in r.files().iter().enumerate() {
            let file = u32::try_from(r.files().len() - 1 - i).unwrap();
            let mut offset = 0;
            r.only(path)
                .for_each_line(|_, l| {
                    all.push((l.to_vec(), LineAt { file, offset }));
                    offset += l.len() as u64 + 1;
                    true
                })
                .unwrap();
        }
        all
    }

    proptest::proptest! {
        #[test]
        fn newlines_are_counted_exactly(bytes in proptest::collection::vec(
            proptest::sample::select(vec![b'\n', b'a', 0x0b, 0x8a, 0x09, 0xff, 0]), 0..64)) {
            let want = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            proptest::prop_assert_eq!(count_newlines(&bytes), want);
        }
    }

    #[test]
    fn a_gzipped_file_is_read_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let line = format!("{{\"a\":\"{}\"}}\n", "a".repeat(1000));
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.path().join("t.jsonl.1.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        for _ in 0..3000 {
            std::io::Write::write_all(&mut gz, line.as_bytes()).unwrap();
        }
        gz.finish().unwrap();
        std::fs::write(&p, &line).unwrap();
        let mut r = JsonlReader::open(&p);
        let whole = r.for_each_line(|_, _| true).unwrap();
        assert_eq!((whole.lines, whole.gz_cut), (3001, 0));
        r.gz_cap = 1 << 20;
        let cut = r.for_each_line(|_, _| true).unwrap();
        assert_eq!(cut.gz_cut, 1);
        assert_eq!(cut.lines, (1 << 20) / line.len() as u64 + 1);
        assert!(cut.torn_tail_bytes > 0);
    }

    proptest::proptest! {
        /// Any page of a tail, read by any block size, is the model's lines at those places,
        /// and each reads back from where it starts.
        #[test]
        fn any_tail_is_the_lines_of_the_file(
            rotated in proptest::collection::vec("[a-c\n]{1,40}\n", 0..3),
            live in "[a-c\n]{0,60}",
            block in 1u64..24,
            skip in 0usize..12,
            n in 0usize..12,
            gzipped in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t.jsonl");
            for (i, body) in rotated.iter().enumerate() {
                let path = crate::rotated_path(&p, rotated.len() - i);
                if gzipped {
                    let mut gz = flate2::write::GzEncoder::new(
                        std::fs::File::create(format!("{}.gz", path.display())).unwrap(),
                        flate2::Compression::fast(),
                    );
                    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
                    gz.finish().unwrap();
                } else {
                    std::fs::write(path, body).unwrap();
                }
            }
            std::fs::write(&p, &live).unwrap();
            let r = JsonlReader::open(&p);
            let all = model(&r);
            let end = all.len().saturating_sub(skip);
            let start = end.saturating_sub(n);
            let t = r.tail_by(skip, n, block).unwrap();
            let got: Vec<(Vec<u8>, LineAt)> = t.lines.iter().map(|l| (l.text.clone(), l.at)).collect();
            proptest::prop_assert_eq!(&got[..], &all[start..end]);
            if n > 0 {
                proptest::prop_assert_eq!(t.more, start > 0);
            }
            let bytes: u64 = all[start..].iter().map(|(l, _)| l.len() as u64 + 1).sum::<u64>()
                + live.len() as u64
                // A gzipped file is streamed whole, twice.
                + if gzipped { 2 * rotated.iter().map(|b| b.len() as u64).sum::<u64>() } else { 0 };
            proptest::prop_assert!(t.scanned <= bytes + block, "{} > {}", t.scanned, bytes + block);
            for l in &t.lines {
                proptest::prop_assert_eq!(r.line_at(l.at).unwrap(), Some(l.text.clone()));
            }
        }
    }
}

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

fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
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
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
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
