//! The task store's model-based property test against PostgreSQL.

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
