//! Idempotency keys across crashes: a child claiming under keys is killed with SIGKILL at
//! random points, then every key is retried: never two grants for one key, and each retried
//! key gives back the grant that was committed.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oc_tasks::{
    IdempotencyKey, LabelFilter, NewTask, SqliteTaskStore, TaskFilter, TaskStatus, TaskStore,
};

use crate::processes::{child, child_env};

const LEASE: Duration = Duration::from_secs(3600);

fn key(i: u64) -> IdempotencyKey {
    IdempotencyKey::new("w", format!("k{i}")).unwrap()
}

/// Child part: from the key number in its argument on, claims the next task under each key,
/// printing `granted <i> <id> <token> <replayed>`.
#[test]
fn helper_keyed_claims() {
    let Some((db, start)) = child_env() else {
        return;
    };
    let start: u64 = start.parse().expect("a key number");
    let store = SqliteTaskStore::open(&db).expect("child opens the store");
    let mut out = std::io::stdout();
    for i in start.. {
        let got = store
            .claim_next_keyed(&key(i), "w", LEASE, &LabelFilter::any())
            .expect("no error reaches the caller");
        let Some(t) = got.value else { return };
        let token = t.lease.expect("a lease").token;
        use std::io::Write;
        writeln!(out, "granted {i} {} {token} {}", t.id, got.replayed).expect("stdout");
        out.flush().expect("stdout");
    }
}

#[test]
fn sigkill_during_keyed_claims_never_grants_a_key_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let store = SqliteTaskStore::open(&db).unwrap();
    store
        .create_many((0..3000).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    drop(store);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    // What children reported: key number -> (task, token).
    let mut seen: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut start = 0u64;
    for round in 0..6 {
        let mut c = child("keys::helper_keyed_claims", &db, &start.to_string())
            .spawn()
            .expect("spawn");
        let stdout = c.stdout.take().expect("piped");
        let stop = 1 + next(60);
        let mut lines = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child output");
            let Some(rest) = line.strip_prefix("granted ") else {
                continue;
            };
            let f: Vec<&str> = rest.split(' ').collect();
            let (i, id, token): (u64, String, u64) =
                (f[0].parse().unwrap(), f[1].into(), f[2].parse().unwrap());
            if let Some(prev) = seen.insert(i, (id.clone(), token)) {
                assert_eq!(
                    prev,
                    (id, token),
                    "seed {seed} round {round}: key {i} granted twice"
                );
            }
            start = start.max(i + 1);
            lines += 1;
            if lines >= stop {
                break;
            }
        }
        // Sometimes at once, sometimes a little later: mid-transaction as often as not.
        std::thread::sleep(Duration::from_micros(next(3000)));
        c.kill().expect("SIGKILL the child");
        c.wait().expect("reap child");
    }
    // Every key, and a few past the last one reported (claims that committed unreported).
    let store = SqliteTaskStore::open(&db).unwrap();
    assert!(store.integrity_check().unwrap().is_empty());
    let running_before = store
        .count(&TaskFilter::new().status(TaskStatus::Running))
        .unwrap();
    let mut tokens = HashSet::new();
    let mut granted = 0;
    for i in 0..start + 50 {
        let got = store
            .claim_next_keyed(&key(i), "w", LEASE, &LabelFilter::any())
            .unwrap();
        let t = got.value.expect("work left");
        let token = t.lease.expect("a lease").token;
        assert!(tokens.insert(token), "seed {seed}: token {token} twice");
        if let Some(want) = seen.get(&i) {
            assert!(got.replayed, "seed {seed}: key {i} was committed");
            assert_eq!(
                (t.id.to_string(), token),
                *want,
                "seed {seed}: key {i} gives back its grant"
            );
        }
        granted += u64::from(got.replayed);
    }
    assert_eq!(
        granted, running_before,
        "seed {seed}: one running task per key committed, none granted twice"
    );
    assert_eq!(
        store
            .count(&TaskFilter::new().status(TaskStatus::Running))
            .unwrap(),
        start + 50,
        "seed {seed}: one grant per key"
    );
}
