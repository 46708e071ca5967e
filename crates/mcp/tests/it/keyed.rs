//! `idempotency_key` on the tools that change something: a retry replays the first answer and
//! changes nothing; another request under the key is refused; a claim whose answer was not
//! delivered is given back with its key forgotten, so the retry claims afresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::MemoryLockManager;
use oc_mcp::{Incoming, Server, Toolbox};
use oc_tasks::{MemoryTaskStore, TaskFilter, TaskId, TaskStatus, TaskStore};
use serde_json::{Value, json};

use crate::{call, init};

fn setup() -> (Server, Arc<MemoryTaskStore>, Arc<MemoryLockManager>) {
    let store = Arc::new(MemoryTaskStore::new());
    let locks = Arc::new(MemoryLockManager::new());
    let life = TaskLifecycle::new(store.clone(), Arc::new(Hooks::new()));
    let s = Server::new(Toolbox::new(life, locks.clone())).all_tools();
    init(&s, "2025-11-25");
    (s, store, locks)
}

fn ok(s: &Server, name: &str, args: Value) -> Value {
    let (err, body) = call(s, name, args);
    assert!(!err, "{name}: {body}");
    body
}

fn running(store: &MemoryTaskStore) -> u64 {
    store
        .count(&TaskFilter::new().status(TaskStatus::Running))
        .unwrap()
}

fn id(body: &Value) -> TaskId {
    body["task_id"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_keyed_claim_retried_returns_the_same_task_and_token_and_changes_nothing() {
    let (s, store, _) = setup();
    ok(
        &s,
        "task_create",
        json!({"agent":"a","name":"one","priority":2}),
    );
    ok(&s, "task_create", json!({"agent":"a","name":"two"}));
    let args = json!({"agent":"w","idempotency_key":"claim-1"});
    let first = ok(&s, "task_claim", args.clone());
    assert_eq!(
        (&first["claimed"], &first["replayed"]),
        (&json!(true), &json!(false))
    );
    let t = id(&first);
    let history = store.history(&t).unwrap().len();
    let stats = ok(&s, "task_stats", json!({}))["stats"].clone();
    let again = ok(&s, "task_claim", args);
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["task_id"], first["task_id"]);
    assert_eq!(again["fencing_token"], first["fencing_token"]);
    assert_eq!(store.history(&t).unwrap().len(), history, "no second entry");
    assert_eq!(running(&store), 1, "nothing more claimed");
    let mut after = ok(&s, "task_stats", json!({}))["stats"].clone();
    after["recent"] = stats["recent"].clone();
    assert_eq!(after, stats, "the statistics did not move");
    // An unkeyed call says nothing of replays.
    let plain = ok(&s, "task_claim", json!({"agent":"v"}));
    assert!(plain.get("replayed").is_none(), "{plain}");

    // Same key, another request: refused, naming the rule.
    let (err, body) = call(
        &s,
        "task_claim",
        json!({"agent":"w","idempotency_key":"claim-1","lease_secs":9}),
    );
    assert!(err, "{body}");
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_CONFLICT", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"claim-1\"") && message.contains("names one request"),
        "{message}"
    );
    // Another agent's same key is its own.
    ok(&s, "task_create", json!({"agent":"a","name":"three"}));
    let other = ok(
        &s,
        "task_claim",
        json!({"agent":"v","idempotency_key":"claim-1"}),
    );
    assert_eq!(other["replayed"], false, "{other}");

    // Finishing, retried after it finished: the first answer, no second entry.
    let token = first["fencing_token"].clone();
    let finish = json!({"agent":"w","task_id":t.as_str(),"fencing_token":token,
                        "outcome":"completed","idempotency_key":"done-1"});
    let done = ok(&s, "task_finish", finish.clone());
    assert_eq!(done["replayed"], false);
    let again = ok(&s, "task_finish", finish);
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["task"], done["task"]);
    assert_eq!(store.history(&t).unwrap().len(), history + 1);
    // The claim retried after its task was finished: the first grant, not a new claim.
    let late = ok(
        &s,
        "task_claim",
        json!({"agent":"w","idempotency_key":"claim-1"}),
    );
    assert_eq!(
        (&late["replayed"], &late["task_id"]),
        (&json!(true), &first["task_id"])
    );

    // Bounded as the libraries bound it.
    for bad in [json!(""), json!("k".repeat(201)), json!("a\nb"), json!(7)] {
        let (err, body) = call(&s, "task_claim", json!({"agent":"w","idempotency_key":bad}));
        assert!(err, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
    }
}

