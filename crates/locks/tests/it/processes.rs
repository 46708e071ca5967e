//! Two OS processes sharing locks through one database file; a holder killed with SIGKILL.
//!
//! The children are this test binary, re-run with `OC_CHILD` set so only the helper runs.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use oc_locks::{LockManager, LockRequest, SqliteLockManager};

pub(crate) fn child(helper: &str, db: &Path, arg: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
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

const TURNS: usize = 500;

/// Child part: 500 turns on one resource, appending a start and an end line under the lock.
#[test]
fn helper_take_turns() {
    let Some((db, name)) = child_env() else {
        return;
    };
    let locks = SqliteLockManager::open(&db).unwrap();
    let file = db.with_file_name("turns.log");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let req = LockRequest::exclusive("repo/shared-file", &name).unwrap();
    for i in 0..TURNS {
        let l = locks.acquire(&req, Duration::from_secs(60)).unwrap();
        if i == 0 {
            // Hold the first turn until the other process queues behind us, so the run
            // starts contended however the two processes were scheduled.
            let until = std::time::Instant::now() + Duration::from_secs(30);
            while locks.stats().unwrap().waiting == 0 && std::time::Instant::now() < until {
                std::thread::yield_now();
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&file)
            .unwrap();
        // Two separate writes: another process writing in between would show as interleaving.
        f.write_all(format!("{name} {i} start {}\n", l.token).as_bytes())
            .unwrap();
        std::thread::yield_now();
        f.write_all(format!("{name} {i} end {}\n", l.token).as_bytes())
            .unwrap();
        drop(f);
        locks.release(&l.resource, &l.owner).unwrap();
    }
}

/// Child part: take a lock, say so, then hang until killed.
#[test]
fn helper_hold_and_hang() {
    let Some((db, _)) = child_env() else { return };
    let locks = SqliteLockManager::open(&db).unwrap();
    let l = locks
        .try_acquire(
            &LockRequest::exclusive("repo/src", "doomed")
                .unwrap()
                .ttl(Duration::from_secs(1)),
        )
        .unwrap();
    println!("locked {}", l.token);
    let mut line = String::new();
    // Blocks until the parent kills us (stdin stays open).
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn two_processes_take_turns_without_interleaving() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    drop(SqliteLockManager::open(&db).unwrap());
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|n| {
            child("processes::helper_take_turns", &db, n)
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &children {
        c.stdin.as_ref().unwrap().write_all(b"go\n").unwrap();
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
    }
    let log = std::fs::read_to_string(dir.path().join("turns.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4 * TURNS);
    let mut last_token = 0u64;
    let mut switches = 0;
    let mut prev_owner = "";
    for pair in lines.chunks(2) {
        let s: Vec<&str> = pair[0].split(' ').collect();
        let e: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(
            (s[0], s[1], s[2]),
            (e[0], e[1], "start"),
            "interleaved: {pair:?}"
        );
        assert_eq!((e[2], s[3]), ("end", e[3]), "interleaved: {pair:?}");
        let token: u64 = s[3].parse().unwrap();
        assert!(
            token > last_token,
            "tokens increase across processes: {token} after {last_token}"
        );
        last_token = token;
        if s[0] != prev_owner {
            switches += 1;
            prev_owner = s[0];
        }
    }
    assert!(
        switches > 2,
        "the processes really alternated ({switches} switches)"
    );
    let st = SqliteLockManager::open(&db).unwrap().stats().unwrap();
    assert_eq!(
        st.total_locks,
        2 * TURNS as u64,
        "counters are shared by the processes"
    );
    assert_eq!(st.active_locks, 0);
}

#[test]
fn a_killed_holder_loses_its_lock_after_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let mut c = child("processes::helper_hold_and_hang", &db, "")
        .spawn()
        .unwrap();
    let stdout = c.stdout.take().unwrap();
    let mut token = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(i) = line.find("locked ") {
            token = line[i + 7..].trim().parse().unwrap();
            break;
        }
    }
    assert!(token > 0, "the child took the lock");
    c.kill().unwrap();
    c.wait().unwrap();
    let locks = SqliteLockManager::open(&db).unwrap();
    let req = LockRequest::exclusive("repo/src/main.rs", "survivor").unwrap();
    let e = locks.try_acquire(&req).unwrap_err();
    assert!(
        e.to_string().contains("doomed"),
        "the dead holder still holds until its TTL: {e}"
    );
    let l = locks.acquire(&req, Duration::from_secs(20)).unwrap();
    assert!(l.token > token, "the next holder's token is higher");
    assert_eq!(locks.stats().unwrap().expired_locks, 1);
}
