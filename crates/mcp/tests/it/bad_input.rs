//! A corpus of bad input (wrong types, missing and unknown arguments, huge strings, unknown
//! methods and tools, calls before `initialize`, other agents' leases and locks): each gets one
//! well-formed error answer, and nothing stored changes.

use std::sync::Arc;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::{LockManager, MemoryLockManager};
use oc_mcp::{Server, Toolbox};
use oc_tasks::MemoryTaskStore;
use serde_json::{Value, json};

use crate::{call, init};

fn tool(name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}})
}

/// Everything the tools can read: every task, lock, log entry, decision and checkpoint.
fn snapshot(s: &Server, task: &str) -> Vec<Value> {
    [
        ("task_list", json!({"full":true,"limit":100})),
        ("lock_list", json!({})),
        ("task_log_query", json!({"task_id":task,"limit":500})),
        ("decision_list", json!({"task_id":task})),
        ("checkpoint_list", json!({"task_id":task})),
        ("lock_stats", json!({})),
    ]
    .into_iter()
    .map(|(name, args)| {
        let (err, mut body) = call(s, name, args);
        assert!(!err, "{name}: {body}");
        body["now"] = Value::Null;
        // Counters of refusals (conflicts) may grow; what is held may not.
        if let Some(st) = body["stats"].as_object_mut() {
            st.retain(|k, _| matches!(k.as_str(), "activeLocks" | "totalLocks" | "released"));
        }
        body
    })
    .collect()
}

