//! The conformance suite every [`TaskFileStore`] must pass (feature `testkit`), decision 0036.
//!
//! Each `check_*` function takes an empty store and a [`Corrupter`] (the only hook a backend
//! gives: it flips one byte of a checkpoint's stored file) and panics with a message naming the
//! broken rule. [`file_store_conformance_tests!`](crate::file_store_conformance_tests) turns
//! them into one `#[test]` each; [`model`] is the property test of random operations on three
//! tasks, and [`ModelStore`] the in-memory store both are first run on.
//!
//! Every expectation is computed from what the check wrote, kept in plain lists, never from
//! another store's answer. Entry ids are compared by reading back, never by value: each
//! backend has its own scheme (PostgreSQL a sequence, the data directory a file offset).
//!
//! Conventions the checks hold every store to, where the trait leaves a choice open:
//!
//! - A query's page holds its entries in the order the [`Query`](crate::Query) asks (newest
//!   first with `newest_first`, as [`JsonlReader::query`](crate::JsonlReader::query) answers),
//!   `next_skip` is `offset` plus what it holds, and `more` says whether further matches
//!   follow.
//! - A log line's bytes ([`FileCounts::log_bytes`](crate::FileCounts::log_bytes), [`Retention::max_bytes`](crate::Retention::max_bytes)) are the record
//!   as `serde_json` writes it plus its newline, for entries appended without a key (a keyed
//!   line may carry the key).
//! - An entry older than [`Retention::max_age`](crate::Retention::max_age) is one whose
//!   timestamp is more than `max_age` before `now`: one exactly `max_age` old stays. Retention
//!   deletes the oldest entries (a prefix of the log, as both backends cut it): an old entry
//!   after a younger one stays. The checks and the model append in time order, where every
//!   reading agrees.
//!
//! A single check runs like this:
//!
//! ```
//! use std::sync::Arc;
//! use oc_jsonl::testkit::{self, ModelStore};
//! let store = Arc::new(ModelStore::new());
//! testkit::check_appends_read_back(&*store, &store.corrupter());
//! ```

// A test kit reports a broken rule by panicking, so unwrapping is the point here.
#![allow(clippy::unwrap_used, clippy::panic)]

use oc_time::Timestamp;
use serde_json::Value;

use crate::{Append, Decision, EntryId, Level, LogEntry, Page, TaskFileStore};

mod checks;
mod concurrent;
mod memory;
pub mod model;

pub use checks::*;
pub use concurrent::*;
pub use memory::ModelStore;

/// Flips one byte of a checkpoint's stored file: `(task, checkpoint id, file name)`, the file
/// being one of `state.json`, `logs.jsonl` and `decisions.jsonl` that the checkpoint holds.
pub type Corrupter = Box<dyn Fn(&str, &str, &str) + Send + Sync>;

/// The time the suite's entries start at: 2026-02-19T10:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_771_495_200_000);

/// Generates one `#[test]` per conformance check for the store built by `$make`, a closure
/// returning a fresh, empty `(Arc<dyn TaskFileStore>, Corrupter)` each time it is called.
///
/// ```
/// mod model_store {
///     use std::sync::Arc;
///     use oc_jsonl::{TaskFileStore, testkit::ModelStore};
///     oc_jsonl::file_store_conformance_tests!(|| {
///         let s = Arc::new(ModelStore::new());
///         let c = s.corrupter();
///         (s as Arc<dyn TaskFileStore>, c)
///     });
/// }
/// ```
#[macro_export]
macro_rules! file_store_conformance_tests {
    ($make:expr) => {
        $crate::file_store_conformance_tests!(@each $make;
            check_appends_read_back, check_tails_and_pages, check_reads_by_id, check_queries,
            check_limits_refused, check_invalid_ids, check_idempotency_keys, check_analyze,
            check_decisions_by_agent, check_state, check_checkpoints_listed_and_restored,
            check_corrupt_checkpoint_refused, check_checkpoint_not_found, check_checkpoints_pruned,
            check_keyed_checkpoints,
            check_read_after, check_wait_returns_by_timeout, check_ship_cursors,
            check_retain_entries, check_retain_bytes, check_retain_age, check_counts_and_volume,
            check_tasks_listed, check_overview, check_concurrent_appends, check_replacements_under_appends, check_key_race, check_checkpoints_under_appends,
            check_linearizable_singles, check_linearizable);
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let make = $make;
            let (store, corrupt) = make();
            $crate::testkit::$check(&*store, &corrupt);
        }
    )*};
}

