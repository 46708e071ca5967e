//! The group commit's hand-off under shuttle's scheduler (built with `RUSTFLAGS="--cfg
//! shuttle"`; `cargo xtask shuttle` runs it): random and PCT schedules of appenders that leave
//! their records to a leader's `fdatasync`, with the leader's gathering timeouts firing or not
//! at shuttle's choice. In every schedule every append returns `Ok` only once a sync that
//! covers it has completed, every record is in the file once and whole, and no appender is left
//! asleep (shuttle reports a deadlock otherwise). A failure prints the schedule that
//! `shuttle::replay` replays.

#![cfg(shuttle)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use oc_jsonl::{Durability, JsonlReader, JsonlWriter, WriterOptions};
use serde_json::{Value, json};
use shuttle::sync::atomic::{AtomicU64, Ordering};
use shuttle::thread;

const APPENDERS: u64 = 3;
const EACH: u64 = 2;

fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    // Completed syncs, counted by the writer's own observer: an append must see one more than
    // there were when it started.
    let syncs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&syncs);
    let w = Arc::new(
        JsonlWriter::open(
            &path,
            WriterOptions {
                durability: Durability::GroupCommit,
                ..Default::default()
            },
        )
        .unwrap()
        .observe_fsync(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        }),
    );
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let (w, syncs) = (Arc::clone(&w), Arc::clone(&syncs));
            thread::spawn(move || {
                for i in 0..EACH {
                    let before = syncs.load(Ordering::SeqCst);
                    w.append(&json!({ "id": format!("{t}-{i}") })).unwrap();
                    assert!(
                        syncs.load(Ordering::SeqCst) > before,
                        "an append returned before any sync covered it"
                    );
                }
            })
        })
        .collect();
    for a in appenders {
        a.join().unwrap();
    }
    drop(w);
    let (records, report) = JsonlReader::open(&path).records::<Value>().unwrap();
    assert_eq!(report.malformed, 0);
    let ids: BTreeSet<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), records.len(), "a record twice");
    assert_eq!(ids.len() as u64, APPENDERS * EACH, "a record missing");
}

#[test]
fn group_commit_hand_off_under_random_and_pct_schedules() {
    let iterations = oc_lincheck::runs(300, 6_000);
    shuttle::check_random(scenario, iterations);
    shuttle::check_pct(scenario, iterations, 3);
    oc_lincheck::publish(
        "jsonl.shuttle.group_commit",
        serde_json::json!({ "random_schedules": iterations, "pct_schedules": iterations,
                            "pct_depth": 3, "appenders": APPENDERS, "failures": 0, "panics": 0 }),
    );
}