#[test]
fn keyed_create_heartbeat_and_release_replay() {
    let (s, store, _) = setup();
    let create = json!({"agent":"a","name":"x","idempotency_key":"mk"});
    let made = ok(&s, "task_create", create.clone());
    let again = ok(&s, "task_create", create);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["task"]["id"], made["task"]["id"], "no second task");
    assert_eq!(store.count(&TaskFilter::new()).unwrap(), 1);
    let t = made["task"]["id"].clone();
    let c = ok(
        &s,
        "task_claim",
        json!({"agent":"w","task_id":t,"idempotency_key":"by-id"}),
    );
    let again = ok(
        &s,
        "task_claim",
        json!({"agent":"w","task_id":t,"idempotency_key":"by-id"}),
    );
    assert_eq!(
        (&again["replayed"], &again["fencing_token"]),
        (&json!(true), &c["fencing_token"])
    );
    let token = c["fencing_token"].clone();
    let hb = json!({"agent":"w","task_id":t,"fencing_token":token,"idempotency_key":"hb"});
    assert_eq!(ok(&s, "task_heartbeat", hb.clone())["replayed"], false);
    assert_eq!(ok(&s, "task_heartbeat", hb)["replayed"], true);
    let rel = json!({"agent":"w","task_id":t,"fencing_token":token,"idempotency_key":"rel"});
    let released = ok(&s, "task_release", rel.clone());
    assert_eq!(released["task"]["status"], "pending");
    let history = store.history(&id(&c)).unwrap().len();
    let again = ok(&s, "task_release", rel);
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(store.history(&id(&c)).unwrap().len(), history);
}

#[test]
fn a_keyed_lock_acquire_retried_after_release_returns_the_first_grant_and_holds_nothing() {
    let (s, _, locks) = setup();
    let args = json!({"agent":"w","paths":["repo/src"],"idempotency_key":"lock-1"});
    let first = ok(&s, "lock_acquire", args.clone());
    assert_eq!(first["replayed"], false);
    ok(
        &s,
        "lock_release",
        json!({"agent":"w","paths":["repo/src"]}),
    );
    let again = ok(&s, "lock_acquire", args);
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(
        again["locks"][0]["fencing_token"],
        first["locks"][0]["fencing_token"]
    );
    use oc_locks::LockManager;
    assert!(locks.list().unwrap().is_empty(), "holds nothing");
    let (err, body) = call(
        &s,
        "lock_acquire",
        json!({"agent":"w","paths":["repo/docs"],"idempotency_key":"lock-1"}),
    );
    assert!(err);
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_CONFLICT", "{body}");

    // A keyed release: one path, retried drops no second hold.
    let hold = json!({"agent":"w","paths":["repo/a"]});
    ok(&s, "lock_acquire", hold.clone());
    ok(&s, "lock_acquire", hold);
    let rel = json!({"agent":"w","paths":["repo/a"],"idempotency_key":"rel-a"});
    assert_eq!(ok(&s, "lock_release", rel.clone())["replayed"], false);
    assert_eq!(ok(&s, "lock_release", rel)["replayed"], true);
    assert_eq!(locks.list().unwrap().len(), 1, "one hold of two dropped");
    let (err, body) = call(
        &s,
        "lock_release",
        json!({"agent":"w","paths":["repo/a","repo/b"],"idempotency_key":"two"}),
    );
    assert!(err && body["error"]["code"] == "INVALID_ARGUMENT", "{body}");
}

fn claim_call(id: u64, args: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
           "params":{"name":"task_claim","arguments":args}})
    .to_string()
}

fn pending(s: &Server, msg: &str) -> oc_mcp::PendingCall {
    match s.accept(msg) {
        Incoming::Call(p) => p,
        _ => panic!("a tool call: {msg}"),
    }
}

