//! Fenced writes under process pauses (Jepsen's `lock-set` with the `pause` nemesis, and
//! Kleppmann's fencing tokens): writers take a lock with a short TTL, read a shared set, think,
//! and write the set back with one more element. The parent stops the lock holder with
//! SIGSTOP for longer than the TTL, so the lock passes to another writer, then resumes it.
//!
//! With fencing, the register serves a read or a write only with a token at least the greatest
//! it has seen, and remembers the token of each: the woken writer's stale access is refused, no
//! acknowledged element is lost, and no stale write is accepted. (Fencing the write alone is
//! not enough for a read-modify-write: a first version did that and lost an element in one run
//! of ten, a stale write landing between the next holder's read and its write.) Without fencing, the same run loses acknowledged elements: proof
//! that the pauses really bit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oc_lincheck::publish;
use oc_locks::{LockManager, LockRequest, Resource, SqliteLockManager, TtlPolicy};
use rusqlite::{Connection, TransactionBehavior};

use crate::processes::{child, child_env};

const WRITERS: usize = 3;
const TTL: Duration = Duration::from_millis(200);
const PAUSE: Duration = Duration::from_millis(450);

fn register(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS reg (id INTEGER PRIMARY KEY CHECK (id = 1), items TEXT NOT NULL, token INTEGER NOT NULL);
         INSERT OR IGNORE INTO reg VALUES (1, '[]', 0);
         CREATE TABLE IF NOT EXISTS writes (seq INTEGER PRIMARY KEY AUTOINCREMENT, writer INTEGER NOT NULL, token INTEGER NOT NULL, item INTEGER NOT NULL, accepted INTEGER NOT NULL);",
    )
    .unwrap();
    c
}

