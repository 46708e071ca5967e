//! The work graph across processes on one server: two processes of eight threads each create
//! the same unique keys (one task per key), and work a graph while the parent keeps adding
//! tasks that depend on tasks being completed at that moment (no claim comes early, and every
//! count of unfinished dependencies matches the edges at the end).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use oc_postgres::PgTaskStore;
use oc_tasks::{NewTask, TaskFilter, TaskId, TaskStatus, TaskStore};

use crate::server::{child, child_options, fresh_options, server};

const KEYS: usize = 300;
const THREADS: usize = 8;
const LAYERS: usize = 6;
const WIDTH: usize = 20;
/// Tasks the parent adds while the children work, each waiting for two earlier ones.
const LATE: usize = 100;
const TOTAL: usize = LAYERS * WIDTH + LATE;

/// Child part: eight threads create a task for every key, printing `created|duplicate <key> <id>`.
#[test]
fn helper_submit_unique() {
    let Some(opts) = child_options() else { return };
    let store = Arc::new(PgTaskStore::connect(opts).unwrap());
    let lines: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    (0..KEYS)
                        .map(|k| {
                            // Each thread goes through the keys from its own starting point.
                            let k = (k + t * KEYS / THREADS) % KEYS;
                            let c = store
                                .submit(NewTask::new("u").unique_key(format!("key{k}")))
                                .unwrap();
                            let what = if c.duplicate { "duplicate" } else { "created" };
                            format!("{what} key{k} {}", c.task.id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for l in lines {
        println!("{l}");
    }
}

/// Child part: eight threads claim and complete (every fifth run fails and is retried) until
/// all `TOTAL` tasks completed; a claim whose dependency is not completed prints `early`.
#[test]
fn helper_work_graph() {
    let Some(opts) = child_options() else { return };
    let store = Arc::new(PgTaskStore::connect(opts).unwrap());
    let early: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    let mut early = Vec::new();
                    let done = TaskFilter::new().status(TaskStatus::Completed);
                    // A task whose count of unfinished dependencies went wrong never becomes
                    // ready: give up, and say so, rather than wait for it forever.
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    for n in 0u64.. {
                        if std::time::Instant::now() > deadline {
                            early.push("stuck: tasks never became ready".to_owned());
                            return early;
                        }
                        let Some(task) = store
                            .claim_next(&format!("w{t}"), Duration::from_secs(600))
                            .unwrap()
                        else {
                            if store.count(&done).unwrap() == TOTAL as u64 {
                                return early;
                            }
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        };
                        for d in &task.depends_on {
                            let dep = store.require(d).unwrap();
                            if dep.status != TaskStatus::Completed {
                                early
                                    .push(format!("early {} before {d} ({})", task.id, dep.status));
                            }
                        }
                        let token = task.lease.map(|l| l.token);
                        if n % 5 == 4 {
                            store.fail(&task.id, token, "flaky").unwrap();
                            store.retry(&task.id).unwrap();
                        } else {
                            store.complete(&task.id, token, None).unwrap();
                        }
                    }
                    early
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for l in early {
        println!("{l}");
    }
    println!("finished");
}

fn run_children(helper: &str, url: &str, schema: &str) -> Vec<std::process::Child> {
    (0..2)
        .map(|_| {
            child(helper, url, schema)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn lines(mut c: std::process::Child) -> Vec<String> {
    let out = BufReader::new(c.stdout.take().unwrap());
    let lines: Vec<String> = out.lines().map(Result::unwrap).collect();
    assert!(c.wait().unwrap().success(), "child failed: {lines:?}");
    lines
}

#[test]
fn two_processes_creating_the_same_keys_get_one_task_each() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let store = PgTaskStore::connect(opts).unwrap();
    let children = run_children("graph::helper_submit_unique", &pg.url("postgres"), &schema);
    let mut by_key: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for c in children {
        for line in lines(c) {
            let mut p = line.split(' ');
            if let (Some(what @ ("created" | "duplicate")), Some(key), Some(id)) =
                (p.next(), p.next(), p.next())
            {
                by_key
                    .entry(key.to_owned())
                    .or_default()
                    .push((what.to_owned(), id.to_owned()));
            }
        }
    }
    assert_eq!(by_key.len(), KEYS);
    for (key, seen) in &by_key {
        assert_eq!(seen.len(), 2 * THREADS, "{key}");
        assert!(
            seen.iter().all(|s| s.1 == seen[0].1),
            "{key}: one task: {seen:?}"
        );
        assert_eq!(seen.iter().filter(|s| s.0 == "created").count(), 1, "{key}");
    }
    assert_eq!(store.count(&TaskFilter::new()).unwrap(), KEYS as u64);
}

#[test]
fn two_processes_work_a_growing_graph_and_never_start_a_task_early() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let store = PgTaskStore::connect(opts).unwrap();
    let id = |l: usize, w: usize| TaskId::new(format!("l{l}w{w:02}")).unwrap();
    let mut batch = Vec::new();
    for l in 0..LAYERS {
        for w in 0..WIDTH {
            let mut t = NewTask::new("work").id(id(l, w));
            if l > 0 {
                t = t
                    .depends_on(id(l - 1, w))
                    .depends_on(id(l - 1, (w + 3) % WIDTH));
            }
            batch.push(t);
        }
    }
    store.create_many(batch).unwrap();
    let children = run_children("graph::helper_work_graph", &pg.url("postgres"), &schema);
    // Meanwhile: new tasks waiting for tasks that are being claimed and completed right now.
    for i in 0..LATE {
        let on = |k: usize| id((i + k) % LAYERS, (i * 7 + k) % WIDTH);
        store
            .create(
                NewTask::new("late")
                    .id(TaskId::new(format!("late{i:03}")).unwrap())
                    .depends_on(on(0))
                    .depends_on(on(1)),
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    for c in children {
        let lines = lines(c);
        assert!(lines.iter().any(|l| l == "finished"), "{lines:?}");
        let early: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("early") || l.starts_with("stuck"))
            .collect();
        assert!(early.is_empty(), "{early:?}");
    }
    let done = TaskFilter::new().status(TaskStatus::Completed);
    assert_eq!(store.count(&done).unwrap(), TOTAL as u64);
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
}

/// A schema written by the release before the work graph (schema version 2, kept as a
/// `pg_dump` fixture: five tasks in every status, with their history) is upgraded in place on
/// first use and keeps every task.
#[test]
fn a_schema_from_the_release_before_the_work_graph_upgrades_in_place() {
    let Some(pg) = server() else { return };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    pg.psql("postgres", "CREATE DATABASE before_graph").unwrap();
    pg.psql_file("before_graph", &fixtures.join("schema2.sql"))
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("schema2.tasks.json")).unwrap(),
    )
    .unwrap();
    let before: Vec<oc_tasks::Task> =
        serde_json::from_value(listed["data"]["tasks"].clone()).unwrap();
    assert_eq!(before.len(), 5);
    let store = PgTaskStore::connect(
        oc_postgres::PgOptions::new(&pg.url("before_graph"))
            .unwrap()
            .schema("oc")
            .unwrap(),
    )
    .unwrap();
    let version = pg
        .psql(
            "before_graph",
            "SELECT version FROM oc.oc_schema WHERE component = 'oc-tasks'",
        )
        .unwrap();
    assert_eq!(version.trim(), "9", "upgraded");
    for t in &before {
        assert_eq!(&store.get(&t.id).unwrap().unwrap(), t, "kept as it was");
        assert!(!store.history(&t.id).unwrap().is_empty(), "history kept");
    }
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    let (lint, build) = (TaskId::new("lint").unwrap(), TaskId::new("build").unwrap());
    store.add_dependency(&lint, &build).unwrap();
    let stats = store.stats(0).unwrap();
    assert_eq!((stats.ready, stats.blocked), (1, 1));
    assert_eq!(
        store.counts(10).unwrap().by_status,
        stats.by_status,
        "the kept counts start from the tasks"
    );
    assert_eq!(stats.total, 5);
    let next = store
        .claim_next("a", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!(next.id, build);
}
