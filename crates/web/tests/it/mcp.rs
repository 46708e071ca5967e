//! `/mcp` on the real server over sockets on 127.0.0.1, raw HTTP: bearer identities (401 with
//! `WWW-Authenticate: Bearer`), the `Origin` check, both eras, a `work` token that cannot touch
//! another agent's task, SSE progress then the result, a client that goes away mid-wait taking
//! nothing, and the cap on open streams.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_auth::{AuthError, Identity, Scope, Verifier};
use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::{LockManager, MemoryLockManager};
use oc_mcp::{HttpOptions, HttpSessions, Server, Toolbox};
use oc_tasks::MemoryTaskStore;
use oc_web::{McpOptions, ServeOptions, ServerHandle, Web, serve};
use serde_json::{Value, json};

/// Tokens from a fixed map.
#[derive(Debug)]
struct Fixed(HashMap<&'static str, Identity>);

impl Verifier for Fixed {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        self.0
            .get(bearer)
            .cloned()
            .ok_or_else(|| AuthError::BadToken("unknown".into()))
    }
}

fn work(agent: &str) -> Identity {
    Identity {
        agent: agent.into(),
        scope: Scope::Work,
        tenant: None,
    }
}

/// `oc serve`'s server with `/mcp` over a memory store, tokens `alice`, `bob` (work) and
/// `admin`; at most `streams` open streams.
fn started(streams: usize) -> (ServerHandle, Arc<dyn LockManager>) {
    started_with(streams, oc_web::MAX_STREAMS_PER_IDENTITY, false)
}

/// [`started`], with at most `per_identity` streams of one identity, and read-only or not.
fn started_with(
    streams: usize,
    per_identity: usize,
    read_only: bool,
) -> (ServerHandle, Arc<dyn LockManager>) {
    let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
    let locks: Arc<dyn LockManager> = Arc::new(MemoryLockManager::new());
    let web = Web::new(life.clone(), Arc::clone(&locks)).read_only(read_only);
    let server = Server::new(Toolbox::new(life, Arc::clone(&locks)));
    let sessions = Arc::new(HttpSessions::new(server, HttpOptions::default()));
    let verifier = Fixed(HashMap::from([
        ("t-alice", work("alice")),
        ("t-bob", work("bob")),
        (
            "t-reader",
            Identity {
                agent: "eve".into(),
                scope: Scope::Read,
                tenant: None,
            },
        ),
        (
            "t-admin",
            Identity {
                agent: "ops".into(),
                scope: Scope::Admin,
                tenant: None,
            },
        ),
    ]));
    let mut mcp = McpOptions::new(sessions, Some(Arc::new(verifier)));
    mcp.max_streams = streams;
    mcp.max_streams_per_identity = per_identity;
    let opts = ServeOptions {
        mcp: Some(mcp),
        ..ServeOptions::default()
    };
    let handle = serve("127.0.0.1:0".parse().unwrap(), Arc::new(web), opts).unwrap();
    (handle, locks)
}

/// A raw request to `/mcp`; returns the connection, for reading the answer.
fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &Value) -> TcpStream {
    let body = body.to_string();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    s
}

/// Status, headers (lower-case names) and body of a whole answer.
fn reply(s: TcpStream) -> (u16, HashMap<String, String>, String) {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.insert(n.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let mut body = Vec::new();
    r.read_to_end(&mut body).unwrap();
    let mut body = String::from_utf8(body).unwrap();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn init_msg() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}})
}

/// A handshake-era session for `token`: its id.
fn session(addr: SocketAddr, token: &str) -> String {
    let auth = bearer(token);
    let (status, headers, body) = reply(post(addr, &[("Authorization", &auth)], &init_msg()));
    assert_eq!(status, 200, "{body}");
    headers["mcp-session-id"].clone()
}

fn tool(addr: SocketAddr, token: &str, sid: &str, name: &str, args: Value) -> Value {
    let auth = bearer(token);
    let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}});
    let (status, _, body) = reply(post(
        addr,
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &msg,
    ));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    let mut out: Value = serde_json::from_str(text).unwrap();
    out["isError"] = v["result"]["isError"].clone();
    out
}

