//! The serializer: [`Json`] writes one value, [`Compound`] an array or object, as `serde_json`
//! would; it stops where it gives up or where the value nests deeper than [`MAX_DEPTH`].

use serde::Serialize;
use serde::ser;

use super::MAX_DEPTH;
use super::stop::{Result, Stop};
use super::text::{float, put_short, string};

/// Arrays and objects around a value, as the serializer carries it: one byte, so that
/// [`Compound`] stays two words and is returned in registers.
pub(super) type Depth = u8;

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

/// The serializer: compact JSON into a byte buffer, inside this many arrays and objects.
pub(super) struct Json<'a>(pub(super) &'a mut Vec<u8>, pub(super) Depth);

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
pub(super) struct Compound<'a> {
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
