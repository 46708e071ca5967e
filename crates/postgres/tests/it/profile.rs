//! Where a job's server time goes: claims and completions (and inserts) run against a server
//! started with `pg_stat_statements` (`OC_PG_BIN` pointing at a `postgres` wrapper that adds
//! `-c shared_preload_libraries=pg_stat_statements`), then the statements' mean times printed.
//! A tool for decision 0052's measurements, not a check: ignored, run by hand with
//! `--run-ignored only --no-capture`.

use std::sync::Arc;
use std::time::Duration;

use oc_tasks::{Change, NewTask, TaskStore};

use crate::server::{fresh_options, server};

#[test]
#[ignore = "a profile, run by hand (decision 0052)"]
fn profile_claim_complete() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg).pool_size(16);
    let schema = opts.schema_name().to_owned();
    let store = Arc::new(oc_postgres::PgTaskStore::connect(opts).unwrap());
    const JOBS: usize = 4_000;
    const THREADS: usize = 4;
    pg.psql(
        "postgres",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    )
    .unwrap();
    pg.psql("postgres", "SELECT pg_stat_statements_reset()")
        .unwrap();
    let started = std::time::Instant::now();
    for b in 0..JOBS / 1000 {
        store
            .create_many(
                (0..1000)
                    .map(|i| NewTask::new(format!("j{b}-{i}")))
                    .collect(),
            )
            .unwrap();
    }
    eprintln!(
        "insert: {:.0} tasks/s",
        JOBS as f64 / started.elapsed().as_secs_f64()
    );
    pg.psql("postgres", &format!("ANALYZE {schema}.tasks"))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                for _ in 0..JOBS / THREADS {
                    let task = store
                        .claim_next(&format!("w{t}"), Duration::from_secs(600))
                        .unwrap()
                        .unwrap();
                    let token = task.lease.map(|l| l.token);
                    store
                        .apply(
                            &task.id,
                            Change::Complete {
                                token,
                                result: None,
                            },
                            None,
                        )
                        .unwrap();
                }
            });
        }
    });
    let out = pg
        .psql(
            "postgres",
            "SELECT calls, round(total_exec_time::numeric / calls * 1000, 1) AS us_per_call, \
                    round(total_exec_time::numeric, 0) AS total_ms, \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
             FROM pg_stat_statements WHERE calls >= 100 OR total_exec_time > 50 \
             ORDER BY total_exec_time DESC LIMIT 25",
        )
        .unwrap();
    eprintln!("{out}");
    let out = pg
        .psql(
            "postgres",
            &format!(
                "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes \
                 WHERE schemaname = '{schema}' AND relname = 'tasks' ORDER BY 1; \
                 SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
                 WHERE schemaname = '{schema}' AND relname = 'tasks'"
            ),
        )
        .unwrap();
    eprintln!("{out}");
}
