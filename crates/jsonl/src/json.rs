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

use std::fmt::Display;

use serde::Serialize;
use serde::ser;

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

/// Why [`Json`] stopped: it gave up (`serde_json` writes the value instead and reports any
/// error), or the value nests deeper than [`MAX_DEPTH`] (nothing is written).
#[derive(Debug)]
enum Stop {
    GiveUp,
    TooDeep,
}

impl Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::GiveUp => "left to serde_json",
            Stop::TooDeep => "nested too deep",
        })
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: Display>(_: M) -> Self {
        Stop::GiveUp
    }
}

type Result<T = ()> = std::result::Result<T, Stop>;

/// Arrays and objects around a value, as the serializer carries it: one byte, so that
/// [`Compound`] stays two words and is returned in registers.
type Depth = u8;

const _: () = assert!(MAX_DEPTH < Depth::MAX as usize);

/// The depth of a container opened inside `depth` enclosing ones, if within [`MAX_DEPTH`].
#[inline(always)]
fn deeper(depth: Depth) -> Result<Depth> {
    if (depth as usize) < MAX_DEPTH {
        Ok(depth + 1)
    } else {
        Err(Stop::TooDeep)
    }
}

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
fn put_short(out: &mut Vec<u8>, b: &[u8]) {
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
fn string(out: &mut Vec<u8>, lead: u8, s: &str, tail: u8) -> Result {
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
fn float<F: zmij::Float>(out: &mut Vec<u8>, v: F, finite: bool) -> Result {
    if finite {
        put_short(out, zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
    Ok(())
}

/// The serializer: compact JSON into a byte buffer, inside this many arrays and objects.
struct Json<'a>(&'a mut Vec<u8>, Depth);

macro_rules! integers {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            #[inline]
            fn $method(self, v: $ty) -> Result {
                put_short(self.0, itoa::Buffer::new().format(v).as_bytes());
                Ok(())
            }
        )*
    };
}

impl<'a> ser::Serializer for Json<'a> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    integers!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
    );

    fn serialize_f32(self, v: f32) -> Result {
        float(self.0, v, v.is_finite())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result {
        float(self.0, v, v.is_finite())
    }

    fn serialize_char(self, v: char) -> Result {
        string(self.0, 0, v.encode_utf8(&mut [0; 4]), 0)
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result {
        string(self.0, 0, v, 0)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result {
        deeper(self.1)?;
        self.0.push(b'[');
        for (i, &byte) in v.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            put_short(self.0, itoa::Buffer::new().format(byte).as_bytes());
        }
        self.0.push(b']');
        Ok(())
    }

    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        string(self.0, 0, variant, 0)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        let depth = deeper(self.1)?;
        string(self.0, b'{', variant, b':')?;
        value.serialize(Json(&mut *self.0, depth))?;
        self.0.push(b'}');
        Ok(())
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>> {
        Ok(Compound::open(self.0, b'[', len, false, deeper(self.1)?))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>> {
        Compound::variant(self.0, variant, b'[', len, deeper(deeper(self.1)?)?)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>> {
        Ok(Compound::open(self.0, b'{', len, false, deeper(self.1)?))
    }

    #[inline]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>> {
        // `serde_json`'s arbitrary-precision numbers and raw values are structs with private
        // names that only it knows how to write.
        if name.starts_with("$serde_json::private::") {
            return Err(Stop::GiveUp);
        }
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>> {
        Compound::variant(self.0, variant, b'{', len, deeper(deeper(self.1)?)?)
    }
}

/// An array or object being written, in `serde_json`'s states: empty (already closed, as a
/// declared length of 0 has it), before the first element, or after it.
struct Compound<'a> {
    out: &'a mut Vec<u8>,
    state: State,
    /// `]` or `}`.
    close: u8,
    /// Inside a variant's `{"name":...}`, which `end` closes too.
    variant: bool,
    /// Arrays and objects around its elements, itself counted.
    depth: Depth,
}

#[derive(PartialEq, Eq)]
enum State {
    Empty,
    First,
    Rest,
}

impl<'a> Compound<'a> {
    #[inline]
    fn open(
        out: &'a mut Vec<u8>,
        open: u8,
        len: Option<usize>,
        variant: bool,
        depth: Depth,
    ) -> Self {
        let close = if open == b'[' { b']' } else { b'}' };
        out.push(open);
        let state = if len == Some(0) {
            out.push(close);
            State::Empty
        } else {
            State::First
        };
        Compound {
            out,
            state,
            close,
            variant,
            depth,
        }
    }

    /// `{"variant":` and an array or object inside it, which `end` closes with the variant.
    fn variant(
        out: &'a mut Vec<u8>,
        variant: &str,
        open: u8,
        len: usize,
        depth: Depth,
    ) -> Result<Self> {
        string(out, b'{', variant, b':')?;
        Ok(Self::open(out, open, Some(len), true, depth))
    }

    /// The separator before the next element, and the state after it.
    #[inline]
    fn next(&mut self) -> Result<u8> {
        let lead = match self.state {
            State::Empty => return Err(Stop::GiveUp),
            State::First => 0,
            State::Rest => b',',
        };
        self.state = State::Rest;
        Ok(lead)
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        let lead = self.next()?;
        if lead != 0 {
            self.out.push(lead);
        }
        value.serialize(Json(&mut *self.out, self.depth))
    }

    #[inline]
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        let lead = self.next()?;
        string(self.out, lead, key, b':')?;
        value.serialize(Json(&mut *self.out, self.depth))
    }

    #[inline]
    fn close(self) -> Result {
        if self.state != State::Empty {
            self.out.push(self.close);
        }
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// Arrays: a sequence, a tuple, a tuple struct, or a tuple variant's fields.
macro_rules! arrays {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(
            impl ser::$trait for Compound<'_> {
                type Ok = ();
                type Error = Stop;

                fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                    self.element(value)
                }

                fn end(self) -> Result {
                    self.close()
                }
            }
        )*
    };
}

