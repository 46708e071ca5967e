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

/// A schema at tasks 4, locks 2, made by the code before oc-postgres was split by concept and
/// kept as a `pg_dump` fixture (one pending task, one lock), opens with only what the
/// migrations since add (tasks 5, the ready notification; tasks 6 and locks 3, the idempotency
/// keys; tasks 7, the token sequence, the tallies and `task_finish`, which replace the counter
/// rows of `tasks_meta`; tasks 8, the archive; tasks 9, the leaner transitions; locks 4, the keys
/// per path, sequences and rows of changes of decision 0048, which replaces the lock functions
/// and nothing else; locks 5, the functions of decision 0053 and `lock_removed`) and keeping what
/// it holds; then, at the latest versions this code knows, it opens with nothing to do: no
/// migration runs, no function is replaced.
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
    let upgraded = pg.psql("latest", FINGERPRINT).unwrap();
    assert!(
        upgraded.contains("oc-tasks=9@") && upgraded.contains("oc-locks=5@"),
        "{upgraded}"
    );
    let items = |f: &str| -> Vec<String> { f.trim().split(',').map(str::to_owned).collect() };
    let (was, now) = (items(&before), items(&upgraded));
    let versions = |x: &&String| x.starts_with("oc-tasks=") || x.starts_with("oc-locks=");
    // The functions locks 4 replaces (decision 0048).
    let replaced = |x: &&String| {
        [
            "lock_ancestors@",
            "lock_acquire@",
            "lock_enqueue@",
            "lock_abandon@",
            "lock_own@",
            "lock_release_owner@",
            "lock_sweep@",
            "tasks_meta",
            // Tasks 9 (decision 0052): the per-row count trigger goes, the insert trigger's
            // function also notifies, two indexes leave the finished tasks out.
            "task_counts_moved@",
            "task_counts_added@",
            "tasks_ready@",
            "tasks_owner@",
        ]
        .iter()
        .any(|f| x.starts_with(f))
    };
    for x in was.iter().filter(|x| !versions(x) && !replaced(x)) {
        assert!(now.contains(x), "{x} kept as it was: {upgraded}");
    }
    let added: Vec<&String> = now
        .iter()
        .filter(|x| !was.contains(x) && !versions(x) && !replaced(x))
        .collect();
    let new = [
        "task_ready_notify@",
        "task_keys",
        "task_archive",
        "task_tokens@",
        "task_tallies@",
        "task_tally_run@",
        "task_finish@",
        "task_counts_added@",
        "tasks_ready@",
        "tasks_owner@",
        "lock_keys",
        "lock_counts@",
        "lock_tokens@",
        "lock_tickets@",
        "lock_serialize@",
        "lock_time@",
        "lock_removed@",
        "lock_waiters_expiry@",
    ];
    assert!(
        added.iter().any(|x| x.starts_with("task_ready_notify@"))
            && added.iter().all(|x| new.iter().any(|n| x.starts_with(n))),
        "only the notification's function, the keys' and archive's tables, tasks 7's and what locks 4 and 5 add are new: {added:?}"
    );
    let store = PgTaskStore::connect(opts.clone()).unwrap();
    let locks = PgLockManager::connect(PgLockOptions::new(opts)).unwrap();
    assert_eq!(
        pg.psql("latest", FINGERPRINT).unwrap(),
        upgraded,
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
    assert_eq!(
        pg.psql("latest", "SELECT count(*) FROM oc.lock_meta")
            .unwrap()
            .trim(),
        "0",
        "the counter rows are gone, so no call of the old functions can hand a token out again"
    );
    let stats = locks.stats().unwrap();
    assert!(
        stats.total_locks >= 2,
        "the recorded counters carried over: {stats:?}"
    );
}
