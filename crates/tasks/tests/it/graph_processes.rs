//! Two OS processes on one database file work a graph and race on unique keys: one task per
//! key, and no claim of a task before all its dependencies completed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use oc_tasks::{NewTask, SqliteTaskStore, TaskFilter, TaskId, TaskStatus, TaskStore};

use crate::processes::{child, child_env};

const KEYS: usize = 200;
const LAYERS: usize = 8;
const WIDTH: usize = 16;

/// Waits for "ready" from every child, then tells them all to go.
fn start_together(children: &mut [(std::process::Child, BufReader<std::process::ChildStdout>)]) {
    for (_, out) in children.iter_mut() {
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(
                out.read_line(&mut line).expect("child stdout") > 0,
                "child exited early"
            );
        }
    }
    for (c, _) in children.iter() {
        let mut stdin = c.stdin.as_ref().expect("piped stdin");
        stdin.write_all(b"go\n").expect("write go");
    }
}

fn spawn(
    helper: &str,
    db: &std::path::Path,
    arg: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut c = child(helper, db, arg).spawn().expect("spawn child");
    let out = BufReader::new(c.stdout.take().expect("piped stdout"));
    (c, out)
}

fn wait_for_go() {
    let mut out = std::io::stdout();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("go line");
}

/// Child part: create one task per key, printing `created|duplicate <key> <id>`.
#[test]
fn helper_submit_unique() {
    let Some((db, me)) = child_env() else { return };
    let store = SqliteTaskStore::open(&db).expect("child opens the store");
    wait_for_go();
    let mut out = std::io::stdout();
    for k in 0..KEYS {
        let c = store
            .submit(NewTask::new(format!("{me} {k}")).unique_key(format!("key{k}")))
            .expect("submit works");
        let what = if c.duplicate { "duplicate" } else { "created" };
        writeln!(out, "{what} key{k} {}", c.task.id).expect("stdout");
    }
}

/// Child part: claim ready tasks until all are completed, checking each claim's dependencies
/// (completed is final, so one not completed now was not completed at the claim either);
/// prints `early <task>` for a violation and `claimed <task>` otherwise.
#[test]
fn helper_work_graph() {
    let Some((db, me)) = child_env() else { return };
    let store = SqliteTaskStore::open(&db).expect("child opens the store");
    wait_for_go();
    let mut out = std::io::stdout();
    let total = (LAYERS * WIDTH) as u64;
    let completed = TaskFilter::new().status(TaskStatus::Completed);
    loop {
        let Some(t) = store
            .claim_next(&me, Duration::from_secs(300))
            .expect("claim works")
        else {
            if store.count(&completed).expect("count works") == total {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let early = t
            .depends_on
            .iter()
            .any(|d| store.require(d).expect("dependency exists").status != TaskStatus::Completed);
        let what = if early { "early" } else { "claimed" };
        writeln!(out, "{what} {}", t.id).expect("stdout");
        // A little work, so that the other process claims meanwhile.
        std::thread::sleep(Duration::from_millis(2));
        store
            .complete(&t.id, t.lease.map(|l| l.token), None)
            .expect("complete works");
    }
}

#[test]
fn two_processes_creating_the_same_keys_get_one_task_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    drop(SqliteTaskStore::open(&db).unwrap());
    let mut children = vec![
        spawn("graph_processes::helper_submit_unique", &db, "p1"),
        spawn("graph_processes::helper_submit_unique", &db, "p2"),
    ];
    start_together(&mut children);
    let mut by_key: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (mut c, mut out) in children {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out, &mut text).unwrap();
        assert!(c.wait().unwrap().success());
        for line in text
            .lines()
            .filter(|l| l.starts_with("created") || l.starts_with("duplicate"))
        {
            let mut parts = line.split(' ');
            let (what, key, id) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            by_key
                .entry(key.to_owned())
                .or_default()
                .push((what.to_owned(), id.to_owned()));
        }
    }
    assert_eq!(by_key.len(), KEYS);
    for (key, seen) in &by_key {
        assert_eq!(seen.len(), 2, "{key}: {seen:?}");
        assert_eq!(
            seen[0].1, seen[1].1,
            "{key}: both processes got the same task"
        );
        let created = seen.iter().filter(|(w, _)| w == "created").count();
        assert_eq!(created, 1, "{key}: created exactly once: {seen:?}");
    }
    let store = SqliteTaskStore::open(&db).unwrap();
    assert_eq!(store.count(&TaskFilter::new()).unwrap(), KEYS as u64);
}

#[test]
fn two_processes_working_a_graph_never_start_a_task_early() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let store = SqliteTaskStore::open(&db).unwrap();
    // Layer n depends on two tasks of layer n - 1.
    let id = |l: usize, w: usize| TaskId::new(format!("l{l}w{w:02}")).unwrap();
    let mut batch = Vec::new();
    for l in 0..LAYERS {
        for w in 0..WIDTH {
            let mut t = NewTask::new("work").id(id(l, w));
            if l > 0 {
                t = t
                    .depends_on(id(l - 1, w))
                    .depends_on(id(l - 1, (w + 1) % WIDTH));
            }
            batch.push(t);
        }
    }
    store.create_many(batch).unwrap();
    let mut children = vec![
        spawn("graph_processes::helper_work_graph", &db, "p1"),
        spawn("graph_processes::helper_work_graph", &db, "p2"),
    ];
    start_together(&mut children);
    let mut claimed = Vec::new();
    for (mut c, mut out) in children {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out, &mut text).unwrap();
        assert!(c.wait().unwrap().success());
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert!(!lines.iter().any(|l| l.starts_with("early")), "{lines:?}");
        claimed.push(lines.iter().filter(|l| l.starts_with("claimed")).count());
    }
    assert_eq!(
        claimed.iter().sum::<usize>(),
        LAYERS * WIDTH,
        "each task once"
    );
    assert!(
        claimed.iter().all(|n| *n > 0),
        "both processes worked: {claimed:?}"
    );
    assert!(store.integrity_check().unwrap().is_empty());
}
