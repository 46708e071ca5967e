//! MCP over Streamable HTTP as plain data ([`HttpSessions`]): the stateless revision's headers,
//! handshake-era sessions (missing, unknown, expired, another identity's, ended by DELETE), SSE
//! progress then the result, resumption after `Last-Event-ID`, and a waiting call whose client
//! goes away taking nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oc_auth::{Identity, Scope};
use oc_mcp::{HttpAnswer, HttpCall, HttpOptions, HttpRequest, HttpResponse, HttpSessions};
use serde_json::{Value, json};

use crate::{modern_meta, server};

const BOTH: &str = "application/json, text/event-stream";

fn endpoint(options: HttpOptions) -> HttpSessions {
    HttpSessions::new(server(), options)
}

fn req(method: &str, headers: &[(&str, &str)], body: Value) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
        identity: Identity::local(),
    }
}

fn now(a: HttpAnswer) -> HttpResponse {
    match a {
        HttpAnswer::Now(r) => r,
        HttpAnswer::Call(c) => panic!("an answer at once, not a call: {c:?}"),
    }
}

fn body(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn modern_call(name: &str, args: Value) -> Value {
    let mut meta = modern_meta();
    meta["progressToken"] = json!("p");
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args,"_meta":meta}})
}

fn modern_headers<'a>(method: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Accept", BOTH),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", method),
        ("Mcp-Name", name),
    ]
}

#[test]
fn the_stateless_revision_checks_its_headers_against_the_body() {
    let e = endpoint(HttpOptions::default());
    let create = modern_call("task_create", json!({"agent":"a","name":"t"}));
    let check = |headers: &[(&str, &str)], status: u16, code: Option<i64>| {
        let r = now(e.handle(req("POST", headers, create.clone())));
        assert_eq!(
            r.status,
            status,
            "{headers:?}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(body(&r)["error"]["code"].as_i64(), code, "{headers:?}");
        assert_eq!(
            r.header_value("Mcp-Session-Id"),
            None,
            "no session in 2026-07-28"
        );
    };
    check(&modern_headers("tools/call", "task_create"), 200, None);
    check(
        &modern_headers("tools/call", "=?base64?dGFza19jcmVhdGU=?="),
        200,
        None,
    );
    check(
        &modern_headers("tools/call", "task_list"),
        400,
        Some(-32020),
    );
    check(
        &modern_headers("tools/list", "task_create"),
        400,
        Some(-32020),
    );
    let mut no_name = modern_headers("tools/call", "");
    no_name.pop();
    check(&no_name, 400, Some(-32020));
    let no_method: Vec<_> = modern_headers("tools/call", "task_create")
        .into_iter()
        .filter(|(n, _)| *n != "Mcp-Method")
        .collect();
    check(&no_method, 400, Some(-32020));
    let mut other_version = modern_headers("tools/call", "task_create");
    other_version[2].1 = "2025-11-25";
    check(&other_version, 400, Some(-32020));
    // A session id is ignored: the request is answered statelessly.
    let mut with_session = modern_headers("tools/call", "task_create");
    with_session.push(("Mcp-Session-Id", "nonsense"));
    check(&with_session, 200, None);

    let unknown =
        json!({"jsonrpc":"2.0","id":2,"method":"no/such","params":{"_meta":modern_meta()}});
    let r = now(e.handle(req("POST", &modern_headers("no/such", ""), unknown)));
    assert_eq!(
        (r.status, body(&r)["error"]["code"].clone()),
        (404, json!(-32601))
    );
    let mut old = modern_call("task_list", json!({}));
    old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2030-01-01");
    let mut h = modern_headers("tools/call", "task_list");
    h[2].1 = "2030-01-01";
    let r = now(e.handle(req("POST", &h, old)));
    assert_eq!(
        (r.status, body(&r)["error"]["code"].clone()),
        (400, json!(-32022))
    );
    for method in ["GET", "DELETE"] {
        let r = now(e.handle(req(
            method,
            &[("MCP-Protocol-Version", "2026-07-28")],
            Value::Null,
        )));
        assert_eq!(r.status, 405, "{method}");
    }
    let r = now(e.handle(req(
        "POST",
        &[("Content-Type", "text/plain")],
        create.clone(),
    )));
    assert_eq!(r.status, 415);
    let r = now(e.handle(req("POST", &[], json!("not an object"))));
    assert_eq!(r.status, 400);
    let garbage = HttpRequest {
        body: b"{nope".to_vec(),
        ..req("POST", &[], Value::Null)
    };
    assert_eq!(now(e.handle(garbage)).status, 400);
}

fn initialize(e: &HttpSessions, version: &str, identity: Identity) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":version,"capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let mut r = req("POST", &[("Accept", BOTH)], init);
    r.identity = identity;
    let r = now(e.handle(r));
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(body(&r)["result"]["protocolVersion"], version);
    let sid = r.header_value("Mcp-Session-Id").unwrap().to_owned();
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &sid)], note)));
    assert_eq!(r.status, 202);
    sid
}

