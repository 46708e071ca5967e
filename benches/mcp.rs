//! Criterion benches of the MCP protocol core, without I/O: a `task_get` and a `lock_acquire`
//! plus `lock_release`, each one message in and one answer out, on a SQLite store in a temporary
//! directory (the stdio round trips against `oc mcp` are the `mcp.*` figures of
//! `oc-bench-figures`).
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::SqliteLockManager;
use oc_mcp::{Server, Toolbox};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
use serde_json::json;

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("opencode.db");
    let store = Arc::new(SqliteTaskStore::open(&db).expect("a task store"));
    let id = store.create(NewTask::new("t")).expect("a task").id;
    let locks = Arc::new(SqliteLockManager::open(&db).expect("a lock manager"));
    let life = TaskLifecycle::new(store, Arc::new(Hooks::new()));
    let server = Server::new(Toolbox::new(life, locks).default_agent(Some("bench".into())));
    server.handle(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}).to_string());
    let call = |name: &str, args: serde_json::Value| {
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}})
            .to_string()
    };
    let get = call("task_get", json!({ "task_id": id.as_str() }));
    let acquire = call("lock_acquire", json!({ "paths": ["src/lib.rs"] }));
    let release = call("lock_release", json!({ "paths": ["src/lib.rs"] }));

    let mut g = c.benchmark_group("mcp");
    g.warm_up_time(Duration::from_millis(500));
    g.bench_function("task_get", |b| b.iter(|| server.handle(&get)));
    g.bench_function("lock_acquire_release", |b| {
        b.iter(|| {
            server.handle(&acquire);
            server.handle(&release)
        })
    });
    g.finish();
}

criterion_group!(mcp_benches, benches);
criterion_main!(mcp_benches);
