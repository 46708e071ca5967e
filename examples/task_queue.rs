//! A work queue shared by agent threads: claim with a lease, heartbeat, finish with the fencing
//! token, and a reaper that hands a crashed agent's task to someone else; every transition goes
//! through `TaskLifecycle`, and the store's history of each task tells its story.
//!
//! Run with `cargo run -p oc-examples --example task_queue`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use oc_hooks::{Hooks, TaskLifecycle};
use oc_tasks::{
    Error, ManualClock, NewTask, SqliteTaskStore, TaskFilter, TaskStatus, TaskStore, Timestamp,
};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Time is an input: a manual clock lets the example jump past a lease instead of sleeping.
    let clock = ManualClock::new(Timestamp::now());
    let store = Arc::new(
        SqliteTaskStore::options()
            .clock(Arc::new(clock.clone()))
            .open(dir.path().join("opencode.db"))?,
    );
    let life = TaskLifecycle::new(store.clone(), Arc::new(Hooks::new()));
    for i in 0..20 {
        life.create(NewTask::new(format!("job {i}")).priority(i % 3))?;
    }

    // An agent that claims a task and then "crashes": its lease will lapse.
    let crashed = life
        .claim_next("crashy-agent", Duration::from_millis(50))?
        .context("a pending task")?
        .into_task();
    let stale_token = crashed.lease.context("claims have leases")?.token;

    // Four well-behaved agents drain the queue.
    std::thread::scope(|s| {
        for a in 0..4 {
            let life = life.clone();
            s.spawn(move || -> oc_hooks::Result<()> {
                let me = format!("agent-{a}");
                while let Some(c) = life.claim_next(&me, Duration::from_secs(30))? {
                    let t = c.into_task();
                    let token = t.lease.map(|l| l.token);
                    if let Some(tok) = token {
                        life.heartbeat(&t.id, tok, Duration::from_secs(30))?;
                    }
                    life.complete(&t.id, token, Some(serde_json::json!({ "by": me })))?;
                }
                Ok(())
            });
        }
    });

    // Once the crashed agent's lease has lapsed, the reaper returns its task to the queue.
    clock.advance(Duration::from_millis(60));
    let reaped = life.reap(store.now())?;
    ensure!(
        reaped.len() == 1 && reaped[0].task().id == crashed.id,
        "the lapsed claim is reaped"
    );
    let again = life
        .claim_next("agent-9", Duration::from_secs(30))?
        .context("the reaped task")?
        .into_task();
    let new_token = again.lease.context("lease")?.token;
    ensure!(
        new_token > stale_token,
        "the new holder has a larger fencing token"
    );

    // The crashed agent wakes up and tries to finish: its stale token is refused.
    match life.complete(&crashed.id, Some(stale_token), None) {
        Err(oc_hooks::Error::Task(Error::LeaseLost { .. })) => {
            println!("stale token {stale_token} refused, as it should be")
        }
        other => anyhow::bail!("stale completion was not refused: {other:?}"),
    }
    life.complete(&again.id, Some(new_token), None)?;

    let stats = store.stats(3)?;
    ensure!(
        stats.count(TaskStatus::Completed) == 20,
        "every job completed once"
    );
    ensure!(store.count(&TaskFilter::new().status(TaskStatus::Pending))? == 0);
    println!(
        "{} tasks completed by {} agents",
        stats.total,
        stats.by_owner.len()
    );

    // The crashed task's history, recorded by the store with each transition, tells its story.
    let history = store.history(&crashed.id)?;
    for e in &history {
        println!("  {} {}", crashed.id, e.describe());
    }
    ensure!(
        history.len() == 5,
        "created, claimed, lease expired, claimed, completed"
    );
    Ok(())
}
