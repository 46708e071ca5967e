//! Two hundred agents as tasks on a tokio runtime with two workers, sharing one SQLite store
//! and one lock manager: every task is done exactly once, the agents wait on each other's file
//! locks, and the runtime stays responsive throughout (a timer task keeps ticking).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_locks::{AsyncLockManager, LockRequest, SqliteLockManager};
use oc_tasks::{AsyncTaskStore, NewTask, SqliteTaskStore, TaskStatus};

const AGENTS: usize = 200;
const TASKS: usize = 400;
const FILES: usize = 10;
/// How long an agent edits a file, holding its lock: with 40 tasks per file, each file is
/// busy for two seconds, so a runtime whose workers were held by the waits would miss ticks.
const EDIT: Duration = Duration::from_millis(50);

#[test]
fn two_hundred_agents_on_two_workers_wait_on_locks_and_the_runtime_keeps_ticking() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let store = AsyncTaskStore::new(Arc::new(SqliteTaskStore::open(&db).unwrap()));
    let locks = AsyncLockManager::new(Arc::new(SqliteLockManager::open(&db).unwrap()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(AGENTS + 16)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        store
            .create_many(
                (0..TASKS)
                    .map(|i| NewTask::new(format!("edit file {}", i % FILES)))
                    .collect(),
            )
            .await
            .unwrap();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let ticker = {
            let running = Arc::clone(&running);
            tokio::spawn(async move {
                let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                }
                worst
            })
        };
        let started = Instant::now();
        let agents: Vec<_> = (0..AGENTS)
            .map(|a| {
                let (store, locks) = (store.clone(), locks.clone());
                tokio::spawn(async move {
                    let agent = format!("agent-{a}");
                    let mut done = 0;
                    while let Some(task) = store
                        .claim_next(&agent, Duration::from_secs(600))
                        .await
                        .unwrap()
                    {
                        let file = format!("src/{}.rs", task.name.trim_start_matches("edit file "));
                        let req = LockRequest::exclusive(&file, &agent).unwrap();
                        let lock = locks.acquire(req, Duration::from_secs(30)).await.unwrap();
                        tokio::time::sleep(EDIT).await;
                        let token = task.lease.map(|l| l.token);
                        store.complete(task.id, token, None).await.unwrap();
                        locks.release(lock.resource, lock.owner).await.unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut done = 0;
        for a in agents {
            done += a.await.unwrap();
        }
        let took = started.elapsed();
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        let worst_gap = ticker.await.unwrap();

        assert_eq!(done, TASKS, "every task done once");
        let counts = store.counts(1_000).await.unwrap();
        assert_eq!(counts.count(TaskStatus::Completed), TASKS as u64);
        let lock_stats = locks.stats().await.unwrap();
        assert!(
            lock_stats.conflicts_detected > 0,
            "agents waited on each other's locks"
        );
        assert!(
            took >= Duration::from_secs(2),
            "each file was busy for 2 s: {took:?}"
        );
        assert!(
            worst_gap < Duration::from_millis(500),
            "the timer stalled for {worst_gap:?} during a {took:?} run"
        );
    });
}
