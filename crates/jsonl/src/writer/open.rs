//! Opening a log to append: its torn tail cut, its lines counted, a replacement detected.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::io;
use crate::fsx::{Access, Dir};
use crate::{Error, Result};

/// Cuts a torn last line off `file`; returns how many bytes were removed.
pub(super) fn repair(file: &File, path: &Path) -> Result<u64> {
    let mut file = file;
    let len = file.metadata().map_err(io(path))?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).map_err(io(path))?;
    file.read_exact(&mut last).map_err(io(path))?;
    if last[0] == b'\n' {
        return Ok(0);
    }
    // Walk back in chunks to the last newline.
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(0);
        file.seek(SeekFrom::Start(start)).map_err(io(path))?;
        file.read_exact(&mut chunk[..n]).map_err(io(path))?;
        if let Some(i) = memchr::memrchr(b'\n', &chunk[..n]) {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    file.set_len(keep).map_err(io(path))?;
    file.sync_data().map_err(io(path))?;
    Ok(len - keep)
}

fn count_lines(file: &mut File, path: &Path) -> Result<u64> {
    file.seek(SeekFrom::Start(0)).map_err(io(path))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// Opens (creating) `name` in `dir` to append: never through a link, and only a regular file (a
/// device or a pipe has no tail to repair and no end to count lines up to), so the repair's cut
/// only ever reaches the log itself. Lines are counted only when `count` (rotation by lines
/// needs them; nothing else does). `guarded`: the repair runs under `LOCK_EX`, so it never cuts
/// a line another process is writing (under its `LOCK_EX`), and on the file that has the name.
pub(super) fn open_append(
    dir: &Dir,
    name: &OsStr,
    count: bool,
    guarded: bool,
) -> Result<(File, u64, u64, u64)> {
    let path = &dir.join(name);
    for _ in 0..MAX_REOPENS {
        let mut file = dir
            .open_file(name, Access::Append)?
            .ok_or_else(|| Error::Io {
                path: path.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        if guarded {
            crate::fsx::flock(&file, true, path)?;
            if unlinked(&file, path)? {
                crate::fsx::unlock(&file);
                continue;
            }
        }
        let repaired = repair(&file, path);
        if guarded {
            crate::fsx::unlock(&file);
        }
        let repaired = repaired?;
        let bytes = file.metadata().map_err(io(path))?.len();
        let lines = if count {
            count_lines(&mut file, path)?
        } else {
            0
        };
        return Ok((file, bytes, lines, repaired));
    }
    Err(replaced(path))
}

/// Whether `file` (`len` bytes) ends without a newline.
pub(super) fn torn(file: &File, len: u64, path: &Path) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1).map_err(io(path))?;
    Ok(last[0] != b'\n')
}

/// How many times a guarded writer reopens a file replaced under it before it gives up.
pub(super) const MAX_REOPENS: u32 = 1000;

pub(super) fn replaced(path: &Path) -> Error {
    Error::Io {
        path: path.to_owned(),
        source: std::io::Error::other("the file kept being replaced while it was written"),
    }
}

/// Whether `file` has no name any more (replaced by a rename, or removed).
pub(super) fn unlinked(file: &File, path: &Path) -> Result<bool> {
    let st = rustix::fs::fstat(file).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(st.st_nlink == 0)
}
