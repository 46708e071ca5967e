//! Two hosts (network namespaces) share a task's files through PostgreSQL
//! (`PgFileStore`, decision 0036).
//!
//! Host A appends log entries, each with an idempotency key, records decisions and takes
//! checkpoints; host B follows the log as it grows. In the middle of A's appends A's link is
//! cut, A's next append is sent into the cut, the server ends A's sessions (as a server-side
//! timeout would), and the link heals: the append in flight fails, and A retries it with its
//! key until it is acknowledged.
//! Afterwards every append A saw acknowledged is in the log exactly once, B followed exactly
//! the log's entries in order, and B lists A's decisions and checkpoints and restores one.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oc_jsonl::{Append, Decision, Level, LogEntry, Query, TaskFileStore};
use oc_postgres::PgFileStore;
use oc_postgres::testkit::network_for_tests;
use oc_time::Timestamp;

/// Entries host A appends.
const ENTRIES: u64 = 300;
/// A's entry after which the link is cut.
const CUT_AFTER: u64 = 120;
const TASK: &str = "shared";

fn store(opts: oc_postgres::PgOptions) -> PgFileStore {
    PgFileStore::connect(opts).unwrap()
}

/// The `i` an entry carries.
fn i_of(e: &LogEntry) -> u64 {
    e.data["i"].as_u64().unwrap()
}

