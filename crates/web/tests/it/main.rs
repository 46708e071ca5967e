//! `oc-web` end to end: every page over a store the test fills (hostile text shown as text),
//! the actions through the lifecycle, and the server's refusals over real sockets.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::{LockManager, LockRequest, MemoryLockManager};
use oc_tasks::{MemoryTaskStore, NewTask, TaskId, TaskStore};
use oc_web::Web;

mod mcp;
mod pages;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod tenants;

/// A task name no page may render as markup.
pub const HOSTILE: &str = "<img src=x onerror=alert(1)> build docs";

/// A web app over a memory store holding a task of each status (one with a hostile name, one
/// with a hostile error), a held lock, and task files in `dir`.
pub fn filled(dir: &std::path::Path) -> (Web, Arc<dyn TaskStore>, Arc<dyn LockManager>) {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let id = |s: &str| TaskId::new(s).unwrap();
    store.create(NewTask::new("waiting").id(id("p1"))).unwrap();
    store
        .create(NewTask::new("in progress").id(id("r1")))
        .unwrap();
    store
        .claim(
            &id("r1"),
            "agent-<b>1</b>",
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    store.create(NewTask::new("done").id(id("c1"))).unwrap();
    store.start(&id("c1"), "agent-2").unwrap();
    store.complete(&id("c1"), None, None).unwrap();
    store.create(NewTask::new(HOSTILE).id(id("f1"))).unwrap();
    store.start(&id("f1"), "agent-2").unwrap();
    store
        .fail(&id("f1"), None, "<script>boom()</script>")
        .unwrap();
    let locks: Arc<dyn LockManager> = Arc::new(MemoryLockManager::new());
    locks
        .try_acquire(&LockRequest::exclusive("repo/src/lib.rs", "agent-2").unwrap())
        .unwrap();
    let files = oc_jsonl::TaskFiles::new(dir, "r1").unwrap();
    files
        .append_log(&oc_jsonl::LogEntry::new(
            store.now(),
            oc_jsonl::Level::Warn,
            "r1",
            "<i>flaky</i> test",
        ))
        .unwrap();
    let life = TaskLifecycle::new(Arc::clone(&store), Arc::new(Hooks::new()));
    let web = Web::new(life, Arc::clone(&locks)).files(Arc::new(oc_jsonl::DirFileStore::new(dir)));
    (web, store, locks)
}
