//! The model-based property tests of the task store and the lock manager against PostgreSQL.

use oc_tasks::testkit::model::{ops, run};
use oc_tasks::{ManualClock, Timestamp};
use proptest::prelude::*;

use crate::server::{server, task_store};

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn postgres_store_agrees_with_model(ops in ops()) {
        let Some(pg) = server() else { return Ok(()) };
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        run(&task_store(pg, clock.clone()), &clock, &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn postgres_manager_agrees_with_lock_model(ops in oc_locks::testkit::model::ops()) {
        let Some(pg) = server() else { return Ok(()) };
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        oc_locks::testkit::model::run(&crate::server::lock_manager(pg, clock.clone()), &clock, &ops);
    }
}
