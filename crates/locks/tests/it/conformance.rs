//! The conformance suite against both managers.

mod memory {
    use std::sync::Arc;

    use oc_locks::{LockManager, MemoryLockManager, TtlPolicy};

    oc_locks::lock_conformance_tests!(
        |clock| Arc::new(MemoryLockManager::with(
            Arc::new(clock),
            TtlPolicy::default()
        )) as Arc<dyn LockManager>,
        8,
        1000
    );
}

mod sqlite {
    use std::sync::Arc;

    use oc_locks::{LockManager, SqliteLockManager};

    oc_locks::lock_conformance_tests!(
        |clock| {
            // Kept until the process ends: the manager outlives this closure.
            let dir = tempfile::tempdir().unwrap().keep();
            Arc::new(
                SqliteLockManager::options()
                    .clock(Arc::new(clock))
                    .open(dir.join("opencode.db"))
                    .unwrap(),
            ) as Arc<dyn LockManager>
        },
        4,
        100
    );

    #[test]
    fn check_late_grants_refused() {
        let dir = tempfile::tempdir().unwrap();
        oc_locks::testkit::check_late_grants_refused(&|clock| {
            Arc::new(
                SqliteLockManager::options()
                    .clock(clock)
                    .open(dir.path().join("late.db"))
                    .unwrap(),
            )
        });
    }
}
