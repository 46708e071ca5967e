//! `oc-mcp` end to end in one process: the protocol core, the tools, waiting calls (progress,
//! cancellation) through `serve`, and a corpus of bad input that changes nothing.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::MemoryLockManager;
use oc_mcp::{Server, Toolbox};
use oc_tasks::MemoryTaskStore;
use serde_json::{Value, json};

mod bad_input;
mod claim_waits;
mod deep;
mod http;
mod identity;
mod keyed;
mod protocol;
mod tools;
mod waits;

/// A server with the default tools over a memory store and lock manager, no task files.
pub fn server() -> Server {
    let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
    Server::new(Toolbox::new(life, Arc::new(MemoryLockManager::new())))
}

/// The one answer to `msg`, parsed.
pub fn one(s: &Server, msg: Value) -> Value {
    let out = s.handle(&msg.to_string());
    assert_eq!(out.len(), 1, "one answer to {msg}: {out:?}");
    assert!(!out[0].contains('\n'), "one line");
    serde_json::from_str(&out[0]).unwrap()
}

/// The handshake at `version`.
pub fn init(s: &Server, version: &str) -> Value {
    one(
        s,
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":version,"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    )
}

/// The `_meta` of a request of the stateless revision.
pub fn modern_meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}})
}

/// A tool call in the handshake era; returns (isError, the JSON body).
pub fn call(s: &Server, name: &str, args: Value) -> (bool, Value) {
    let r = one(
        s,
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":args}}),
    );
    let result = &r["result"];
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    if result["isError"] == json!(false) {
        assert_eq!(
            result["structuredContent"], text,
            "structured content is the whole answer"
        );
    }
    (result["isError"] == json!(true), text)
}

/// A server with every tool, the task files under `dir`.
pub fn server_with_files(dir: &Path) -> Server {
    let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
    let files = Arc::new(oc_jsonl::DirFileStore::new(dir));
    Server::new(Toolbox::new(life, Arc::new(MemoryLockManager::new())).files(files)).all_tools()
}
