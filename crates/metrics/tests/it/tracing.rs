//! The libraries' `tracing` spans and events, as a subscriber the embedder installs sees them:
//! task transitions and lost leases, lock conflicts and waits, slow hooks, slow statements and
//! group-commit syncs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_jsonl::{Durability, JsonlWriter, WriterOptions};
use oc_locks::{LockManager, LockRequest, MemoryLockManager};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
use tracing_subscriber::fmt::format::FmtSpan;

/// What the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_libraries_report_what_an_operator_wants_in_a_trace() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let dir = tempfile::tempdir().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let store: Arc<dyn TaskStore> = Arc::new(
            SqliteTaskStore::options()
                .slow_threshold(Duration::ZERO)
                .open(dir.path().join("opencode.db"))
                .unwrap(),
        );
        let hooks = Arc::new(Hooks::with_slow_threshold(Duration::ZERO));
        hooks.before("audit", &[], 0, |_| Ok(()));
        let life = TaskLifecycle::new(Arc::clone(&store), hooks);
        let t = store.create(NewTask::new("index the repo")).unwrap();
        let claimed = life
            .claim_next("agent-7", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        let token = claimed.task().lease.unwrap().token;
        assert!(store.complete(&t.id, Some(token + 1), None).is_err());
        store.complete(&t.id, Some(token), None).unwrap();

        let locks = MemoryLockManager::new();
        locks
            .acquire(
                &LockRequest::exclusive("src/lib.rs", "agent-7").unwrap(),
                Duration::ZERO,
            )
            .unwrap();
        let other = LockRequest::exclusive("src/lib.rs", "agent-8").unwrap();
        assert!(locks.acquire(&other, Duration::ZERO).is_err());
        assert!(locks.acquire(&other, Duration::from_millis(20)).is_err());

        let log = JsonlWriter::open(
            dir.path().join("log.jsonl"),
            WriterOptions {
                durability: Durability::GroupCommit,
                ..Default::default()
            },
        )
        .unwrap();
        log.append(&serde_json::json!({ "msg": "hello" })).unwrap();
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for want in [
        "oc_tasks: task created",
        "task=",
        "oc_tasks: task claimed",
        "actor=\"agent-7\"",
        "oc_tasks: lease lost",
        "oc_tasks: task completed",
        "oc_tasks: slow statement",
        "oc_hooks: slow hook hook=\"audit\"",
        "oc_locks: lock conflict resource=src/lib.rs",
        "lock_wait{resource=src/lib.rs owner=agent-8",
        "lock wait gave up",
        "close time.busy",
        "oc_jsonl: group commit synced",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
}
