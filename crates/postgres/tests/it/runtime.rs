//! Every operation works when called from inside a tokio runtime, as most Rust agents run on
//! one (the `postgres` crate's blocking client panics there).

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::{NewTask, TaskFilter, TaskQuery, TaskStore};

use crate::server::{fresh_options, server};

#[test]
fn every_task_operation_works_inside_a_multi_thread_runtime() {
    let Some(pg) = server() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let opts = fresh_options(pg);
    rt.block_on(async move {
        // Connecting (and migrating) from a runtime worker too.
        let store = Arc::new(oc_postgres::PgTaskStore::connect(opts).unwrap());
        let mut joins = Vec::new();
        for i in 0..4 {
            let store = store.clone();
            joins.push(tokio::spawn(async move {
                let t = store.create(NewTask::new(format!("t{i}"))).unwrap();
                assert_eq!(store.get(&t.id).unwrap().unwrap().name, format!("t{i}"));
                let c = store
                    .claim_next(&format!("agent-{i}"), Duration::from_secs(30))
                    .unwrap()
                    .expect("a pending task");
                let token = c.lease.unwrap().token;
                store
                    .heartbeat(&c.id, token, Duration::from_secs(30))
                    .unwrap();
                store.complete(&c.id, Some(token), None).unwrap();
                token
            }));
        }
        let mut tokens = Vec::new();
        for j in joins {
            tokens.push(j.await.unwrap());
        }
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), 4, "distinct tokens");
        let extra = store.create(NewTask::new("x")).unwrap();
        store.cancel(&extra.id).unwrap();
        store.retry(&extra.id).unwrap();
        store.delete(&extra.id, None).unwrap();
        assert_eq!(store.count(&TaskFilter::new()).unwrap(), 4);
        assert_eq!(store.list(&TaskQuery::default()).unwrap().tasks.len(), 4);
        assert!(store.reap_expired(store.now()).unwrap().is_empty());
        assert_eq!(store.stats(2).unwrap().runs.count(), 4);
    });
}

#[test]
fn hosts_starting_together_migrate_once() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let stores: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let opts = opts.clone();
                s.spawn(move || oc_postgres::PgTaskStore::connect(opts))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(stores.iter().all(Result::is_ok), "every opener succeeded");
    let version = pg
        .psql(
            "postgres",
            &format!(
                "SELECT version FROM {}.oc_schema WHERE component = 'oc-tasks'",
                opts.schema_name()
            ),
        )
        .unwrap();
    assert_eq!(version.trim(), "9");
}

#[test]
fn every_lock_operation_works_inside_a_multi_thread_runtime() {
    use oc_locks::{LockManager, LockRequest, Owner, Resource};
    let Some(pg) = server() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let opts = oc_postgres::PgLockOptions::new(fresh_options(pg));
    rt.block_on(async move {
        let locks = Arc::new(oc_postgres::PgLockManager::connect(opts).unwrap());
        let a = locks
            .try_acquire(&LockRequest::exclusive("repo/src", "a").unwrap())
            .unwrap();
        // A waiter on a runtime worker, freed by a release from another task.
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                tokio::task::block_in_place(|| {
                    locks.acquire(
                        &LockRequest::exclusive("repo/src/lib.rs", "b").unwrap(),
                        Duration::from_secs(20),
                    )
                })
            })
        };
        // The waiter is queued (a row of its own) before the holder lets go.
        while locks.stats().unwrap().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(locks.holders(&a.resource).unwrap().len(), 1);
        locks
            .renew(&a.resource, &a.owner, Some(Duration::from_secs(60)))
            .unwrap();
        locks.release(&a.resource, &a.owner).unwrap();
        let b = waiter.await.unwrap().unwrap();
        assert!(b.token > a.token);
        let many = locks
            .acquire_many(
                &[
                    LockRequest::shared("docs/a", "c").unwrap(),
                    LockRequest::shared("docs/b", "c").unwrap(),
                ],
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(locks.list().unwrap().len(), 3);
        assert_eq!(
            locks
                .release_owner(&Owner::new("c").unwrap())
                .unwrap()
                .len(),
            2
        );
        assert!(locks.sweep_expired().unwrap().is_empty());
        assert_eq!(locks.stats().unwrap().active_locks, 1);
        locks
            .release(&Resource::new("repo/src/lib.rs").unwrap(), &b.owner)
            .unwrap();
        assert!(locks.now().as_millis() > 0);
    });
}

