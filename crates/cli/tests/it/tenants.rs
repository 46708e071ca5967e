//! Tenants on `oc serve`: a token of tenant B, knowing every id of tenant A's task and locks,
//! can neither read nor change any of it through `/mcp`, the pages, `/api/stats` or
//! `/metrics`; A's token sees it; the default tenant sees neither; a tool argument naming a
//! tenant is refused. On SQLite (`<data-dir>/tenants/<t>/`) and on PostgreSQL (the schema
//! `oc_t_<t>` of the same database).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::util::Oc;

/// A running `oc serve`; killed when dropped.
struct Served(std::process::Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(oc: &Oc) -> Served {
    let mut child = oc
        .command()
        .args([
            "--json",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--mcp-tools",
            "all",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let doc: Value = serde_json::from_str(&line).unwrap();
    let addr = doc["data"]["addr"].as_str().unwrap().to_owned();
    Served(child, addr)
}

/// A raw HTTP/1.0 request: status, headers (lower-case names) and body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HashMap<String, String>, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    s.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status.parse().unwrap(), headers, body.to_owned())
}

/// A GET with `token` as a bearer (none when empty).
fn get(addr: &str, path: &str, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let headers: &[(&str, &str)] = if token.is_empty() {
        &[]
    } else {
        &[("Authorization", &auth)]
    };
    let (status, _, body) = http(addr, "GET", path, headers, "");
    (status, body)
}

/// A page's action (a same-origin POST of `form`) with `token` as a bearer.
fn act_with(addr: &str, path: &str, token: &str, form: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    http(addr, "POST", path, &headers, form).0
}

fn act(addr: &str, path: &str, token: &str) -> u16 {
    act_with(addr, path, token, "")
}

/// An MCP client of one token: a handshake-era session.
struct Client<'a> {
    addr: &'a str,
    token: String,
    session: String,
}

impl<'a> Client<'a> {
    fn open(addr: &'a str, token: &str) -> Client<'a> {
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"tenants","version":"1"}}});
        let auth = format!("Bearer {token}");
        let (status, headers, body) = http(
            addr,
            "POST",
            "/mcp",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            &init.to_string(),
        );
        assert_eq!(status, 200, "{body}");
        Client {
            addr,
            token: token.to_owned(),
            session: headers["mcp-session-id"].clone(),
        }
    }

    /// A raw request on this session with `token`: status and body.
    fn raw(&self, token: &str, msg: &Value) -> (u16, String) {
        let auth = format!("Bearer {token}");
        let (status, _, body) = http(
            self.addr,
            "POST",
            "/mcp",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", &self.session),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            &msg.to_string(),
        );
        (status, body)
    }

    /// A tool call: its structured answer, with `isError`.
    fn call(&self, name: &str, args: Value) -> Value {
        let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}});
        let (status, body) = self.raw(&self.token, &msg);
        assert_eq!(status, 200, "{name}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(e) = v.get("error") {
            return json!({"isError": true, "rpc_error": e});
        }
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        let mut out: Value = serde_json::from_str(text).unwrap_or(json!({"text": text}));
        out["isError"] = v["result"]["isError"].clone();
        out
    }
}

/// The total of `opencode_tasks{…}` in a `/metrics` answer.
fn tasks_in(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("opencode_tasks{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn token(oc: &Oc, agent: &str, tenant: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--agent", agent, "--scope", "admin"];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let doc = oc.json(&args);
    assert_eq!(doc["tenant"].as_str(), tenant, "{doc}");
    doc["token"].as_str().unwrap().to_owned()
}

