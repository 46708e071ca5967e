//! Behaviour specific to `SqliteTaskStore`: persistence, storage statistics, slow statements.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oc_tasks::{
    NewTask, Readiness, SqliteTaskStore, Task, TaskFilter, TaskId, TaskQuery, TaskStatus, TaskStore,
};

fn open(dir: &tempfile::TempDir) -> SqliteTaskStore {
    SqliteTaskStore::open(dir.path().join("opencode.db")).unwrap()
}

#[test]
fn data_and_tokens_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let first_token = {
        let s = open(&dir);
        s.create_many((0..3).map(|i| NewTask::new(format!("t{i}"))).collect())
            .unwrap();
        let t = s.claim_next("a", Duration::from_secs(30)).unwrap().unwrap();
        t.lease.unwrap().token
    };
    let s = open(&dir);
    assert_eq!(s.count(&TaskFilter::new()).unwrap(), 3);
    let t = s.claim_next("b", Duration::from_secs(30)).unwrap().unwrap();
    assert!(
        t.lease.unwrap().token > first_token,
        "the token counter is persistent"
    );
}

#[test]
fn storage_stats_report_files_pages_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_many(
        (0..500)
            .map(|i| NewTask::new(format!("t{i}")).meta("i", i))
            .collect(),
    )
    .unwrap();
    for _ in 0..20 {
        s.count(&TaskFilter::new().status(TaskStatus::Pending))
            .unwrap();
    }
    let st = s.storage_stats().unwrap();
    assert!(st.file_bytes > 0 || st.wal_bytes > 0);
    assert!(st.wal_bytes > 0, "recent writes sit in the WAL");
    assert_eq!(st.page_size, 4096);
    assert!(st.page_count > 1);
    assert_eq!(st.database_bytes(), st.page_count * st.page_size);
    assert!(st.cache_hits > 0);
    assert_eq!(st.slow_statements, 0, "nothing here takes a second");
    assert_eq!(st.slow_threshold_ms, 1000);
}

#[test]
fn slow_statements_are_reported_through_the_profile_callback() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let s = SqliteTaskStore::options()
        .slow_threshold(Duration::ZERO)
        .on_slow(move |st| sink.lock().unwrap().push(st.sql.clone()))
        .open(dir.path().join("opencode.db"))
        .unwrap();
    s.create(NewTask::new("x")).unwrap();
    s.count(&TaskFilter::new()).unwrap();
    let st = s.storage_stats().unwrap();
    assert!(
        st.slow_statements >= 2,
        "every statement is slow at threshold zero"
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|q| q.starts_with("INSERT INTO tasks")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|q| q.starts_with("SELECT COUNT(*) FROM tasks")),
        "{seen:?}"
    );
    assert!(st.recent_slow.len() <= 32);
}

#[test]
fn integrity_check_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create(NewTask::new("x").id(TaskId::new("keep").unwrap()))
        .unwrap();
    assert!(s.integrity_check().unwrap().is_empty());
    let copy = dir.path().join("backup.db");
    s.backup_to(&copy).unwrap();
    let b = SqliteTaskStore::open(&copy).unwrap();
    assert!(b.get(&TaskId::new("keep").unwrap()).unwrap().is_some());
}

#[test]
fn stats_over_many_tasks_use_sql_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    for batch in 0..10 {
        s.create_many(
            (0..1000)
                .map(|i| NewTask::new("n").owner(format!("agent-{}", (batch * 1000 + i) % 7)))
                .collect(),
        )
        .unwrap();
    }
    let st = s.stats(5).unwrap();
    assert_eq!(st.total, 10_000);
    assert_eq!(st.by_owner.len(), 7);
    assert_eq!(st.by_owner.iter().map(|(_, n)| n).sum::<u64>(), 10_000);
    assert_eq!(st.recent.len(), 5);
}

