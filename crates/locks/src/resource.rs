//! `Resource` and `Owner`: validated names, cheap to clone.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// Names up to this many bytes are stored inline.
const INLINE: usize = 22;

/// The text of a validated name: up to 22 bytes inline, longer ones shared behind an `Arc`.
///
/// A grant clones a resource and an owner name into the lock it returns. With `Arc<str>` each
/// clone and each drop is an atomic read-modify-write, eight per acquire+release pair, about as
/// much time as the rest of the pair; names this short (`task-3`, `agent-1`, `src/main.rs`) are
/// cheaper copied. The form follows from the length, so equal names always have equal forms.
#[derive(Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl Name {
    fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Name::Inline { len, bytes }
            }
            _ => Name::Shared(Arc::from(s)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Shared(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied whole from a `str`, so this cannot fail.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Shared(s) => s,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Name::Inline { len: a, bytes: x }, Name::Inline { len: b, bytes: y }) => {
                a == b && x == y
            }
            (Name::Shared(x), Name::Shared(y)) => Arc::ptr_eq(x, y) || x == y,
            _ => false,
        }
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

// Byte order is `str` order.
impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

// Exactly as `str` hashes (its bytes, then 0xff), as `Borrow<str>` requires, without checking
// the inline bytes are UTF-8 again; `tests::hashes_as_str` holds the standard library to it.
impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write(self.as_bytes());
        h.write_u8(0xff);
    }
}

/// Longest resource path accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 1024;
/// Longest owner name accepted, in bytes.
pub const MAX_OWNER_LEN: usize = 256;

/// A lockable resource: a `/`-separated path such as `repo/src/main.rs`.
///
/// Paths are hierarchical: `repo/src` overlaps `repo/src/main.rs` (and everything else below it),
/// but not `repo/srcx`. Segments must be non-empty and not `.` or `..`; no leading or trailing `/`,
/// no control characters, at most 1024 bytes.
///
/// ```
/// use oc_locks::Resource;
/// let dir = Resource::new("repo/src")?;
/// assert!(dir.overlaps(&Resource::new("repo/src/main.rs")?));
/// assert!(!dir.overlaps(&Resource::new("repo/srcx")?));
/// assert!(Resource::new("repo//src").is_err());
/// # Ok::<(), oc_locks::Error>(())
/// ```
#[derive(Clone)]
pub struct Resource {
    path: Name,
    /// Whether the path has a `/`, worked out once: the lock manager asks on every request.
    nested: bool,
}

impl Resource {
    /// Validates `path`.
    pub fn new(path: impl AsRef<str>) -> Result<Self> {
        let path = path.as_ref();
        check_resource(path).map_err(|reason| Error::InvalidResource {
            resource: path.to_owned(),
            reason,
        })?;
        Ok(Resource {
            path: Name::new(path),
            nested: path.contains('/'),
        })
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        self.path.as_str()
    }

    /// Whether the two paths are equal or one lies below the other.
    pub fn overlaps(&self, other: &Resource) -> bool {
        overlaps(self.as_str(), other.as_str())
    }

    /// Whether the path has more than one segment.
    pub fn is_nested(&self) -> bool {
        self.nested
    }

    /// The proper ancestors, outermost first: `a/b/c` gives `a`, `a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> + Clone {
        let s = self.as_str();
        s.match_indices('/').map(move |(i, _)| &s[..i])
    }
}

/// Whether paths `a` and `b` are equal or one lies below the other.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.starts_with(short) && (long.len() == short.len() || long.as_bytes()[short.len()] == b'/')
}

