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
