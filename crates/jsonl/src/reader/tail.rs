//! `Tail`, `TailLine`, `LineAt` and reading the last lines of a log backwards in blocks.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::io;
use crate::{Error, MAX_LINE_BYTES, Result};

use super::{JsonlReader, Lines, Next, is_gz};

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

impl JsonlReader {
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
    pub(super) fn tail_by(&self, skip: usize, n: usize, block: u64) -> Result<Tail> {
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
        let (mut f, len) = self.open_len(path)?;
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
        match Lines::new(f.take(len - at.offset), path, self.gz_cap)
            .next(&mut buf)?
            .0
        {
            Next::Line => Ok(Some(buf)),
            Next::TooLong | Next::End | Next::Torn => Ok(None),
        }
    }
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
    let (mut f, len) = r.open_len(path)?;
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
        while let Some(nl) = memchr::memrchr(b'\n', &block[..end]) {
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