#[test]
fn mcp_needs_a_bearer_token_and_a_foreign_origin_is_refused() {
    let (server, _) = started(4);
    let a = server.addr();
    let (status, headers, _) = reply(post(a, &[], &init_msg()));
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"].starts_with("Bearer"),
        "{headers:?}"
    );
    let (status, headers, body) = reply(post(a, &[("Authorization", "Bearer nope")], &init_msg()));
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].contains("invalid_token"));
    assert!(!body.contains("unknown"), "the reason is not told: {body}");
    let auth = bearer("t-alice");
    let (status, _, _) = reply(post(
        a,
        &[("Authorization", &auth), ("Origin", "http://evil.example")],
        &init_msg(),
    ));
    assert_eq!(status, 403);
    let (status, _, _) = reply(post(
        a,
        &[("Authorization", &auth), ("Origin", &format!("http://{a}"))],
        &init_msg(),
    ));
    assert_eq!(status, 200, "the same origin passes");
    // The stateless revision over the socket.
    let mut meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    meta["progressToken"] = json!(1);
    let msg = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"task_list","arguments":{},"_meta":meta}});
    let modern = [
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
    ];
    let (status, _, body) = reply(post(
        a,
        &[&modern[..], &[("Mcp-Name", "task_list")]].concat(),
        &msg,
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["result"]["resultType"],
        "complete"
    );
    let (status, _, body) = reply(post(
        a,
        &[&modern[..], &[("Mcp-Name", "task_get")]].concat(),
        &msg,
    ));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("-32020"), "{body}");
}

#[test]
fn a_work_token_cannot_finish_or_release_what_another_agent_holds() {
    let (server, _) = started(4);
    let a = server.addr();
    let (alice, bob) = (session(a, "t-alice"), session(a, "t-bob"));
    // A session is its token's: another token cannot use it.
    let auth = bearer("t-bob");
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    let (status, _, _) = reply(post(
        a,
        &[("Authorization", &auth), ("Mcp-Session-Id", &alice)],
        &list,
    ));
    assert_eq!(status, 404);

    tool(a, "t-bob", &bob, "task_create", json!({"name":"t"}));
    let c = tool(a, "t-bob", &bob, "task_claim", json!({}));
    let (task, token) = (c["task_id"].clone(), c["fencing_token"].clone());
    tool(
        a,
        "t-bob",
        &bob,
        "lock_acquire",
        json!({"paths":["src/x.rs"]}),
    );
    for agent in [json!("bob"), Value::Null] {
        let mut args = json!({"task_id": task, "fencing_token": token, "outcome": "completed"});
        if !agent.is_null() {
            args["agent"] = agent;
        }
        let r = tool(a, "t-alice", &alice, "task_finish", args);
        assert_eq!(r["isError"], true, "{r}");
        assert_eq!(r["error"]["code"], "NOT_YOUR_AGENT", "{r}");
    }
    let r = tool(
        a,
        "t-alice",
        &alice,
        "lock_release",
        json!({"agent":"bob","paths":["src/x.rs"]}),
    );
    assert_eq!(r["error"]["code"], "NOT_YOUR_AGENT", "{r}");
    let r = tool(
        a,
        "t-alice",
        &alice,
        "lock_check",
        json!({"paths":["src/x.rs"]}),
    );
    assert_eq!(r["free"], false, "{r}");
    let r = tool(
        a,
        "t-bob",
        &bob,
        "task_finish",
        json!({"task_id": task, "fencing_token": token, "outcome": "completed"}),
    );
    assert_eq!(r["isError"], false, "{r}");
    // A read token reads and changes nothing: its writes are refused before they run (the
    // step-up test below).
    let reader = session(a, "t-reader");
    let r = tool(a, "t-reader", &reader, "task_get", json!({"task_id": task}));
    assert_eq!(r["task"]["status"], "completed", "{r}");
    let admin = session(a, "t-admin");
    let r = tool(
        a,
        "t-admin",
        &admin,
        "lock_release",
        json!({"agent":"bob","paths":["src/x.rs"]}),
    );
    assert_eq!(r["isError"], false, "admin acts for anyone: {r}");
}

