//! The conformance suites of the task store, the lock manager and the task-file store,
//! unchanged, against PostgreSQL.

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

    /// A request that reaches the manager with an older time than one it already served (it
    /// read its clock, then waited for the manager's row) acts at the later time: it cannot
    /// see as live a lock the other already took as lapsed (migration 2, `lock_clock`).
    #[test]
    fn the_managers_time_never_goes_back() {
        use std::time::Duration;

        use oc_locks::testkit::START;
        use oc_locks::{Error, LockRequest, ManualClock, Owner, Resource};

        let Some(pg) = server() else {
            eprintln!("skipped: no PostgreSQL");
            return;
        };
        let clock = ManualClock::new(START);
        let m = lock_manager(pg, clock.clone());
        let ex = |r: &str, o: &str, secs| {
            LockRequest::exclusive(r, o)
                .unwrap()
                .ttl(Duration::from_secs(secs))
        };
        m.try_acquire(&ex("repo/src", "a", 1)).unwrap();
        clock.advance(Duration::from_secs(2));
        // a's lock lapsed: b takes the directory above it.
        m.try_acquire(&ex("repo", "b", 60)).unwrap();
        // a's renewal arrives stamped before that.
        clock.set(START.saturating_add(Duration::from_millis(500)));
        let e = m
            .renew(
                &Resource::new("repo/src").unwrap(),
                &Owner::new("a").unwrap(),
                Some(Duration::from_secs(60)),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Expired { .. }), "{e}");
        let held: Vec<String> = m
            .list()
            .unwrap()
            .iter()
            .map(|l| l.owner.to_string())
            .collect();
        assert_eq!(held, ["b"], "never two conflicting holders");
    }

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

/// `PgFileStore` in a fresh schema per test; the corrupter flips the middle byte of a
/// checkpoint file's `body` row.
mod files {
    use std::sync::Arc;

    use oc_jsonl::TaskFileStore;
    use oc_jsonl::testkit::{Corrupter, ModelStore};
    use oc_postgres::PgFileStore;

    use crate::server::{fresh_options, server};

    pub(crate) fn make() -> (Arc<dyn TaskFileStore>, Corrupter) {
        let Some(pg) = server() else {
            eprintln!("skipped: no PostgreSQL (the model store stands in)");
            let s = Arc::new(ModelStore::new());
            let c = s.corrupter();
            return (s, c);
        };
        let opts = fresh_options(pg);
        let schema = opts.schema_name().to_owned();
        let store = Arc::new(PgFileStore::connect(opts).unwrap()) as Arc<dyn TaskFileStore>;
        let corrupt: Corrupter = Box::new(move |task: &str, cp: &str, file: &str| {
            let flipped = pg
                .psql(
                    "postgres",
                    &format!(
                        "UPDATE \"{schema}\".checkpoint_files \
                         SET body = set_byte(body, length(body) / 2, get_byte(body, length(body) / 2) # 1) \
                         WHERE task = '{task}' AND id = '{cp}' AND name = '{file}' RETURNING name"
                    ),
                )
                .unwrap();
            assert_eq!(
                flipped.lines().next(),
                Some(file),
                "{task} {cp} has no {file}"
            );
        });
        (store, corrupt)
    }

    oc_jsonl::file_store_conformance_tests!(make);

    mod model {
        use oc_jsonl::testkit::model;
        use oc_postgres::PgFileStore;
        use proptest::prelude::*;

        use crate::server::{fresh_options, server};

        proptest! {
            #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

            #[test]
            fn pg_file_store_agrees_with_the_model(ops in model::ops()) {
                let Some(pg) = server() else { return Ok(()) };
                model::run(&PgFileStore::connect(fresh_options(pg)).unwrap(), &ops);
            }
        }
    }
}

/// `PgTokenStore`: two stores connected to one fresh schema, as two hosts would be.
mod tokens {
    use std::sync::Arc;

    use oc_auth::testkit::ManualClock;
    use oc_auth::{MemoryTokenStore, TokenStore};
    use oc_postgres::PgTokenStore;
    use oc_tasks::Clock;

    use crate::server::{fresh_options, server};

    fn make(clock: ManualClock) -> (Arc<dyn TokenStore>, Arc<dyn TokenStore>) {
        let Some(pg) = server() else {
            eprintln!("skipped: no PostgreSQL (the memory store stands in)");
            let a = MemoryTokenStore::with_clock(Arc::new(clock));
            return (Arc::new(a.clone()), Arc::new(a));
        };
        let opts = fresh_options(pg).clock(Arc::new(clock) as Arc<dyn Clock>);
        let a = PgTokenStore::connect(opts.clone()).unwrap();
        let b = PgTokenStore::connect(opts).unwrap();
        (Arc::new(a), Arc::new(b))
    }

    oc_auth::token_store_conformance_tests!(make);

    /// Without a test clock, times are the database's.
    #[test]
    fn times_come_from_the_database() {
        let Some(pg) = server() else {
            eprintln!("skipped: no PostgreSQL");
            return;
        };
        let store = PgTokenStore::connect(fresh_options(pg)).unwrap();
        let db_now: i64 = pg
            .psql(
                "postgres",
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            )
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let (_, info) = store
            .create("alice", oc_auth::Scope::Work, None, None)
            .unwrap();
        let created = info.created_at.as_millis();
        assert!(
            created >= db_now && created - db_now < 60_000,
            "{created} vs {db_now}"
        );
    }
}
