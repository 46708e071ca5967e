//! Retention on the data directory: the kept suffix of a log copied and renamed over it, under
//! the log's `LOCK_EX`.

use std::io::{Read, Seek, SeekFrom};

use oc_time::Timestamp;
use serde::Deserialize;

use crate::error::io;
use crate::fsx::Dir;
use crate::reader::{Lines, Next};
use crate::{MAX_GZ_BYTES, Result, Retention};

use super::scan::complete_end;

/// A line's timestamp, everything else ignored.
#[derive(Deserialize)]
struct Stamp {
    timestamp: Timestamp,
}

/// Deletes the oldest lines of `name` in `tdir` past `r`'s bounds (see
/// [`TaskFileStore::retain`](crate::TaskFileStore::retain)); returns how many.
///
/// The live file is locked (`LOCK_EX`, so no write-out is under way and none starts), its kept
/// suffix copied into a fresh file that is renamed over it; writers then find their file
/// unlinked and write to the new one. Lines that do not parse count as entries, and are old
/// when they lie among old ones. Rotated files are left as they are.
pub(super) fn retain(tdir: &Dir, name: &str, r: &Retention, now: Timestamp) -> Result<u64> {
    if r.max_age.is_none() && r.max_entries.is_none() && r.max_bytes.is_none() {
        return Ok(0);
    }
    let Some(locked) = tdir.lock_file(name, true)? else {
        return Ok(0);
    };
    let path = tdir.join(name);
    let file = &locked.file;
    let len = file.metadata().map_err(io(&path))?.len();
    let end = complete_end(file, len, &path)?;
    // Where each line starts, and how many lead the log while old.
    let mut starts = Vec::new();
    let mut old = 0usize;
    let mut aging = true;
    let mut reading = file.try_clone().map_err(io(&path))?;
    reading.seek(SeekFrom::Start(0)).map_err(io(&path))?;
    let mut lines = Lines::new(reading, &path, MAX_GZ_BYTES);
    let (mut buf, mut at) = (Vec::new(), 0u64);
    while at < end {
        let (next, used) = lines.next(&mut buf)?;
        if matches!(next, Next::End | Next::Torn) {
            break;
        }
        starts.push(at);
        at += used;
        if aging {
            let stamp = match next {
                Next::Line => serde_json::from_slice::<Stamp>(&buf).ok(),
                _ => None,
            };
            let is_old = match (r.max_age, stamp) {
                (Some(age), Some(s)) => now.since(s.timestamp) > age,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if is_old {
                old = starts.len();
            } else {
                aging = false;
            }
        }
    }
    let total = starts.len();
    let by_count = r.max_entries.map_or(0, |m| {
        total.saturating_sub(usize::try_from(m).unwrap_or(usize::MAX))
    });
    let by_bytes = r.max_bytes.map_or(0, |m| {
        starts.iter().position(|&s| end - s <= m).unwrap_or(total)
    });
    let cut = old.max(by_count).max(by_bytes);
    if cut == 0 {
        return Ok(0);
    }
    let from = starts.get(cut).copied().unwrap_or(end);
    let mut src = file.try_clone().map_err(io(&path))?;
    src.seek(SeekFrom::Start(from)).map_err(io(&path))?;
    crate::task::bump_log_generation(tdir)?;
    tdir.replace_with(name, |dst| {
        std::io::copy(&mut src.take(end - from), dst).map(drop)
    })?;
    drop(locked);
    Ok(cut as u64)
}
