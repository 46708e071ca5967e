//! `Resource` and `Owner`: validated names, cheap to clone.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

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
    path: Arc<str>,
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
            path: Arc::from(path),
            nested: path.contains('/'),
        })
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether the two paths are equal or one lies below the other.
    pub fn overlaps(&self, other: &Resource) -> bool {
        overlaps(&self.path, &other.path)
    }

    /// Whether the path has more than one segment.
    pub fn is_nested(&self) -> bool {
        self.nested
    }

    /// The proper ancestors, outermost first: `a/b/c` gives `a`, `a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = &str> + Clone {
        let s: &str = &self.path;
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
        &self.path
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.path, f)
    }
}

// Hash and order by the path alone, consistently with `Borrow<str>`.
impl std::hash::Hash for Resource {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.path.hash(h);
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
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct Owner(Arc<str>);

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
            None => Ok(Owner(Arc::from(name))),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Owner {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

// Equality looks at the pointer first: a lock's names are clones of the request's, so the
// hot path compares without touching the bytes.
impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.path, &other.path) || self.path == other.path
    }
}

impl std::hash::Hash for Owner {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h);
    }
}

impl PartialEq for Owner {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
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
        s.serialize_str(&self.path)
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
    fn owners_are_validated() {
        assert!(Owner::new("agent-1").is_ok());
        assert!(Owner::new("").is_err());
        assert!(Owner::new("a\nb").is_err());
        assert!(Owner::new("x".repeat(257)).is_err());
    }
}
