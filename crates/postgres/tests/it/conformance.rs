//! The conformance suites of the task store and the lock manager, unchanged, against
//! PostgreSQL.

mod tasks {
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
}

mod locks {
    use std::sync::Arc;

    use oc_locks::{LockManager, MemoryLockManager, TtlPolicy};

    use crate::server::{lock_manager, server};

    fn make(clock: oc_locks::ManualClock) -> Arc<dyn LockManager> {
        match server() {
            Some(pg) => Arc::new(lock_manager(pg, clock)),
            None => {
                eprintln!("skipped: no PostgreSQL (the memory manager stands in)");
                Arc::new(MemoryLockManager::with(
                    Arc::new(clock),
                    TtlPolicy::default(),
                ))
            }
        }
    }

    oc_locks::lock_conformance_tests!(make, 4, 100);

    #[test]
    fn check_late_grants_refused() {
        let Some(pg) = server() else {
            eprintln!("skipped: no PostgreSQL");
            return;
        };
        oc_locks::testkit::check_late_grants_refused(&|clock| {
            let opts = crate::server::fresh_options(pg).clock(clock);
            Arc::new(
                oc_postgres::PgLockManager::connect(oc_postgres::PgLockOptions::new(opts)).unwrap(),
            )
        });
    }
}