/// The attacker's test: B is an `admin` of its own tenant and knows A's task id, fencing
/// token, lock holder and paths.
fn a_tenant_sees_and_changes_nothing_of_another(oc: &Oc) {
    let a_token = token(oc, "alice", Some("acme"));
    let b_token = token(oc, "mallory", Some("beta"));
    let root = token(oc, "ops", None);
    // The operator creates A's task in A's store.
    let made = oc.run(&[
        "--tenant",
        "acme",
        "task",
        "create",
        "secret-job",
        "--id",
        "s1",
    ]);
    assert_eq!(made.code, 0, "{made:?}");
    assert!(
        oc.json(&["task", "list"])["tasks"]
            .as_array()
            .unwrap()
            .is_empty(),
        "not in the default store"
    );
    let s = serve(oc);
    let a = Client::open(&s.1, &a_token);
    let b = Client::open(&s.1, &b_token);
    let d = Client::open(&s.1, &root);

    // A sees its task, claims it and locks a path.
    let got = a.call("task_get", json!({"task_id": "s1"}));
    assert_eq!(got["isError"], false, "{got}");
    let claim = a.call("task_claim", json!({"task_id": "s1", "agent": "alice"}));
    assert_eq!(claim["isError"], false, "{claim}");
    let fencing = claim["fencing_token"].clone();
    let lock = a.call(
        "lock_acquire",
        json!({"agent": "alice", "paths": ["src/secret.rs"]}),
    );
    assert_eq!(lock["isError"], false, "{lock}");

    // B, through MCP: nothing to list, nothing to get.
    let listed = b.call("task_list", json!({}));
    assert_eq!(listed["isError"], false, "{listed}");
    assert!(!listed.to_string().contains("s1"), "{listed}");
    assert!(!listed.to_string().contains("secret-job"), "{listed}");
    let got = b.call("task_get", json!({"task_id": "s1"}));
    assert_eq!(got["isError"], true, "{got}");
    assert!(!got.to_string().contains("secret-job"), "{got}");
    let locks = b.call("lock_list", json!({}));
    assert!(!locks.to_string().contains("secret.rs"), "{locks}");
    // Nor change anything, knowing every id.
    for (tool, args) in [
        (
            "task_finish",
            json!({"task_id": "s1", "fencing_token": fencing, "outcome": "completed", "agent": "alice"}),
        ),
        (
            "task_heartbeat",
            json!({"task_id": "s1", "fencing_token": fencing, "agent": "alice"}),
        ),
        ("task_claim", json!({"task_id": "s1", "agent": "mallory"})),
    ] {
        let r = b.call(tool, args);
        assert_eq!(r["isError"], true, "{tool}: {r}");
    }
    b.call(
        "task_log_append",
        json!({"task_id": "s1", "message": "planted by mallory"}),
    );
    b.call(
        "lock_release",
        json!({"agent": "alice", "paths": ["src/secret.rs"]}),
    );
    // A tool argument naming a tenant is refused: the schemas allow no such argument.
    for tool in ["task_list", "task_get"] {
        let r = b.call(tool, json!({"task_id": "s1", "tenant": "acme"}));
        assert_eq!(r["isError"], true, "{tool}: {r}");
        assert!(!r.to_string().contains("secret-job"), "{r}");
    }
    // A's session is A's: B's token on it is refused as an unknown session.
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    assert_eq!(a.raw(&b_token, &list).0, 404);
    assert_eq!(a.raw(&root, &list).0, 404);

    // A's task and lock are as A left them.
    let got = a.call("task_get", json!({"task_id": "s1"}));
    assert_eq!(got["task"]["status"], "running", "{got}");
    assert_eq!(got["task"]["owner"], "alice", "{got}");
    let locks = a.call("lock_list", json!({}));
    assert!(locks.to_string().contains("src/secret.rs"), "{locks}");
    let log = oc.run(&["--tenant", "acme", "--json", "logs", "query", "s1"]);
    assert!(!log.stdout.contains("planted"), "{log:?}");

    // The default tenant, through MCP, sees neither.
    let got = d.call("task_get", json!({"task_id": "s1"}));
    assert_eq!(got["isError"], true, "{got}");

    // /api/stats and /metrics: each token counts its own tenant's tasks.
    let total = |token: &str| {
        let (status, body) = get(&s.1, "/api/stats", token);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["tasks"]["total"].clone()
    };
    assert_eq!(total(&a_token), 1);
    assert_eq!(total(&b_token), 0);
    assert_eq!(total(&root), 0);
    let (status, metrics) = get(&s.1, "/metrics", &a_token);
    assert_eq!((status, tasks_in(&metrics)), (200, 1.0), "{metrics}");
    let (status, metrics) = get(&s.1, "/metrics", &b_token);
    assert_eq!((status, tasks_in(&metrics)), (200, 0.0), "{metrics}");
    // No credential reads nothing, the default tenant's included (the security review's
    // finding: it read the default tenant's pages, /api/stats and /metrics on loopback).
    for path in ["/api/stats", "/metrics", "/", "/ui/tasks", "/ui/locks"] {
        let (status, body) = get(&s.1, path, "");
        assert_eq!(status, 401, "{path}: {body}");
    }

    // The pages: A's task page is A's only; B's admin token cannot act on it.
    let (status, page) = get(&s.1, "/ui/tasks/s1", &a_token);
    assert_eq!(status, 200);
    assert!(page.contains("secret-job"));
    for t in [b_token.as_str(), root.as_str()] {
        let (status, page) = get(&s.1, "/ui/tasks/s1", t);
        assert_eq!(status, 404, "{page}");
        assert!(!page.contains("secret-job"));
    }
    assert_ne!(act(&s.1, "/ui/tasks/s1/cancel", &b_token), 303);
    // Releasing "alice"'s locks acts on B's store, where alice holds nothing.
    assert_eq!(
        act_with(&s.1, "/ui/locks/release", &b_token, "owner=alice"),
        303
    );
    // A tenant's token cannot make a login URL (a session is the operator's).
    assert_eq!(act(&s.1, "/login/new", &b_token), 403);
    let got = a.call("task_get", json!({"task_id": "s1"}));
    assert_eq!(got["task"]["status"], "running", "{got}");
    let locks = a.call("lock_list", json!({}));
    assert!(locks.to_string().contains("src/secret.rs"), "{locks}");

    // A's admin token acts on A's store from the pages.
    assert_eq!(act(&s.1, "/ui/tasks/s1/cancel", &a_token), 303);
    let got = a.call("task_get", json!({"task_id": "s1"}));
    assert_eq!(got["task"]["status"], "cancelled", "{got}");
    let shown = oc.json(&["--tenant", "acme", "task", "show", "s1"]);
    assert_eq!(shown["status"], "cancelled");
}

