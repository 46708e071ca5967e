//! `TaskId`: a validated identifier that is also a safe directory name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A task identifier: 1–128 characters of `[A-Za-z0-9._:-]`, not starting with `.`.
///
/// These rules make every id a safe single path segment (no `/`, no `..`, no NUL, no hidden files),
/// so `<data>/tasks/<id>/` can never escape the data directory.
/// [`TaskId::generate`] makes time-ordered, collision-free ids (`task_` + UUIDv7).
///
/// ```
/// use oc_tasks::TaskId;
/// assert!(TaskId::new("build-42").is_ok());
/// assert!(TaskId::new("../etc").is_err());
/// let a = TaskId::generate();
/// let b = TaskId::generate();
/// assert!(a < b, "generated ids sort by creation");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> crate::Result<Self> {
        let id = id.into();
        match check(&id) {
            Ok(()) => Ok(TaskId(id)),
            Err(reason) => Err(Error::InvalidId { id, reason }),
        }
    }

    /// A fresh id: `task_` followed by a UUIDv7 in simple form, so ids sort by creation time.
    pub fn generate() -> Self {
        TaskId(format!("task_{}", uuid::Uuid::now_v7().simple()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `id` is not a valid task id, if it is not.
pub(crate) fn check(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("must not be empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("must be at most 128 characters");
    }
    if id.starts_with('.') {
        return Err("must not start with '.'");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err("may contain only letters, digits, '.', '_', ':' and '-'");
    }
    Ok(())
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TaskId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for TaskId {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        TaskId::new(s)
    }
}

impl TryFrom<&str> for TaskId {
    type Error = Error;
    fn try_from(s: &str) -> crate::Result<Self> {
        TaskId::new(s)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TaskId::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_id(id: &str, ok: bool) {
        assert_eq!(TaskId::new(id).is_ok(), ok, "{id:?}");
    }

    #[test]
    fn accepts_safe_segments() {
        for id in [
            "a",
            "task-1",
            "Task_2.v3",
            "ns:42",
            "a..b",
            &"x".repeat(128),
        ] {
            check_id(id, true);
        }
    }

    #[test]
    fn rejects_unsafe_or_malformed() {
        for id in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a\0b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            check_id(id, false);
        }
        let err = TaskId::new("a/b").unwrap_err();
        assert!(err.to_string().contains("a/b"), "{err}");
    }

    #[test]
    fn generated_ids_are_valid_unique_and_ordered() {
        let ids: Vec<TaskId> = (0..2000).map(|_| TaskId::generate()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        assert!(ids.iter().all(|id| check(id.as_str()).is_ok()));
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<TaskId>("\"ok-id\"").is_ok());
        assert!(serde_json::from_str::<TaskId>("\"../x\"").is_err());
    }
}
