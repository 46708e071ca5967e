//! `LineCounts` and `JsonlReader::count_lines`: counting lines, reading only what was appended.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::Result;
use crate::error::io;

use super::follow::file_id;
use super::{JsonlReader, Lines, Next, is_gz};

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

    /// Counts `reader`'s lines whatever the round's budget (an exact count for one task),
    /// reading only what was appended since the last count.
    pub(crate) fn count_all(&mut self, reader: &JsonlReader) -> Result<LineCount> {
        let left = std::mem::replace(&mut self.left, u64::MAX);
        let counted = reader.count_lines(self);
        self.left = left;
        counted
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
    /// [`MAX_GZ_BYTES`](super::MAX_GZ_BYTES)); fewer than they hold while the round's budget
    /// did not reach them.
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
            let (mut f, len) = self.open_len(path)?;
            let meta = f.metadata().map_err(io(path))?;
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
pub(crate) fn count_newlines(bytes: &[u8]) -> u64 {
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