fn legacy(e: &HttpSessions, sid: &str, name: &str, args: Value) -> HttpResponse {
    let msg = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":name,"arguments":args}});
    now(e.handle(req(
        "POST",
        &[
            ("Accept", BOTH),
            ("Mcp-Session-Id", sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        msg,
    )))
}

#[test]
fn handshake_sessions_are_named_by_every_request_and_end_with_delete() {
    let e = endpoint(HttpOptions::default());
    let sid = initialize(&e, "2025-11-25", Identity::local());
    let other = initialize(&e, "2025-11-25", Identity::local());
    assert_ne!(sid, other, "each initialize opens a session of its own");
    assert!(sid.len() >= 32 && sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    let r = legacy(&e, &sid, "task_create", json!({"agent":"a","name":"t"}));
    assert_eq!(r.status, 200);
    assert_eq!(body(&r)["result"]["isError"], false, "{:?}", body(&r));

    let list = json!({"jsonrpc":"2.0","id":3,"method":"tools/list"});
    let r = now(e.handle(req("POST", &[("Accept", BOTH)], list.clone())));
    assert_eq!(r.status, 400, "no session named");
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", "0123")], list.clone())));
    assert_eq!(r.status, 404, "an unknown session");
    // The header may name any version of the handshake era this server supports (the SDKs
    // and the conformance suite send 2025-03-26 on a session negotiated later), never another.
    let r = now(e.handle(req(
        "POST",
        &[
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-03-26"),
        ],
        list.clone(),
    )));
    assert_eq!(r.status, 200, "a supported version, not the one negotiated");
    for unsupported in ["2025-01-01", "2026-07-28x", "latest"] {
        let r = now(e.handle(req(
            "POST",
            &[
                ("Mcp-Session-Id", &sid),
                ("MCP-Protocol-Version", unsupported),
            ],
            list.clone(),
        )));
        assert_eq!(r.status, 400, "{unsupported}: not a version of ours");
    }
    // Another identity cannot use the session, even knowing its id.
    let mut stolen = req("POST", &[("Mcp-Session-Id", &sid)], list.clone());
    stolen.identity = Identity {
        agent: "mallory".into(),
        scope: Scope::Work,
        tenant: None,
    };
    assert_eq!(now(e.handle(stolen)).status, 404);
    // A response posted by the client is accepted and ignored.
    let response = json!({"jsonrpc":"2.0","id":9,"result":{}});
    assert_eq!(
        now(e.handle(req("POST", &[("Mcp-Session-Id", &sid)], response))).status,
        202
    );
    // No standalone stream.
    let r = now(e.handle(req(
        "GET",
        &[("Mcp-Session-Id", &sid), ("Accept", "text/event-stream")],
        Value::Null,
    )));
    assert_eq!(r.status, 405);

    let r = now(e.handle(req("DELETE", &[], Value::Null)));
    assert_eq!(r.status, 400);
    let r = now(e.handle(req("DELETE", &[("Mcp-Session-Id", &sid)], Value::Null)));
    assert_eq!(r.status, 200);
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &sid)], list.clone())));
    assert_eq!(r.status, 404, "ended");
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &other)], list)));
    assert_eq!(r.status, 200, "the other session goes on");
}

#[test]
fn a_2025_03_26_session_takes_batches_and_sessions_are_bounded_and_expire() {
    let e = endpoint(HttpOptions {
        max_sessions: 2,
        idle: Duration::from_secs(3600),
        ..HttpOptions::default()
    });
    let first = initialize(&e, "2025-03-26", Identity::local());
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
    ]);
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &first)], batch)));
    assert_eq!(r.status, 200);
    assert_eq!(body(&r).as_array().unwrap().len(), 1);
    let second = initialize(&e, "2025-06-18", Identity::local());
    let _third = initialize(&e, "2025-11-25", Identity::local());
    assert_eq!(e.open_sessions(), 2, "bounded");
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &first)], ping.clone())));
    assert_eq!(r.status, 404, "the least recently used session made room");
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &second)], ping.clone())));
    assert_eq!(r.status, 200);

    let expiring = endpoint(HttpOptions {
        max_sessions: 8,
        idle: Duration::ZERO,
        ..HttpOptions::default()
    });
    let sid = initialize_quietly(&expiring);
    let r = now(expiring.handle(req("POST", &[("Mcp-Session-Id", &sid)], ping)));
    assert_eq!(r.status, 404, "expired");
}

