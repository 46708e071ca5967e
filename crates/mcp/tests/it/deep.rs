//! Data and metadata nested too deep to read back: refused with `INVALID_ARGUMENT`, nothing
//! written (issue 25, section 4; the check is oc-jsonl's, at append time).

use serde_json::{Value, json};

use crate::{call, init, server_with_files};

/// `{"a":{"a":...}}`, `depth` objects deep.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

#[test]
fn records_too_deep_to_read_back_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let (_, t) = call(&s, "task_create", json!({"agent":"p","name":"t"}));
    let id = t["task"]["id"].as_str().unwrap().to_owned();
    // 63 in `data` is the record's 64 levels: written and read back.
    let (err, body) = call(
        &s,
        "task_log_append",
        json!({"agent":"a","task_id":id,"message":"deepest","data":nested(63)}),
    );
    assert!(!err, "{body}");
    let (err, body) = call(
        &s,
        "decision_record",
        json!({"agent":"a","task_id":id,"decision":"d","metadata":nested(63)}),
    );
    assert!(!err, "{body}");
    for depth in [64, 100] {
        let (err, body) = call(
            &s,
            "task_log_append",
            json!({"agent":"a","task_id":id,"message":"deep","data":nested(depth)}),
        );
        assert!(err && body["error"]["code"] == "INVALID_ARGUMENT", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("nested more than 64 deep"), "{message}");
        let (err, body) = call(
            &s,
            "decision_record",
            json!({"agent":"a","task_id":id,"decision":"d","metadata":nested(depth)}),
        );
        assert!(err && body["error"]["code"] == "INVALID_ARGUMENT", "{body}");
    }
    let (_, logs) = call(&s, "task_log_query", json!({"task_id":id}));
    let entries = logs["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{logs}");
    assert_eq!(entries[0]["message"], "deepest");
    let (_, decisions) = call(&s, "decision_list", json!({"task_id":id}));
    assert_eq!(
        decisions["decisions"].as_array().unwrap().len(),
        1,
        "{decisions}"
    );
}