fn wait_msg(id: i64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"lock_acquire",
        "arguments":{"paths":["f"],"wait_ms":60_000},"_meta":{"progressToken":"p"}}})
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_waiting_call_streams_progress_and_stops_taking_nothing_when_its_client_leaves() {
    let (server, locks) = started(1);
    let a = server.addr();
    let (alice, bob) = (session(a, "t-alice"), session(a, "t-bob"));
    tool(a, "t-alice", &alice, "lock_acquire", json!({"paths":["f"]}));
    let auth = bearer("t-bob");
    let h = [
        ("Authorization", auth.as_str()),
        ("Mcp-Session-Id", bob.as_str()),
    ];

    // Bob waits; the answer is an SSE stream: progress, then the result once alice releases.
    let s = post(a, &h, &wait_msg(10));
    let mut r = BufReader::new(s);
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "the stream ended early: {seen}"
        );
        seen.push_str(&line);
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    // Only one stream may be open: a second waiting call is refused at once.
    let (status, headers, _) = reply(post(a, &h, &wait_msg(11)));
    assert_eq!(
        (status, headers.get("retry-after").map(String::as_str)),
        (503, Some("1"))
    );
    tool(a, "t-alice", &alice, "lock_release", json!({"paths":["f"]}));
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains(r#""id":10"#) && rest.contains(r#""isError":false"#),
        "{rest}"
    );
    tool(a, "t-bob", &bob, "lock_release", json!({"paths":["f"]}));

    // Bob waits again and goes away: his call stops and, when alice releases, takes nothing.
    tool(a, "t-alice", &alice, "lock_acquire", json!({"paths":["f"]}));
    let s = post(a, &h, &wait_msg(12));
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    while !line.contains("notifications/progress") {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    drop(r);
    s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(s);
    let resource = oc_locks::Resource::new("f").unwrap();
    until("bob's wait to leave the queue", || {
        locks
            .holders(&resource)
            .unwrap()
            .iter()
            .all(|l| l.owner.as_str() != "bob")
    });
    tool(a, "t-alice", &alice, "lock_release", json!({"paths":["f"]}));
    let holders = locks.holders(&resource).unwrap();
    assert!(
        holders.is_empty(),
        "a departed client holds nothing: {holders:?}"
    );
    // The stream's permit is back: another waiting call is served (and granted at once).
    let (status, _, body) = reply(post(a, &h, &wait_msg(13)));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""isError":false"#), "{body}");
}

/// A verifier that takes its time (a slow token database, an issuer's keys being fetched).
#[derive(Debug)]
struct Slow(Duration);

impl Verifier for Slow {
    fn verify(&self, _: &str) -> Result<Identity, AuthError> {
        std::thread::sleep(self.0);
        Err(AuthError::BadToken("slow and unknown".into()))
    }
}

