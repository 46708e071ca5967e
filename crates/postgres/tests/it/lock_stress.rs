//! Two lock managers on one schema (two hosts' handles, each with its own connections), many
//! threads each, acquiring overlapping and non-overlapping resources (decision 0048): no two
//! conflicting holds on overlapping resources are ever granted at once, and of two such holds
//! the later has the greater token. A planted bug, the keys of `lock_serialize` not taken, lets
//! two overlapping grants through, and the same check must catch it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_locks::{LockManager, LockMode, LockRequest, Resource};
use oc_postgres::testkit::PgServer;
use oc_postgres::{PgLockManager, PgLockOptions};

use crate::server::{fresh_options, server};

/// Nested and flat resources: a directory, files below it, siblings, and unrelated names.
const SHARED: [&str; 7] = ["s", "s/a", "s/a/x", "s/b", "s/b/y", "t", "t/z"];

/// One hold as its thread saw it: granted before `from`, released after `to`.
#[derive(Debug, Clone)]
struct Hold {
    resource: Resource,
    owner: String,
    mode: LockMode,
    token: u64,
    from: Instant,
    to: Instant,
}

/// What the threads did, for the report and for asserting the workload was one.
#[derive(Debug, Default)]
struct Tally {
    granted: usize,
    refused: usize,
}

/// A small deterministic generator per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Runs `threads` threads on each of `managers`, `ops` operations each on `resources` (and a
/// resource of each thread's own one time in four), holding each grant for `hold`.
fn run(
    managers: &[Arc<PgLockManager>],
    threads: usize,
    ops: usize,
    resources: &[&str],
    hold: Duration,
) -> (Vec<Hold>, Tally) {
    let out = std::sync::Mutex::new((Vec::new(), Tally::default()));
    std::thread::scope(|s| {
        for (h, m) in managers.iter().enumerate() {
            for t in 0..threads {
                let (m, out) = (m.clone(), &out);
                s.spawn(move || {
                    let owner = format!("h{h}-t{t}");
                    let own = format!("own/{owner}");
                    let mut rng = Rng((h * 1000 + t) as u64);
                    let (mut holds, mut tally) = (Vec::new(), Tally::default());
                    for _ in 0..ops {
                        let resource = if rng.below(4) == 0 {
                            own.as_str()
                        } else {
                            resources[rng.below(resources.len() as u64) as usize]
                        };
                        let mode = if rng.below(3) == 0 {
                            LockMode::Shared
                        } else {
                            LockMode::Exclusive
                        };
                        let req = LockRequest::new(resource, &owner, mode)
                            .unwrap()
                            .ttl(Duration::from_secs(60));
                        let wait = Duration::from_millis(rng.below(3) * 5);
                        match m.acquire(&req, wait) {
                            Ok(l) => {
                                let from = Instant::now();
                                std::thread::sleep(hold);
                                let to = Instant::now();
                                m.release(&l.resource, &l.owner).unwrap();
                                tally.granted += 1;
                                holds.push(Hold {
                                    resource: l.resource,
                                    owner: owner.clone(),
                                    mode: l.mode,
                                    token: l.token,
                                    from,
                                    to,
                                });
                            }
                            Err(e) if e.is_conflict() => tally.refused += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    let mut o = out.lock().unwrap();
                    o.0.extend(holds);
                    o.1.granted += tally.granted;
                    o.1.refused += tally.refused;
                });
            }
        }
    });
    out.into_inner().unwrap()
}

/// The violations among `holds`: conflicting holds on overlapping resources granted at once,
/// and, of two such holds one after the other, a later one with a token not greater.
fn violations(holds: &[Hold]) -> (Vec<String>, Vec<String>) {
    let (mut at_once, mut tokens) = (Vec::new(), Vec::new());
    let mut by_start: Vec<&Hold> = holds.iter().collect();
    by_start.sort_by_key(|h| h.from);
    for (i, a) in by_start.iter().enumerate() {
        for b in &by_start[i + 1..] {
            if a.owner == b.owner
                || !a.resource.overlaps(&b.resource)
                || !a.mode.conflicts_with(b.mode)
            {
                continue;
            }
            // `b` was granted after `a` was (its hold began later, as seen by the threads).
            if b.from < a.to {
                at_once.push(format!("{a:?} and {b:?} held at once"));
            } else if b.token <= a.token {
                tokens.push(format!("{b:?} got a token not above {a:?}'s"));
            }
        }
    }
    (at_once, tokens)
}

/// Two managers (each its own pool) on a fresh schema.
fn managers(pg: &PgServer) -> (Vec<Arc<PgLockManager>>, String) {
    let opts = fresh_options(pg).pool_size(8);
    let schema = opts.schema_name().to_owned();
    let a = PgLockManager::connect(PgLockOptions::new(opts.clone())).unwrap();
    let b = PgLockManager::connect(PgLockOptions::new(opts)).unwrap();
    (vec![Arc::new(a), Arc::new(b)], schema)
}

#[test]
fn two_handles_never_grant_overlapping_locks_at_once() {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let (ms, _) = managers(pg);
    let (holds, tally) = run(&ms, 8, 150, &SHARED, Duration::from_micros(300));
    let (at_once, tokens) = violations(&holds);
    eprintln!(
        "{} grants, {} refusals, {} at once, {} tokens out of order",
        tally.granted,
        tally.refused,
        at_once.len(),
        tokens.len()
    );
    assert!(
        at_once.is_empty(),
        "{:#?}",
        &at_once[..at_once.len().min(5)]
    );
    assert!(tokens.is_empty(), "{:#?}", &tokens[..tokens.len().min(5)]);
    // The workload contended: grants on shared resources and refusals both happened.
    assert!(tally.refused > 0 && tally.granted > 200, "{tally:?}");
    let mut all: Vec<u64> = holds.iter().map(|h| h.token).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), holds.len(), "a token was handed out twice");
}