/// [`START`] plus `secs` seconds.
pub fn at_secs(secs: u64) -> Timestamp {
    Timestamp::from_millis(
        START
            .as_millis()
            .saturating_add((secs as i64).saturating_mul(1000)),
    )
}

/// The entry the suite appends as number `i` of `task`: its level cycles through every level,
/// its timestamp is `i` seconds after [`START`], and its data holds `i`, `i % 3` and parity.
pub fn entry(task: &str, i: u64) -> LogEntry {
    let level = Level::ALL[(i % 5) as usize];
    LogEntry::new(at_secs(i), level, task, format!("step {i} of {task}"))
        .with("i", i)
        .with("k", i % 3)
        .with("even", i.is_multiple_of(2))
}

/// The decision the suite appends as number `i`, by agent `a{i % 3}`.
pub fn decision(i: u64) -> Decision {
    let mut metadata = serde_json::Map::new();
    metadata.insert("i".into(), Value::from(i));
    Decision {
        timestamp: at_secs(i),
        agent: format!("a{}", i % 3),
        decision: format!("decision {i}"),
        reasoning: format!("because {i}"),
        metadata,
    }
}

/// The bytes of `entry`'s line: its JSON and a newline.
pub fn line_bytes<T: serde::Serialize>(record: &T) -> u64 {
    serde_json::to_vec(record).map_or(0, |v| v.len() as u64 + 1)
}

/// Appends `entries` one by one, durably; returns each one's id.
pub fn append_each(store: &dyn TaskFileStore, task: &str, entries: &[LogEntry]) -> Vec<EntryId> {
    entries
        .iter()
        .map(|e| {
            let a = store
                .append_logs(task, std::slice::from_ref(e), &Append::durable())
                .unwrap_or_else(|err| panic!("appending to {task}: {err}"));
            assert_eq!(
                (a.count, a.duplicate),
                (1, false),
                "one entry appended without a key: {a:?}"
            );
            a.first
        })
        .collect()
}

/// Every log entry of `task`, oldest first, read with `log_tail` pages of 7.
pub fn whole_log(store: &dyn TaskFileStore, task: &str) -> Vec<crate::Stored<LogEntry>> {
    let mut pages = Vec::new();
    let mut skip = 0usize;
    for _ in 0..1_000_000 {
        let p = store
            .log_tail(task, skip, 7)
            .unwrap_or_else(|e| panic!("log_tail({task}, {skip}, 7): {e}"));
        let got = p.entries.len();
        assert_eq!(
            p.next_skip,
            (skip + got) as u64,
            "log_tail({task}, {skip}, 7): next_skip is skip plus the entries returned"
        );
        pages.push(p.entries);
        if !p.more {
            break;
        }
        assert!(
            got > 0,
            "log_tail({task}, {skip}, 7): more set on an empty page"
        );
        skip += got;
    }
    pages.into_iter().rev().flatten().collect()
}

/// Every decision of `task` (by `agent` if given), oldest first, following `next_skip`.
pub fn whole_decisions(
    store: &dyn TaskFileStore,
    task: &str,
    agent: Option<&str>,
    n: usize,
) -> Vec<crate::Stored<Decision>> {
    let mut pages = Vec::new();
    let mut skip = 0usize;
    for _ in 0..1_000_000 {
        let p: Page<Decision> = store
            .decisions(task, agent, skip, n)
            .unwrap_or_else(|e| panic!("decisions({task}, {agent:?}, {skip}, {n}): {e}"));
        assert!(
            p.entries.len() <= n,
            "decisions({task}, {agent:?}, {skip}, {n}) returned {} entries",
            p.entries.len()
        );
        assert!(
            p.entries
                .iter()
                .all(|d| agent.is_none_or(|a| d.record.agent == a)),
            "decisions({task}, {agent:?}, ..) returned another agent's decision"
        );
        let more = p.more;
        let next = p.next_skip as usize;
        pages.push(p.entries);
        if !more {
            break;
        }
        assert!(
            next > skip,
            "decisions({task}, {agent:?}, {skip}, {n}): more set but next_skip {next} does not move on"
        );
        skip = next;
    }
    pages.into_iter().rev().flatten().collect()
}

/// The records of `stored`.
pub fn records<T: Clone>(stored: &[crate::Stored<T>]) -> Vec<T> {
    stored.iter().map(|s| s.record.clone()).collect()
}

/// Asserts that `stored`'s ids strictly increase.
pub fn assert_ids_increase<T>(what: &str, stored: &[crate::Stored<T>]) {
    for w in stored.windows(2) {
        assert!(
            w[0].id < w[1].id,
            "{what}: ids must increase in stream order ({} then {})",
            w[0].id,
            w[1].id
        );
    }
}
