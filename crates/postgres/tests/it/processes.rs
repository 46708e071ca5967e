//! Two processes of sixteen threads each claim ten thousand tasks from one server: every task
//! is claimed exactly once, and no token is handed out twice.
//!
//! The children are this test binary, re-run with `OC_CHILD` set so that only the helper runs.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use oc_postgres::PgTaskStore;
use oc_tasks::{NewTask, TaskStore};

use crate::server::{child, child_options, fresh_options, server};

const TASKS: usize = 10_000;
const THREADS: usize = 16;

/// Child part: sixteen threads claim until nothing is pending, printing `<id> <token>`.
#[test]
fn helper_claim_all() {
    let Some(opts) = child_options() else {
        return;
    };
    let store = Arc::new(PgTaskStore::connect(opts).unwrap());
    let claimed: Vec<(String, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || {
                    let mut mine = Vec::new();
                    while let Some(t) = store
                        .claim_next(&format!("w{i}"), Duration::from_secs(600))
                        .unwrap()
                    {
                        mine.push((t.id.to_string(), t.lease.unwrap().token));
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut out = std::io::stdout().lock();
    for (id, token) in claimed {
        writeln!(out, "claimed {id} {token}").unwrap();
    }
}

#[test]
fn two_processes_of_sixteen_threads_claim_each_task_once() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let store = PgTaskStore::connect(opts).unwrap();
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(2_000) {
        store
            .create_many(
                chunk
                    .iter()
                    .map(|i| NewTask::new(format!("t{i}")))
                    .collect(),
            )
            .unwrap();
    }
    let children: Vec<_> = (0..2)
        .map(|_| {
            child("processes::helper_claim_all", &pg.url("postgres"), &schema)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut ids, mut tokens, mut total) = (HashSet::new(), HashSet::new(), 0);
    for mut c in children {
        let out = BufReader::new(c.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("claimed ") else {
                continue;
            };
            let (id, token) = rest.split_once(' ').unwrap();
            total += 1;
            assert!(ids.insert(id.to_owned()), "task {id} claimed twice");
            assert!(
                tokens.insert(token.parse::<u64>().unwrap()),
                "token {token} twice"
            );
        }
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(total, TASKS, "every task claimed");
    let st = store.stats(0).unwrap();
    assert_eq!(st.count(oc_tasks::TaskStatus::Running), TASKS as u64);
}