#[test]
fn a_keyed_claim_whose_answer_was_not_delivered_is_claimed_afresh_on_retry() {
    let (s, store, _) = setup();
    let made = ok(&s, "task_create", json!({"agent":"a","name":"x"}));
    let never = AtomicBool::new(false);
    for (n, args) in [
        json!({"agent":"w","idempotency_key":"lost"}),
        json!({"agent":"w","idempotency_key":"lost-wait","wait_ms":60_000}),
    ]
    .into_iter()
    .enumerate()
    {
        let p = pending(&s, &claim_call(n as u64 + 1, args.clone()));
        let mut token = 0;
        let delivered = p.run_and_deliver(&s, &|_| {}, &never, &mut |answer| {
            let v: Value = serde_json::from_str(answer).unwrap();
            token = v["result"]["structuredContent"]["fencing_token"]
                .as_u64()
                .unwrap();
            false
        });
        assert!(!delivered);
        let t = store
            .get(&made["task"]["id"].as_str().unwrap().parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(t.status, TaskStatus::Pending, "given back");
        let retry = ok(&s, "task_claim", args);
        assert_eq!(retry["replayed"], false, "the key was forgotten: {retry}");
        assert!(
            retry["fencing_token"].as_u64().unwrap() > token,
            "a new grant"
        );
        let token = retry["fencing_token"].clone();
        ok(
            &s,
            "task_release",
            json!({"agent":"w","task_id":made["task"]["id"],"fencing_token":token}),
        );
    }
}

#[test]
fn a_cancelled_keyed_wait_leaves_its_key_unused() {
    let (s, _, _) = setup();
    let args = json!({"agent":"w","idempotency_key":"w1","wait_ms":60_000});
    let p = pending(&s, &claim_call(1, args));
    let cancelled = AtomicBool::new(false);
    std::thread::scope(|t| {
        let run = t.spawn(|| p.run(&s, &|_| {}, &cancelled));
        std::thread::sleep(std::time::Duration::from_millis(50));
        cancelled.store(true, Ordering::SeqCst);
        assert_eq!(
            run.join().unwrap(),
            None,
            "a cancelled call answers nothing"
        );
    });
    // The retry waits afresh (nothing was recorded) and claims what comes.
    ok(&s, "task_create", json!({"agent":"a","name":"x"}));
    let retry = ok(
        &s,
        "task_claim",
        json!({"agent":"w","idempotency_key":"w1","wait_ms":60_000}),
    );
    assert_eq!(
        (&retry["claimed"], &retry["replayed"]),
        (&json!(true), &json!(false))
    );
    // A keyed wait retried replays at once.
    let again = ok(
        &s,
        "task_claim",
        json!({"agent":"w","idempotency_key":"w1","wait_ms":60_000}),
    );
    assert_eq!(again["replayed"], true);
    assert_eq!(again["fencing_token"], retry["fencing_token"]);
}

#[test]
fn keyed_decisions_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::server_with_files(dir.path());
    init(&s, "2025-11-25");
    let made = ok(&s, "task_create", json!({"agent":"a","name":"x"}));
    let t = made["task"]["id"].clone();
    let d = json!({"agent":"a","task_id":t,"decision":"use sqlite","idempotency_key":"d1"});
    assert_eq!(ok(&s, "decision_record", d.clone())["replayed"], false);
    assert_eq!(ok(&s, "decision_record", d)["replayed"], true);
    let list = ok(&s, "decision_list", json!({"task_id":t}));
    assert_eq!(list["decisions"].as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn a_keyed_checkpoint_retried_returns_the_first_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::server_with_files(dir.path());
    init(&s, "2025-11-25");
    let made = ok(&s, "task_create", json!({"agent":"a","name":"x"}));
    let t = made["task"]["id"].clone();
    let c = json!({"agent":"a","task_id":t,"description":"before","idempotency_key":"cp1"});
    let first = ok(&s, "checkpoint_create", c.clone());
    assert_eq!(first["replayed"], false, "{first}");
    let again = ok(&s, "checkpoint_create", c);
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(
        again["checkpoint"], first["checkpoint"],
        "the first checkpoint"
    );
    let list = ok(&s, "checkpoint_list", json!({"task_id":t}));
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 1, "{list}");

    // Same key, another description: refused, nothing created.
    let (err, body) = call(
        &s,
        "checkpoint_create",
        json!({"agent":"a","task_id":t,"description":"other","idempotency_key":"cp1"}),
    );
    assert!(err, "{body}");
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_CONFLICT", "{body}");
    let list = ok(&s, "checkpoint_list", json!({"task_id":t}));
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 1, "{list}");

    // Unkeyed: no `replayed`, a new checkpoint each time.
    let plain = ok(
        &s,
        "checkpoint_create",
        json!({"agent":"a","task_id":t,"description":"before"}),
    );
    assert!(plain.get("replayed").is_none(), "{plain}");
    let list = ok(&s, "checkpoint_list", json!({"task_id":t}));
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 2, "{list}");
}
