//! Reading a locked log backwards: idempotency keys, the end of its complete lines, cursors.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Deserialize;

use crate::error::io;
use crate::reader::count::count_newlines;
use crate::task::sha256_hex;
use crate::{Error, KEY_WINDOW_ENTRIES, MAX_LINE_BYTES, Result, TAIL_BLOCK};

/// The top-level field of the last line of a keyed append that holds its key; readers of
/// [`LogEntry`](crate::LogEntry) and [`Decision`](crate::Decision) ignore it.
pub(super) const KEY_FIELD: &str = "idem";

/// How many lines a keyed append holds, on its last line when more than one.
const COUNT_FIELD: &str = "idemN";

/// How many bytes its lines before the last take, on its last line when more than one.
const BEFORE_FIELD: &str = "idemB";

/// Adds the key fields to the last line of a keyed append: `line` is its JSON object (without
/// the newline), `count` the append's lines, `before` the bytes of those before it. The key
/// goes last, so [`find_key`] recognises a line by its end.
pub(super) fn add_key(line: &mut Vec<u8>, key: &str, count: u32, before: u64) -> Result<()> {
    if line.last() != Some(&b'}') {
        return Err(Error::InvalidInput {
            field: "record",
            reason: "an append with a key must be a JSON object".into(),
        });
    }
    line.pop();
    if line.len() > 1 {
        line.push(b',');
    }
    if count > 1 {
        line.extend_from_slice(
            format!("\"{COUNT_FIELD}\":{count},\"{BEFORE_FIELD}\":{before},").as_bytes(),
        );
    }
    line.extend_from_slice(&key_suffix(key));
    line.push(b'}');
    Ok(())
}

/// `"idem":"<key>"` as serialised.
fn key_suffix(key: &str) -> Vec<u8> {
    let mut v = format!("\"{KEY_FIELD}\":").into_bytes();
    // A string always serialises.
    v.extend_from_slice(&serde_json::to_vec(key).unwrap_or_default());
    v
}

/// The key fields of a line, parsed (everything else ignored).
#[derive(Deserialize)]
struct KeyFields {
    idem: Option<String>,
    #[serde(rename = "idemN")]
    count: Option<u32>,
    #[serde(rename = "idemB")]
    before: Option<u64>,
}

/// Looks for the append keyed `key` among the last (at least) [`KEY_WINDOW_ENTRIES`] lines of
/// `file` (`len` bytes, locked by the caller): its first line's offset and its line count.
///
/// The file is read backwards in blocks of [`TAIL_BLOCK`], each searched once for lines ending
/// with `"idem":"<key>"}` and once for newlines (to stop past the window); only such a line is
/// parsed, and only when it is at most [`MAX_LINE_BYTES`].
pub(super) fn find_key(
    file: &File,
    len: u64,
    key: &str,
    path: &Path,
) -> Result<Option<(u64, u32)>> {
    let mut needle = key_suffix(key);
    needle.extend_from_slice(b"}\n");
    let finder = memchr::memmem::FinderRev::new(&needle);
    let overlap = needle.len() as u64;
    // Lines newer than the block being searched.
    let mut lines = 0u64;
    let window = KEY_WINDOW_ENTRIES as u64;
    let mut pos = len;
    while pos > 0 && lines <= window {
        let start = pos.saturating_sub(TAIL_BLOCK);
        let from = start.saturating_sub(overlap);
        let block = read_at(file, from, pos - from, path)?;
        // Only lines whose newline is in `start..pos` belong to this block.
        let own = usize::try_from(start - from).unwrap_or(0);
        for at in finder.rfind_iter(&block) {
            let end = at + needle.len();
            if end <= own {
                break;
            }
            if lines + count_newlines(&block[end..]) > window {
                break;
            }
            if let Some(found) = key_line(file, from + end as u64, key, path)? {
                return Ok(Some(found));
            }
        }
        lines += count_newlines(&block[own.min(block.len())..]);
        pos = start;
    }
    Ok(None)
}

/// The key line ending at `line_end` (after its newline), parsed: the append's first offset and
/// count if its key is `key`.
fn key_line(file: &File, line_end: u64, key: &str, path: &Path) -> Result<Option<(u64, u32)>> {
    let Some(start) = line_start(file, line_end - 1, path)? else {
        return Ok(None);
    };
    let text = read_at(file, start, line_end - 1 - start, path)?;
    let Ok(fields) = serde_json::from_slice::<KeyFields>(&text) else {
        return Ok(None);
    };
    if fields.idem.as_deref() != Some(key) {
        return Ok(None);
    }
    let count = fields.count.unwrap_or(1).max(1);
    let first = start.saturating_sub(fields.before.unwrap_or(0));
    Ok(Some((first, count)))
}

/// Where the line whose newline is at `nl` starts: after the newline before it, or 0; `None`
/// if the line is longer than [`MAX_LINE_BYTES`].
pub(super) fn line_start(file: &File, nl: u64, path: &Path) -> Result<Option<u64>> {
    let mut pos = nl;
    while pos > 0 {
        if nl - pos > MAX_LINE_BYTES as u64 {
            return Ok(None);
        }
        let start = pos.saturating_sub(TAIL_BLOCK);
        let block = read_at(file, start, pos - start, path)?;
        if let Some(i) = memchr::memrchr(b'\n', &block) {
            let at = start + i as u64 + 1;
            return Ok((nl - at <= MAX_LINE_BYTES as u64).then_some(at));
        }
        pos = start;
    }
    Ok((nl <= MAX_LINE_BYTES as u64).then_some(0))
}

/// The end of `file`'s complete lines (after its last newline; 0 if it has none), of `len`.
pub(super) fn complete_end(file: &File, len: u64, path: &Path) -> Result<u64> {
    let mut pos = len;
    while pos > 0 {
        let start = pos.saturating_sub(TAIL_BLOCK);
        let block = read_at(file, start, pos - start, path)?;
        if let Some(i) = memchr::memrchr(b'\n', &block) {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

/// How many bytes before a cursor's offset its hash covers.
const HASHED: u64 = 256;

/// The hash a cursor at `offset` of `file` records: of the (at most [`HASHED`]) bytes before
/// it, the end of the last line read. `-` at the start.
pub(super) fn hash_before(file: &File, offset: u64, path: &Path) -> Result<String> {
    if offset == 0 {
        return Ok("-".into());
    }
    let from = offset.saturating_sub(HASHED);
    let bytes = read_at(file, from, offset - from, path)?;
    if bytes.len() as u64 != offset - from {
        return Ok("short".into());
    }
    Ok(sha256_hex(&bytes)[..16].to_owned())
}

/// `n` bytes of `file` from `at` (fewer at its end).
pub(super) fn read_at(file: &File, at: u64, n: u64, path: &Path) -> Result<Vec<u8>> {
    let n = usize::try_from(n).map_err(|_| Error::InvalidInput {
        field: "read",
        reason: format!("{n} bytes do not fit in memory"),
    })?;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}