fn check_resource(p: &str) -> std::result::Result<(), &'static str> {
    if p.is_empty() {
        return Err("must not be empty");
    }
    if p.len() > MAX_RESOURCE_LEN {
        return Err("must be at most 1024 bytes");
    }
    if p.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if p.starts_with('/') || p.ends_with('/') {
        return Err("must not start or end with '/'");
    }
    for seg in p.split('/') {
        match seg {
            "" => return Err("must not contain empty segments ('//')"),
            "." | ".." => return Err("must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    Ok(())
}

impl Borrow<str> for Resource {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

// Compare, hash and order by the path alone, consistently with `Borrow<str>`.
impl std::hash::Hash for Resource {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.path.hash(h);
    }
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for Resource {}

impl PartialOrd for Resource {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Resource {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.path.cmp(&other.path)
    }
}

/// Who holds a lock: an agent name, 1–256 bytes without control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner(Name);

impl Owner {
    /// Validates `name`.
    pub fn new(name: impl AsRef<str>) -> Result<Self> {
        let name = name.as_ref();
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.len() > MAX_OWNER_LEN {
            Some("must be at most 256 bytes")
        } else if name.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidOwner {
                owner: name.to_owned(),
                reason,
            }),
            None => Ok(Owner(Name::new(name))),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for Owner {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(Owner);

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Resource::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_paths() {
        for ok in [
            "a",
            "repo/src/main.rs",
            "with space/ok",
            "ünïcode",
            "a.b/c..d",
            &"x".repeat(1024),
        ] {
            assert!(Resource::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "/abs",
            "trail/",
            "a//b",
            "a/./b",
            "../x",
            "a/..",
            "nul\0",
            "tab\t",
            &"x".repeat(1025),
        ] {
            let e = Resource::new(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidResource { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn overlap_is_by_whole_segments() {
        let check = |a: &str, b: &str, want: bool| {
            assert_eq!(overlaps(a, b), want, "{a} ~ {b}");
            assert_eq!(overlaps(b, a), want, "{b} ~ {a}");
        };
        check("repo", "repo", true);
        check("repo", "repo/src", true);
        check("repo/src", "repo/src/main.rs", true);
        check("repo/src", "repo/srcx", false);
        check("repo/src", "repo/sr", false);
        check("a/b", "a/c", false);
    }

    #[test]
    fn ancestors_outermost_first() {
        let r = Resource::new("a/b/c").unwrap();
        assert_eq!(r.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(Resource::new("a").unwrap().ancestors().count(), 0);
    }

    #[test]
    fn hashes_as_str() {
        use std::hash::BuildHasher;
        let std = std::collections::hash_map::RandomState::new();
        for name in [
            "a",
            "task-3",
            "repo/src/main.rs",
            &"long/".repeat(30).replace("/", "-"),
            "ünïcode/ß",
        ] {
            let r = Resource::new(name).unwrap();
            assert_eq!(std.hash_one(&r), std.hash_one(name), "{name}");
            let o = Owner::new(name).unwrap();
            assert_eq!(std.hash_one(&o), std.hash_one(name), "{name}");
        }
    }

    #[test]
    fn short_and_long_names_compare_as_their_text() {
        let names = [
            "a",
            "b",
            "task-3",
            &"x".repeat(22),
            &"x".repeat(23),
            &"y".repeat(40),
        ];
        for a in names {
            for b in names {
                let (ra, rb) = (Resource::new(a).unwrap(), Resource::new(b).unwrap());
                assert_eq!(ra == rb, a == b, "{a} == {b}");
                assert_eq!(ra.cmp(&rb), a.cmp(b), "{a} cmp {b}");
                assert_eq!(ra.as_str(), a);
                let (oa, ob) = (Owner::new(a).unwrap(), Owner::new(b).unwrap());
                assert_eq!(oa == ob, a == b, "{a} == {b}");
                assert_eq!(oa.cmp(&ob), a.cmp(b), "{a} cmp {b}");
                assert_eq!(oa.clone().as_str(), a);
            }
        }
    }

    proptest::proptest! {
        // Names of any length and script behave exactly as their text: the inline and the
        // shared forms are an implementation detail.
        #[test]
        fn names_behave_as_their_text(a in "[a-zé/ü-]{1,30}", b in "[a-zé/ü-]{1,30}") {
            let (oa, ob) = (Owner::new(&a).unwrap(), Owner::new(&b).unwrap());
            proptest::prop_assert_eq!(oa.as_str(), a.as_str());
            proptest::prop_assert_eq!(oa == ob, a == b);
            proptest::prop_assert_eq!(oa.cmp(&ob), a.cmp(&b));
            let std = std::collections::hash_map::RandomState::new();
            use std::hash::BuildHasher;
            proptest::prop_assert_eq!(std.hash_one(&oa), std.hash_one(a.as_str()));
            if let (Ok(ra), Ok(rb)) = (Resource::new(&a), Resource::new(&b)) {
                proptest::prop_assert_eq!(ra.as_str(), a.as_str());
                proptest::prop_assert_eq!(ra == rb, a == b);
                proptest::prop_assert_eq!(ra.cmp(&rb), a.cmp(&b));
                proptest::prop_assert_eq!(ra.is_nested(), a.contains('/'));
            }
        }
    }

    #[test]
    fn owners_are_validated() {
        assert!(Owner::new("agent-1").is_ok());
        assert!(Owner::new("").is_err());
        assert!(Owner::new("a\nb").is_err());
        assert!(Owner::new("x".repeat(257)).is_err());
    }
}
