//! Property test: random operation sequences against the model of `oc_tasks::testkit::model`.

use std::sync::Arc;

use oc_tasks::testkit::model::{ops, run};
use oc_tasks::{ManualClock, MemoryTaskStore, SqliteTaskStore, Timestamp};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_agrees_with_model(ops in ops()) {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let store = MemoryTaskStore::with_clock(Arc::new(clock.clone()));
        run(&store, &clock, &ops);
    }

    #[test]
    fn sqlite_store_agrees_with_model(ops in ops()) {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteTaskStore::options().clock(Arc::new(clock.clone())).open(dir.path().join("t.db")).unwrap();
        run(&store, &clock, &ops);
    }
}
