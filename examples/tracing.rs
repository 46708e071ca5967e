//! The libraries' `tracing` spans and events in a subscriber's output: an agent claims a task,
//! loses a race for a file lock, waits for it, writes a durable log line, and finishes the
//! task; a late write with a stale lease is refused.
//!
//! Run: `cargo run -p oc-examples --example tracing` (the events go to stderr). The libraries
//! never install a subscriber: the embedding program chooses one, as here.

use std::sync::Arc;
use std::time::Duration;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_jsonl::{Durability, JsonlWriter, WriterOptions};
use oc_locks::{LockManager, LockRequest, MemoryLockManager};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
use tracing_subscriber::fmt::format::FmtSpan;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn TaskStore> = Arc::new(
        SqliteTaskStore::options()
            // Report every statement slower than 5 ms (the default is 100 ms).
            .slow_threshold(Duration::from_millis(5))
            .open(dir.path().join("opencode.db"))?,
    );
    let hooks = Arc::new(Hooks::with_slow_threshold(Duration::from_millis(1)));
    hooks.before("policy-check", &[], 0, |_| {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    });
    let life = TaskLifecycle::new(Arc::clone(&store), hooks);
    let task = store.create(NewTask::new("refactor the parser"))?;
    let claimed = life
        .claim_next("agent-1", Duration::from_secs(60))?
        .ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
    let token = claimed
        .task()
        .lease
        .ok_or_else(|| anyhow::anyhow!("a claim has a lease"))?
        .token;

    let locks = MemoryLockManager::new();
    let held = locks.acquire(
        &LockRequest::exclusive("src/parser.rs", "agent-2")?,
        Duration::ZERO,
    )?;
    let mine = LockRequest::exclusive("src/parser.rs", "agent-1")?;
    // At once: refused. With patience: a wait, which ends when agent-2 gives the file up.
    let _ = locks.acquire(&mine, Duration::ZERO);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            let _ = locks.release(&held.resource, &held.owner);
        });
        locks.acquire(&mine, Duration::from_secs(5))
    })?;

    let log = JsonlWriter::open(
        dir.path().join("agent-1.jsonl"),
        WriterOptions {
            durability: Durability::GroupCommit,
            ..Default::default()
        },
    )?;
    log.append(&serde_json::json!({ "msg": "parser split in two" }))?;

    // A stale token (another run's) is refused: the lease is lost for that writer.
    let _ = store.complete(&task.id, Some(token + 1), None);
    life.complete(&task.id, Some(token), None)?;
    Ok(())
}