/// The security review's finding: one token could open every session (and, at the global
/// cap, close everyone else's). An identity at its cap is refused (`429`, naming the cap);
/// another identity still opens one, and nobody's session was closed to make room.
#[test]
fn one_identity_cannot_take_every_session() {
    let e = endpoint(HttpOptions {
        max_sessions: 8,
        max_sessions_per_identity: 3,
        ..HttpOptions::default()
    });
    let who = |agent: &str| Identity {
        agent: agent.into(),
        scope: Scope::Work,
        tenant: None,
    };
    let init = json!({"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let open = |identity: Identity| {
        let mut r = req("POST", &[], init.clone());
        r.identity = identity;
        now(e.handle(r))
    };
    let b_first = open(who("b"));
    assert_eq!(b_first.status, 200);
    let a: Vec<String> = (0..3)
        .map(|_| {
            let r = open(who("a"));
            assert_eq!(r.status, 200);
            r.header_value("Mcp-Session-Id").unwrap().to_owned()
        })
        .collect();
    let refused = open(who("a"));
    assert_eq!(refused.status, 429);
    let error = &body(&refused)["error"];
    assert_eq!(body(&refused)["id"], 7);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("max_sessions_per_identity"),
        "{error}"
    );
    assert_eq!(e.open_sessions(), 4, "the refused one was not kept");
    // The same agent of another tenant is another identity.
    let mut elsewhere = who("a");
    elsewhere.tenant = Some(oc_auth::Tenant::new("acme").unwrap());
    assert_eq!(open(elsewhere).status, 200);
    assert_eq!(open(who("b")).status, 200, "b still opens one");
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    for sid in a
        .iter()
        .chain([&b_first.header_value("Mcp-Session-Id").unwrap().to_owned()])
    {
        let owner = if a.contains(sid) { who("a") } else { who("b") };
        let mut r = req("POST", &[("Mcp-Session-Id", sid)], ping.clone());
        r.identity = owner;
        assert_eq!(now(e.handle(r)).status, 200, "every session is still open");
    }
    // Ending one makes room for another.
    let mut end = req("DELETE", &[("Mcp-Session-Id", &a[0])], Value::Null);
    end.identity = who("a");
    assert_eq!(now(e.handle(end)).status, 200);
    assert_eq!(open(who("a")).status, 200);
}

fn initialize_quietly(e: &HttpSessions) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let r = now(e.handle(req("POST", &[], init)));
    r.header_value("Mcp-Session-Id").unwrap().to_owned()
}

