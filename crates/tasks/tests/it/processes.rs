//! Several OS processes on one database file: claims stay exclusive, crashes lose nothing committed.
//!
//! The children are this same test binary, re-run with `OC_CHILD` set so that only the helper
//! test runs and does the child's part.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use oc_tasks::{NewTask, SqliteTaskStore, TaskFilter, TaskStatus, TaskStore};

pub(crate) fn child(helper: &str, db: &Path, arg: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test binary path"));
    c.args(["--exact", helper, "--nocapture", "--test-threads=1"])
        .env("OC_CHILD", "1")
        .env("OC_CHILD_DB", db)
        .env("OC_CHILD_ARG", arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    c
}

pub(crate) fn child_env() -> Option<(std::path::PathBuf, String)> {
    std::env::var_os("OC_CHILD")?;
    Some((
        std::env::var_os("OC_CHILD_DB")?.into(),
        std::env::var("OC_CHILD_ARG").ok()?,
    ))
}

/// Child part: claim until nothing is pending, printing `claimed <id> <token>` per claim.
#[test]
fn helper_claim_all() {
    let Some((db, agent)) = child_env() else {
        return;
    };
    let store = SqliteTaskStore::open(&db).expect("child opens the store");
    // Start together: say the store is open, then wait for the parent's go line, which it
    // sends once both children are ready.
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("stdout");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("go line");
    let mut first = true;
    while let Some(t) = store
        .claim_next(&agent, Duration::from_secs(300))
        .expect("no error reaches the caller")
    {
        writeln!(out, "claimed {} {}", t.id, t.lease.expect("lease").token).expect("stdout");
        if first {
            // Each child claims once before either goes on, so both compete whatever the
            // scheduler does on a loaded machine.
            out.flush().expect("stdout");
            std::io::stdin().read_line(&mut go).expect("second go line");
            first = false;
        }
    }
}

/// Child part: insert batches of 100 forever, printing `committed <n>` after each commit.
#[test]
fn helper_insert_batches() {
    let Some((db, _)) = child_env() else { return };
    let store = SqliteTaskStore::open(&db).expect("child opens the store");
    let mut out = std::io::stdout();
    for batch in 0u64.. {
        store
            .create_many(
                (0..100)
                    .map(|i| NewTask::new(format!("b{batch}-{i}")).meta("batch", batch))
                    .collect(),
            )
            .expect("batch commits");
        writeln!(out, "committed {}", batch + 1).expect("stdout");
        out.flush().expect("stdout");
    }
}

#[test]
fn two_processes_never_claim_the_same_task() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let store = SqliteTaskStore::open(&db).unwrap();
    store
        .create_many((0..1000).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    let mut children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|a| {
            let mut c = child("processes::helper_claim_all", &db, a)
                .spawn()
                .expect("spawn child");
            let out = BufReader::new(c.stdout.take().expect("piped stdout"));
            (c, out)
        })
        .collect();
    // Wait until both have their store open, so that neither can drain the queue alone.
    for (_, out) in &mut children {
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(
                out.read_line(&mut line).expect("child stdout") > 0,
                "child exited early"
            );
        }
    }
    for (c, _) in &children {
        let mut stdin = c.stdin.as_ref().expect("piped stdin");
        stdin.write_all(b"go\n").expect("write go");
    }
    // Each child's first claim, then both go on.
    let mut firsts = Vec::new();
    for (_, out) in &mut children {
        let mut line = String::new();
        while !line.contains("claimed ") {
            line.clear();
            assert!(
                out.read_line(&mut line).expect("child stdout") > 0,
                "child exited early"
            );
        }
        firsts.push(line);
    }
    for (c, _) in &children {
        let mut stdin = c.stdin.as_ref().expect("piped stdin");
        stdin.write_all(b"go\n").expect("write go");
    }
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    let mut per_child = Vec::new();
    for ((mut c, mut out), first) in children.into_iter().zip(firsts) {
        let mut text = first;
        out.read_to_string(&mut text).expect("child stdout");
        let status = c.wait().expect("child runs");
        assert!(status.success(), "child failed: {status:?}");
        // libtest prints "test name ... " without a newline before the body runs, so a claim
        // line may follow it on the same line.
        let mine: Vec<_> = text
            .lines()
            .filter_map(|l| l.find("claimed ").map(|i| &l[i + "claimed ".len()..]))
            .collect();
        per_child.push(mine.len());
        for l in mine {
            let (id, tok) = l.split_once(' ').unwrap();
            ids.push(id.to_owned());
            tokens.push(tok.parse::<u64>().unwrap());
        }
    }
    assert_eq!(
        ids.len(),
        1000,
        "every task claimed ({per_child:?} per process)"
    );
    assert!(
        per_child.iter().all(|&n| n > 0),
        "both processes competed: {per_child:?}"
    );
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        1000,
        "no task claimed twice"
    );
    assert_eq!(
        tokens.iter().collect::<HashSet<_>>().len(),
        1000,
        "no token handed out twice"
    );
    assert_eq!(
        store
            .count(&TaskFilter::new().status(TaskStatus::Running))
            .unwrap(),
        1000
    );
}

#[test]
fn sigkill_during_batches_keeps_every_committed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    drop(SqliteTaskStore::open(&db).unwrap());
    for round in 0..3u64 {
        let before = SqliteTaskStore::open(&db)
            .unwrap()
            .count(&TaskFilter::new())
            .unwrap();
        let mut c = child("processes::helper_insert_batches", &db, "")
            .spawn()
            .expect("spawn");
        let stdout = c.stdout.take().expect("piped");
        let mut committed = 0u64;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child output");
            if let Some(i) = line.find("committed ") {
                committed = line[i + "committed ".len()..].parse().unwrap();
                // Kill at a different point each round, mid-batch as often as not.
                if committed >= 5 + round * 7 {
                    break;
                }
            }
        }
        c.kill().expect("SIGKILL the child");
        c.wait().expect("reap child");
        let store = SqliteTaskStore::open(&db).unwrap();
        assert!(
            store.integrity_check().unwrap().is_empty(),
            "integrity_check passes"
        );
        let now = store.count(&TaskFilter::new()).unwrap();
        assert!(
            now - before >= committed * 100,
            "round {round}: {committed} batches reported, {} rows",
            now - before
        );
        assert_eq!(now % 100, 0, "batches are all or nothing");
        // The history was written in the same transactions: one creation per task, no more.
        let page = store
            .list(&oc_tasks::TaskQuery::new(TaskFilter::new()).limit(1000))
            .unwrap();
        for t in page.tasks.iter().take(200) {
            let h = store.history(&t.id).unwrap();
            assert_eq!(h.len(), 1, "{}: {h:?}", t.id);
            assert_eq!(h[0].kind, oc_tasks::EventKind::Created);
        }
    }
}