#[test]
fn tenants_on_sqlite_see_nothing_of_each_other() {
    let oc = Oc::new();
    a_tenant_sees_and_changes_nothing_of_another(&oc);
    // A's store is a data directory of its own; tokens stay in the default one.
    let acme = oc.data_dir().join("tenants").join("acme");
    assert!(acme.join("opencode.db").exists());
    assert!(oc.db().exists());
}

#[test]
fn tenants_on_postgres_see_nothing_of_each_other() {
    let Some((oc, url)) = crate::postgres::oc("tenants_apart") else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    a_tenant_sees_and_changes_nothing_of_another(&oc);
    // A's store is the schema oc_t_acme of the same database.
    let opts = oc_postgres::PgOptions::new(&url)
        .unwrap()
        .schema("oc_t_acme")
        .unwrap();
    let store = oc_postgres::PgTaskStore::connect(opts).unwrap();
    let task = oc_tasks::TaskStore::get(&store, &oc_tasks::TaskId::new("s1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(task.name, "secret-job");
    assert!(!oc.data_dir().join("tenants").exists(), "nothing on disk");
}

/// Without tenants, `oc serve` is as it was; `--tenant` is refused by `oc serve` and checked.
#[test]
fn tenant_flags_are_checked() {
    let oc = Oc::new();
    let r = oc.run(&["--tenant", "acme", "serve", "--addr", "127.0.0.1:0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("without --tenant"), "{r:?}");
    let r = oc.run(&["--tenant", "Acme!", "task", "list"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = oc.run(&["--tenant", "acme", "task", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
}
