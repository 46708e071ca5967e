//! Every call runs as an identity: `read` changes nothing, `work` acts as its own agent only
//! (whatever agent name or fencing token it passes), `admin` and the local process act for
//! anyone.

use oc_auth::{Identity, Scope};
use oc_mcp::Server;
use serde_json::{Value, json};

use crate::{call, init, server};

fn as_agent(s: &Server, agent: &str, scope: Scope) -> Server {
    let sess = s.session(Identity {
        agent: agent.into(),
        scope,
        tenant: None,
    });
    init(&sess, "2025-11-25");
    sess
}

/// A task bob claimed: (task id, bob's fencing token).
fn bobs_task(admin: &Server) -> (Value, Value) {
    call(admin, "task_create", json!({"agent":"p","name":"t"}));
    let (err, c) = call(admin, "task_claim", json!({"agent":"bob"}));
    assert!(!err, "{c}");
    (c["task_id"].clone(), c["fencing_token"].clone())
}

fn check_refused(s: &Server, tool: &str, args: Value, code: &str) {
    let (err, body) = call(s, tool, args.clone());
    assert!(err, "{tool} {args} should be refused: {body}");
    assert_eq!(body["error"]["code"], code, "{tool} {args}: {body}");
}

#[test]
fn a_work_identity_cannot_touch_another_agents_task_even_with_its_name_and_token() {
    let admin = server();
    init(&admin, "2025-11-25");
    let (id, token) = bobs_task(&admin);
    let alice = as_agent(&admin, "alice", Scope::Work);
    for agent in [json!("bob"), json!("alice"), Value::Null] {
        let mut base = json!({"task_id": id, "fencing_token": token});
        if !agent.is_null() {
            base["agent"] = agent.clone();
        }
        let code = "NOT_YOUR_AGENT";
        check_refused(&alice, "task_heartbeat", base.clone(), code);
        check_refused(&alice, "task_release", base.clone(), code);
        let mut finish = base.clone();
        finish["outcome"] = json!("completed");
        check_refused(&alice, "task_finish", finish, code);
    }
    let (_, t) = call(&admin, "task_get", json!({"task_id": id}));
    assert_eq!(t["task"]["status"], "running", "{t}");
    assert_eq!(t["task"]["owner"], "bob", "{t}");
    // Bob, with his own work identity, still can.
    let bob = as_agent(&admin, "bob", Scope::Work);
    let (err, body) = call(
        &bob,
        "task_finish",
        json!({"task_id": id, "fencing_token": token, "outcome": "completed"}),
    );
    assert!(!err, "{body}");
}

#[test]
fn a_work_identity_cannot_release_or_renew_another_agents_lock() {
    let admin = server();
    init(&admin, "2025-11-25");
    let (err, got) = call(
        &admin,
        "lock_acquire",
        json!({"agent":"bob","paths":["src/a.rs"],"ttl_secs":60}),
    );
    assert!(!err, "{got}");
    let alice = as_agent(&admin, "alice", Scope::Work);
    check_refused(
        &alice,
        "lock_release",
        json!({"agent":"bob","paths":["src/a.rs"]}),
        "NOT_YOUR_AGENT",
    );
    check_refused(
        &alice,
        "lock_renew",
        json!({"agent":"bob","paths":["src/a.rs"]}),
        "NOT_YOUR_AGENT",
    );
    // As herself she holds nothing there: the lock stays bob's.
    check_refused(
        &alice,
        "lock_release",
        json!({"paths":["src/a.rs"]}),
        "NOT_HELD",
    );
    let (_, check) = call(&admin, "lock_check", json!({"paths":["src/a.rs"]}));
    assert_eq!(check["free"], false, "{check}");
    let bob = as_agent(&admin, "bob", Scope::Work);
    let (err, body) = call(&bob, "lock_release", json!({"paths":["src/a.rs"]}));
    assert!(!err, "{body}");
}

#[test]
fn a_work_identity_writes_as_itself() {
    let admin = server();
    let alice = as_agent(&admin, "alice", Scope::Work);
    check_refused(
        &alice,
        "task_create",
        json!({"agent":"bob","name":"t"}),
        "NOT_YOUR_AGENT",
    );
    let (err, c) = call(&alice, "task_create", json!({"name":"t"}));
    assert!(!err, "{c}");
    let (err, c) = call(&alice, "task_claim", json!({}));
    assert!(!err, "{c}");
    let (err, h) = call(
        &alice,
        "task_heartbeat",
        json!({"task_id": c["task_id"], "fencing_token": c["fencing_token"]}),
    );
    assert!(!err, "{h}");
    let (err, g) = call(&alice, "lock_acquire", json!({"paths":["x"],"ttl_secs":60}));
    assert!(!err, "{g}");
    let (_, list) = call(&alice, "lock_check", json!({"paths":["x"]}));
    assert_eq!(list["conflicts"][0]["holder"], "alice", "{list}");
}

