//! A fencing token is never handed out twice, not even after a power loss.
//!
//! A child process takes and drops locks under `strace` while this process keeps the database
//! open (as other agents do), appending each grant's token to a marks file. For every token,
//! the database is rebuilt as a power loss right after it would have left it (the log cut at
//! its last sync, `oc_sqlite::testkit`), and a fresh manager must grant a greater token.

use std::path::Path;
use std::process::Stdio;

use oc_locks::{LockManager, LockRequest, SqliteLockManager};
use oc_sqlite::Durability;
use oc_sqlite::testkit::{Marks, PowerLoss, strace_for_tests};

use crate::processes::{child, child_env};

/// Tokens per synced commit in the child: small, so the run crosses several reserves.
const RESERVE: u64 = 8;

/// Child part: `n` grants (and releases), appending `<token>` to the marks file after each.
#[test]
fn helper_lock_and_mark() {
    let Some((db, arg)) = child_env() else {
        return;
    };
    let (n, marks) = arg.split_once(' ').unwrap();
    let locks = SqliteLockManager::options()
        .durability(Durability::default().token_reserve(RESERVE))
        .open(&db)
        .unwrap();
    let mut marks = Marks::open(Path::new(marks)).unwrap();
    for i in 0..n.parse::<usize>().unwrap() {
        let req = LockRequest::exclusive(&format!("repo/f{}", i % 3), "child").unwrap();
        let l = locks.try_acquire(&req).unwrap();
        marks.mark(l.token).unwrap();
        locks.release(&l.resource, &l.owner).unwrap();
    }
}

#[test]
fn a_lock_token_is_never_handed_out_twice_after_a_power_loss() {
    if !strace_for_tests() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let marks = dir.path().join("marks");
    let keeper = SqliteLockManager::open(&db).unwrap();
    let mut cmd = child(
        "power_loss::helper_lock_and_mark",
        &db,
        &format!("30 {}", marks.display()),
    );
    cmd.stdin(Stdio::null());
    let run = PowerLoss::record(&cmd, &db, &marks).unwrap();
    let tokens = run
        .check_tokens_never_repeat(|db| {
            let after = SqliteLockManager::open(db).unwrap();
            let req = LockRequest::exclusive("repo/after-reboot", "other").unwrap();
            after.try_acquire(&req).unwrap().token
        })
        .unwrap();
    assert_eq!(tokens.len(), 30);
    // What it costs: a sync per reserve of tokens, one for the first, one for the log's header.
    assert!(run.syncs_before(29) <= 2 + 30 / RESERVE as usize + 1);
    oc_lincheck::publish(
        "locks.power_loss.tokens",
        serde_json::json!({ "crash_points": tokens.len(), "tokens_repeated": 0,
                            "syncs": run.syncs_before(29) }),
    );
    drop(keeper);
}
