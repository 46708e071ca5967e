//! What existing databases recorded keeps working: a schema made by an earlier release opens
//! with this code as it is.

use std::time::Duration;

use oc_locks::LockManager;
use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
use oc_tasks::{TaskFilter, TaskStore};

use crate::server::server;

/// The schema's recorded versions and the transaction that last wrote each of its tables,
/// functions and version rows: any migration, even one that only replaces a function with the
/// same text, changes it.
const FINGERPRINT: &str = "SELECT string_agg(x, ',' ORDER BY x) FROM (
        SELECT component || '=' || version || '@' || xmin::text AS x FROM oc.oc_schema
        UNION ALL SELECT proname || '@' || xmin::text FROM pg_proc
                  WHERE pronamespace = 'oc'::regnamespace
        UNION ALL SELECT relname || '@' || xmin::text FROM pg_class
                  WHERE relnamespace = 'oc'::regnamespace) f";

/// A schema made by the code before oc-postgres was split by concept (tasks 4, locks 2), kept
/// as a `pg_dump` fixture (one pending task, one lock), opens with only the migrations added
/// since (the idempotency keys: tasks 5, locks 3), keeping what it holds; opened again at the
/// latest versions, nothing is left to do: no migration runs, no function is replaced.
#[test]
fn a_schema_at_the_latest_versions_opens_with_nothing_to_do() {
    let Some(pg) = server() else { return };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    pg.psql("postgres", "CREATE DATABASE latest").unwrap();
    pg.psql_file("latest", &fixtures.join("schema-tasks4-locks2.sql"))
        .unwrap();
    let before = pg.psql("latest", FINGERPRINT).unwrap();
    assert!(
        before.contains("oc-tasks=4@") && before.contains("oc-locks=2@"),
        "{before}"
    );
    let opts = PgOptions::new(&pg.url("latest"))
        .unwrap()
        .schema("oc")
        .unwrap();
    drop(PgTaskStore::connect(opts.clone()).unwrap());
    drop(PgLockManager::connect(PgLockOptions::new(opts.clone())).unwrap());
    let before = pg.psql("latest", FINGERPRINT).unwrap();
    assert!(
        before.contains("oc-tasks=5@") && before.contains("oc-locks=3@"),
        "{before}"
    );
    let store = PgTaskStore::connect(opts.clone()).unwrap();
    let locks = PgLockManager::connect(PgLockOptions::new(opts)).unwrap();
    assert_eq!(
        pg.psql("latest", FINGERPRINT).unwrap(),
        before,
        "nothing migrated"
    );
    assert_eq!(store.count(&TaskFilter::new()).unwrap(), 1);
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    let task = store
        .claim_next("agent-2", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!(task.name, "build");
    assert_eq!(
        pg.psql("latest", "SELECT owner FROM oc.locks")
            .unwrap()
            .trim(),
        "agent-1",
        "the lock is kept"
    );
    let lock = locks
        .acquire(
            &oc_locks::LockRequest::exclusive("repo/docs", "agent-2").unwrap(),
            Duration::ZERO,
        )
        .unwrap();
    assert!(lock.token > 1, "tokens go on from the recorded counter");
    locks.release(&lock.resource, &lock.owner).unwrap();
}