/// The planted bug: `lock_serialize` replaced, in this test's schema, by a function that takes
/// no key, so two acquires on one resource both decide before either commits.
#[test]
fn a_planted_bug_that_grants_overlapping_locks_is_caught() {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let (ms, schema) = managers(pg);
    pg.psql(
        "postgres",
        &format!(
            "CREATE OR REPLACE FUNCTION \"{schema}\".lock_serialize(p_res text[]) \
             RETURNS void LANGUAGE sql AS $$ SELECT $$"
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (holds, tally) = run(&ms, 8, 60, &["p", "p/q"], Duration::from_millis(1));
        let (at_once, _) = violations(&holds);
        eprintln!(
            "round {rounds}: {} grants, {} refusals, {} at once",
            tally.granted,
            tally.refused,
            at_once.len()
        );
        if !at_once.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the planted bug went unnoticed for {rounds} rounds"
        );
    }
}

/// The counters are rows of changes, one per operation; reading the statistics past 1,000 rows
/// folds them into one, and the sums stay exact.
#[test]
fn counters_fold_and_stay_exact() {
    let Some(pg) = server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let (ms, schema) = managers(pg);
    let m = &ms[0];
    let req = LockRequest::exclusive("repo/f", "a").unwrap();
    for _ in 0..600 {
        let l = m.try_acquire(&req).unwrap();
        m.release(&l.resource, &l.owner).unwrap();
    }
    let rows = |pg: &PgServer| -> i64 {
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM \"{schema}\".lock_counts"),
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
    };
    assert!(rows(pg) > 1_000, "a row of changes per operation");
    let first = m.stats().unwrap();
    assert_eq!((first.total_locks, first.released), (600, 600));
    assert_eq!(rows(pg), 1, "folded into one row");
    let again = m.stats().unwrap();
    assert_eq!(
        (again.total_locks, again.released),
        (600, 600),
        "the fold kept the sums"
    );
}
