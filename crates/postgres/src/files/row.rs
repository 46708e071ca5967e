//! Records to lines and back: what a row holds, and the errors of reading one.

use std::path::PathBuf;

use oc_jsonl::{Error, Level, MAX_DEPTH, MAX_LINE_BYTES, Result};
use serde::Serialize;

/// `value` as the line a data directory's log holds (compact JSON, as `serde_json` writes
/// it), refused as `oc_jsonl`'s writer refuses it: nested deeper than [`MAX_DEPTH`] or longer
/// than [`MAX_LINE_BYTES`] (`InvalidInput`, field `record`).
pub(super) fn line<T: Serialize>(value: &T) -> Result<String> {
    let text = serde_json::to_string(value).map_err(|e| Error::InvalidInput {
        field: "record",
        reason: e.to_string(),
    })?;
    if nesting(text.as_bytes()) > MAX_DEPTH {
        return Err(Error::InvalidInput {
            field: "record",
            reason: format!("nested deeper than {MAX_DEPTH} levels of arrays and objects"),
        });
    }
    if text.len() > MAX_LINE_BYTES {
        return Err(Error::InvalidInput {
            field: "record",
            reason: format!(
                "{} bytes as a line; at most {MAX_LINE_BYTES} are written",
                text.len()
            ),
        });
    }
    Ok(text)
}

/// The deepest nesting of arrays and objects in the JSON text `s`.
fn nesting(s: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in s {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A level as stored (0 trace to 4 error).
pub(super) fn level_code(l: Level) -> i16 {
    match l {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

/// The level stored as `code`.
pub(super) fn level_of(code: i16) -> Option<Level> {
    Level::ALL.get(usize::try_from(code).ok()?).copied()
}

/// What a row read from the database should not be: `Corrupt`, with a path shaped as on
/// disk (`postgres:<schema>/tasks/<task>/<file>`).
pub(super) fn corrupt(
    schema: &str,
    task: &str,
    file: &str,
    reason: impl std::fmt::Display,
) -> Error {
    Error::Corrupt {
        path: PathBuf::from(format!("postgres:{schema}/tasks/{task}/{file}")),
        reason: reason.to_string(),
    }
}

/// A count or position read from the database as `u64` (a negative one as 0).
pub(super) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A count or position given by a caller as the database's `bigint` (saturating).
pub(super) fn signed(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_arrays_and_objects_outside_strings() {
        assert_eq!(nesting(br#"{"a":[1,{"b":"[[{{"}]}"#), 3);
        assert_eq!(nesting(br#""x""#), 0);
        assert_eq!(nesting(br#"{"a":"\"{"}"#), 1);
    }

    #[test]
    fn levels_round_trip() {
        for l in Level::ALL {
            assert_eq!(level_of(level_code(l)), Some(l));
        }
        assert_eq!(level_of(5), None);
        assert_eq!(level_of(-1), None);
    }
}
