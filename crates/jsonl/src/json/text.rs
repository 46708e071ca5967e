//! Strings and numbers as JSON text: strings checked for what needs escaping eight bytes at a
//! time, and short texts stored through fixed-size moves straight into the buffer.

use super::stop::{Result, Stop};

/// Ones in every byte.
const LO: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether a byte of `w` needs escaping in a JSON string: a control character, `"` or `\`.
#[inline(always)]
fn dirty(w: u64) -> bool {
    let zero_byte = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
    (below_space | zero_byte(w ^ (LO * u64::from(b'"'))) | zero_byte(w ^ (LO * u64::from(b'\\'))))
        != 0
}

/// The eight bytes of `b` from `at`, as one word.
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The four bytes of `b` from `at`, as the low half of a word.
#[inline(always)]
fn half(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// Whether `b` holds nothing to escape: whole words at a time, the last one overlapping.
#[inline(always)]
fn clean(b: &[u8]) -> bool {
    let n = b.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if dirty(word(b, at)) {
                return false;
            }
            at += 8;
        }
        !dirty(word(b, n - 8))
    } else if n >= 4 {
        !dirty(half(b, 0) | half(b, n - 4) << 32)
    } else {
        b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\')
    }
}

/// The longest text [`put_short`] places.
const SHORT: usize = 32;
/// Room reserved for a short text and what surrounds it.
const ROOM: usize = SHORT + 8;

/// Copies `b` (at most [`SHORT`] bytes) to `to[at..]` as two overlapping fixed-size moves.
#[inline(always)]
fn place(to: &mut [u8], at: usize, b: &[u8]) {
    let n = b.len();
    if n >= 16 {
        to[at..at + 16].copy_from_slice(&b[..16]);
        to[at + n - 16..at + n].copy_from_slice(&b[n - 16..]);
    } else if n >= 8 {
        to[at..at + 8].copy_from_slice(&b[..8]);
        to[at + n - 8..at + n].copy_from_slice(&b[n - 8..]);
    } else if n >= 4 {
        to[at..at + 4].copy_from_slice(&b[..4]);
        to[at + n - 4..at + n].copy_from_slice(&b[n - 4..]);
    } else {
        for (i, &c) in b.iter().enumerate() {
            to[at + i] = c;
        }
    }
}

/// Appends `b`; up to [`SHORT`] bytes without a call to `memcpy`: the buffer grows by a fixed
/// amount, the bytes are stored in place, and the rest is cut off again. (Staging them in an
/// array first would be as many instructions, but reading back bytes just stored stalls.)
#[inline(always)]
pub(super) fn put_short(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() > SHORT {
        out.extend_from_slice(b);
        return;
    }
    let start = out.len();
    out.extend_from_slice(&[0; ROOM]);
    place(out, start, b);
    out.truncate(start + b.len());
}

/// Appends `lead` (unless 0), `s` as a JSON string, then `tail` (unless 0).
#[inline(always)]
pub(super) fn string(out: &mut Vec<u8>, lead: u8, s: &str, tail: u8) -> Result {
    let b = s.as_bytes();
    let clean = clean(b);
    if clean && b.len() <= SHORT {
        let start = out.len();
        out.extend_from_slice(&[0; ROOM]);
        let mut at = start;
        if lead != 0 {
            out[at] = lead;
            at += 1;
        }
        out[at] = b'"';
        place(out, at + 1, b);
        at += b.len() + 1;
        out[at] = b'"';
        at += 1;
        if tail != 0 {
            out[at] = tail;
            at += 1;
        }
        out.truncate(at);
        return Ok(());
    }
    if lead != 0 {
        out.push(lead);
    }
    if clean {
        out.reserve(b.len() + 2 + usize::from(tail != 0));
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).map_err(|_| Stop::GiveUp)?;
    }
    if tail != 0 {
        out.push(tail);
    }
    Ok(())
}

/// A float as `serde_json` writes it: the shortest text that reads back the same, or `null`.
#[inline(always)]
pub(super) fn float<F: zmij::Float>(out: &mut Vec<u8>, v: F, finite: bool) -> Result {
    if finite {
        put_short(out, zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
    Ok(())
}
