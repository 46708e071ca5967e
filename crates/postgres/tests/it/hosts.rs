//! Two hosts (network namespaces) reach the server in a third over veth links.
//!
//! - Agents on both claim tasks and take an exclusive lock around a read-modify-write of a
//!   shared counter: no task is claimed twice, no token twice, and the counter ends exact.
//! - A host holding a lease is cut off past its expiry; the other host reaps the task and
//!   claims it again with a higher token; when the link heals, the cut host's completion with
//!   its old token is refused (`LeaseLost`) and changes nothing.
//!
//! Only the namespaces send network traffic; this process reaches the server through its Unix
//! socket. The children are this test binary, re-run inside a namespace with `OC_CHILD_HOST`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_locks::{LockManager, LockRequest};
use oc_postgres::testkit::network_for_tests;
use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
use oc_tasks::{NewTask, TaskId, TaskStatus, TaskStore};

const TASKS: usize = 120;
const THREADS: usize = 4;

/// The child's options and role, when this process is a child.
fn child() -> Option<(PgOptions, String, String)> {
    let role = std::env::var("OC_CHILD_HOST").ok()?;
    let arg = std::env::var("OC_CHILD_ARG").unwrap_or_default();
    Some((crate::server::child_options()?, role, arg))
}

/// Child part, on either host: threads claim, lock, bump the shared counter, complete.
#[test]
fn helper_host() {
    let Some((opts, role, arg)) = child() else {
        return;
    };
    let store = Arc::new(PgTaskStore::connect(opts.clone()).unwrap());
    let locks = Arc::new(PgLockManager::connect(PgLockOptions::new(opts)).unwrap());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    match role.as_str() {
        "work" => std::thread::scope(|s| {
            for t in 0..THREADS {
                let (store, locks, out, counter) = (&store, &locks, &out, &arg);
                s.spawn(move || {
                    let me = format!("{}-{t}", std::env::var("OC_CHILD_NAME").unwrap());
                    let req = LockRequest::exclusive("repo/counter", &me).unwrap();
                    // Only each host's first thread claims before both hosts have one task, so
                    // both compete however the machine schedules their processes.
                    if t != 0 {
                        wait_all(counter, "first");
                    }
                    let mut claimed = 0;
                    while let Some(task) = store.claim_next(&me, Duration::from_secs(60)).unwrap() {
                        claimed += 1;
                        let token = task.lease.unwrap().token;
                        let lock = locks.acquire(&req, Duration::from_secs(60)).unwrap();
                        // Read, pause, write: only mutual exclusion keeps this exact.
                        let n: u64 = std::fs::read_to_string(counter)
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        std::thread::yield_now();
                        std::fs::write(counter, format!("{}\n", n + 1)).unwrap();
                        locks.release(&lock.resource, &lock.owner).unwrap();
                        store.complete(&task.id, Some(token), None).unwrap();
                        writeln!(out.lock().unwrap(), "claimed {} {token}", task.id).unwrap();
                        if t == 0 && claimed == 1 {
                            arrive(counter, "first");
                            wait_all(counter, "first");
                        }
                    }
                });
            }
        }),
        // Claims the task, says so, then completes it once told to (after the partition).
        "holder" => {
            let id = TaskId::new(arg).unwrap();
            let t = store.claim(&id, "host-a", Duration::from_secs(1)).unwrap();
            let token = t.lease.unwrap().token;
            let mut o = out.lock().unwrap();
            writeln!(o, "claimed {token}").unwrap();
            o.flush().unwrap();
            drop(o);
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            let said = match store.complete(&id, Some(token), None) {
                Ok(_) => "ok".to_owned(),
                Err(oc_tasks::Error::LeaseLost { .. }) => "lease_lost".into(),
                Err(e) => format!("error {e}"),
            };
            writeln!(out.lock().unwrap(), "complete {said}").unwrap();
        }
        // Reaps the task once its lease lapsed (by the database's clock), claims and completes.
        "taker" => {
            let id = TaskId::new(arg).unwrap();
            let until = Instant::now() + Duration::from_secs(30);
            while !store
                .reap_expired(store.now())
                .unwrap()
                .iter()
                .any(|r| r.task.id == id)
            {
                assert!(Instant::now() < until, "the lease never lapsed");
                std::thread::sleep(Duration::from_millis(50));
            }
            let t = store.claim(&id, "host-b", Duration::from_secs(30)).unwrap();
            let token = t.lease.unwrap().token;
            store.complete(&id, Some(token), None).unwrap();
            writeln!(out.lock().unwrap(), "claimed {token}\ncomplete ok").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Says this host reached `point` (a file beside the counter, on the filesystem the
/// namespaces share).
fn arrive(counter: &str, point: &str) {
    let me = std::env::var("OC_CHILD_NAME").unwrap();
    std::fs::write(format!("{counter}.{point}-{me}"), "").unwrap();
}

/// Waits until both hosts reached `point`.
fn wait_all(counter: &str, point: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while !["a", "b"]
        .iter()
        .all(|h| Path::new(&format!("{counter}.{point}-{h}")).exists())
    {
        assert!(Instant::now() < until, "a host never reached {point}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// This test binary as a child with `role` and `arg`, on the server at `url`.
fn helper(url: &str, schema: &str, name: &str, role: &str, arg: &str) -> Command {
    let mut c = crate::server::child("hosts::helper_host", url, schema);
    c.env("OC_CHILD_HOST", role)
        .env("OC_CHILD_NAME", name)
        .env("OC_CHILD_ARG", arg);
    c
}

/// The `prefix` lines a child printed, without the prefix.
fn lines_of(out: &[u8], prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .collect()
}

#[test]
fn two_hosts_share_tasks_and_locks_and_a_cut_host_loses_its_lease() {
    let Some(net) = network_for_tests(2) else {
        return;
    };
    let (pg, url) = crate::server::server_on(&net);
    let schema = "hosts";
    // This process sets up and checks through the Unix socket, never the network.
    let local = PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema(schema)
        .unwrap();
    let store = PgTaskStore::connect(local.clone()).unwrap();
    PgLockManager::connect(PgLockOptions::new(local)).unwrap();
    store
        .create_many((0..TASKS).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    let counter = pg.socket_dir().join("counter");
    std::fs::write(&counter, "0\n").unwrap();

    // Both hosts at once.
    let children: Vec<_> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cmd = helper(&url, schema, name, "work", &counter.to_string_lossy());
            net.on_host(i, &cmd)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut ids, mut tokens, mut per_host) = (HashSet::new(), HashSet::new(), Vec::new());
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a host failed");
        let claimed = lines_of(&out.stdout, "claimed ");
        per_host.push(claimed.len());
        for line in claimed {
            let (id, token) = line.split_once(' ').unwrap();
            assert!(ids.insert(id.to_owned()), "task {id} claimed twice");
            assert!(
                tokens.insert(token.to_owned()),
                "token {token} handed out twice"
            );
        }
    }
    assert_eq!(ids.len(), TASKS, "every task claimed once");
    assert!(
        per_host.iter().all(|&n| n > 0),
        "both hosts worked: {per_host:?}"
    );
    let count: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        count, TASKS,
        "the counter under the exclusive lock is exact"
    );

    // A partition longer than a lease.
    let x = store.create(NewTask::new("contested")).unwrap().id;
    let mut holder = net
        .on_host(0, &helper(&url, schema, "a", "holder", x.as_str()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(holder.stdout.take().unwrap()).lines();
    // The next line of the holder's that starts with `prefix` (the test harness talks too).
    let mut next_said = |prefix: &str| -> String {
        said.by_ref()
            .map(Result::unwrap)
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("the holder never said {prefix:?}"))
    };
    let old: u64 = next_said("claimed ").parse().unwrap();
    net.cut(0).unwrap();
    let taker = net
        .on_host(1, &helper(&url, schema, "b", "taker", x.as_str()))
        .output()
        .unwrap();
    assert!(
        taker.status.success(),
        "the other host reaped and re-claimed"
    );
    let new: u64 = lines_of(&taker.stdout, "claimed ")[0].parse().unwrap();
    assert!(
        new > old,
        "the re-claim's token {new} is above the lost one {old}"
    );
    let done = store.get(&x).unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    net.heal(0).unwrap();
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let verdict = next_said("complete ");
    assert_eq!(verdict, "lease_lost", "the stale completion is refused");
    assert!(holder.wait().unwrap().success());
    assert_eq!(store.get(&x).unwrap().unwrap(), done, "and changed nothing");
    let history: Vec<String> = store
        .history(&x)
        .unwrap()
        .iter()
        .map(|h| h.describe())
        .collect();
    assert!(
        history
            .iter()
            .any(|h| h.starts_with("lease_expired: running -> pending by host-a"))
    );
    assert!(
        history
            .last()
            .unwrap()
            .starts_with("completed: running -> completed by host-b")
    );
}