#[test]
fn bad_input_gets_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
    let locks: Arc<dyn LockManager> = Arc::new(MemoryLockManager::new());
    let toolbox = || {
        Toolbox::new(life.clone(), Arc::clone(&locks))
            .files(Arc::new(oc_jsonl::DirFileStore::new(dir.path())))
    };
    let s = Server::new(toolbox()).all_tools();
    init(&s, "2025-11-25");
    let (_, t) = call(&s, "task_create", json!({"agent":"p","name":"held"}));
    call(&s, "task_create", json!({"agent":"p","name":"waiting"}));
    let id = t["task"]["id"].as_str().unwrap().to_owned();
    let (_, c) = call(&s, "task_claim", json!({"agent":"a","task_id":id}));
    let token = c["fencing_token"].as_u64().unwrap();
    call(&s, "lock_acquire", json!({"agent":"a","paths":["src"]}));
    call(
        &s,
        "task_log_append",
        json!({"agent":"a","task_id":id,"message":"m"}),
    );
    call(
        &s,
        "checkpoint_create",
        json!({"agent":"a","task_id":id,"description":"d"}),
    );
    let before = snapshot(&s, &id);

    let huge = "x".repeat(100_000);
    let writes = [
        ("task_create", json!({"agent":"p","name":5})),
        ("task_create", json!({"agent":"p"})),
        ("task_create", json!({"agent":"p","name":huge})),
        ("task_create", json!({"agent":huge,"name":"n"})),
        (
            "task_create",
            json!({"agent":"p","name":"n","priority":"high"}),
        ),
        ("task_create", json!({"agent":"p","name":"n","priority":-1})),
        (
            "task_create",
            json!({"agent":"p","name":"n","priority":1.5}),
        ),
        (
            "task_create",
            json!({"agent":"p","name":"n","depends_on":"x"}),
        ),
        (
            "task_create",
            json!({"agent":"p","name":"n","depends_on":["no-such"]}),
        ),
        ("task_create", json!({"agent":"p","name":"n","labels":[1]})),
        (
            "task_create",
            json!({"agent":"p","name":"n","parent":"../up"}),
        ),
        (
            "task_create",
            json!({"agent":"p","name":"n","colour":"red"}),
        ),
        ("task_claim", json!({"agent":"b","task_id":id})),
        ("task_claim", json!({"agent":"b","lease_secs":0})),
        ("task_claim", json!({"agent":"b","lease_secs":"10"})),
        ("task_claim", json!({"agent":"","task_id":"nope"})),
        (
            "task_heartbeat",
            json!({"agent":"b","task_id":id,"fencing_token":token + 1}),
        ),
        (
            "task_heartbeat",
            json!({"agent":"b","task_id":id,"fencing_token":"7"}),
        ),
        ("task_heartbeat", json!({"agent":"b","task_id":id})),
        (
            "task_finish",
            json!({"agent":"b","task_id":id,"fencing_token":token,"outcome":"done"}),
        ),
        (
            "task_finish",
            json!({"agent":"b","task_id":id,"fencing_token":token + 1,"outcome":"completed"}),
        ),
        (
            "task_finish",
            json!({"agent":"b","task_id":id,"fencing_token":-1,"outcome":"failed"}),
        ),
        (
            "task_finish",
            json!({"agent":"b","task_id":id,"outcome":"completed"}),
        ),
        (
            "task_release",
            json!({"agent":"b","task_id":id,"fencing_token":token + 1}),
        ),
        (
            "task_release",
            json!({"agent":"b","task_id":"../../etc","fencing_token":token}),
        ),
        ("task_get", json!({})),
        ("task_get", json!({"task_id":id,"extra":1})),
        ("task_list", json!({"status":"done"})),
        ("task_list", json!({"limit":1000})),
        ("lock_acquire", json!({"agent":"b","paths":["src/lib.rs"]})),
        ("lock_acquire", json!({"agent":"b","paths":"src"})),
        ("lock_acquire", json!({"agent":"b","paths":[]})),
        ("lock_acquire", json!({"agent":"b","paths":["../x"]})),
        ("lock_acquire", json!({"agent":"b","paths":["ok", huge]})),
        (
            "lock_acquire",
            json!({"agent":"b","paths":["x"],"mode":"rw"}),
        ),
        (
            "lock_acquire",
            json!({"agent":"b","paths":["x"],"ttl_secs":999_999}),
        ),
        (
            "lock_acquire",
            json!({"agent":"b","paths":["x"],"wait_ms":-5}),
        ),
        ("lock_acquire", json!({"agent":huge,"paths":["x"]})),
        ("lock_acquire", json!({"paths":["x"]})),
        ("lock_release", json!({"agent":"b","paths":["src"]})),
        ("lock_renew", json!({"agent":"b","paths":["src"]})),
        ("lock_release", json!({"agent":"a","paths":[]})),
        ("task_log_append", json!({"agent":"a","task_id":id})),
        (
            "task_log_append",
            json!({"agent":"a","task_id":id,"message":"m","level":"loud"}),
        ),
        (
            "task_log_append",
            json!({"agent":"a","task_id":id,"message":"m","data":[1]}),
        ),
        (
            "task_log_append",
            json!({"agent":"a","task_id":"nope","message":"m"}),
        ),
        ("decision_record", json!({"agent":"a","task_id":id})),
        (
            "decision_record",
            json!({"agent":"a","task_id":id,"decision":"d","metadata":"x"}),
        ),
        (
            "checkpoint_create",
            json!({"agent":"a","task_id":"nope","description":"d"}),
        ),
        (
            "checkpoint_restore",
            json!({"agent":"a","task_id":id,"checkpoint_id":"../../x"}),
        ),
        (
            "checkpoint_restore",
            json!({"agent":"a","task_id":id,"checkpoint_id":"cp-0-0"}),
        ),
        ("no_such_tool", json!({})),
    ];
    let mut corpus: Vec<String> = writes
        .iter()
        .map(|(name, args)| tool(name, args.clone()).to_string())
        .collect();
    corpus.extend(
        [
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"task_get","arguments":[1]}}),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}),
            json!({"jsonrpc":"2.0","id":1,"method":"resources/list"}),
            json!({"jsonrpc":"2.0","id":1,"method":""}),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"task_create","arguments":{"name":"n"},"_meta":{"io.modelcontextprotocol/protocolVersion":"1.0"}}}),
        ]
        .iter()
        .map(Value::to_string),
    );
    corpus.push(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"task_create","arguments":{{"name":"{}"}}}}}}"#,
        "x".repeat(oc_mcp::MAX_MESSAGE_BYTES)
    ));
    corpus.push(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"task_create""#.into(),
    );

    // A second server on the same store, before its handshake: every call is refused.
    let fresh = Server::new(toolbox()).all_tools();
    for (name, args) in [
        ("task_create", json!({"agent":"p","name":"n"})),
        ("task_claim", json!({"agent":"b"})),
        ("lock_acquire", json!({"agent":"b","paths":["y"]})),
        ("lock_release", json!({"agent":"a","paths":["src"]})),
        (
            "task_finish",
            json!({"agent":"a","task_id":id,"fencing_token":token,"outcome":"completed"}),
        ),
    ] {
        let out = fresh.handle(&tool(name, args).to_string());
        let r: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(r["error"]["code"], -32602, "{name} before initialize: {r}");
    }

    for line in &corpus {
        let out = s.handle(line);
        assert_eq!(out.len(), 1, "one answer to {:.200}", line);
        let r: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(r["jsonrpc"], "2.0");
        let refused = r.get("error").is_some() || r["result"]["isError"] == json!(true);
        assert!(refused, "refused: {:.200} -> {r}", line);
    }
    assert_eq!(snapshot(&s, &id), before, "nothing changed");
}
