//! The thread evidence at full size on the in-memory manager.

use std::sync::Arc;

use oc_locks::{LockManager, MemoryLockManager, SystemClock, TtlPolicy, testkit};

#[test]
fn eight_threads_hundred_thousand_increments() {
    testkit::check_mutual_exclusion(
        &|_clock| {
            Arc::new(MemoryLockManager::with(
                Arc::new(SystemClock),
                TtlPolicy::default(),
            )) as Arc<dyn LockManager>
        },
        8,
        12_500,
    );
}
