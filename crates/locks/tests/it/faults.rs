//! Injected I/O faults on the SQLite lock manager: `fsync`/`fdatasync` failing with EIO and
//! short writes (libfiu's preload around a child). Every call returns `Ok` or a typed error,
//! never panics; reopened without faults, the database passes SQLite's integrity check and no
//! fencing token is handed out twice.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use oc_lincheck::faults::{fiu_for_tests, under_fiu};
use oc_lincheck::publish;
use oc_locks::{LockManager, LockRequest, SqliteLockManager};
use oc_sqlite::Durability;
use serde_json::json;

use crate::processes::{child, child_env};

const STEPS: usize = 200;

/// Child part: acquires and releases under the parent's faults; prints each token granted and
/// each error.
#[test]
fn helper_locks_under_faults() {
    let Some((db, _)) = child_env() else {
        return;
    };
    let short = oc_lincheck::faults::short_write_probe(&db.with_extension("probe")).unwrap();
    println!("ack short {short}");
    let m = match SqliteLockManager::options()
        .durability(Durability::default().token_reserve(4))
        .open(&db)
    {
        Ok(m) => m,
        Err(e) => {
            println!("ack error {e}");
            return;
        }
    };
    for i in 0..STEPS {
        let req = LockRequest::exclusive(&format!("repo/f{}", i % 7), "faulty").unwrap();
        match m.acquire(&req, Duration::ZERO) {
            Ok(l) => {
                // A re-entry keeps its token: only first holds must bring new ones. (An acquire
                // that failed after its commit, when the fence's sync failed, left the lock
                // held, unknown to the caller: the next acquire of it is a re-entry.)
                if l.holds == 1 {
                    println!("ack granted {}", l.token);
                } else {
                    println!("ack reentered {}", l.token);
                }
                if let Err(e) = m.release(&l.resource, &l.owner) {
                    println!("ack error {e}");
                }
            }
            Err(e) => println!("ack error {e}"),
        }
    }
}

fn run(db: &Path, faults: &[&str]) -> (Vec<u64>, usize, usize) {
    let cmd: Command = child("faults::helper_locks_under_faults", db, "");
    let out = under_fiu(&cmd, faults).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed (a panic?): {stdout}"
    );
    let mut tokens = Vec::new();
    let (mut errors, mut short) = (0, 0);
    for l in stdout
        .lines()
        .filter_map(|l| l.find("ack ").map(|i| &l[i + 4..]))
    {
        if let Some(t) = l.strip_prefix("granted ") {
            tokens.push(t.parse().unwrap());
        } else if l.starts_with("reentered ") {
        } else if let Some(n) = l.strip_prefix("short ") {
            short = n.parse().unwrap();
        } else {
            assert!(
                l.contains("disk I/O error") || l.contains("sqlite"),
                "an error that is not the fault's: {l}"
            );
            errors += 1;
        }
    }
    (tokens, errors, short)
}

fn verify(db: &Path, tokens: &[u64]) {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens grow: {tokens:?}"
    );
    let m = SqliteLockManager::open(db).unwrap();
    let fresh = m
        .try_acquire(&LockRequest::exclusive("after", "checker").unwrap())
        .unwrap();
    assert!(
        fresh.token > tokens.last().copied().unwrap_or(0),
        "a token handed out again after the faults"
    );
}

#[test]
fn io_fault_lock_manager_under_sync_eio_and_short_writes() {
    if !fiu_for_tests() {
        return;
    }
    let mut figures = serde_json::Map::new();
    for (name, faults) in [
        (
            "sync_eio",
            vec![
                "enable_random name=posix/io/sync/fdatasync,probability=0.2,failinfo=5",
                "enable_random name=posix/io/sync/fsync,probability=0.2,failinfo=5",
            ],
        ),
        (
            "short_writes",
            vec![
                "enable_random name=posix/io/rw/pwrite/reduce,probability=0.3",
                "enable_random name=posix/io/rw/write/reduce,probability=0.3",
            ],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("opencode.db");
        drop(SqliteLockManager::open(&db).unwrap());
        let (tokens, errors, short) = run(&db, &faults);
        assert!(!tokens.is_empty(), "{name}: nothing was granted");
        if name == "sync_eio" {
            assert!(errors > 0, "{name}: no sync failed");
        } else {
            assert!(short > 0, "{name}: the short writes never happened");
        }
        verify(&db, &tokens);
        figures.insert(
            name.to_owned(),
            json!({ "steps": STEPS, "granted": tokens.len(), "errors": errors,
                    "short_writes_seen_by_a_probe": short }),
        );
    }
    figures.insert("integrity_failures".into(), json!(0));
    figures.insert("tokens_repeated".into(), json!(0));
    figures.insert("panics".into(), json!(0));
    publish("locks.io_fault", serde_json::Value::Object(figures));
}