#[test]
fn a_stale_token_of_its_own_task_is_a_lost_lease() {
    let admin = server();
    let alice = as_agent(&admin, "alice", Scope::Work);
    call(&alice, "task_create", json!({"name":"t"}));
    let (_, c) = call(&alice, "task_claim", json!({}));
    let future = c["fencing_token"].as_u64().unwrap() + 1;
    check_refused(
        &alice,
        "task_finish",
        json!({"task_id": c["task_id"], "fencing_token": future, "outcome": "completed"}),
        "LEASE_LOST",
    );
}

#[test]
fn a_read_identity_changes_nothing() {
    let admin = server();
    init(&admin, "2025-11-25");
    let (id, token) = bobs_task(&admin);
    let reader = as_agent(&admin, "bob", Scope::Read);
    for (tool, args) in [
        ("task_create", json!({"name":"t"})),
        ("task_claim", json!({})),
        (
            "task_heartbeat",
            json!({"task_id": id, "fencing_token": token}),
        ),
        (
            "task_finish",
            json!({"task_id": id, "fencing_token": token, "outcome": "failed"}),
        ),
        ("lock_acquire", json!({"paths":["x"],"ttl_secs":60})),
    ] {
        check_refused(&reader, tool, args, "FORBIDDEN");
    }
    let (err, t) = call(&reader, "task_get", json!({"task_id": id}));
    assert!(!err && t["task"]["status"] == "running", "{t}");
    let (err, l) = call(&reader, "task_list", json!({}));
    assert!(!err, "{l}");
    let (_, check) = call(&admin, "lock_check", json!({"paths":["x"]}));
    assert_eq!(check["free"], true, "{check}");
}

#[test]
fn admin_acts_for_anyone() {
    let admin = server();
    init(&admin, "2025-11-25");
    let (id, token) = bobs_task(&admin);
    let carol = as_agent(&admin, "carol", Scope::Admin);
    let (err, body) = call(
        &carol,
        "task_finish",
        json!({"agent":"bob","task_id": id, "fencing_token": token, "outcome": "completed"}),
    );
    assert!(!err, "{body}");
}

/// The tools on a task's files: a `work` identity writes only to a task no other agent holds,
/// and restores (replacing what was written) only a task its own agent holds.
#[test]
fn a_work_identity_cannot_write_to_or_restore_another_agents_task_files() {
    let dir = tempfile::tempdir().unwrap();
    let admin = crate::server_with_files(dir.path());
    init(&admin, "2025-11-25");
    let (id, token) = bobs_task(&admin);
    let bob = as_agent(&admin, "bob", Scope::Work);
    let (err, cp) = call(
        &bob,
        "checkpoint_create",
        json!({"task_id": id, "description": "safe"}),
    );
    assert!(!err, "{cp}");
    let (err, l) = call(
        &bob,
        "task_log_append",
        json!({"task_id": id, "message": "bob's work"}),
    );
    assert!(!err, "{l}");
    let alice = as_agent(&admin, "alice", Scope::Work);
    let cp_id = cp["checkpoint"]["id"].clone();
    for (tool, args) in [
        (
            "checkpoint_restore",
            json!({"task_id": id, "checkpoint_id": cp_id}),
        ),
        (
            "task_log_append",
            json!({"task_id": id, "message": "not mine"}),
        ),
        (
            "decision_record",
            json!({"task_id": id, "decision": "d", "reasoning": "r"}),
        ),
        (
            "checkpoint_create",
            json!({"task_id": id, "description": "mine now"}),
        ),
    ] {
        check_refused(&alice, tool, args, "NOT_YOUR_AGENT");
    }
    let (_, logs) = call(&admin, "task_log_query", json!({"task_id": id}));
    assert_eq!(logs["entries"].as_array().unwrap().len(), 1, "{logs}");
    // A task nobody holds is not restored by a work identity either; bob restores his own.
    let (err, done) = call(
        &bob,
        "task_release",
        json!({"task_id": id, "fencing_token": token}),
    );
    assert!(!err, "{done}");
    check_refused(
        &alice,
        "checkpoint_restore",
        json!({"task_id": id, "checkpoint_id": cp_id}),
        "NOT_YOUR_AGENT",
    );
    let (err, again) = call(&bob, "task_claim", json!({"task_id": id}));
    assert!(!err, "{again}");
    let (err, r) = call(
        &bob,
        "checkpoint_restore",
        json!({"task_id": id, "checkpoint_id": cp_id}),
    );
    assert!(!err, "{r}");
}
