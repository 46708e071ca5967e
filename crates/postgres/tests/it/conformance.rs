//! The task store's conformance suite, unchanged, against PostgreSQL.

use std::sync::Arc;

use oc_tasks::{MemoryTaskStore, TaskStore};

use crate::server::{server, task_store};

oc_tasks::conformance_tests!(|clock| {
    match server() {
        Some(pg) => Arc::new(task_store(pg, clock)) as Arc<dyn TaskStore>,
        None => {
            eprintln!("skipped: no PostgreSQL (the memory store stands in)");
            Arc::new(MemoryTaskStore::with_clock(Arc::new(clock))) as Arc<dyn TaskStore>
        }
    }
});
