//! Ship cursors on the data directory: per collector, in the task's `ship-cursor.json`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Error, LogCursor, Result, TaskFiles};

use super::follow;

/// Per collector, where it acknowledged the log: `{"cursor": "<LogCursor>"}` (the `Shipper`'s
/// own entries, `{"line", "hash"}`, are kept as they are).
const SHIP_FILE: &str = "ship-cursor.json";

/// The most a ship cursor file may hold.
const MAX_SHIP_FILE_BYTES: u64 = 1 << 20;

/// The longest collector name.
const MAX_COLLECTOR_BYTES: usize = 2048;

fn check_collector(c: &str) -> Result<()> {
    if c.is_empty() || c.len() > MAX_COLLECTOR_BYTES || c.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            field: "collector",
            reason: format!("must be 1 to {MAX_COLLECTOR_BYTES} bytes without control characters"),
        });
    }
    Ok(())
}

fn load_ship(files: &TaskFiles) -> Result<BTreeMap<String, Value>> {
    match files.read_file(SHIP_FILE, MAX_SHIP_FILE_BYTES)? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
            path: files.dir().join(SHIP_FILE),
            reason: e.to_string(),
        }),
        None => Ok(BTreeMap::new()),
    }
}

/// Where `collector` acknowledged the log (see
/// [`TaskFileStore::ship_cursor`](crate::TaskFileStore::ship_cursor)).
pub(super) fn cursor(files: &TaskFiles, collector: &str) -> Result<Option<LogCursor>> {
    check_collector(collector)?;
    let all = load_ship(files)?;
    let Some(v) = all.get(collector) else {
        return Ok(None);
    };
    if let Some(c) = v.get("cursor").and_then(Value::as_str) {
        return LogCursor::new(c).map(Some);
    }
    // The `Shipper`'s own: a line count and the hash of that line.
    let (Some(line), Some(hash)) = (
        v.get("line").and_then(Value::as_u64),
        v.get("hash").and_then(Value::as_str),
    ) else {
        return Err(Error::Corrupt {
            path: files.dir().join(SHIP_FILE),
            reason: format!("the cursor of {collector:?} is neither a cursor nor a line"),
        });
    };
    if line == 0 {
        return Ok(None);
    }
    let mut after = None;
    let reader = files.logs();
    reader.for_each_line_at(|n, at, text| {
        if crate::task::sha256_hex(text) == hash {
            after = Some((at, text.len() as u64 + 1));
            return n < line;
        }
        true
    })?;
    let tdir = files.task_dir()?;
    match after {
        Some((at, len)) if at.file == 0 => {
            follow::cursor_at(tdir.as_ref(), "logs.jsonl", at.offset + len).map(Some)
        }
        // In a rotated file: everything of the live file follows it.
        Some(_) => follow::cursor_at(tdir.as_ref(), "logs.jsonl", 0).map(Some),
        None => Ok(None),
    }
}

/// Records that `collector` acknowledged the log up to `at`.
pub(super) fn set_cursor(files: &TaskFiles, collector: &str, at: &LogCursor) -> Result<()> {
    check_collector(collector)?;
    follow::DiskCursor::parse(at)?;
    let mut all = load_ship(files)?;
    all.insert(
        collector.to_owned(),
        serde_json::json!({ "cursor": at.as_str() }),
    );
    let path = files.dir().join(SHIP_FILE);
    let bytes = serde_json::to_vec_pretty(&all).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    if bytes.len() as u64 > MAX_SHIP_FILE_BYTES {
        return Err(Error::InvalidInput {
            field: "collector",
            reason: format!(
                "the ship cursors would take {} bytes; at most {MAX_SHIP_FILE_BYTES}",
                bytes.len()
            ),
        });
    }
    files.write_file(SHIP_FILE, &bytes)
}