fn wait_request(sid: &str, id: i64, accept: &str) -> HttpRequest {
    let msg = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
        "name":"lock_acquire","arguments":{"agent":"b","paths":["f"],"wait_ms":60_000},
        "_meta":{"progressToken":"p"}}});
    req(
        "POST",
        &[
            ("Accept", accept),
            ("Mcp-Session-Id", sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        msg,
    )
}

fn a_call(a: HttpAnswer) -> Box<HttpCall> {
    match a {
        HttpAnswer::Call(c) => c,
        HttpAnswer::Now(r) => panic!("a call, not {:?}", String::from_utf8_lossy(&r.body)),
    }
}

/// The SSE events in `chunks`: (id, data).
fn events(chunks: &[Vec<u8>]) -> Vec<(Option<String>, String)> {
    let text: String = chunks.iter().map(|c| String::from_utf8_lossy(c)).collect();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let field = |f: &str| {
                e.lines()
                    .find_map(|l| l.strip_prefix(f))
                    .map(|v| v.trim_start().to_owned())
            };
            (field("id:"), field("data:").unwrap_or_default())
        })
        .collect()
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_waiting_call_streams_progress_then_its_result_and_can_be_resumed() {
    let e = endpoint(HttpOptions::default());
    let sid = initialize(&e, "2025-11-25", Identity::local());
    let r = legacy(&e, &sid, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    assert_eq!(body(&r)["result"]["isError"], false);
    let call = a_call(e.handle(wait_request(&sid, 11, BOTH)));
    assert!(call.is_stream());
    assert_eq!(
        call.headers()
            .iter()
            .find(|(n, _)| n == "Content-Type")
            .map(|(_, v)| v.as_str()),
        Some("text/event-stream")
    );
    let chunks = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = Arc::clone(&chunks);
    let run = std::thread::spawn(move || {
        call.run(&mut |c| {
            sink.lock().unwrap().push(c);
            true
        })
    });
    until("a progress notification", || {
        events(&chunks.lock().unwrap())
            .iter()
            .any(|(_, d)| d.contains("notifications/progress"))
    });
    let r = legacy(&e, &sid, "lock_release", json!({"agent":"a","paths":["f"]}));
    assert_eq!(body(&r)["result"]["isError"], false);
    assert!(run.join().unwrap(), "delivered");
    let evs = events(&chunks.lock().unwrap());
    assert_eq!(evs[0].1, "", "a priming event first: {evs:?}");
    let last: Value = serde_json::from_str(&evs.last().unwrap().1).unwrap();
    assert_eq!(last["id"], 11);
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert!(
        evs.iter().all(|(id, _)| id.is_some()),
        "every event has an id"
    );

    // Resumed after the priming event: everything after it again.
    let first_id = evs[0].0.clone().unwrap();
    let r = now(e.handle(req(
        "GET",
        &[
            ("Mcp-Session-Id", &sid),
            ("Last-Event-ID", &first_id),
            ("Accept", "text/event-stream"),
        ],
        Value::Null,
    )));
    assert_eq!(r.status, 200);
    let replayed = events(&[r.body]);
    assert_eq!(replayed, evs[1..].to_vec());
}

#[test]
fn a_waiting_call_whose_client_goes_away_takes_nothing() {
    let e = endpoint(HttpOptions::default());
    let sid = initialize(&e, "2025-11-25", Identity::local());
    legacy(&e, &sid, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    // The client accepts JSON only: no progress, the answer when it comes.
    let call = a_call(e.handle(wait_request(&sid, 12, "application/json")));
    assert!(!call.is_stream());
    let flag = call.cancel_flag();
    let run = std::thread::spawn(move || call.run(&mut |_| true));
    // The connection closed: the transport sets the flag.
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(!run.join().unwrap(), "nothing delivered");
    legacy(&e, &sid, "lock_release", json!({"agent":"a","paths":["f"]}));
    let r = legacy(&e, &sid, "lock_check", json!({"paths":["f"]}));
    assert_eq!(
        body(&r)["result"]["structuredContent"]["free"],
        true,
        "b took nothing"
    );

    // The client went away just as the lock was granted: the grant is given back.
    legacy(&e, &sid, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let call = a_call(e.handle(wait_request(&sid, 13, BOTH)));
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = Arc::clone(&seen);
    let run = std::thread::spawn(move || {
        call.run(&mut |c| {
            let result = String::from_utf8_lossy(&c).contains("\"result\"");
            sink.lock().unwrap().push(c);
            !result
        })
    });
    until("the wait to start", || !seen.lock().unwrap().is_empty());
    legacy(&e, &sid, "lock_release", json!({"agent":"a","paths":["f"]}));
    assert!(!run.join().unwrap());
    let r = legacy(&e, &sid, "lock_check", json!({"paths":["f"]}));
    assert_eq!(
        body(&r)["result"]["structuredContent"]["free"],
        true,
        "the grant was given back"
    );
    // A client resuming that stream learns the call ended without a result: the grant it
    // never read is not replayed (it was given back).
    let first_id = events(&seen.lock().unwrap())[0].0.clone().unwrap();
    let r = now(e.handle(req(
        "GET",
        &[
            ("Mcp-Session-Id", &sid),
            ("Last-Event-ID", &first_id),
            ("Accept", "text/event-stream"),
        ],
        Value::Null,
    )));
    assert_eq!(r.status, 200);
    let answers: Vec<Value> = events(&[r.body])
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
        .filter(|v| v["id"] == 13)
        .collect();
    assert_eq!(answers.len(), 1, "one answer for the call: {answers:?}");
    assert_eq!(answers[0]["error"]["code"], -32800, "{answers:?}");
}

#[test]
fn delete_and_a_cancellation_stop_waiting_calls() {
    let e = endpoint(HttpOptions::default());
    let sid = initialize(&e, "2025-11-25", Identity::local());
    legacy(&e, &sid, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let call = a_call(e.handle(wait_request(&sid, 21, BOTH)));
    let dup = now(e.handle(wait_request(&sid, 21, BOTH)));
    assert_eq!(body(&dup)["error"]["code"], -32600, "an id in use");
    let run = std::thread::spawn(move || call.run(&mut |_| true));
    let cancel =
        json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":21}});
    let r = now(e.handle(req("POST", &[("Mcp-Session-Id", &sid)], cancel)));
    assert_eq!(r.status, 202);
    assert!(!run.join().unwrap(), "cancelled");

    let call = a_call(e.handle(wait_request(&sid, 22, BOTH)));
    let run = std::thread::spawn(move || call.run(&mut |_| true));
    let r = now(e.handle(req("DELETE", &[("Mcp-Session-Id", &sid)], Value::Null)));
    assert_eq!(r.status, 200);
    assert!(!run.join().unwrap(), "the session's end stops its calls");
}
