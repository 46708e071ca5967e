//! Histories from two hosts on PostgreSQL, checked for linearizability: four client processes,
//! two on each host (network namespaces), run the random lock workload and then the random
//! task workload of the testkits, on the database's clock, while one host is cut off for longer
//! than a lease and one process is killed. The joined histories must be linearizable against
//! the models, with tokens unique and growing.
//!
//! The children are this test binary, re-run inside a namespace with `OC_CHILD_HISTORY`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use oc_lincheck::{ProcessLog, Summary, publish, read_logs};
use oc_locks::TtlPolicy;
use oc_locks::testkit::history as locks;
use oc_postgres::testkit::network_for_tests;
use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
use oc_tasks::testkit::history as tasks;

const PROCS: u64 = 4;

fn lock_workload(seed: u64) -> locks::Workload {
    locks::Workload {
        seed,
        ops: 120,
        ttl_ms: (150, 400),
        max_wait_ms: 30,
        pause_us: 3_000,
        ..Default::default()
    }
}

fn task_workload(seed: u64) -> tasks::Workload {
    tasks::Workload {
        seed,
        ops: 120,
        lease_ms: 200,
        pause_us: 3_000,
        ..Default::default()
    }
}

fn lock_manager(opts: PgOptions) -> PgLockManager {
    PgLockManager::connect(PgLockOptions::new(opts).ttl(TtlPolicy {
        min: Duration::from_millis(10),
        ..TtlPolicy::default()
    }))
    .unwrap()
}

/// Child part: agent `n` of the lock or task workload, its calls appended to its own log.
#[test]
fn helper_history() {
    let (Some(opts), Ok(kind)) = (
        crate::server::child_options(),
        std::env::var("OC_CHILD_HISTORY"),
    ) else {
        return;
    };
    let arg = std::env::var("OC_CHILD_ARG").unwrap();
    let mut args = arg.split(' ');
    let (n, seed, log): (u64, u64, &str) = (
        args.next().unwrap().parse().unwrap(),
        args.next().unwrap().parse().unwrap(),
        args.next().unwrap(),
    );
    let mut log = ProcessLog::open(Path::new(log), n).unwrap();
    match kind.as_str() {
        "locks" => locks::run_process(&lock_manager(opts), &lock_workload(seed), n, &mut log),
        _ => tasks::run_process(
            &PgTaskStore::connect(opts).unwrap(),
            &task_workload(seed),
            n,
            &mut log,
        ),
    }
    .unwrap();
}

#[test]
fn two_hosts_histories_are_linearizable_through_a_partition_and_a_kill() {
    let Some(net) = network_for_tests(2) else {
        return;
    };
    let (pg, url) = crate::server::server_on(&net);
    let rounds = oc_lincheck::runs(1, 10);
    for kind in ["locks", "tasks"] {
        let mut summary = Summary::default();
        for seed in 0..rounds as u64 {
            let schema = format!("hist_{kind}_{seed}");
            // This process sets up and checks through the Unix socket, never the network.
            let local = PgOptions::new(&pg.url("postgres"))
                .unwrap()
                .schema(&schema)
                .unwrap();
            match kind {
                "locks" => drop(lock_manager(local)),
                _ => tasks::setup(&PgTaskStore::connect(local).unwrap(), &task_workload(seed))
                    .unwrap(),
            }
            let dir = tempfile::tempdir().unwrap();
            let logs: Vec<_> = (0..PROCS)
                .map(|i| dir.path().join(format!("p{i}.jsonl")))
                .collect();
            let mut children: Vec<_> = (0..PROCS)
                .map(|i| {
                    let mut cmd = crate::server::child("histories::helper_history", &url, &schema);
                    cmd.env("OC_CHILD_HISTORY", kind).env(
                        "OC_CHILD_ARG",
                        format!("{i} {seed} {}", logs[i as usize].display()),
                    );
                    net.on_host((i % 2) as usize, &cmd)
                        .stdout(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect();
            // Nemeses: host 0 cut off for longer than any lease, and meanwhile a process on
            // host 1 killed mid-run.
            std::thread::sleep(Duration::from_millis(120));
            net.cut(0).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            children[1].kill().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            net.heal(0).unwrap();
            for c in &mut children {
                c.wait().unwrap();
            }
            let (checked, answers) = match kind {
                "locks" => {
                    let h: locks::LockHistory = read_logs(&logs).unwrap();
                    let checked = locks::check(&h, 5);
                    if !checked.is_ok() {
                        oc_lincheck::fail(
                            &h,
                            &format!("{kind}, seed {seed}"),
                            "OC_REPLAY_HISTORY={} OC_REPLAY_SLACK_MS=5 cargo test -p oc-locks --all-features --test it replay_saved_history",
                            &checked,
                        );
                    }
                    (checked, locks::tally(&h))
                }
                _ => {
                    let h: tasks::TaskHistory = read_logs(&logs).unwrap();
                    let checked = tasks::check_pairs(&h, task_workload(seed).pairs);
                    if !checked.is_ok() {
                        oc_lincheck::fail(
                            &h,
                            &format!("{kind}, seed {seed}"),
                            "OC_REPLAY_HISTORY={} cargo test -p oc-tasks --all-features --test it replay_saved_history",
                            &checked,
                        );
                    }
                    (checked, tasks::tally(&h))
                }
            };
            summary.add(&checked, answers);
        }
        publish(
            &format!("{kind}.postgres.two_hosts"),
            summary.figures(
                PROCS as usize,
                serde_json::json!({ "hosts": 2, "partitions": rounds, "kills": rounds }),
            ),
        );
    }
}
