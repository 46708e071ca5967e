//! A work queue shared by agent threads: claim with a lease, heartbeat, finish with the fencing
//! token, and a reaper that hands a crashed agent's task to someone else.
//!
//! Run with `cargo run -p oc-examples --example task_queue`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
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
    store.create_many(
        (0..20)
            .map(|i| NewTask::new(format!("job {i}")).priority(i % 3))
            .collect(),
    )?;

    // An agent that claims a task and then "crashes": its lease will lapse.
    let crashed = store
        .claim_next("crashy-agent", Duration::from_millis(50))?
        .context("a pending task")?;
    let stale_token = crashed.lease.context("claims have leases")?.token;

    // Four well-behaved agents drain the queue.
    std::thread::scope(|s| {
        for a in 0..4 {
            let store = store.clone();
            s.spawn(move || -> oc_tasks::Result<()> {
                let me = format!("agent-{a}");
                while let Some(t) = store.claim_next(&me, Duration::from_secs(30))? {
                    let token = t.lease.map(|l| l.token);
                    if let Some(tok) = token {
                        store.heartbeat(&t.id, tok, Duration::from_secs(30))?;
                    }
                    store.complete(&t.id, token, Some(serde_json::json!({ "by": me })))?;
                }
                Ok(())
            });
        }
    });

    // Once the crashed agent's lease has lapsed, the reaper returns its task to the queue.
    clock.advance(Duration::from_millis(60));
    let reaped = store.reap_expired(store.now())?;
    ensure!(
        reaped.len() == 1 && reaped[0].task.id == crashed.id,
        "the lapsed claim is reaped"
    );
    let again = store
        .claim_next("agent-9", Duration::from_secs(30))?
        .context("the reaped task")?;
    let new_token = again.lease.context("lease")?.token;
    ensure!(
        new_token > stale_token,
        "the new holder has a larger fencing token"
    );

    // The crashed agent wakes up and tries to finish: its stale token is refused.
    match store.complete(&crashed.id, Some(stale_token), None) {
        Err(Error::LeaseLost { .. }) => {
            println!("stale token {stale_token} refused, as it should be")
        }
        other => anyhow::bail!("stale completion was not refused: {other:?}"),
    }
    store.complete(&again.id, Some(new_token), None)?;

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
    Ok(())
}
