//! Readiness written once: the SQL twins of `oc_tasks::is_ready` (the conditions "ready" and
//! "blocked" every SQL store runs) say of each case on PostgreSQL what the predicate says.

use oc_tasks::backend::sql::{blocked_sql, ready_sql};
use oc_tasks::{NewTask, TaskStatus, Timestamp, is_ready};

use crate::server::server;

#[test]
fn the_predicate_and_its_sql_agree_on_postgres() {
    let Some(pg) = server() else { return };
    // Every case: pending or running, waiting on dependencies or not, `run_at` none, past,
    // now or future, with the time at 1 000.
    let mut cases = Vec::new();
    for status in [TaskStatus::Pending, TaskStatus::Running] {
        for waiting in [0usize, 1, 2] {
            for run_at in [None, Some(999), Some(1_000), Some(1_001)] {
                cases.push((status, waiting, run_at));
            }
        }
    }
    let rows: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (status, waiting, run_at))| {
            let run_at = run_at.map_or("NULL".to_owned(), |r: i64| r.to_string());
            format!("({i}, '{}', {waiting}, {run_at})", status.as_str())
        })
        .collect();
    pg.psql(
        "postgres",
        &format!(
            "CREATE TABLE readiness_cases (i int, status text, waiting int, run_at bigint); \
             INSERT INTO readiness_cases VALUES {}",
            rows.join(", ")
        ),
    )
    .unwrap();
    let matching = |cond: String| -> Vec<usize> {
        let sql = format!("SELECT t.i FROM readiness_cases t WHERE {cond} ORDER BY t.i");
        let out = pg.psql("postgres", &sql).unwrap();
        out.lines().map(|l| l.trim().parse().unwrap()).collect()
    };
    let now = Timestamp::from_millis(1_000);
    let mut want_ready = Vec::new();
    let mut want_blocked = Vec::new();
    for (i, (status, waiting, run_at)) in cases.iter().enumerate() {
        let mut task = NewTask::new("t").into_task(now).unwrap();
        task.status = *status;
        task.run_at = run_at.map(Timestamp::from_millis);
        let ready = is_ready(&task, *waiting, now);
        if ready {
            want_ready.push(i);
        } else if *status == TaskStatus::Pending {
            want_blocked.push(i);
        }
    }
    assert!(!want_ready.is_empty() && !want_blocked.is_empty());
    assert_eq!(matching(ready_sql(Some("t"), "1000")), want_ready);
    assert_eq!(matching(blocked_sql(Some("t"), "1000")), want_blocked);
    assert_eq!(matching(ready_sql(None, "1000")), want_ready, "unqualified");
}