#[test]
fn a_newer_schema_is_refused_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opencode.db");
    drop(SqliteTaskStore::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE oc_schema SET version = 99 WHERE component = 'oc-tasks'",
        [],
    )
    .unwrap();
    drop(c);
    let e = SqliteTaskStore::open(&path).unwrap_err();
    assert!(
        matches!(e, oc_tasks::Error::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
}

#[test]
fn corrupt_rows_are_reported_not_swallowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opencode.db");
    let s = SqliteTaskStore::open(&path).unwrap();
    s.create(NewTask::new("x").id(TaskId::new("bad").unwrap()))
        .unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE tasks SET metadata = 'not json' WHERE id = 'bad'",
        [],
    )
    .unwrap();
    let e = s.get(&TaskId::new("bad").unwrap()).unwrap_err();
    assert!(matches!(e, oc_tasks::Error::Corrupt { .. }), "{e}");
}

#[test]
fn a_database_from_before_run_durations_counts_the_runs_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let clock = oc_tasks::ManualClock::new(oc_tasks::Timestamp::from_millis(1_000_000));
    let counted = {
        let s = SqliteTaskStore::options()
            .clock(Arc::new(clock.clone()))
            .open(&db)
            .unwrap();
        for (name, secs) in [("a", 3), ("b", 45), ("c", 301)] {
            let t = s.create(NewTask::new(name)).unwrap();
            s.start(&t.id, "w").unwrap();
            clock.advance(Duration::from_secs(secs));
            s.complete(&t.id, None, None).unwrap();
        }
        s.stats(0).unwrap().runs
    };
    assert_eq!(counted.counts, [0, 1, 0, 0, 1, 0, 1]);
    // As the file was before migration 4: no run rows, schema version 3.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "DELETE FROM oc_tasks_meta WHERE key LIKE 'run_%' OR key LIKE 'count_%';
         DROP INDEX tasks_scheduled;
         DROP TABLE task_archive;
         DROP TABLE task_keys;
         DROP TABLE task_history;
         DROP INDEX tasks_ready; DROP INDEX tasks_parent; DROP INDEX tasks_unique_key;
         CREATE INDEX tasks_ready ON tasks (status, priority DESC, created_at, id);
         DROP TABLE task_deps;
         ALTER TABLE tasks DROP COLUMN parent; ALTER TABLE tasks DROP COLUMN labels;
         ALTER TABLE tasks DROP COLUMN run_at; ALTER TABLE tasks DROP COLUMN retry_base_ms;
         ALTER TABLE tasks DROP COLUMN retry_cap_ms; ALTER TABLE tasks DROP COLUMN retry_jitter;
         ALTER TABLE tasks DROP COLUMN unique_key; ALTER TABLE tasks DROP COLUMN unique_scope;
         ALTER TABLE tasks DROP COLUMN waiting;
         UPDATE oc_schema SET version = 3 WHERE component = 'oc-tasks';",
    )
    .unwrap();
    drop(c);
    let s = SqliteTaskStore::open(&db).unwrap();
    assert_eq!(s.stats(0).unwrap().runs, counted, "migrated from the tasks");
    assert_eq!(
        s.counts(10).unwrap().count(TaskStatus::Completed),
        3,
        "counted from the tasks"
    );
    assert!(s.integrity_check().unwrap().is_empty());
}

/// A database written by the release before the work graph (schema 5, kept as a fixture:
/// five tasks in every status, with history) opens, upgrades in place and keeps every task.
#[test]
fn a_database_from_the_release_before_the_work_graph_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("schema5.db"), &db).unwrap();
    let listed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("schema5.tasks.json")).unwrap(),
    )
    .unwrap();
    let before: Vec<Task> = serde_json::from_value(listed["data"]["tasks"].clone()).unwrap();
    assert_eq!(before.len(), 5);
    let s = SqliteTaskStore::open(&db).unwrap();
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT version FROM oc_schema WHERE component = 'oc-tasks'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(version > 5, "upgraded to {version}");
    for t in &before {
        assert_eq!(&s.get(&t.id).unwrap().unwrap(), t, "kept as it was");
        assert!(!s.history(&t.id).unwrap().is_empty(), "history kept");
    }
    assert!(s.integrity_check().unwrap().is_empty());
    // The old tasks take part in the graph.
    let lint = TaskId::new("lint").unwrap();
    let build = TaskId::new("build").unwrap();
    s.add_dependency(&lint, &build).unwrap();
    let ready = s
        .list(&TaskQuery::new(
            TaskFilter::new().readiness(Readiness::Ready),
        ))
        .unwrap();
    assert_eq!(
        ready
            .tasks
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["build"]
    );
    let stats = s.stats(0).unwrap();
    assert_eq!((stats.ready, stats.blocked), (1, 1));
    assert_eq!(
        s.counts(10).unwrap().by_status,
        stats.by_status,
        "the kept counts start from the tasks"
    );
    assert_eq!(stats.total, 5);
}

