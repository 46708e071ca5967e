//! Agents as tasks on one tokio runtime: each claims a task, takes the lock on the file it
//! edits (waiting for another agent if it must), edits, completes the task and lets the file
//! go. The waits run on the runtime's blocking pool, so the two workers stay free: the
//! heartbeat line keeps printing while agents wait.
//!
//! Run: `cargo run -p oc-examples --example tokio_agent`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use oc_locks::{AsyncLockManager, LockRequest, SqliteLockManager};
use oc_tasks::{AsyncTaskStore, NewTask, SqliteTaskStore};

const AGENTS: usize = 6;
const FILES: [&str; 3] = ["src/parser.rs", "src/lexer.rs", "src/main.rs"];

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("opencode.db");
    let store = AsyncTaskStore::new(Arc::new(SqliteTaskStore::open(&db)?));
    let locks = AsyncLockManager::new(Arc::new(SqliteLockManager::open(&db)?));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    rt.block_on(async {
        store
            .create_many(
                (0..12)
                    .map(|i| NewTask::new(format!("refactor {}", FILES[i % FILES.len()])))
                    .collect(),
            )
            .await?;
        let heartbeat = tokio::spawn(async {
            let mut beat = tokio::time::interval(Duration::from_millis(100));
            for n in 0.. {
                beat.tick().await;
                println!("runtime heartbeat {n}");
            }
        });
        let agents: Vec<_> = (0..AGENTS)
            .map(|a| {
                let (store, locks) = (store.clone(), locks.clone());
                tokio::spawn(async move { agent(a, store, locks).await })
            })
            .collect();
        for a in agents {
            a.await??;
        }
        heartbeat.abort();
        let stats = locks.stats().await?;
        println!(
            "done: {} lock grants, {} waits for another agent's file",
            stats.total_locks, stats.conflicts_detected
        );
        anyhow::Ok(())
    })
}

/// Works until no task is left.
async fn agent(a: usize, store: AsyncTaskStore, locks: AsyncLockManager) -> anyhow::Result<()> {
    let me = format!("agent-{a}");
    while let Some(task) = store.claim_next(&me, Duration::from_secs(60)).await? {
        let file = task.name.trim_start_matches("refactor ").to_owned();
        let lock = locks
            .acquire(LockRequest::exclusive(&file, &me)?, Duration::from_secs(30))
            .await?;
        println!("{me} edits {file} for {}", task.id);
        tokio::time::sleep(Duration::from_millis(150)).await;
        store
            .complete(task.id, task.lease.map(|l| l.token), None)
            .await?;
        locks.release(lock.resource, lock.owner).await?;
    }
    Ok(())
}
