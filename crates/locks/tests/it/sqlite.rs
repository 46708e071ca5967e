//! Behaviour specific to `SqliteLockManager`'s file.

use oc_locks::SqliteLockManager;

#[test]
fn a_database_where_wal_cannot_be_enabled_is_refused() {
    // `unix-dotfile` has no shared memory, so SQLite keeps the rollback journal when asked
    // for WAL: the manager refuses the file, as the task store does.
    let dir = tempfile::tempdir().unwrap();
    let uri = format!(
        "file:{}?vfs=unix-dotfile",
        dir.path().join("a.db").display()
    );
    let e = SqliteLockManager::open(&uri).unwrap_err();
    assert!(e.is_invalid_input(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "invalid database: journal_mode is delete, WAL could not be enabled"
    );
}

/// SQLite's failures are `Error::Backend`, as in `oc-tasks`: retryable when the database is
/// busy, with the `rusqlite::Error` itself as the source.
#[test]
fn a_busy_database_is_a_retryable_backend_error_with_sqlites_own_as_its_source() {
    use oc_locks::{LockManager, LockMode, LockRequest, SqliteLockOptions};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locks.db");
    let m = SqliteLockOptions::default()
        .busy_timeout(Duration::from_millis(10))
        .open(&db)
        .unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let req = LockRequest::new("src/lib.rs", "agent-1", LockMode::Exclusive).unwrap();
    let e = m.try_acquire(&req).unwrap_err();
    other.execute_batch("ROLLBACK").unwrap();

    assert!(e.is_retryable(), "{e}");
    assert!(!(e.is_conflict() || e.is_not_found() || e.is_invalid_input()));
    assert_eq!(e.to_string(), "sqlite: database is locked");
    let source = std::error::Error::source(&e).expect("the backend's own error");
    let sqlite = source
        .downcast_ref::<rusqlite::Error>()
        .expect("a rusqlite::Error");
    assert_eq!(
        sqlite.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    );
    m.try_acquire(&req).unwrap();
}