/// Child part, on either host.
#[test]
fn helper_file_host() {
    let Some(opts) = crate::server::child_options() else {
        return;
    };
    let Ok(role) = std::env::var("OC_CHILD_FILES") else {
        return;
    };
    let files = store(opts);
    let mut out = std::io::stdout();
    match role.as_str() {
        // Appends ENTRIES entries, each retried with its key until acknowledged; a decision
        // and a checkpoint every 100 entries.
        "writer" => {
            for i in 0..ENTRIES {
                let key = format!("a-{i}");
                let e = LogEntry::new(Timestamp::now(), Level::Info, TASK, "step").with("i", i);
                let until = Instant::now() + Duration::from_secs(90);
                let mut tries = 0;
                loop {
                    tries += 1;
                    match files.append_logs(
                        TASK,
                        std::slice::from_ref(&e),
                        &Append::durable().key(&key),
                    ) {
                        Ok(a) => {
                            writeln!(out, "acked {i} {} {tries}", a.duplicate).unwrap();
                            break;
                        }
                        Err(err) => {
                            assert!(err.is_retryable(), "append {i}: {err}");
                            assert!(
                                Instant::now() < until,
                                "append {i} never acknowledged: {err}"
                            );
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                out.flush().unwrap();
                if i == CUT_AFTER {
                    // The parent cuts the link, then lets the next append start into the cut.
                    let mut go = String::new();
                    std::io::stdin().read_line(&mut go).unwrap();
                }
                if i % 100 == 99 {
                    let d = Decision {
                        timestamp: Timestamp::now(),
                        agent: "alice".into(),
                        decision: format!("after {i}"),
                        reasoning: "on host A".into(),
                        metadata: Default::default(),
                    };
                    files.append_decision(TASK, &d, &Append::durable()).unwrap();
                    let cp = files
                        .create_checkpoint(TASK, &format!("at {i}"), Timestamp::now())
                        .unwrap();
                    writeln!(out, "checkpoint {} {}", cp.id, i + 1).unwrap();
                }
            }
            writeln!(out, "done").unwrap();
        }
        // Follows the log from its start until it has seen every entry, printing each `i`.
        "follower" => {
            let until = Instant::now() + Duration::from_secs(120);
            let mut at = None;
            let mut seen = 0;
            while seen < ENTRIES {
                assert!(
                    Instant::now() < until,
                    "the follower saw only {seen} entries"
                );
                let after = match files.read_after(TASK, at.as_ref(), 1_000) {
                    Ok(a) => a,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("follow: {e}"),
                };
                assert!(!after.restarted, "nothing restored the log while following");
                for s in &after.entries {
                    writeln!(out, "seen {}", i_of(&s.record)).unwrap();
                    seen += 1;
                }
                if after.entries.is_empty() {
                    let _ = files.wait(TASK, &after.cursor, Duration::from_secs(1));
                }
                at = Some(after.cursor);
            }
            writeln!(out, "followed").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn helper(url: &str, schema: &str, role: &str) -> Command {
    let mut c = crate::server::child("file_hosts::helper_file_host", url, schema);
    c.env("OC_CHILD_FILES", role);
    c
}

/// Lines a child printed that start with `prefix`, without it.
fn said(out: &[u8], prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .collect()
}

#[test]
fn a_cut_host_retries_its_appends_once_each_while_another_follows() {
    let Some(net) = network_for_tests(2) else {
        return;
    };
    let (pg, url) = crate::server::server_on(&net);
    let schema = "file_hosts";
    // This process sets up and checks through the Unix socket, never the network.
    let local = oc_postgres::PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema(schema)
        .unwrap();
    let files = store(local.clone());
    let host_a = {
        let s = net.server_addr();
        format!("{}.2", &s[..s.rfind('.').unwrap()])
    };

    let follower = net
        .on_host(1, &helper(&url, schema, "follower"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut writer = net
        .on_host(0, &helper(&url, schema, "writer"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut go = writer.stdin.take().unwrap();
    let mut acked = Vec::new();
    let mut checkpoints = Vec::new();
    let mut cut = false;
    let (mut duplicates, mut retried) = (0, 0);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("acked ") {
            let mut parts = rest.split(' ');
            let i: u64 = parts.next().unwrap().parse().unwrap();
            duplicates += u64::from(parts.next() == Some("true"));
            retried += u64::from(parts.next().unwrap().parse::<u64>().unwrap() > 1);
            acked.push(i);
            if i == CUT_AFTER && !cut {
                cut = true;
                net.cut(0).unwrap();
                go.write_all(b"go\n").unwrap();
                // The next append is sent into the cut.
                std::thread::sleep(Duration::from_millis(300));
                // The server ends A's sessions while A cannot hear it, as a timeout would.
                let killer = pg
                    .psql(
                        "postgres",
                        &format!(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                             WHERE client_addr = '{host_a}'"
                        ),
                    )
                    .unwrap();
                eprintln!("ended {} sessions of host A", killer.trim());
                std::thread::sleep(Duration::from_secs(2));
                net.heal(0).unwrap();
            }
        } else if let Some(rest) = line.strip_prefix("checkpoint ") {
            checkpoints.push(rest.to_owned());
        } else if line == "done" {
            break;
        }
    }
    assert!(writer.wait().unwrap().success(), "host A failed");
    assert_eq!(
        acked,
        (0..ENTRIES).collect::<Vec<_>>(),
        "A saw every append acknowledged"
    );
    eprintln!("{retried} appends retried, {duplicates} answered as duplicates");
    assert!(
        retried > 0,
        "the partition failed some of A's appends, which A retried"
    );

    // Every acknowledged append is there, once, in A's order.
    let log = files.query(TASK, &Query::new()).unwrap();
    let stored: Vec<u64> = log.entries.iter().map(|s| i_of(&s.record)).collect();
    assert_eq!(
        stored, acked,
        "each acknowledged append stored once, in order"
    );

    // B followed exactly the stored log.
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "host B failed");
    let seen: Vec<u64> = said(&out.stdout, "seen ")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(seen, stored, "B followed the log as A wrote it");

    // B sees A's decisions and checkpoints, and restores one for everyone.
    let b = store(
        oc_postgres::PgOptions::new(&pg.url("postgres"))
            .unwrap()
            .schema(schema)
            .unwrap(),
    );
    let decisions = b.decisions(TASK, Some("alice"), 0, 100).unwrap();
    assert_eq!(decisions.entries.len(), (ENTRIES / 100) as usize);
    let listed: Vec<String> = b
        .checkpoints(TASK)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed.len(), checkpoints.len());
    let (first, at) = checkpoints[0].split_once(' ').unwrap();
    b.restore_checkpoint(TASK, first).unwrap();
    let after = files.query(TASK, &Query::new()).unwrap();
    assert_eq!(after.entries.len() as u64, at.parse::<u64>().unwrap());
    assert_eq!(
        files.decisions(TASK, None, 0, 100).unwrap().entries.len(),
        1
    );
}
