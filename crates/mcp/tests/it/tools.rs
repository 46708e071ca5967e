//! The tools beyond the workflow: giving a task back, a task's log, decisions and checkpoints,
//! statistics.

use serde_json::{Value, json};

use crate::{call, init, server_with_files};

#[test]
fn a_released_task_is_ready_again_and_its_token_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "task_create", json!({"agent":"p","name":"t"}));
    let (_, c) = call(&s, "task_claim", json!({"agent":"a"}));
    let (id, token) = (c["task_id"].clone(), c["fencing_token"].clone());
    let (err, body) = call(
        &s,
        "task_release",
        json!({"agent":"a","task_id":id,"fencing_token":token.as_u64().unwrap() + 1}),
    );
    assert!(err && body["error"]["code"] == "LEASE_LOST", "{body}");
    let (err, body) = call(
        &s,
        "task_release",
        json!({"agent":"a","task_id":id,"fencing_token":token}),
    );
    assert!(!err, "{body}");
    assert_eq!(
        (&body["task"]["status"], &body["task"]["attempts"]),
        (&json!("pending"), &json!(0))
    );
    let (_, again) = call(&s, "task_claim", json!({"agent":"b"}));
    assert_eq!(again["task_id"], id, "ready again at once");
    let (err, body) = call(
        &s,
        "task_finish",
        json!({"agent":"a","task_id":id,"fencing_token":token,"outcome":"completed"}),
    );
    assert!(err && body["error"]["code"] == "LEASE_LOST", "{body}");
}

#[test]
fn a_tasks_log_decisions_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let (_, c) = call(&s, "task_create", json!({"agent":"p","name":"t"}));
    let id = c["task"]["id"].clone();

    let (err, body) = call(
        &s,
        "task_log_append",
        json!({"agent":"a","task_id":"no-such-task","message":"x"}),
    );
    assert!(err && body["error"]["code"] == "NOT_FOUND", "{body}");
    assert!(
        !dir.path().join("tasks/no-such-task").exists(),
        "a refused write creates nothing"
    );
    for (level, message) in [
        ("info", "started"),
        ("error", "tests failed"),
        ("warn", "flaky"),
    ] {
        let (err, body) = call(
            &s,
            "task_log_append",
            json!({"agent":"a","task_id":id,"message":message,"level":level,"data":{"n":1}}),
        );
        assert!(!err, "{body}");
        assert_eq!(
            body["entry"]["data"]["agent"], "a",
            "the entry names its agent"
        );
    }
    let (_, q) = call(
        &s,
        "task_log_query",
        json!({"task_id":id,"level":"warn","limit":1}),
    );
    assert_eq!(q["entries"][0]["message"], "tests failed");
    assert_eq!(q["truncated"], true, "one more matches");
    let (_, q) = call(&s, "task_log_query", json!({"task_id":id,"newest":true}));
    assert_eq!(q["entries"][0]["message"], "flaky");
    let (err, body) = call(
        &s,
        "task_log_query",
        json!({"task_id":id,"since":"yesterday"}),
    );
    assert!(err && body["error"]["message"].as_str().unwrap().contains("since"));

    let (_, cp) = call(
        &s,
        "checkpoint_create",
        json!({"agent":"a","task_id":id,"description":"before"}),
    );
    let cp_id = cp["checkpoint"]["id"].clone();
    let (err, d) = call(
        &s,
        "decision_record",
        json!({"agent":"a","task_id":id,"decision":"rewrite","reasoning":"too slow","metadata":{"x":1}}),
    );
    assert!(!err, "{d}");
    call(
        &s,
        "decision_record",
        json!({"agent":"b","task_id":id,"decision":"keep"}),
    );
    let (_, l) = call(&s, "decision_list", json!({"task_id":id,"agent":"a"}));
    assert_eq!(l["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(l["decisions"][0]["decision"], "rewrite");

    let (_, l) = call(&s, "checkpoint_list", json!({"task_id":id}));
    assert_eq!(l["checkpoints"][0]["id"], cp_id);
    let (err, body) = call(
        &s,
        "checkpoint_restore",
        json!({"agent":"a","task_id":id,"checkpoint_id":"cp-0000000000000-0"}),
    );
    assert!(err && body["error"]["code"] == "NOT_FOUND", "{body}");
    let (err, body) = call(
        &s,
        "checkpoint_restore",
        json!({"agent":"a","task_id":id,"checkpoint_id":cp_id}),
    );
    assert!(!err, "{body}");
    let (_, l) = call(&s, "decision_list", json!({"task_id":id}));
    assert_eq!(
        l["decisions"],
        json!([]),
        "restored to before the decisions"
    );
    let (_, q) = call(&s, "task_log_query", json!({"task_id":id}));
    assert_eq!(
        q["entries"].as_array().unwrap().len(),
        3,
        "the log as it was"
    );
}

#[test]
fn statistics_of_tasks_and_locks() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "task_create", json!({"agent":"p","name":"t1"}));
    call(&s, "task_create", json!({"agent":"p","name":"t2"}));
    call(&s, "task_claim", json!({"agent":"a"}));
    call(&s, "lock_acquire", json!({"agent":"a","paths":["src"]}));
    call(&s, "lock_acquire", json!({"agent":"b","paths":["src/x"]}));
    let (_, t) = call(&s, "task_stats", json!({}));
    assert_eq!(t["stats"]["total"], 2);
    assert_eq!(t["stats"]["by_status"]["running"], 1);
    assert_eq!(t["stats"]["ready"], 1);
    let (_, l) = call(&s, "lock_stats", json!({}));
    assert_eq!(
        (&l["stats"]["activeLocks"], &l["stats"]["conflictsDetected"]),
        (&json!(1), &json!(1))
    );
}

