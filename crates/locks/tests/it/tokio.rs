//! `AsyncLockManager` on a runtime with two workers: waits leave the workers free, a dropped
//! wait leaves the queue and takes nothing, a dropped future's late grant is given back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_locks::{AsyncLockManager, LockManager, LockRequest, SqliteLockManager};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn req(resource: &str, owner: &str) -> LockRequest {
    LockRequest::exclusive(resource, owner).unwrap()
}

/// Polls `what` until it holds (30 s at most).
async fn until(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !what() {
        assert!(Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_dropped_wait_leaves_the_queue_and_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m: Arc<dyn LockManager> =
        Arc::new(SqliteLockManager::open(dir.path().join("opencode.db")).unwrap());
    let locks = AsyncLockManager::new(Arc::clone(&m));
    runtime().block_on(async {
        let held = locks
            .acquire(req("src/a.rs", "a"), Duration::ZERO)
            .await
            .unwrap();
        // b waits for 30 s, but gives up after 100 ms by dropping its future.
        let waited = tokio::time::timeout(
            Duration::from_millis(100),
            locks.acquire(req("src/a.rs", "b"), Duration::from_secs(30)),
        )
        .await;
        assert!(waited.is_err(), "still waiting when dropped");
        until(|| m.stats().unwrap().waiting == 0).await;
        locks
            .release(held.resource.clone(), held.owner.clone())
            .await
            .unwrap();
        assert!(
            locks.list().await.unwrap().is_empty(),
            "the dropped wait took nothing"
        );
        // Another acquire is granted as usual.
        let c = locks
            .acquire(req("src/a.rs", "c"), Duration::from_secs(5))
            .await;
        assert_eq!(c.unwrap().owner.as_str(), "c");
    });
}

#[test]
fn waits_do_not_hold_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let m: Arc<dyn LockManager> =
        Arc::new(SqliteLockManager::open(dir.path().join("opencode.db")).unwrap());
    let locks = AsyncLockManager::new(Arc::clone(&m));
    runtime().block_on(async {
        let held = locks
            .acquire(req("src/b.rs", "holder"), Duration::ZERO)
            .await
            .unwrap();
        // More waiters than workers, all blocked on the same lock.
        let waiters: Vec<_> = (0..8)
            .map(|i| {
                let locks = locks.clone();
                tokio::spawn(async move {
                    let l = locks
                        .acquire(req("src/b.rs", &format!("w{i}")), Duration::from_secs(30))
                        .await?;
                    locks.release(l.resource, l.owner).await
                })
            })
            .collect();
        // Once all eight wait in the queue, the two workers still run other tasks (were the
        // waits on the workers, this spawned task could not run before they timed out).
        until(|| m.stats().unwrap().waiting == 8).await;
        let started = Instant::now();
        let ran = tokio::spawn(async { 42 }).await.unwrap();
        assert_eq!(ran, 42);
        assert!(started.elapsed() < Duration::from_secs(10));
        locks.release(held.resource, held.owner).await.unwrap();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
    });
}