/// A miscount of the kept counts by status (a row written by something else than the store)
/// is reported by the integrity check.
#[test]
fn counts_by_status_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let s = SqliteTaskStore::open(&db).unwrap();
    for i in 0..5 {
        s.create(NewTask::new("t").id(TaskId::new(format!("t{i}")).unwrap()))
            .unwrap();
    }
    s.cancel(&TaskId::new("t0").unwrap()).unwrap();
    s.delete(&TaskId::new("t1").unwrap(), None).unwrap();
    assert!(s.integrity_check().unwrap().is_empty());
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE tasks SET status = 'cancelled' WHERE id = 't2'", [])
        .unwrap();
    assert_eq!(
        s.integrity_check().unwrap(),
        [
            "tasks by status miscounted: count_pending is 3, the tasks say 2; \
          count_cancelled is 1, the tasks say 2"
        ]
    );
}

#[test]
fn a_database_where_wal_cannot_be_enabled_is_refused() {
    // `unix-dotfile` has no shared memory, so SQLite keeps the rollback journal when asked
    // for WAL.
    let dir = tempfile::tempdir().unwrap();
    let uri = format!(
        "file:{}?vfs=unix-dotfile",
        dir.path().join("a.db").display()
    );
    let e = SqliteTaskStore::open(&uri).unwrap_err();
    assert!(e.is_invalid_input(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "invalid database: journal_mode is delete, WAL could not be enabled"
    );
}

#[test]
fn a_release_is_recorded_as_a_release_even_of_a_run_counted_zero_times() {
    // The history records the kind the state machine decided, not one guessed from the row:
    // a release of a row whose attempt count cannot go down (written by hand here) used to be
    // recorded as a failure's backoff.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opencode.db");
    let s = SqliteTaskStore::open(&path).unwrap();
    let id = TaskId::new("r").unwrap();
    s.create(NewTask::new("x").id(id.clone())).unwrap();
    let t = s.claim(&id, "a1", Duration::from_secs(30)).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE tasks SET attempts = 0 WHERE id = 'r'", [])
        .unwrap();
    let token = t.lease.unwrap().token;
    let released = s.release(&id, token).unwrap();
    assert_eq!(released.status, TaskStatus::Pending);
    let last = s.history(&id).unwrap().pop().unwrap();
    assert_eq!(last.kind, oc_tasks::EventKind::Released);
    assert_eq!(last.actor.as_deref(), Some("a1"));
    assert_eq!(last.token, Some(token));
    assert_eq!(last.error, None);
}

/// SQLite's failures are `Error::Backend`: retryable when the database is busy, with a message
/// naming the cause, and the `rusqlite::Error` itself as the source.
#[test]
fn a_busy_database_is_a_retryable_backend_error_with_sqlites_own_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let s = oc_tasks::SqliteOptions::new()
        .busy_timeout(Duration::from_millis(10))
        .open(&db)
        .unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = s.create(NewTask::new("blocked")).unwrap_err();
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
    assert!(matches!(
        e,
        oc_tasks::Error::Backend {
            backend: "sqlite",
            retryable: true,
            ..
        }
    ));
    // Once free, the same call goes through.
    s.create(NewTask::new("free")).unwrap();
}

/// Another SQLite failure is not retryable, and still keeps its source.
#[test]
fn another_sqlite_failure_is_a_backend_error_not_worth_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let s = SqliteTaskStore::open(&db).unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    // Someone else's hands in the file: the table is gone.
    other.execute_batch("DROP TABLE tasks").unwrap();
    let e = s.create(NewTask::new("refused")).unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().starts_with("sqlite: "), "{e}");
    assert!(e.to_string().contains("no such table"), "{e}");
    let source = std::error::Error::source(&e).expect("the backend's own error");
    assert!(
        source.downcast_ref::<rusqlite::Error>().is_some(),
        "{source:?}"
    );
}