#[test]
fn refusals_say_who_holds_a_task_and_that_a_finished_one_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let (_, c) = call(&s, "task_create", json!({"agent":"p","name":"t"}));
    let id = c["task"]["id"].clone();
    let (_, claim) = call(&s, "task_claim", json!({"agent":"alice","task_id":id}));
    let (token, until) = (
        claim["fencing_token"].clone(),
        claim["lease_expires_at"].clone(),
    );

    // A running task: who holds it, until when.
    let (err, body) = call(&s, "task_claim", json!({"agent":"bob","task_id":id}));
    assert!(err, "{body}");
    assert_eq!(body["error"]["code"], "ALREADY_CLAIMED", "{body}");
    assert_eq!(body["error"]["owner"], "alice", "{body}");
    assert_eq!(body["error"]["lease_expires_at"], until, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("alice") && message.contains(until.as_str().unwrap()),
        "{message}"
    );

    // Finished twice: the second says it is finished already, and when.
    let finish = json!({"agent":"alice","task_id":id,"fencing_token":token,"outcome":"completed"});
    let (err, done) = call(&s, "task_finish", finish.clone());
    assert!(!err, "{done}");
    let at = done["task"]["finished_at"].as_str().unwrap().to_owned();
    for again in [
        finish,
        json!({"agent":"alice","task_id":id,"fencing_token":token,"outcome":"failed"}),
    ] {
        let (err, body) = call(&s, "task_finish", again);
        assert!(err, "{body}");
        assert_eq!(body["error"]["code"], "ALREADY_FINISHED", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("already completed at {at}")),
            "{message}"
        );
        assert_eq!(body["error"]["status"], "completed");
    }
    // Claiming it is refused the same way.
    let (err, body) = call(&s, "task_claim", json!({"agent":"bob","task_id":id}));
    assert!(err && body["error"]["code"] == "ALREADY_FINISHED", "{body}");
}

/// `decision_list` answers a bounded page, the newest by default, with paging to the rest.
#[test]
fn decision_list_pages_from_the_newest_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let (_, t) = call(&s, "task_create", json!({"agent":"a","name":"t"}));
    let id = t["task"]["id"].as_str().unwrap().to_owned();
    for i in 0..60 {
        let agent = if i % 3 == 0 { "b" } else { "a" };
        call(
            &s,
            "decision_record",
            json!({"agent":agent,"task_id":id,"decision":format!("d{i}")}),
        );
    }
    let names = |l: &Value| -> Vec<String> {
        l["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["decision"].as_str().unwrap().to_owned())
            .collect()
    };
    // The newest 50 by default, oldest first.
    let (_, l) = call(&s, "decision_list", json!({"task_id":id}));
    let d = names(&l);
    assert_eq!((d.len(), d[0].as_str(), d[49].as_str()), (50, "d10", "d59"));
    assert_eq!((&l["more"], &l["next_skip"]), (&json!(true), &json!(50)));
    // The page before, newest first.
    let (_, l) = call(
        &s,
        "decision_list",
        json!({"task_id":id,"skip":50,"limit":20,"newest":true}),
    );
    let d = names(&l);
    assert_eq!(
        d,
        (0..10).rev().map(|i| format!("d{i}")).collect::<Vec<_>>()
    );
    assert_eq!(l["more"], false);
    // One agent's: its newest 5.
    let (_, l) = call(
        &s,
        "decision_list",
        json!({"task_id":id,"agent":"b","limit":5}),
    );
    assert_eq!(names(&l), ["d45", "d48", "d51", "d54", "d57"]);
    assert_eq!(l["more"], true);
    // Bounded.
    let (err, body) = call(&s, "decision_list", json!({"task_id":id,"limit":1001}));
    assert!(err && body["error"]["code"] == "INVALID_ARGUMENT", "{body}");
}

#[test]
fn a_log_append_retried_with_its_key_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let (_, c) = call(&s, "task_create", json!({"agent":"p","name":"t"}));
    let id = c["task"]["id"].clone();
    let append = |key: &str, message: &str| {
        call(
            &s,
            "task_log_append",
            json!({"agent":"a","task_id":id,"message":message,"idempotency_key":key}),
        )
    };
    let (err, first) = append("step-1", "tests pass");
    assert!(!err, "{first}");
    assert_eq!(first["duplicate"], false);
    // The answer was lost; the agent retries the same call.
    let (err, again) = append("step-1", "tests pass");
    assert!(!err, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["id"], first["id"], "the first append's id");
    assert_eq!(
        again["entry"], first["entry"],
        "the entry the first call wrote"
    );
    let (err, other) = append("step-2", "tests pass");
    assert!(!err && other["duplicate"] == false, "{other}");
    let (_, q) = call(&s, "task_log_query", json!({"task_id":id}));
    let messages: Vec<&Value> = q["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["message"])
        .collect();
    assert_eq!(
        messages,
        [&json!("tests pass"), &json!("tests pass")],
        "{q}"
    );

    for bad in [String::new(), "k".repeat(201), "a\nb".to_owned()] {
        let (err, body) = append(&bad, "x");
        assert!(err, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("idempotency_key"),
            "{body}"
        );
    }
    let (_, q) = call(&s, "task_log_query", json!({"task_id":id}));
    assert_eq!(
        q["entries"].as_array().unwrap().len(),
        2,
        "refused keys write nothing"
    );
}
