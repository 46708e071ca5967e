//! `AsyncTaskStore` on a runtime with two workers: calls leave the workers free while the
//! SQLite writer is busy, and a claim whose future is dropped gives its task back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_tasks::{AsyncTaskStore, EventKind, NewTask, SqliteTaskStore, TaskStatus, TaskStore};

#[test]
fn a_dropped_claim_gives_its_task_back_and_the_workers_stay_free() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let store: Arc<dyn TaskStore> = Arc::new(SqliteTaskStore::open(&db).unwrap());
    let tasks = AsyncTaskStore::new(Arc::clone(&store));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = tasks.create(NewTask::new("index the repo")).await.unwrap();
        // Another process holds the write lock: claims wait for it (busy timeout).
        let other = rusqlite::Connection::open(&db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let claims: Vec<_> = (0..4)
            .map(|i| {
                let tasks = tasks.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(
                        Duration::from_millis(200),
                        tasks.claim_next(&format!("agent-{i}"), Duration::from_secs(60)),
                    )
                    .await
                })
            })
            .collect();
        // Four blocked claims, two workers: the runtime still runs other tasks.
        assert_eq!(tokio::spawn(async { 7 }).await.unwrap(), 7);
        for c in claims {
            assert!(c.await.unwrap().is_err(), "dropped while waiting");
        }
        other.execute_batch("COMMIT").unwrap();
        // The claims go on in the background; the one that got the task gives it back.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let h = tasks.history(t.id.clone()).await.unwrap();
            if h.last().map(|e| e.kind) == Some(EventKind::Released) {
                break;
            }
            assert!(Instant::now() < deadline, "never given back: {h:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = tasks.get(t.id.clone()).await.unwrap().unwrap();
        assert_eq!((back.status, back.attempts), (TaskStatus::Pending, 0));
        let claimed = tasks
            .claim_next("agent-9", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, t.id, "claimable again");
    });
}
