//! `task_claim` with `wait_ms`: progress while it waits, then the claim of a task with its
//! labels once one is created; a cancelled wait answers nothing and takes nothing; a claim
//! whose answer is not delivered is released; a wait past its deadline claims nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oc_mcp::{Incoming, Server};
use serde_json::{Value, json};

use crate::{call, init, server};

fn claim_call(id: u64, args: Value, progress: Option<&str>) -> String {
    let mut params = json!({ "name": "task_claim", "arguments": args });
    if let Some(p) = progress {
        params["_meta"] = json!({ "progressToken": p });
    }
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params}).to_string()
}

fn pending(s: &Server, msg: &str) -> oc_mcp::PendingCall {
    match s.accept(msg) {
        Incoming::Call(p) => p,
        _ => panic!("a tool call: {msg}"),
    }
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn task(s: &Server, id: &str) -> Value {
    call(s, "task_get", json!({ "task_id": id })).1["task"].clone()
}

#[test]
fn a_waiting_claim_reports_progress_then_claims_the_task_with_its_labels() {
    let s = server();
    init(&s, "2025-11-25");
    let p = pending(
        &s,
        &claim_call(
            1,
            json!({"agent":"w","labels":["gpu"],"wait_ms":60_000}),
            Some("p1"),
        ),
    );
    assert!(
        p.may_wait(&s),
        "a claim with wait_ms runs beside the reading"
    );
    let (notes, never) = (Mutex::new(Vec::<String>::new()), AtomicBool::new(false));
    let answer = std::thread::scope(|t| {
        let run = t.spawn(|| p.run(&s, &|n| notes.lock().unwrap().push(n), &never));
        until("a progress notification", || {
            !notes.lock().unwrap().is_empty()
        });
        let (_, plain) = call(&s, "task_create", json!({"agent":"a","name":"plain"}));
        let (_, gpu) = call(
            &s,
            "task_create",
            json!({"agent":"a","name":"gpu","labels":["gpu"]}),
        );
        let answer: Value = serde_json::from_str(&run.join().unwrap().unwrap()).unwrap();
        (answer, plain, gpu)
    });
    let (answer, plain, gpu) = answer;
    let body = &answer["result"]["structuredContent"];
    assert_eq!(body["claimed"], true, "{answer}");
    assert_eq!(
        body["task_id"], gpu["task"]["id"],
        "the task with the labels"
    );
    assert!(body["fencing_token"].as_u64().is_some());
    let plain = task(&s, plain["task"]["id"].as_str().unwrap());
    assert_eq!(plain["status"], "pending", "the unlabelled task is left");
    let n: Value = serde_json::from_str(&notes.lock().unwrap()[0]).unwrap();
    assert_eq!(n["method"], "notifications/progress");
    assert_eq!(
        (&n["params"]["progressToken"], &n["params"]["total"]),
        (&json!("p1"), &json!(60_000.0))
    );
}

#[test]
fn a_cancelled_waiting_claim_answers_nothing_and_takes_nothing() {
    let s = server();
    init(&s, "2025-11-25");
    let p = pending(
        &s,
        &claim_call(2, json!({"agent":"w","wait_ms":60_000}), Some("p2")),
    );
    let (notes, cancelled) = (Mutex::new(Vec::<String>::new()), AtomicBool::new(false));
    std::thread::scope(|t| {
        let run = t.spawn(|| p.run(&s, &|n| notes.lock().unwrap().push(n), &cancelled));
        until("a progress notification", || {
            !notes.lock().unwrap().is_empty()
        });
        cancelled.store(true, Ordering::SeqCst);
        assert_eq!(
            run.join().unwrap(),
            None,
            "a cancelled call answers nothing"
        );
    });
    let (_, made) = call(&s, "task_create", json!({"agent":"a","name":"later"}));
    let t = task(&s, made["task"]["id"].as_str().unwrap());
    assert_eq!(
        (&t["status"], &t["lease"]),
        (&json!("pending"), &Value::Null)
    );
}

#[test]
fn a_claim_whose_answer_is_not_delivered_is_released() {
    let s = server();
    init(&s, "2025-11-25");
    // Claimed at once (no wait), and at the end of a wait; neither answer reaches the client.
    let (_, first) = call(&s, "task_create", json!({"agent":"a","name":"first"}));
    let never = AtomicBool::new(false);
    let p = pending(&s, &claim_call(3, json!({"agent":"w"}), None));
    let delivered = p.run_and_deliver(&s, &|_| {}, &never, &mut |answer| {
        assert!(answer.contains("fencing_token"), "claimed: {answer}");
        false
    });
    assert!(!delivered);
    let t = task(&s, first["task"]["id"].as_str().unwrap());
    assert_eq!(
        (&t["status"], &t["lease"]),
        (&json!("pending"), &Value::Null)
    );

    call(&s, "task_claim", json!({"agent":"x"}));
    let p = pending(
        &s,
        &claim_call(4, json!({"agent":"w","wait_ms":60_000}), None),
    );
    let made = std::thread::scope(|t| {
        let creator = t.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            call(&s, "task_create", json!({"agent":"a","name":"second"})).1
        });
        let delivered = p.run_and_deliver(&s, &|_| {}, &never, &mut |answer| {
            assert!(answer.contains("fencing_token"), "claimed: {answer}");
            false
        });
        assert!(!delivered);
        creator.join().unwrap()
    });
    let t = task(&s, made["task"]["id"].as_str().unwrap());
    assert_eq!(
        (&t["status"], &t["lease"]),
        (&json!("pending"), &Value::Null)
    );
}

#[test]
fn a_wait_past_its_deadline_claims_nothing_and_bad_waits_are_refused() {
    let s = server();
    init(&s, "2025-11-25");
    let (_, made) = call(
        &s,
        "task_create",
        json!({"agent":"a","name":"cpu","labels":["cpu"]}),
    );
    let (err, body) = call(
        &s,
        "task_claim",
        json!({"agent":"w","labels":["gpu"],"wait_ms":300}),
    );
    assert!(!err);
    assert_eq!(body["claimed"], false, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("300 ms"),
        "{body}"
    );
    let t = task(&s, made["task"]["id"].as_str().unwrap());
    assert_eq!(t["status"], "pending");

    let (err, body) = call(&s, "task_claim", json!({"agent":"w","wait_ms":300_001}));
    assert!(err, "{body}");
    let (err, body) = call(
        &s,
        "task_claim",
        json!({"agent":"w","wait_ms":10,"task_id":made["task"]["id"]}),
    );
    assert!(err, "{body}");
    assert!(body.to_string().contains("wait_ms"), "{body}");
}
