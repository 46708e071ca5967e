//! The seed's "Custom Monitoring Hooks" in Rust: `register_after_task_start`,
//! `register_after_task_complete` and `register_after_task_fail` send monitoring events (here to
//! an in-process collector standing in for `sendMonitoringEvent`), with the duration the seed
//! computed by hand, and a background hook forwards everything without slowing the agents.
//!
//! Run with `cargo run -p oc-examples --example monitoring_hooks`.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::ensure;
use oc_hooks::{Hooks, Overflow, TaskLifecycle, builtin};
use oc_tasks::{EventKind, NewTask, SqliteTaskStore};
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteTaskStore::open(dir.path().join("opencode.db"))?);
    let hooks = Arc::new(Hooks::new());
    let sent: Arc<Mutex<Vec<Value>>> = Arc::default();

    // registerAfterTaskStart(async (taskId, agentId) => sendMonitoringEvent({...}))
    let s = sent.clone();
    hooks.register_after_task_start(move |task, agent| {
        if let Ok(mut s) = s.lock() {
            s.push(json!({ "event": "task_started", "taskId": task.id, "agentId": agent }));
        }
    });
    // registerAfterTaskComplete(async (taskId, result) => ... duration: calculateDuration(taskId))
    let s = sent.clone();
    hooks.register_after_task_complete(move |task, result| {
        let duration = task.run_duration().map(|d| d.as_secs_f64());
        if let Ok(mut s) = s.lock() {
            s.push(json!({ "event": "task_completed", "taskId": task.id, "result": result, "duration": duration }));
        }
    });
    // registerAfterTaskFail(async (taskId, error) => ...)
    let s = sent.clone();
    hooks.register_after_task_fail(move |task, error| {
        if let Ok(mut s) = s.lock() {
            s.push(json!({ "event": "task_failed", "taskId": task.id, "error": error }));
        }
    });
    // A slow shipper belongs on a background worker: agents never wait for it.
    let forwarded: Arc<Mutex<Vec<EventKind>>> = Arc::default();
    let f = forwarded.clone();
    hooks.after_background(
        "forward-all",
        &[],
        50,
        1024,
        Overflow::Block,
        builtin::forward(move |ev| {
            if let Ok(mut f) = f.lock() {
                f.push(ev.kind());
            }
        }),
    )?;

    let life = TaskLifecycle::new(store, hooks.clone());
    let ok = life
        .create(NewTask::new("index the repository"))?
        .into_task();
    let bad = life.create(NewTask::new("flaky migration"))?.into_task();
    let claim = life
        .claim(&ok.id, "agent-1", Duration::from_secs(30))?
        .into_task();
    life.complete(
        &ok.id,
        claim.lease.map(|l| l.token),
        Some(json!({ "files": 42 })),
    )?;
    life.start(&bad.id, "agent-2")?;
    life.fail(&bad.id, None, "migration 7 failed")?;

    let sent = sent
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    for e in &sent {
        println!("{e}");
    }
    let kinds: Vec<&str> = sent.iter().filter_map(|e| e["event"].as_str()).collect();
    ensure!(
        kinds
            == [
                "task_started",
                "task_completed",
                "task_started",
                "task_failed"
            ],
        "recorded {kinds:?}"
    );
    ensure!(sent[1]["result"] == json!({ "files": 42 }) && sent[1]["duration"].is_number());
    ensure!(sent[3]["error"] == "migration 7 failed");

    ensure!(
        hooks.shutdown(Duration::from_secs(10)) == 0,
        "the background worker drained its queue"
    );
    let forwarded = forwarded
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    ensure!(
        forwarded.len() == 6,
        "created x2, claimed, completed, started, failed: {forwarded:?}"
    );
    println!("background hook forwarded {} events", forwarded.len());
    Ok(())
}
