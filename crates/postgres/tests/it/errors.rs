//! Failures are `Error::Backend` with the `tokio_postgres::Error` as their source: its
//! SQLSTATE for callers, a one-line message without a password for people.

use oc_locks::LockManager;
use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
use oc_tasks::{TaskId, TaskStore};
use tokio_postgres::error::SqlState;

use crate::server::server;

/// Every message along `e`'s chain of sources.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_refused_statement_keeps_the_servers_error_with_its_sqlstate() {
    let Some(pg) = server() else { return };
    let opts = PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema("gone")
        .unwrap();
    let tasks = PgTaskStore::connect(opts.clone()).unwrap();
    let locks = PgLockManager::connect(PgLockOptions::new(opts)).unwrap();
    pg.psql("postgres", "DROP SCHEMA gone CASCADE").unwrap();

    let e = tasks.get(&TaskId::new("t1").unwrap()).unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(
            e,
            oc_tasks::Error::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{e:?}"
    );
    let source = std::error::Error::source(&e).expect("the server's error");
    let pg_error = source
        .downcast_ref::<tokio_postgres::Error>()
        .expect("a tokio_postgres::Error");
    let code = pg_error.code().expect("a SQLSTATE").clone();
    assert!(
        [SqlState::UNDEFINED_TABLE, SqlState::INVALID_SCHEMA_NAME].contains(&code),
        "{code:?}"
    );
    // The message names the SQLSTATE, once.
    assert!(e.to_string().starts_with("postgres: "), "{e}");
    assert!(
        e.to_string().ends_with(&format!("({})", code.code())),
        "{e}"
    );

    let e = locks
        .holders(&oc_locks::Resource::new("src").unwrap())
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let source = std::error::Error::source(&e).expect("the server's error");
    let pg_error = source
        .downcast_ref::<tokio_postgres::Error>()
        .expect("a tokio_postgres::Error");
    assert!(pg_error.code().is_some(), "{pg_error:?}");
}

#[test]
fn an_unreachable_server_is_retryable_and_no_password_is_anywhere_in_the_chain() {
    let opts =
        PgOptions::new("host=/nonexistent/oc-test user=agent password=hunter2 connect_timeout=2")
            .unwrap();
    let e = PgTaskStore::connect(opts.clone()).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let source = std::error::Error::source(&e).expect("the client's error");
    assert!(source.downcast_ref::<tokio_postgres::Error>().is_some());
    let texts = chain(&e);
    assert!(texts.len() > 1, "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("hunter2")), "{texts:?}");
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");

    let e = PgLockManager::connect(PgLockOptions::new(opts)).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let source = std::error::Error::source(&e).expect("the client's error");
    assert!(source.downcast_ref::<tokio_postgres::Error>().is_some());
    assert!(!chain(&e).iter().any(|t| t.contains("hunter2")));
}
