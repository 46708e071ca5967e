//! Batches on PostgreSQL: several `BatchWorker`s, each on a store of its own in one schema,
//! run every task once.

use std::sync::Arc;

use oc_postgres::PgTaskStore;
use oc_tasks::{TaskStore, testkit};

use crate::server::{fresh_options, server};

/// Four workers, each with its own `PgTaskStore` (its own pool) on one schema, run 400 tasks.
#[test]
fn workers_on_one_schema_run_each_task_once() {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let opts = fresh_options(pg);
    testkit::check_batch_workers(
        &|| Arc::new(PgTaskStore::connect(opts.clone()).unwrap()) as Arc<dyn TaskStore>,
        4,
        400,
    );
}