/// Hierarchical overlap is answered by index lookups, not scans: the plan of the holders
/// query on 100,000 holds uses the `resource` index for all three arms.
#[test]
fn overlap_uses_the_index_on_a_hundred_thousand_holds() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    oc_postgres::PgLockManager::connect(oc_postgres::PgLockOptions::new(opts)).unwrap();
    let fill = format!(
        "INSERT INTO {schema}.locks (resource, owner, mode, token, holds, acquired_at, expires_at)
         SELECT 'repo/d' || (i % 1000) || '/f' || i, 'o' || i, 'shared', i, 1, 0, 9999999999999
         FROM generate_series(1, 100000) AS i;
         ANALYZE {schema}.locks;"
    );
    pg.psql("postgres", &fill).unwrap();
    let plan = pg
        .psql(
            "postgres",
            &format!(
                "EXPLAIN SELECT * FROM {schema}.locks l,
                    (SELECT 'repo/d7/f7'::text AS r, {schema}.lock_ancestors('repo/d7/f7') AS a) q
                 WHERE l.expires_at > 0 AND (l.resource = q.r OR l.resource = ANY(q.a)
                    OR (l.resource >= (q.r || '/') COLLATE \"C\"
                        AND l.resource < (q.r || '0') COLLATE \"C\"))"
            ),
        )
        .unwrap();
    assert!(!plan.contains("Seq Scan on locks"), "{plan}");
    assert!(plan.contains("Index"), "{plan}");
}

/// Waiting is first come, first served across managers (hosts): a later waiter never
/// overtakes an earlier one it conflicts with, whichever handle each came through.
#[test]
fn waiters_of_different_managers_are_served_in_arrival_order() {
    use oc_locks::{LockManager, LockRequest};
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let handle = || {
        Arc::new(
            oc_postgres::PgLockManager::connect(oc_postgres::PgLockOptions::new(opts.clone()))
                .unwrap(),
        )
    };
    let (a, b, c) = (handle(), handle(), handle());
    let held = a
        .try_acquire(&LockRequest::exclusive("repo/src", "a").unwrap())
        .unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        let wait = |m: Arc<oc_postgres::PgLockManager>, who: &'static str| {
            let order = order.clone();
            move || {
                let l = m
                    .acquire(
                        &LockRequest::exclusive("repo/src/main.rs", who).unwrap(),
                        Duration::from_secs(30),
                    )
                    .unwrap();
                order.lock().unwrap().push(who);
                m.release(&l.resource, &l.owner).unwrap();
            }
        };
        s.spawn(wait(b.clone(), "b"));
        while a.stats().unwrap().waiting < 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        s.spawn(wait(c.clone(), "c"));
        while a.stats().unwrap().waiting < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        a.release(&held.resource, &held.owner).unwrap();
    });
    assert_eq!(*order.lock().unwrap(), ["b", "c"]);
}

/// A release on one host wakes a waiter on another at once, by `NOTIFY`: with polling made
/// rare (up to 30 s apart), the waiter still gets the lock within a second of the release.
#[test]
fn a_release_wakes_a_waiter_of_another_manager_by_notification() {
    use oc_locks::{LockManager, LockRequest};
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let holder =
        oc_postgres::PgLockManager::connect(oc_postgres::PgLockOptions::new(opts.clone())).unwrap();
    let waiter = oc_postgres::PgLockManager::connect(
        oc_postgres::PgLockOptions::new(opts).max_poll(Duration::from_secs(30)),
    )
    .unwrap();
    let held = holder
        .try_acquire(&LockRequest::exclusive("repo", "a").unwrap())
        .unwrap();
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            waiter
                .acquire(
                    &LockRequest::exclusive("repo/x", "b").unwrap(),
                    Duration::from_secs(60),
                )
                .map(|_| std::time::Instant::now())
        });
        while holder.stats().unwrap().waiting == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Long enough for the waiter's backoff to reach seconds between looks.
        std::thread::sleep(Duration::from_secs(5));
        let released = std::time::Instant::now();
        holder.release(&held.resource, &held.owner).unwrap();
        let granted = w.join().unwrap().unwrap();
        let took = granted - released;
        assert!(took < Duration::from_millis(1500), "woken after {took:?}");
    });
}

