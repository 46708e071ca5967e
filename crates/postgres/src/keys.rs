//! The advisory-lock keys: FNV-1a of a fixed prefix and names, one key space per use.

use oc_tasks::TaskId;

/// FNV-1a of `bytes`, as an advisory-lock key.
fn fnv(bytes: impl Iterator<Item = u8>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// The key of a schema's migrations.
pub(crate) fn migrate_key(schema: &str) -> i64 {
    fnv("oc-postgres migrate ".bytes().chain(schema.bytes()))
}

/// The advisory-lock key of task `id` in schema `s` (FNV-1a; a collision only serialises two
/// tasks' graph writes more than needed).
///
/// A task's completion and its deletion hold it exclusively for their transaction; a creation
/// that refers to it, an edge added to or removed from it, hold it shared, and read its status
/// after. So whichever comes second sees what the first did: the new task counts a completed
/// dependency as done, or the completion's release (a later statement) sees the new edge. Row
/// locks would do the same, but a share lock on a task's row also blocks the release that
/// decrements that task's own count, and two such waits in opposite order deadlock.
pub(crate) fn task_lock_key(s: &str, id: &TaskId) -> i64 {
    task_lock_key_str(s, id.as_str())
}

/// The key of task `id` in schema `s`, from the id's text (`""` is the key that serialises
/// folds of the counts).
pub(crate) fn task_lock_key_str(s: &str, id: &str) -> i64 {
    fnv("oc-postgres task "
        .bytes()
        .chain(s.bytes())
        .chain([0])
        .chain(id.bytes()))
}

/// The key that serialises edge additions in schema `s`.
pub(crate) fn graph_lock_key(s: &str) -> i64 {
    fnv("oc-postgres graph ".bytes().chain(s.bytes()))
}
