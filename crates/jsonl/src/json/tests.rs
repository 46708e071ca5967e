//! The serializer against `serde_json`, byte for byte: property tests on arbitrary values, every
//! kind of value, what it leaves to `serde_json`, and the depth limit on both paths.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::Serialize;
use serde::ser;
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
    let check = |text: &str, depth: usize| assert_eq!(nesting(text.as_bytes()), depth, "{text}");
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
