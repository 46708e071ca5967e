//! `JsonlReader`: complete lines, across rotated files, in bounded memory.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
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

pub(crate) mod count;
mod follow;
mod tail;

pub use count::{COUNT_BUDGET, LineCount, LineCounts};
pub use follow::{FOLLOW_CHUNK, Follower};
pub use tail::{LineAt, TAIL_BLOCK, Tail, TailLine};

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
    pub(crate) fn open_in(dir: impl Into<Arc<Dir>>, name: &str) -> Result<Self> {
        let dir = dir.into();
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
            dir: Some(dir),
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

    /// One of the reader's files, opened, and how far it is read: for a reader of a task
    /// directory (whose writers hold `LOCK_EX` for each write-out), a length taken under the
    /// file's `LOCK_SH` ([`settled_len`](crate::fsx::settled_len)), so a batch written
    /// meanwhile is read whole or not at all; else the file's length.
    fn open_len(&self, path: &Path) -> Result<(File, u64)> {
        let file = self.open_file(path)?;
        let len = match (&self.dir, is_gz(path)) {
            (Some(_), false) => crate::fsx::settled_len(&file, path)?,
            _ => file.metadata().map_err(io(path))?.len(),
        };
        Ok((file, len))
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
        self.for_each_line_at(|n, _, line| f(n, line))
    }

    /// [`for_each_line`](Self::for_each_line), also giving where each line starts.
    pub(crate) fn for_each_line_at(
        &self,
        mut f: impl FnMut(u64, LineAt, &[u8]) -> bool,
    ) -> Result<ReadReport> {
        self.check()?;
        let mut report = ReadReport::default();
        let mut long = Vec::new();
        let mut buf = Vec::with_capacity(512);
        for (i, path) in self.files.iter().enumerate() {
            let mut lines = self.lines_of(path)?;
            let file = u32::try_from(self.files.len() - 1 - i).unwrap_or(u32::MAX);
            let mut offset = 0u64;
            loop {
                let (next, n) = lines.next(&mut buf)?;
                let at = LineAt { file, offset };
                offset += n;
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
                        if !f(report.lines, at, &buf) {
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

    /// The lines of one of the reader's files, decompressed if it is gzipped; a plain file's
    /// only below the length [`open_len`](Self::open_len) took.
    fn lines_of(&self, path: &Path) -> Result<Lines> {
        if is_gz(path) {
            return Ok(Lines::new(self.open_file(path)?, path, self.gz_cap));
        }
        let (file, len) = self.open_len(path)?;
        Ok(Lines::new(file.take(len), path, self.gz_cap))
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
pub(crate) enum Next {
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
pub(crate) struct Lines {
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
    pub(crate) fn new(file: impl Read + 'static, path: &Path, cap: u64) -> Lines {
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
    pub(crate) fn next(&mut self, buf: &mut Vec<u8>) -> Result<(Next, u64)> {
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
            let nl = memchr::memchr(b'\n', avail);
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
    use super::count::count_newlines;
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