/// Tokens are checked off the server's two async threads: clients whose bearers take seconds
/// to check (to `/mcp` and to the pages) do not stall `/healthz` nor the pages' reads.
#[test]
fn slow_token_checks_do_not_stall_the_server() {
    let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
    let locks: Arc<dyn LockManager> = Arc::new(MemoryLockManager::new());
    let web = Web::new(life.clone(), Arc::clone(&locks));
    let sessions = Arc::new(HttpSessions::new(
        Server::new(Toolbox::new(life, locks)),
        HttpOptions::default(),
    ));
    let slow: Arc<dyn Verifier> = Arc::new(Slow(Duration::from_secs(4)));
    let opts = ServeOptions {
        mcp: Some(McpOptions::new(sessions, Some(Arc::clone(&slow)))),
        verifier: Some(slow),
        ..ServeOptions::default()
    };
    let handle = serve("127.0.0.1:0".parse().unwrap(), Arc::new(web), opts).unwrap();
    let a = handle.addr();
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let mut pending: Vec<TcpStream> = (0..3)
        .map(|_| post(a, &[("Authorization", "Bearer forged")], &init))
        .collect();
    for _ in 0..3 {
        let mut s = TcpStream::connect(a).unwrap();
        s.write_all(
            format!("GET /api/stats HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer forged\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        pending.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let took = asked.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took < Duration::from_secs(2),
        "/healthz waited {took:?} behind token checks that take 4 s"
    );
    drop(pending);
}

/// The MCP authorization spec's step-up: a `read` token calling a tool that changes something
/// is answered `403` with `WWW-Authenticate: Bearer error="insufficient_scope"` naming the
/// scope needed, in both eras, before the tool runs; its reads go on. A `work` token on a
/// read-only server is not asked to step up (no scope would do): its writes are tool
/// refusals.
#[test]
fn a_read_token_calling_a_writing_tool_is_asked_to_step_up() {
    let (server, _) = started(4);
    let a = server.addr();
    let reader = session(a, "t-reader");
    let auth = bearer("t-reader");
    let create = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"task_create","arguments":{"name":"x"}}});
    let (status, headers, body) = reply(post(
        a,
        &[("Authorization", &auth), ("Mcp-Session-Id", &reader)],
        &create,
    ));
    assert_eq!(status, 403, "{body}");
    let challenge = &headers["www-authenticate"];
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="work""#), "{challenge}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], 4, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task_create")
    );
    // The stateless revision.
    let mut meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    meta["progressToken"] = json!(1);
    let modern = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"task_create","arguments":{"name":"y"},"_meta":meta}});
    let (status, headers, _) = reply(post(
        a,
        &[
            ("Authorization", auth.as_str()),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "task_create"),
        ],
        &modern,
    ));
    assert_eq!(status, 403);
    assert!(headers["www-authenticate"].contains("insufficient_scope"));
    // Nothing was created; reads are served.
    let r = tool(a, "t-reader", &reader, "task_list", json!({}));
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["tasks"].as_array().map(Vec::len), Some(0), "{r}");
    // A work token creates.
    let alice = session(a, "t-alice");
    let r = tool(a, "t-alice", &alice, "task_create", json!({"name":"z"}));
    assert_eq!(r["isError"], false, "{r}");

    let (server, _) = started_with(4, 4, true);
    let a = server.addr();
    let alice = session(a, "t-alice");
    let r = tool(a, "t-alice", &alice, "task_create", json!({"name":"z"}));
    assert_eq!(r["error"]["code"], "FORBIDDEN", "read-only: {r}");
}

/// The security review's finding: one token could hold every stream. Bob at his cap of one
/// waiting call is refused another (`429`, naming the cap); alice still waits on hers.
#[test]
fn one_identity_cannot_hold_every_stream() {
    let (server, _) = started_with(4, 1, false);
    let a = server.addr();
    let (alice, bob, admin) = (
        session(a, "t-alice"),
        session(a, "t-bob"),
        session(a, "t-admin"),
    );
    tool(
        a,
        "t-admin",
        &admin,
        "lock_acquire",
        json!({"agent":"ops","paths":["f"]}),
    );
    let as_who = |token: &str, sid: &str| (bearer(token), sid.to_owned());
    let (bob_auth, bob_sid) = as_who("t-bob", &bob);
    let h = [
        ("Authorization", bob_auth.as_str()),
        ("Mcp-Session-Id", bob_sid.as_str()),
    ];
    let waiting = |h: &[(&str, &str)], id: i64| {
        let s = post(a, h, &wait_msg(id));
        let mut r = BufReader::new(s);
        let mut seen = String::new();
        while !seen.contains("notifications/progress") {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "ended early: {seen}");
            seen.push_str(&line);
        }
        r
    };
    let _bob_waits = waiting(&h, 20);
    let (status, headers, body) = reply(post(a, &h, &wait_msg(21)));
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("1"));
    assert!(body.contains("max_streams_per_identity"), "{body}");
    let (alice_auth, alice_sid) = as_who("t-alice", &alice);
    let _alice_waits = waiting(
        &[
            ("Authorization", alice_auth.as_str()),
            ("Mcp-Session-Id", alice_sid.as_str()),
        ],
        22,
    );
}
