//! The checks of one store at a time, on one thread.

use serde_json::Value;

use super::{assert_ids_increase, decision, entry, records, whole_decisions, whole_log};
use crate::{Append, Decision, LogEntry, TaskFileStore};

mod follow;
mod layers;
mod logs;

pub use follow::*;
pub use layers::*;
pub use logs::*;

pub(super) fn entries(task: &str, range: std::ops::Range<u64>) -> Vec<LogEntry> {
    range.map(|i| entry(task, i)).collect()
}

/// Asserts that `task`'s whole log reads back as `expected`, with increasing ids.
pub(super) fn assert_log(store: &dyn TaskFileStore, task: &str, expected: &[LogEntry], what: &str) {
    let log = whole_log(store, task);
    assert_eq!(records(&log), expected, "{what}: {task}'s log");
    assert_ids_increase(what, &log);
}

pub(super) fn assert_decisions(
    store: &dyn TaskFileStore,
    task: &str,
    expected: &[Decision],
    what: &str,
) {
    let all = whole_decisions(store, task, None, 5);
    assert_eq!(records(&all), expected, "{what}: {task}'s decisions");
    assert_ids_increase(what, &all);
}

pub(super) fn write_task(store: &dyn TaskFileStore, t: &str, from: u64, n: u64, state: Value) {
    store
        .append_logs(t, &entries(t, from..from + n), &Append::durable())
        .unwrap();
    for i in from..from + n.min(3) {
        store
            .append_decision(t, &decision(i), &Append::durable())
            .unwrap();
    }
    store.save_state(t, &state).unwrap();
}