/// Calls slower than the threshold are counted, and `check` finds a token counter that fell
/// below a token in use.
#[test]
fn slow_calls_are_counted_and_check_finds_a_counter_behind_its_tokens() {
    use oc_tasks::{NewTask, StorageSource, TaskStore};
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg).slow_threshold(Duration::ZERO);
    let schema = opts.schema_name().to_owned();
    let store = oc_postgres::PgTaskStore::connect(opts).unwrap();
    store.create(NewTask::new("x")).unwrap();
    store
        .claim_next("a", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    let st = store.storage_stats().unwrap();
    assert!(st.slow_statements >= 2, "{st:?}");
    assert!(st.recent_slow.iter().any(|s| s.sql == "claim_next"));
    assert!(st.database_bytes() > 0);
    assert!(store.integrity_check().unwrap().is_empty());
    pg.psql(
        "postgres",
        &format!("SELECT setval('{schema}.task_tokens', 1, false)"),
    )
    .unwrap();
    let problems = store.integrity_check().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
}

/// The counts by status are kept as rows of changes (insertions and deletions by another
/// client count too, through the statement triggers; a status moved by another client counts
/// when it appends its rows of changes, as the store's statements do since tasks migration 9),
/// stay right when a reader folds them, and `check` finds a miscount.
#[test]
fn counts_by_status_are_kept_folded_and_checked() {
    use oc_tasks::TaskStatus;
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let store = oc_postgres::PgTaskStore::connect(opts).unwrap();
    store
        .create_many((0..5).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    pg.psql(
        "postgres",
        &format!(
            "UPDATE {schema}.tasks SET status = 'cancelled'
             WHERE id IN (SELECT id FROM {schema}.tasks ORDER BY id LIMIT 2);
             INSERT INTO {schema}.task_counts (status, delta)
                 VALUES ('pending', -2), ('cancelled', 2);
             DELETE FROM {schema}.tasks WHERE id = (SELECT max(id) FROM {schema}.tasks);
             INSERT INTO {schema}.task_counts (status, delta)
                 SELECT 'running', 0 FROM generate_series(1, 2000);"
        ),
    )
    .unwrap();
    let rows = || -> i64 {
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM {schema}.task_counts"),
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    };
    assert!(rows() > 2000);
    let counts = store.counts(100).unwrap();
    assert_eq!(
        (
            counts.count(TaskStatus::Pending),
            counts.count(TaskStatus::Cancelled),
            counts.total()
        ),
        (2, 2, 4)
    );
    assert!(rows() <= 2, "folded into one row per status: {}", rows());
    assert_eq!(
        store.counts(100).unwrap(),
        counts,
        "folding changed nothing"
    );
    assert!(store.integrity_check().unwrap().is_empty());
    pg.psql(
        "postgres",
        &format!("INSERT INTO {schema}.task_counts (status, delta) VALUES ('pending', 5)"),
    )
    .unwrap();
    assert_eq!(
        store.integrity_check().unwrap(),
        ["tasks by status miscounted: pending is 7, the tasks say 2"]
    );
}

/// A store folds the rows of changes itself every few thousand calls, so they stay few even
/// when nobody reads the counts.
#[test]
fn a_store_folds_the_counts_rows_when_nobody_reads_them() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let store = oc_postgres::PgTaskStore::connect(opts).unwrap();
    pg.psql(
        "postgres",
        &format!(
            "INSERT INTO {schema}.task_counts (status, delta)
                 SELECT 'pending', 0 FROM generate_series(1, 2000)"
        ),
    )
    .unwrap();
    let rows = || -> i64 {
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM {schema}.task_counts"),
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    };
    let missing = oc_tasks::TaskId::new("missing").unwrap();
    // Calls that read no count: only the store's own cadence folds.
    for _ in 0..4_096 {
        assert!(store.get(&missing).unwrap().is_none());
    }
    assert_eq!(rows(), 0, "the changes that sum to nothing are folded away");
}

/// The transitions whose history rows SQL writes (a batch's creations, a claim) are reported
/// to `tracing` like the others, with the token the statement handed out.
#[test]
fn transitions_are_traced_like_on_every_backend() {
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let Some(pg) = server() else { return };
    let store = oc_postgres::PgTaskStore::connect(fresh_options(pg)).unwrap();
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        store.create(NewTask::new("x")).unwrap();
        let t = store
            .claim_next("agent-7", Duration::from_secs(30))
            .unwrap()
            .unwrap();
        store
            .complete(&t.id, t.lease.map(|l| l.token), None)
            .unwrap();
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for want in [
        "task created",
        "task claimed",
        "actor=\"agent-7\" token=1",
        "task completed",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
}
