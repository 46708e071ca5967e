//! Property test: the managers against the model of `oc_locks::testkit::model`.

use std::sync::Arc;

use oc_locks::testkit::model::{ops, run};
use oc_locks::{ManualClock, MemoryLockManager, SqliteLockManager, Timestamp, TtlPolicy};
use proptest::prelude::*;

fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_000_000))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_manager_agrees_with_model(ops in ops()) {
        let c = clock();
        let m = MemoryLockManager::with(Arc::new(c.clone()), TtlPolicy::default());
        run(&m, &c, &ops);
    }

    #[test]
    fn sqlite_manager_agrees_with_model(ops in ops()) {
        let c = clock();
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteLockManager::options().clock(Arc::new(c.clone())).open(dir.path().join("l.db")).unwrap();
        run(&m, &c, &ops);
    }
}
