//! The conformance suite against both backends.

mod memory {
    use std::sync::Arc;

    use oc_tasks::{MemoryTaskStore, TaskStore};

    oc_tasks::conformance_tests!(|clock| {
        Arc::new(MemoryTaskStore::with_clock(Arc::new(clock))) as Arc<dyn TaskStore>
    });
}

mod sqlite {
    use std::sync::Arc;

    use oc_tasks::{SqliteTaskStore, TaskStore};

    oc_tasks::conformance_tests!(|clock| {
        // The directory must outlive the store; leaking it keeps each test's file alive
        // until the process ends, and the OS temp dir is cleaned up by the runner's sandbox.
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let store = SqliteTaskStore::options()
            .clock(Arc::new(clock))
            .open(dir.join("opencode.db"))
            .expect("open store");
        Arc::new(store) as Arc<dyn TaskStore>
    });
}
