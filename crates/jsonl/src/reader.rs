//! `JsonlReader`: complete lines, across rotated files, in bounded memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oc_time::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::io;
use crate::writer::existing_rotated;
use crate::{Level, LogEntry, Result};

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
}

/// Reads the JSONL file at `path` and its rotated predecessors, oldest first.
#[derive(Debug, Clone)]
pub struct JsonlReader {
    files: Vec<PathBuf>,
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
        }
    }

    /// The files read, oldest first.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Calls `f` with every complete line (without its newline), oldest first; stops early when
    /// `f` returns `false`. Memory use is one line at a time.
    pub fn for_each_line(&self, mut f: impl FnMut(u64, &[u8]) -> bool) -> Result<ReadReport> {
        let mut report = ReadReport::default();
        let mut buf = Vec::with_capacity(512);
        for path in &self.files {
            let file = File::open(path).map_err(io(path))?;
            let mut r: Box<dyn BufRead> = if is_gz(path) {
                Box::new(BufReader::with_capacity(
                    64 * 1024,
                    flate2::read::GzDecoder::new(file),
                ))
            } else {
                Box::new(BufReader::with_capacity(64 * 1024, file))
            };
            loop {
                buf.clear();
                let n = r.read_until(b'\n', &mut buf).map_err(io(path))?;
                if n == 0 {
                    break;
                }
                if buf.last() != Some(&b'\n') {
                    report.torn_tail_bytes += n as u64;
                    break;
                }
                report.lines += 1;
                buf.pop();
                if !f(report.lines, &buf) {
                    return Ok(report);
                }
            }
        }
        Ok(report)
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
    /// files without reading the rest.
    pub fn tail(&self, n: usize) -> Result<Vec<Vec<u8>>> {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for path in self.files.iter().rev() {
            if lines.len() >= n {
                break;
            }
            let mut got = tail_file(path, n - lines.len())?;
            got.append(&mut lines);
            lines = got;
        }
        Ok(lines)
    }
}

fn note_malformed(report: &mut ReadReport, bad: Vec<u64>) {
    report.malformed = bad.len() as u64;
    report.malformed_lines = bad.into_iter().take(KEEP_MALFORMED).collect();
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// The last `n` complete lines of one file, reading 64 KiB chunks from the end (a gzipped
/// rotated file is streamed instead, keeping `n` lines).
fn tail_file(path: &Path, n: usize) -> Result<Vec<Vec<u8>>> {
    if is_gz(path) {
        let mut last: VecDeque<Vec<u8>> = VecDeque::with_capacity(n + 1);
        JsonlReader {
            files: vec![path.to_owned()],
        }
        .for_each_line(|_, l| {
            last.push_back(l.to_vec());
            if last.len() > n {
                last.pop_front();
            }
            true
        })?;
        return Ok(last.into());
    }
    let mut f = File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    let chunk = 64 * 1024u64;
    // A torn tail (no final newline) is not a line.
    loop {
        let newlines = tail.iter().filter(|&&b| b == b'\n').count();
        if newlines > n || pos == 0 {
            break;
        }
        let start = pos.saturating_sub(chunk);
        let mut buf = vec![0u8; usize::try_from(pos - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start)).map_err(io(path))?;
        f.read_exact(&mut buf).map_err(io(path))?;
        buf.extend_from_slice(&tail);
        tail = buf;
        pos = start;
    }
    let end = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let complete = &tail[..end];
    let mut lines: Vec<Vec<u8>> = complete
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    lines.pop(); // the empty piece after the last newline
    // The first piece may be partial if we stopped mid-file.
    if pos > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
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
}

/// Follows a growing JSONL file, as `tail -f` does: each [`Follower::poll`] returns the complete
/// lines appended since the last one. A rotated or truncated file is followed from its start.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    pos: u64,
    id: Option<(u64, u64)>,
    partial: Vec<u8>,
}

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
    pub fn from_end(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_owned();
        let meta = std::fs::metadata(&path).ok();
        Follower {
            pos: meta.as_ref().map_or(0, std::fs::Metadata::len),
            id: meta.as_ref().and_then(file_id),
            path,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call (without newlines).
    pub fn poll(&mut self) -> Result<Vec<Vec<u8>>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(crate::Error::Io {
                    path: self.path.clone(),
                    source: e,
                });
            }
        };
        let id = file_id(&meta);
        if meta.len() < self.pos || id != self.id {
            // A new file (rotation) or a truncated one: start over.
            self.pos = 0;
            self.partial.clear();
            self.id = id;
        }
        if meta.len() == self.pos {
            return Ok(Vec::new());
        }
        let mut f = File::open(&self.path).map_err(io(&self.path))?;
        f.seek(SeekFrom::Start(self.pos)).map_err(io(&self.path))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(io(&self.path))?;
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let end = self
            .partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let rest = self.partial.split_off(end);
        let complete = std::mem::replace(&mut self.partial, rest);
        let mut lines: Vec<Vec<u8>> = complete
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        lines.pop();
        Ok(lines)
    }
}
