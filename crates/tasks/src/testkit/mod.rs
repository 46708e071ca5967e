//! The conformance suite every [`TaskStore`] must pass (feature `testkit`).
//!
//! Each `check_*` function takes a factory that builds an empty store on the given
//! [`ManualClock`], and panics with a message naming the broken rule.
//! [`conformance_tests!`](crate::conformance_tests) turns them into one `#[test]` each
//! (`oc_tasks::conformance_tests!(|clock| ...)` in a test module); a single check runs like this:
//!
//! ```
//! use std::sync::Arc;
//! use oc_tasks::{MemoryTaskStore, TaskStore, testkit};
//! testkit::check_claims_and_leases(&|clock| {
//!     Arc::new(MemoryTaskStore::with_clock(Arc::new(clock))) as Arc<dyn TaskStore>
//! });
//! ```

// A test kit reports a broken rule by panicking, so unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crate::{ManualClock, NewTask, Task, TaskId, TaskStore, Timestamp};

mod batch;
mod changes;
mod claims;
mod graph;
pub mod history;
mod keys;
pub mod model;
mod reads;
mod retention;
mod wait;

pub use batch::*;
pub use changes::*;
pub use claims::*;
pub use graph::*;
pub use keys::*;
pub use reads::*;
pub use retention::*;
pub use wait::*;

/// Builds an empty store on the given clock.
pub type Factory<'a> = &'a dyn Fn(ManualClock) -> Arc<dyn TaskStore>;

/// The time the suite's clocks start at: 2026-02-19T10:00:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_771_495_200_000);

const LEASE: Duration = Duration::from_secs(30);

fn setup(make: Factory<'_>) -> (Arc<dyn TaskStore>, ManualClock) {
    let clock = ManualClock::new(START);
    (make(clock.clone()), clock)
}

fn id(s: &str) -> TaskId {
    TaskId::new(s).expect("suite ids are valid")
}

fn new(s: &str) -> NewTask {
    NewTask::new(format!("task {s}")).id(id(s))
}

fn token(t: &Task) -> u64 {
    t.lease.expect("a claimed task has a lease").token
}

/// Generates one `#[test]` per conformance check for the store built by `$make`,
/// a closure from [`ManualClock`](crate::ManualClock) to `Arc<dyn TaskStore>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            check_create_and_get, check_rejects_bad_input, check_duplicates_and_batches,
            check_state_machine, check_updates_keep_untouched_fields, check_version_check_and_set,
            check_claims_and_leases, check_reaping, check_queries, check_stats, check_run_durations,
            check_history, check_release, check_delete,
            check_claim_race, check_claim_next_race,
            check_dependencies_gate_claims, check_dependency_edits, check_batch_graph,
            check_parents_and_deletes, check_labels_route_claims, check_scheduling_and_backoff,
            check_unique_keys, check_claim_many, check_graph_rejects_bad_input, check_counts,
            check_ready_claim_race, check_unique_key_race, check_linearizable,
            check_wait_wakes_on_create, check_wait_deadline, check_wait_cancel_takes_nothing,
            check_idempotent_retries, check_idempotency_keys_lapse, check_idempotent_claim_race,
            check_idempotent_give_back,
            check_prune_finished, check_prune_archives, check_batch_finishes);
    };
    (@each $make:expr; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let make = $make;
            $crate::testkit::$check(&make);
        }
    )*};
}