/// Child part: writer `id`, fenced or not, until the stop file appears.
#[test]
fn helper_fenced_writer() {
    let Some((db, arg)) = child_env() else {
        return;
    };
    let mut args = arg.split(' ');
    let id: i64 = args.next().unwrap().parse().unwrap();
    let fenced = args.next() == Some("fenced");
    let dir = db.parent().unwrap();
    let mut reg = register(&dir.join("register.db"));
    let locks = SqliteLockManager::options()
        .ttl(TtlPolicy {
            min: Duration::from_millis(10),
            ..TtlPolicy::default()
        })
        .open(&db)
        .unwrap();
    let req = LockRequest::exclusive("register", &format!("w{id}"))
        .unwrap()
        .ttl(TTL);
    let mut n = 0;
    while !dir.join("stop").exists() {
        let Ok(lock) = locks.acquire(&req, Duration::from_secs(2)) else {
            continue;
        };
        // Read, think (here the parent's SIGSTOP lands), write back with one more element.
        // Fenced, the register checks the token on the read too, and remembers it: a write
        // checked alone would let a stale holder's write land between the next holder's read
        // and its write, and the next holder would then overwrite it.
        let token = lock.token as i64;
        let tx = reg
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let (items, highest): (String, i64) = tx
            .query_row("SELECT items, token FROM reg", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        if fenced {
            if token < highest {
                tx.execute(
                    "INSERT INTO writes (writer, token, item, accepted) VALUES (?1, ?2, 0, 0)",
                    (id, token),
                )
                .unwrap();
                tx.commit().unwrap();
                let _ = locks.release(&lock.resource, &lock.owner);
                continue;
            }
            tx.execute("UPDATE reg SET token = ?1", [token]).unwrap();
        }
        tx.commit().unwrap();
        let mut items: Vec<i64> = serde_json::from_str(&items).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        n += 1;
        let item = id * 1_000_000 + n;
        items.push(item);
        let tx = reg
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let highest: i64 = tx
            .query_row("SELECT token FROM reg", [], |r| r.get(0))
            .unwrap();
        let accepted = !fenced || token >= highest;
        if accepted {
            tx.execute(
                "UPDATE reg SET items = ?1, token = max(token, ?2)",
                (serde_json::to_string(&items).unwrap(), token),
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO writes (writer, token, item, accepted) VALUES (?1, ?2, ?3, ?4)",
            (id, token, item, accepted),
        )
        .unwrap();
        tx.commit().unwrap();
        // The lock may have lapsed meanwhile: nothing to do about it.
        let _ = locks.release(&lock.resource, &lock.owner);
    }
}

struct Figures {
    attempts: u64,
    accepted: u64,
    stale_rejected: u64,
    stale_accepted: u64,
    lost: u64,
    pauses: u64,
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} failed");
}

/// Reads the register: what was attempted, accepted, refused, and lost.
fn figures(reg: &Connection, pauses: u64) -> Figures {
    let items: String = reg
        .query_row("SELECT items FROM reg", [], |r| r.get(0))
        .unwrap();
    let final_set: std::collections::HashSet<i64> = serde_json::from_str::<Vec<i64>>(&items)
        .unwrap()
        .into_iter()
        .collect();
    let mut st = reg
        .prepare("SELECT token, item, accepted FROM writes ORDER BY seq")
        .unwrap();
    let rows: Vec<(i64, i64, bool)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut f = Figures {
        attempts: rows.len() as u64,
        accepted: 0,
        stale_rejected: 0,
        stale_accepted: 0,
        lost: 0,
        pauses,
    };
    let mut highest = 0;
    for (token, item, accepted) in rows {
        if accepted {
            f.accepted += 1;
            if token < highest {
                f.stale_accepted += 1;
            }
            highest = highest.max(token);
            if !final_set.contains(&item) {
                f.lost += 1;
            }
        } else {
            f.stale_rejected += 1;
        }
    }
    f
}

/// Runs the writers, pausing the holder until `bitten` says the fault showed (or 30 s).
fn run(fenced: bool, bitten: impl Fn(&Figures) -> bool) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("locks.db");
    drop(SqliteLockManager::open(&db).unwrap());
    let reg = register(&dir.path().join("register.db"));
    let mode = if fenced { "fenced" } else { "unfenced" };
    let mut children: Vec<Child> = (0..WRITERS)
        .map(|i| {
            child("fencing::helper_fenced_writer", &db, &format!("{i} {mode}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let watcher = SqliteLockManager::open(&db).unwrap();
    let register_lock = Resource::new("register").unwrap();
    let started = Instant::now();
    let mut pauses = 0;
    while started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(60));
        // Stop whoever holds the lock now, in the middle of its read-think-write.
        let holder = watcher
            .holders(&register_lock)
            .unwrap()
            .first()
            .and_then(|l| l.owner.as_str().strip_prefix('w')?.parse::<usize>().ok());
        let Some(h) = holder else { continue };
        signal(&children[h], "-STOP");
        std::thread::sleep(PAUSE);
        signal(&children[h], "-CONT");
        pauses += 1;
        let f = figures(&reg, pauses);
        if pauses >= 3 && bitten(&f) {
            break;
        }
    }
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    for c in &mut children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
    }
    figures(&reg, pauses)
}

#[test]
fn fenced_writes_refuse_stale_holders_and_lose_nothing() {
    let f = run(true, |f| f.stale_rejected > 0);
    assert!(
        f.stale_rejected > 0,
        "no stale write was attempted in {} pauses: the fault never bit",
        f.pauses
    );
    assert_eq!(f.stale_accepted, 0, "a stale write was accepted");
    assert_eq!(f.lost, 0, "an acknowledged element was lost");
    let u = run(false, |f| f.lost > 0);
    assert!(
        u.lost > 0,
        "without fencing the same pauses should lose acknowledged elements ({} pauses)",
        u.pauses
    );
    publish(
        "locks.fencing",
        serde_json::json!({
            "writers": WRITERS, "ttl_ms": TTL.as_millis() as u64, "pause_ms": PAUSE.as_millis() as u64,
            "fenced": { "pauses": f.pauses, "attempt": f.attempts, "accepted": f.accepted,
                        "stale_rejected": f.stale_rejected, "stale_accepted": f.stale_accepted, "lost": f.lost },
            "unfenced": { "pauses": u.pauses, "attempt": u.attempts, "accepted": u.accepted,
                          "stale_accepted": u.stale_accepted, "lost": u.lost },
        }),
    );
}