arrays!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Stop;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        let lead = self.next()?;
        if lead != 0 {
            self.out.push(lead);
        }
        let at = self.out.len();
        key.serialize(Json(&mut *self.out, self.depth))?;
        // Keys written as strings here are what `serde_json` writes for them too; others it
        // quotes (numbers, booleans) or refuses by rules of its own, so they are left to it.
        if self.out.get(at) != Some(&b'"') {
            return Err(Stop::GiveUp);
        }
        self.out.push(b':');
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(Json(&mut *self.out, self.depth))
    }

    fn end(self) -> Result {
        self.close()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Stop;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }

    #[inline]
    fn end(self) -> Result {
        self.close()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Stop;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }

    fn end(self) -> Result {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::Value;

    use super::*;

    /// What the fast path writes, if it does not give up.
    fn fast<T: Serialize + ?Sized>(value: &T) -> Option<Vec<u8>> {
        let mut out = b"prefix ".to_vec();
        value.serialize(Json(&mut out, 0)).ok()?;
        Some(out.split_off(7))
    }

    /// What `write` appends after existing bytes, which it must leave alone.
    fn written<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
        let mut out = b"prefix ".to_vec();
        write(&mut out, value).map_err(|e| match e {
            WriteError::Json(e) => e,
            WriteError::TooDeep => panic!("refused as too deep"),
            WriteError::TooLong(n) => panic!("refused as too long ({n} bytes)"),
        })?;
        assert!(out.starts_with(b"prefix "));
        Ok(out.split_off(7))
    }

    /// Text with what JSON must escape, multi-byte characters, and lengths on both sides of
    /// every size the fast path treats differently.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{0,40}",
            "[ -~]{0,40}",
            "[\\x00-\\x1f\"\\\\a]{0,10}",
            "\\PC{0,20}",
            any::<String>(),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A value of any serde data type, nested, serialised through the serializer's own methods
    /// (sequences and maps with and without a declared length).
    #[derive(Debug, Clone)]
    enum Tree {
        Bool(bool),
        Int(i64),
        Byte(u8),
        Float(f32),
        Char(char),
        Str(String),
        Bytes(Vec<u8>),
        Unit,
        None,
        Some(Box<Tree>),
        UnitStruct,
        UnitVariant,
        NewtypeStruct(Box<Tree>),
        NewtypeVariant(Box<Tree>),
        Seq(Vec<Tree>, bool),
        Tuple(Vec<Tree>),
        TupleVariant(Vec<Tree>),
        Map(Vec<(String, Tree)>, bool),
        Struct(Vec<Tree>),
        StructVariant(Vec<Tree>),
    }

    /// Field names: structs need `'static` ones.
    const FIELDS: [&str; 4] = [
        "a",
        "field",
        "with \"quote\"",
        "a rather long field name, past 32 bytes",
    ];

    impl Serialize for Tree {
        fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            use ser::{SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant};
            use ser::{SerializeTuple, SerializeTupleVariant};
            match self {
                Tree::Bool(v) => s.serialize_bool(*v),
                Tree::Int(v) => s.serialize_i64(*v),
                Tree::Byte(v) => s.serialize_u8(*v),
                Tree::Float(v) => s.serialize_f32(*v),
                Tree::Char(v) => s.serialize_char(*v),
                Tree::Str(v) => s.serialize_str(v),
                Tree::Bytes(v) => s.serialize_bytes(v),
                Tree::Unit => s.serialize_unit(),
                Tree::None => s.serialize_none(),
                Tree::Some(v) => s.serialize_some(v),
                Tree::UnitStruct => s.serialize_unit_struct("U"),
                Tree::UnitVariant => s.serialize_unit_variant("E", 0, "Variant"),
                Tree::NewtypeStruct(v) => s.serialize_newtype_struct("N", v),
                Tree::NewtypeVariant(v) => s.serialize_newtype_variant("E", 1, "New", v),
                Tree::Seq(items, sized) => {
                    let mut seq = s.serialize_seq(sized.then_some(items.len()))?;
                    for item in items {
                        seq.serialize_element(item)?;
                    }
                    seq.end()
                }
                Tree::Tuple(items) => {
                    let mut t = s.serialize_tuple(items.len())?;
                    for item in items {
                        t.serialize_element(item)?;
                    }
                    t.end()
                }
                Tree::TupleVariant(items) => {
                    let mut t = s.serialize_tuple_variant("E", 2, "Tup", items.len())?;
                    for item in items {
                        t.serialize_field(item)?;
                    }
                    t.end()
                }
                Tree::Map(entries, sized) => {
                    let mut m = s.serialize_map(sized.then_some(entries.len()))?;
                    for (k, v) in entries {
                        m.serialize_entry(k, v)?;
                    }
                    m.end()
                }
                Tree::Struct(fields) => {
                    let mut st = s.serialize_struct("S", fields.len())?;
                    for (i, v) in fields.iter().enumerate() {
                        st.serialize_field(FIELDS[i % FIELDS.len()], v)?;
                    }
                    st.end()
                }
                Tree::StructVariant(fields) => {
                    let mut st = s.serialize_struct_variant("E", 3, "Rec", fields.len())?;
                    for (i, v) in fields.iter().enumerate() {
                        st.serialize_field(FIELDS[i % FIELDS.len()], v)?;
                    }
                    st.end()
                }
            }
        }
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Tree::Bool),
            any::<i64>().prop_map(Tree::Int),
            any::<u8>().prop_map(Tree::Byte),
            any::<f32>().prop_map(Tree::Float),
            any::<char>().prop_map(Tree::Char),
            text().prop_map(Tree::Str),
            prop::collection::vec(any::<u8>(), 0..4).prop_map(Tree::Bytes),
            Just(Tree::Unit),
            Just(Tree::None),
            Just(Tree::UnitStruct),
            Just(Tree::UnitVariant),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            let items = prop::collection::vec(inner.clone(), 0..5);
            prop_oneof![
                inner.clone().prop_map(|t| Tree::Some(Box::new(t))),
                inner.clone().prop_map(|t| Tree::NewtypeStruct(Box::new(t))),
                inner
                    .clone()
                    .prop_map(|t| Tree::NewtypeVariant(Box::new(t))),
                (items.clone(), any::<bool>()).prop_map(|(v, sized)| Tree::Seq(v, sized)),
                items.clone().prop_map(Tree::Tuple),
                items.clone().prop_map(Tree::TupleVariant),
                (prop::collection::vec((text(), inner), 0..5), any::<bool>())
                    .prop_map(|(m, sized)| Tree::Map(m, sized)),
                items.clone().prop_map(Tree::Struct),
                items.prop_map(Tree::StructVariant),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_serde_data_is_written_as_serde_json_writes_it(t in tree()) {
            let expected = serde_json::to_vec(&t).unwrap();
            prop_assert_eq!(fast(&t), Some(expected.clone()), "the fast path handles it");
            prop_assert_eq!(written(&t).unwrap(), expected);
        }

        #[test]
        fn any_json_value_is_written_as_serde_json_writes_it(v in value()) {
            let expected = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(fast(&v), Some(expected.clone()), "the fast path handles it");
            prop_assert_eq!(written(&v).unwrap(), expected);
        }

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in text()) {
            prop_assert_eq!(fast(&s).unwrap(), serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn any_number_is_written_as_serde_json_writes_it(
            i in any::<i128>(), u in any::<u128>(), f in any::<f32>(), d in any::<f64>(), c in any::<char>()
        ) {
            let v = (i, u, f, d, c, i as i8, u as u16, i as i32, u as u64);
            prop_assert_eq!(fast(&v).unwrap(), serde_json::to_vec(&v).unwrap());
        }
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Color {
        Red,
        Blue,
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Name(&'static str);

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Pair(i32, &'static str);

    #[derive(Serialize)]
    struct Nothing {}

    #[derive(Serialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Line(i32, i32),
        Rect { w: u32, h: u32 },
        Empty {},
        Bare(),
    }

    struct Bytes(&'static [u8]);

    impl Serialize for Bytes {
        fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[derive(Serialize)]
    struct Everything {
        unit: (),
        unit_struct: Unit,
        newtype: Newtype,
        pair: Pair,
        nothing: Nothing,
        shapes: Vec<Shape>,
        bytes: Bytes,
        no_bytes: Bytes,
        none: Option<u8>,
        some: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        empty: Vec<u8>,
        empty_map: BTreeMap<String, u8>,
        map: BTreeMap<&'static str, Vec<f32>>,
        nan: f64,
        infinite: f32,
        #[serde(rename = "weird \"key\"\n")]
        weird: char,
        variant_keys: BTreeMap<Color, u8>,
        char_keys: BTreeMap<char, u8>,
        newtype_keys: BTreeMap<Name, u8>,
        some_keys: BTreeMap<Option<&'static str>, u8>,
    }

    #[test]
    fn every_kind_of_value_is_written_as_serde_json_writes_it() {
        let v = Everything {
            unit: (),
            unit_struct: Unit,
            newtype: Newtype(7),
            pair: Pair(-1, "a\tb"),
            nothing: Nothing {},
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Line(1, -2),
                Shape::Rect { w: 3, h: 4 },
                Shape::Empty {},
                Shape::Bare(),
            ],
            bytes: Bytes(&[0, 1, 255]),
            no_bytes: Bytes(&[]),
            none: None,
            some: Some("é"),
            skipped: None,
            empty: Vec::new(),
            empty_map: BTreeMap::new(),
            map: BTreeMap::from([("k", vec![0.1, -0.0, 1e30])]),
            nan: f64::NAN,
            infinite: f32::NEG_INFINITY,
            weird: '\u{1}',
            variant_keys: BTreeMap::from([(Color::Red, 1), (Color::Blue, 2)]),
            char_keys: BTreeMap::from([('"', 1), ('é', 2)]),
            newtype_keys: BTreeMap::from([(Name("n"), 1)]),
            some_keys: BTreeMap::from([(Some("s"), 1)]),
        };
        let expected = serde_json::to_vec(&v).unwrap();
        assert_eq!(fast(&v).as_deref(), Some(&expected[..]));
        assert_eq!(written(&v).unwrap(), expected);
    }

    #[test]
    fn what_the_fast_path_leaves_is_written_by_serde_json() {
        // Integer and boolean keys: serde_json quotes them.
        let ints = HashMap::from([(1u32, "one")]);
        assert_eq!(fast(&ints), None);
        assert_eq!(written(&ints).unwrap(), br#"{"1":"one"}"#);
        let nested = serde_json::json!({"a": [1, {"b": null}]});
        let with_bools = (nested, BTreeMap::from([(true, 1)]));
        assert_eq!(fast(&with_bools), None);
        assert_eq!(
            written(&with_bools).unwrap(),
            serde_json::to_vec(&with_bools).unwrap()
        );
    }

    #[test]
    fn nesting_counts_brackets_outside_strings() {
        let check =
            |text: &str, depth: usize| assert_eq!(nesting(text.as_bytes()), depth, "{text}");
        check(r#""[{""#, 0);
        check(r#"{"a":"[{\"[","b":[[],{}]}"#, 3);
        check(r#"[[["\\"]],"]"]"#, 3);
        check("1", 0);
    }

    #[test]
    fn values_too_deep_are_refused_by_both_paths_with_nothing_appended() {
        let mut v = Value::from(1);
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert_eq!(written(&v).unwrap().len(), 2 * MAX_DEPTH + 1);
        let deep = Value::Array(vec![v.clone()]);
        let mut out = b"prefix".to_vec();
        assert!(matches!(write(&mut out, &deep), Err(WriteError::TooDeep)));
        // Integer keys send the value to `serde_json`.
        let by_number: BTreeMap<u8, Value> = [(1, deep)].into();
        assert!(matches!(
            write(&mut out, &by_number),
            Err(WriteError::TooDeep)
        ));
        let by_number: BTreeMap<u8, Value> = [(1, Value::Array(vec![]))].into();
        write(&mut out, &by_number).unwrap();
        assert_eq!(out, br#"prefix{"1":[]}"#);
    }

    #[test]
    fn failures_are_serde_json_s_own() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: ser::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no, thanks"))
            }
        }
        let v = (1, Fails);
        let ours = written(&v).unwrap_err().to_string();
        assert_eq!(ours, serde_json::to_vec(&v).unwrap_err().to_string());
        assert_eq!(ours, "no, thanks");
        // Map keys serde_json refuses.
        let refused = BTreeMap::from([(vec![1], 2)]);
        assert_eq!(
            written(&refused).unwrap_err().to_string(),
            serde_json::to_vec(&refused).unwrap_err().to_string()
        );
        let refused = BTreeMap::from([(None::<&str>, 2)]);
        let message = serde_json::to_vec(&refused).unwrap_err().to_string();
        assert_eq!(written(&refused).unwrap_err().to_string(), message);
        assert_eq!(message, "key must be a string");
    }
}
