//! Faults: the server crashes and restarts under load; a client is killed mid-operation.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oc_postgres::testkit::{PgServer, ServerOptions, server_binaries};
use oc_postgres::{PgOptions, PgTaskStore};
use oc_tasks::{EventKind, NewTask, TaskFilter, TaskQuery, TaskStatus, TaskStore};

use crate::server::{child, child_options, fresh_options, server};

const TASKS: usize = 2_000;

#[test]
fn an_immediate_restart_under_load_loses_no_acknowledged_claim() {
    if server_binaries().is_none() && std::env::var_os("OC_REQUIRE_POSTGRES").is_none() {
        return;
    }
    let pg = PgServer::start_with(&ServerOptions {
        durable_commits: true,
        ..ServerOptions::default()
    })
    .unwrap();
    let opts = PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema("restart")
        .unwrap();
    let store = Arc::new(PgTaskStore::connect(opts).unwrap());
    store
        .create_many((0..TASKS).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let restarted = std::thread::scope(|s| {
        for w in 0..4 {
            let (store, acked, errors) = (store.clone(), acked.clone(), errors.clone());
            s.spawn(move || {
                let until = Instant::now() + Duration::from_secs(120);
                while Instant::now() < until {
                    match store.claim_next(&format!("w{w}"), Duration::from_secs(600)) {
                        Ok(Some(t)) => acked
                            .lock()
                            .unwrap()
                            .push((t.id.to_string(), t.lease.unwrap().token)),
                        Ok(None) => return,
                        Err(e) => {
                            assert!(e.is_retryable(), "a failure during the restart: {e}");
                            errors.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            });
        }
        while acked.lock().unwrap().len() < TASKS / 4 {
            std::thread::sleep(Duration::from_millis(5));
        }
        pg.restart_immediately().unwrap();
        true
    });
    assert!(restarted);
    assert!(errors.load(Ordering::Relaxed) > 0, "callers saw the crash");
    let acked = acked.lock().unwrap();
    let mut tokens: Vec<u64> = acked.iter().map(|(_, t)| *t).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), acked.len(), "no token handed out twice");
    for (id, token) in acked.iter() {
        let t = store.get(&id.parse().unwrap()).unwrap().unwrap();
        assert_eq!(
            t.status,
            TaskStatus::Running,
            "{id}: an acknowledged claim was lost"
        );
        assert_eq!(t.lease.unwrap().token, *token, "{id}: its token changed");
    }
    // Claims that committed as the connection died were never acknowledged: their tasks
    // are running under leases nobody holds, until the reaper returns them.
    let running = store
        .count(&TaskFilter::new().status(TaskStatus::Running))
        .unwrap() as usize;
    assert_eq!(
        store
            .count(&TaskFilter::new().status(TaskStatus::Pending))
            .unwrap(),
        0
    );
    assert!(running - acked.len() <= errors.load(Ordering::Relaxed));
}

/// Child part: claims and finishes tasks one after the other, forever.
#[test]
fn helper_busy_client() {
    let Some(opts) = child_options() else {
        return;
    };
    let store = PgTaskStore::connect(opts).unwrap();
    let mut out = std::io::stdout();
    for n in 0u64.. {
        let Some(t) = store.claim_next("busy", Duration::from_secs(600)).unwrap() else {
            break;
        };
        let token = t.lease.unwrap().token;
        if n % 2 == 0 {
            store.complete(&t.id, Some(token), None).unwrap();
        } else {
            store.fail(&t.id, Some(token), "odd").unwrap();
        }
        writeln!(out, "done {n}").unwrap();
    }
}

#[test]
fn a_client_killed_mid_operation_leaves_nothing_half_written() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let store = PgTaskStore::connect(opts).unwrap();
    store
        .create_many((0..TASKS).map(|i| NewTask::new(format!("t{i}"))).collect())
        .unwrap();
    for round in 0..3u64 {
        let mut child = child("faults::helper_busy_client", &pg.url("postgres"), &schema)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let goal = 50 + round * 37;
        for line in std::io::BufRead::lines(out) {
            if line.unwrap() == format!("done {goal}") {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        check_consistent(&store);
    }
}

/// Every task's row agrees with its history and the counters agree with both.
fn check_consistent(store: &PgTaskStore) {
    let mut kinds: HashMap<EventKind, u64> = HashMap::new();
    let mut after = None;
    loop {
        let page = store
            .list(&TaskQuery::new(TaskFilter::new()).limit(500).after(after))
            .unwrap();
        for t in &page.tasks {
            let h = store.history(&t.id).unwrap();
            let last = h.last().unwrap();
            assert_eq!(last.to, t.status, "{}: row and history disagree", t.id);
            assert_eq!(
                last.version, t.version,
                "{}: a write without its history",
                t.id
            );
            for e in &h {
                *kinds.entry(e.kind).or_default() += 1;
            }
        }
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let st = store.stats(0).unwrap();
    let entered = |s: TaskStatus| st.entered.iter().find(|(x, _)| *x == s).unwrap().1;
    let kind = |k: EventKind| kinds.get(&k).copied().unwrap_or(0);
    assert_eq!(entered(TaskStatus::Running), kind(EventKind::Claimed));
    assert_eq!(entered(TaskStatus::Completed), kind(EventKind::Completed));
    assert_eq!(entered(TaskStatus::Failed), kind(EventKind::Failed));
    assert_eq!(
        st.runs.count(),
        kind(EventKind::Completed) + kind(EventKind::Failed)
    );
}
