//! Readiness written once: the Rust predicate [`is_ready`] the memory store runs, and its SQL
//! twins [`ready_sql`] and [`blocked_sql`] the SQL stores run (through
//! [`crate::backend::sql`]), side by side so that a reader sees they agree; a test runs both
//! over the same table of cases.
//!
//! The SQL reads the kept count `waiting` of a task's unfinished dependencies (see the crate
//! docs) where the predicate is given it.

use crate::{Task, TaskStatus, Timestamp};

/// Whether `task` is ready at `now`, given how many of its dependencies are unfinished.
pub fn is_ready(task: &Task, unfinished_deps: usize, now: Timestamp) -> bool {
    task.status == TaskStatus::Pending
        && unfinished_deps == 0
        && task.run_at.is_none_or(|at| at <= now)
}

/// The SQL condition "ready at `now`" ([`is_ready`]), over the tasks table aliased `table`
/// (its columns unqualified when `None`), `now` an SQL expression of milliseconds. Its terms
/// come in the order of the ready tasks' indexes (SQLite's `tasks_ready`, PostgreSQL's partial
/// `tasks_claimable`), which serve it.
pub fn ready_sql(table: Option<&str>, now: &str) -> String {
    let t = qualifier(table);
    format!(
        "{t}status = 'pending' AND {t}waiting = 0 AND ({t}run_at IS NULL OR {t}run_at <= {now})"
    )
}

/// The SQL condition "blocked at `now`": pending but not ready ([`is_ready`] false), as
/// [`ready_sql`] takes its arguments.
pub fn blocked_sql(table: Option<&str>, now: &str) -> String {
    let t = qualifier(table);
    format!("{t}status = 'pending' AND ({t}waiting > 0 OR {t}run_at > {now})")
}

/// What qualifies a column of `table`: `t.`, or nothing.
fn qualifier(table: Option<&str>) -> String {
    table.map_or_else(String::new, |t| format!("{t}."))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::NewTask;

    /// Every case of the rule: pending or running, waiting on a dependency or not, `run_at`
    /// none, past, now or future; `(status, waiting, run_at)` with the time at 1 000.
    fn cases() -> Vec<(TaskStatus, i64, Option<i64>)> {
        let mut v = Vec::new();
        for status in [TaskStatus::Pending, TaskStatus::Running] {
            for waiting in [0, 1, 2] {
                for run_at in [None, Some(999), Some(1_000), Some(1_001)] {
                    v.push((status, waiting, run_at));
                }
            }
        }
        v
    }

    /// What the Rust predicate says of a case, as `(ready, blocked)`.
    fn by_rust((status, waiting, run_at): (TaskStatus, i64, Option<i64>)) -> (bool, bool) {
        let mut t = NewTask::new("t")
            .into_task(Timestamp::from_millis(0))
            .unwrap();
        t.status = status;
        t.run_at = run_at.map(Timestamp::from_millis);
        let ready = is_ready(
            &t,
            usize::try_from(waiting).unwrap(),
            Timestamp::from_millis(1_000),
        );
        (ready, status == TaskStatus::Pending && !ready)
    }

    #[test]
    fn the_predicate_and_its_sql_agree_on_sqlite() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE tasks (status TEXT, waiting INTEGER, run_at INTEGER)")
            .unwrap();
        let ask = |sql: &str, case: (TaskStatus, i64, Option<i64>)| -> bool {
            c.execute("DELETE FROM tasks", []).unwrap();
            c.execute(
                "INSERT INTO tasks VALUES (?1, ?2, ?3)",
                (case.0.as_str(), case.1, case.2),
            )
            .unwrap();
            c.query_row(
                &format!("SELECT count(*) FROM tasks WHERE {sql}"),
                [1_000],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        };
        for case in cases() {
            let sql = (
                ask(&ready_sql(None, "?1"), case),
                ask(&blocked_sql(None, "?1"), case),
            );
            assert_eq!(sql, by_rust(case), "{case:?}");
        }
    }

    #[test]
    fn qualified_columns_name_the_table() {
        assert_eq!(
            ready_sql(Some("c"), "n.ms"),
            "c.status = 'pending' AND c.waiting = 0 AND (c.run_at IS NULL OR c.run_at <= n.ms)"
        );
        assert_eq!(
            blocked_sql(None, "?1"),
            "status = 'pending' AND (waiting > 0 OR run_at > ?1)"
        );
    }
}
