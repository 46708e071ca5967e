//! Compact JSON exactly as `serde_json` writes it, faster for the short strings of log records.
//!
//! `serde_json` checks every byte of every key and string on its own and hands each piece to
//! the writer as a separate copy; in a log record of a dozen short keys and values that is half
//! of the time of an append. [`write`] checks strings eight bytes at a time and stores a short
//! key with its quotes, separator and colon through fixed-size moves straight into the buffer.
//!
//! It is a serde `Serializer` of its own, so it must write what `serde_json` writes, byte for
//! byte. It does so for everything records are usually made of (structs, maps with string
//! keys, sequences, enums, strings, numbers, options). For the rest (map keys that are not
//! strings, `serde_json`'s private number and raw-value types, a `Serialize` impl that fails)
//! it gives up, and [`write`] cuts off what it wrote and has `serde_json` write the record
//! again, errors included. Property tests compare the two on arbitrary values.
//!
//! [`write`] and its limits are here; the serializer and its compound values are in
//! `serializer.rs`, the strings and numbers it writes a word at a time in `text.rs`.

mod serializer;
mod stop;
mod text;

#[cfg(test)]
mod tests;

use serde::Serialize;

use self::serializer::Json;
use self::stop::Stop;

/// The deepest nesting of arrays and objects a record may have, the record itself counted:
/// a log entry's `data` and a decision's `metadata` are the record's second level, so what an
/// agent puts there may nest 63 deep. `serde_json` reads at most 127 levels; a record deeper
/// than this is refused when appended rather than written and then skipped as malformed by
/// every reader.
pub const MAX_DEPTH: usize = 64;

/// The longest line a record may take, in bytes (its newline not counted): a longer record is
/// refused when appended, and readers skip a longer line as malformed without holding it.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Appends `value` to `out` as compact JSON, the bytes `serde_json::to_writer` would write;
/// refuses a value nested deeper than [`MAX_DEPTH`] or longer than [`MAX_LINE_BYTES`] (leaving
/// `out` as it was).
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> WriteResult {
    let start = out.len();
    write_any(out, value)?;
    if out.len() - start > MAX_LINE_BYTES {
        let len = out.len() - start;
        out.truncate(start);
        return Err(WriteError::TooLong(len));
    }
    Ok(())
}

/// [`write`] without the length limit.
fn write_any<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> WriteResult {
    let start = out.len();
    match value.serialize(Json(out, 0)) {
        Ok(()) => return Ok(()),
        Err(Stop::TooDeep) => {
            out.truncate(start);
            return Err(WriteError::TooDeep);
        }
        Err(Stop::GiveUp) => out.truncate(start),
    }
    serde_json::to_writer(&mut *out, value).map_err(WriteError::Json)?;
    // `serde_json` writes any depth: hold what it wrote (rare values, see above) to the limit.
    if nesting(&out[start..]) > MAX_DEPTH {
        out.truncate(start);
        return Err(WriteError::TooDeep);
    }
    Ok(())
}

/// What [`write`] returns.
pub(crate) type WriteResult = std::result::Result<(), WriteError>;

/// Why [`write`] wrote nothing.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// `serde_json` refused the value.
    Json(serde_json::Error),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A line of this many bytes, more than [`MAX_LINE_BYTES`].
    TooLong(usize),
}

impl WriteError {
    /// The crate's error for a record meant for `path`.
    pub(crate) fn at(self, path: &std::path::Path) -> crate::Error {
        match self {
            WriteError::Json(source) => crate::Error::Json {
                path: path.to_owned(),
                source,
            },
            WriteError::TooDeep => crate::Error::InvalidInput {
                field: "record",
                reason: format!(
                    "arrays and objects nested more than {MAX_DEPTH} deep, the record counted \
                     (more than {} in a log entry's data or a decision's metadata), would not \
                     read back; nothing was written",
                    MAX_DEPTH - 1
                ),
            },
            WriteError::TooLong(len) => crate::Error::InvalidInput {
                field: "record",
                reason: format!(
                    "{len} bytes of JSON; a record may take at most {MAX_LINE_BYTES}, the most \
                     readers read back; nothing was written"
                ),
            },
        }
    }
}

/// The deepest nesting of arrays and objects in the JSON text `b`.
fn nesting(b: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &c in b {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
