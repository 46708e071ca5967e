//! A fencing token is never handed out twice, not even after a power loss.
//!
//! A child process claims tasks under `strace` while this process keeps the database open (as
//! other agents do), and appends each token to a marks file as it gets it. For every token,
//! the database is rebuilt as a power loss right after it would have left it (the log cut at
//! its last sync, `oc_sqlite::testkit`), and a fresh store must hand out a greater token.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use oc_sqlite::Durability;
use oc_sqlite::testkit::{Marks, PowerLoss, strace_for_tests};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};

use crate::processes::{child, child_env};

/// Tokens per synced commit in the child: small, so the run crosses several reserves.
const RESERVE: u64 = 8;

/// Child part: claims `n` tasks, appending `<token>` to the marks file after each claim.
#[test]
fn helper_claim_and_mark() {
    let Some((db, arg)) = child_env() else {
        return;
    };
    let (n, marks) = arg.split_once(' ').unwrap();
    let store = SqliteTaskStore::options()
        .durability(Durability::default().token_reserve(RESERVE))
        .open(&db)
        .unwrap();
    let mut marks = Marks::open(Path::new(marks)).unwrap();
    for _ in 0..n.parse::<usize>().unwrap() {
        let t = store
            .claim_next("child", Duration::from_secs(300))
            .unwrap()
            .unwrap();
        marks.mark(t.lease.unwrap().token).unwrap();
    }
}

#[test]
fn a_lease_token_is_never_handed_out_twice_after_a_power_loss() {
    if !strace_for_tests() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let marks = dir.path().join("marks");
    let keeper = SqliteTaskStore::open(&db).unwrap();
    keeper
        .create_many((0..40).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    let mut cmd = child(
        "power_loss::helper_claim_and_mark",
        &db,
        &format!("30 {}", marks.display()),
    );
    cmd.stdin(Stdio::null());
    let run = PowerLoss::record(&cmd, &db, &marks).unwrap();
    let tokens = run
        .check_tokens_never_repeat(|db| {
            let after = SqliteTaskStore::open(db).unwrap();
            assert!(after.integrity_check().unwrap().is_empty());
            let t = after
                .claim_next("after-reboot", Duration::from_secs(30))
                .unwrap()
                .expect("some task is still pending");
            t.lease.unwrap().token
        })
        .unwrap();
    assert_eq!(tokens.len(), 30);
    // What it costs: a sync per reserve of tokens, one for the first, one for the log's header.
    assert!(run.syncs_before(29) <= 2 + 30 / RESERVE as usize + 1);
    oc_lincheck::publish(
        "tasks.power_loss.tokens",
        serde_json::json!({ "crash_points": tokens.len(), "tokens_repeated": 0,
                            "integrity_failures": 0, "syncs": run.syncs_before(29) }),
    );
    drop(keeper);
}

/// Child part: creates `n` tasks, appending each one's id to the marks file once created;
/// `sync` opens the store with `sync_every_commit(true)`.
#[test]
fn helper_create_and_mark() {
    let Some((db, arg)) = child_env() else {
        return;
    };
    let mut args = arg.split(' ');
    let (n, mode, marks) = (
        args.next().unwrap(),
        args.next().unwrap(),
        args.next().unwrap(),
    );
    let store = SqliteTaskStore::options()
        .durability(Durability::default().sync_every_commit(mode == "sync"))
        .open(&db)
        .unwrap();
    let mut marks = Marks::open(Path::new(marks)).unwrap();
    for i in 0..n.parse::<usize>().unwrap() {
        let t = store.create(NewTask::new(format!("c{i}"))).unwrap();
        marks.mark(t.id).unwrap();
    }
}

/// With `sync_every_commit`, every creation acknowledged before a power loss is there after
/// it; with the default, the same power loss loses some (so the simulation does lose data).
#[test]
fn sync_every_commit_keeps_every_acknowledged_change_through_a_power_loss() {
    if !strace_for_tests() {
        return;
    }
    for (mode, all_kept) in [("sync", true), ("normal", false)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("opencode.db");
        let marks = dir.path().join("marks");
        let keeper = SqliteTaskStore::open(&db).unwrap();
        let mut cmd = child(
            "power_loss::helper_create_and_mark",
            &db,
            &format!("8 {mode} {}", marks.display()),
        );
        cmd.stdin(Stdio::null());
        let run = PowerLoss::record(&cmd, &db, &marks).unwrap();
        let ids = run.marks();
        assert_eq!(ids.len(), 8);
        let mut lost = 0;
        for (i, _) in ids.iter().enumerate() {
            let crashed = tempfile::tempdir().unwrap();
            let after = SqliteTaskStore::open(run.crash_after(i, crashed.path()).unwrap()).unwrap();
            for id in &ids[..=i] {
                if after.get(&id.parse().unwrap()).unwrap().is_none() {
                    lost += 1;
                }
            }
        }
        assert_eq!(
            lost == 0,
            all_kept,
            "{mode}: {lost} acknowledged creation(s) lost"
        );
        let lost_key = if all_kept {
            "acknowledged_lost"
        } else {
            "lost_as_documented"
        };
        oc_lincheck::publish(
            &format!("tasks.power_loss.{mode}"),
            serde_json::json!({ "crash_points": ids.len(), lost_key: lost }),
        );
        drop(keeper);
    }
}
