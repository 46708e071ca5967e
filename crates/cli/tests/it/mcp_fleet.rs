//! A fleet of agents on one `oc serve` over MCP (Streamable HTTP, the stateless 2026-07-28
//! revision), each with its own `work` token and keep-alive connection, claiming,
//! heartbeating, locking and finishing until the queue is empty, on SQLite and on
//! PostgreSQL. Checked: no HTTP error but the documented 503 with `Retry-After` (retried and
//! counted), every task completed exactly once by the agent that claimed it (its history), and
//! no two agents holding one lock at once (a shared check and the fencing tokens, which only
//! grow). p50 and p99 per call kind are printed.
//!
//! The fleet is 200 agents over 2,000 tasks: on SQLite always (about 20 s of a debug
//! build on a shared 2-core machine); on PostgreSQL with `OC_SOAK=1`, a reduced one (40 agents,
//! 400 tasks) otherwise (the full one took 50 s there).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oc_locks::LockManager;
use oc_tasks::{EventKind, NewTask, TaskId, TaskStore};
use serde_json::{Value, json};

use crate::serve::{Served, serve};
use crate::util::Oc;

/// Paths the agents lock: fewer than agents, so that locks are contended.
const PATHS: usize = 32;
/// The whole run must end within this.
const BOUND: Duration = Duration::from_secs(600);

/// One tool call's answer over HTTP.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: String,
}

/// A blocking HTTP/1.1 client on one kept-alive connection to `/mcp`, speaking the stateless
/// revision with a bearer token.
struct Client {
    addr: String,
    auth: String,
    conn: Option<BufReader<TcpStream>>,
    next_id: u64,
    /// Connections opened (1 when the connection was kept alive all along).
    connects: u64,
}

impl Client {
    fn new(addr: &str, token: &str) -> Client {
        Client {
            addr: addr.to_owned(),
            auth: format!("Bearer {token}"),
            conn: None,
            next_id: 0,
            connects: 0,
        }
    }

    fn send(&mut self, tool: &str, args: &Value) -> std::io::Result<Answer> {
        self.next_id += 1;
        let body = json!({"jsonrpc":"2.0","id":self.next_id,"method":"tools/call","params":{
            "name": tool, "arguments": args,
            "_meta": {"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities":{}}}})
        .to_string();
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.auth,
            body.len()
        );
        // A kept-alive connection the server closed while idle fails before any answer: the
        // request was not read, so it is sent again on a new connection, once.
        for fresh in [false, true] {
            let reused = self.conn.is_some() && !fresh;
            if self.conn.is_none() || fresh {
                let s = TcpStream::connect(&self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                self.conn = Some(BufReader::new(s));
                self.connects += 1;
            }
            let Some(conn) = self.conn.as_mut() else {
                unreachable!()
            };
            let sent = conn.get_mut().write_all(req.as_bytes());
            match sent.and_then(|()| read_answer(conn)) {
                Ok((answer, close)) => {
                    if close {
                        self.conn = None;
                    }
                    return Ok(answer);
                }
                Err(e) if reused && e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        Err(std::io::Error::other("the connection closed twice"))
    }
}

/// One whole answer: the status, `Retry-After`, the body (by `Content-Length` or chunked);
/// whether the server closes the connection after it.
fn read_answer(r: &mut BufReader<TcpStream>) -> std::io::Result<(Answer, bool)> {
    let eof = || std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(eof());
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut close, mut retry_after) = (None, false, false, None);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(eof());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match n.to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "connection" => close = v.eq_ignore_ascii_case("close"),
            "retry-after" => retry_after = v.parse().ok(),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        close = true;
    }
    let body = String::from_utf8(body).map_err(std::io::Error::other)?;
    Ok((
        Answer {
            status,
            retry_after,
            body,
        },
        close,
    ))
}

/// What the fleet counted.
#[derive(Default)]
struct Tally {
    busy_503: AtomicU64,
    lock_busy: AtomicU64,
    reconnects: AtomicU64,
}

/// Call kinds, in the order printed.
const KINDS: [&str; 5] = [
    "task_claim",
    "task_heartbeat",
    "lock_acquire",
    "lock_release",
    "task_finish",
];

/// An agent: its client and what it measured.
struct Agent<'a> {
    client: Client,
    tally: &'a Tally,
    latencies: HashMap<&'static str, Vec<f64>>,
    deadline: Instant,
}

impl Agent<'_> {
    /// One tool call, retried after each 503 with `Retry-After`; its structured result, or
    /// `Err` with the refusal's code when the tool refused. Any other HTTP status fails.
    fn call(&mut self, tool: &'static str, args: Value) -> Result<Value, String> {
        let started = Instant::now();
        loop {
            assert!(Instant::now() < self.deadline, "the run took too long");
            let a = self
                .client
                .send(tool, &args)
                .unwrap_or_else(|e| panic!("{tool}: {e}"));
            if a.status == 503 {
                let after = a.retry_after.expect("a 503 says when to retry");
                self.tally.busy_503.fetch_add(1, Ordering::Relaxed);
                // Retry-After is in whole seconds; a fleet spreads its retries within it.
                let jitter = 100 + (self.client.next_id * 37 % 400);
                std::thread::sleep(
                    Duration::from_millis(after * 1000).min(Duration::from_millis(jitter)),
                );
                continue;
            }
            assert_eq!(a.status, 200, "{tool}: {}", a.body);
            let v: Value =
                serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body));
            assert!(v.get("error").is_none(), "{tool}: {v}");
            self.latencies
                .entry(tool)
                .or_default()
                .push(started.elapsed().as_secs_f64() * 1e3);
            let r = &v["result"];
            if r["isError"] == true {
                let text = r["content"][0]["text"].as_str().unwrap_or_default();
                let err: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                return Err(err["error"]["code"].as_str().unwrap_or(text).to_owned());
            }
            return Ok(r["structuredContent"].clone());
        }
    }
}

/// Who holds each path, as the agents saw their grants, and the last fencing token granted.
type Holders = Vec<Mutex<(Option<String>, u64)>>;

/// Runs `agents` agents over `tasks` tasks on the `oc serve` of `oc`, then checks every task's
/// history in `store` and that `locks` holds nothing. Prints p50 and p99 per call kind.
fn fleet(
    label: &str,
    oc: &Oc,
    (store, locks): (&dyn TaskStore, &dyn LockManager),
    agents: usize,
    tasks: usize,
) {
    // Tokens first: `oc token create` makes the store the server opens.
    let tokens: Vec<String> = std::thread::scope(|s| {
        let per = agents.div_ceil(4);
        let hs: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(agents))
                        .map(|i| {
                            let name = format!("agent-{i}");
                            let r = oc.run(&[
                                "--quiet", "token", "create", "--agent", &name, "--scope", "work",
                            ]);
                            assert_eq!(r.code, 0, "{r:?}");
                            r.stdout.trim().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(tokens.len(), agents);
    let ids: Vec<TaskId> = store
        .create_many(
            (0..tasks)
                .map(|i| NewTask::new(format!("fleet task {i}")))
                .collect(),
        )
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let served: Served = serve(oc, "127.0.0.1:0");
    let addr = served.1.clone();

    let tally = Tally::default();
    let holders: Holders = (0..PATHS).map(|_| Mutex::new((None, 0))).collect();
    let done: Mutex<Vec<(String, String, u64)>> = Mutex::new(Vec::new());
    let deadline = Instant::now() + BOUND;
    let started = Instant::now();
    let latencies: Vec<HashMap<&'static str, Vec<f64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let (addr, tally, holders, done) = (&addr, &tally, &holders, &done);
                s.spawn(move || {
                    let me = format!("agent-{i}");
                    let mut a = Agent {
                        client: Client::new(addr, token),
                        tally,
                        latencies: HashMap::new(),
                        deadline,
                    };
                    loop {
                        let c = a
                            .call("task_claim", json!({"lease_secs": 300}))
                            .unwrap_or_else(|e| panic!("{me}: claim refused: {e}"));
                        if c["claimed"] != true {
                            break;
                        }
                        let task = c["task_id"].as_str().unwrap().to_owned();
                        let token = c["fencing_token"].as_u64().unwrap();
                        assert_eq!(c["task"]["owner"], me.as_str(), "{c}");
                        a.call(
                            "task_heartbeat",
                            json!({"task_id": task, "fencing_token": token, "lease_secs": 300}),
                        )
                        .unwrap_or_else(|e| panic!("{me}: heartbeat of {task} refused: {e}"));
                        let n = task.bytes().map(usize::from).sum::<usize>() % PATHS;
                        let path = format!("repo/src/f{n}.rs");
                        let lock = loop {
                            match a.call("lock_acquire", json!({"paths": [path]})) {
                                Ok(l) => break l,
                                Err(code) => {
                                    assert_eq!(code, "LOCK_CONFLICT", "{me}: {path}");
                                    tally.lock_busy.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(Duration::from_millis(2));
                                }
                            }
                        };
                        let fence = lock["locks"][0]["fencing_token"].as_u64().unwrap();
                        {
                            let mut h = holders[n].lock().unwrap();
                            assert!(h.0.is_none(), "{me} got {path} while {:?} holds it", h.0);
                            assert!(fence > h.1, "fencing tokens only grow: {fence} after {}", h.1);
                            *h = (Some(me.clone()), fence);
                        }
                        holders[n].lock().unwrap().0 = None;
                        a.call("lock_release", json!({"paths": [path]}))
                            .unwrap_or_else(|e| panic!("{me}: release of {path} refused: {e}"));
                        a.call(
                            "task_finish",
                            json!({"task_id": task, "fencing_token": token, "outcome": "completed"}),
                        )
                        .unwrap_or_else(|e| panic!("{me}: finish of {task} refused: {e}"));
                        done.lock().unwrap().push((task, me.clone(), token));
                    }
                    tally
                        .reconnects
                        .fetch_add(a.client.connects.saturating_sub(1), Ordering::Relaxed);
                    a.latencies
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    drop(served);

    // Every task finished once, by the agent whose claim it finished.
    let done = done.into_inner().unwrap();
    assert_eq!(done.len(), tasks, "every task finished, none twice");
    let by_task: HashMap<&str, (&str, u64)> = done
        .iter()
        .map(|(t, a, tok)| (t.as_str(), (a.as_str(), *tok)))
        .collect();
    assert_eq!(by_task.len(), tasks, "no task finished twice");
    for id in &ids {
        let (agent, token) = by_task[id.as_str()];
        let h = store.history(id).unwrap();
        let kinds: Vec<EventKind> = h.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Created, EventKind::Claimed, EventKind::Completed],
            "{id}: {h:?}"
        );
        for e in &h[1..] {
            assert_eq!(
                (e.actor.as_deref(), e.token),
                (Some(agent), Some(token)),
                "{id}: {h:?}"
            );
        }
    }

    assert_eq!(locks.list().unwrap(), [], "every lock released");

    let calls: usize = latencies
        .iter()
        .flat_map(|m| m.values())
        .map(Vec::len)
        .sum();
    eprintln!(
        "{label}: {agents} agents, {tasks} tasks, {calls} calls in {:.1} s ({:.0} calls/s); 503 retried: {}, lock busy: {}, reconnects: {}",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64(),
        tally.busy_503.load(Ordering::Relaxed),
        tally.lock_busy.load(Ordering::Relaxed),
        tally.reconnects.load(Ordering::Relaxed),
    );
    for kind in KINDS {
        let mut v: Vec<f64> = latencies
            .iter()
            .filter_map(|m| m.get(kind))
            .flatten()
            .copied()
            .collect();
        v.sort_by(f64::total_cmp);
        let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "{label}: {kind:<15} n={:<6} p50 {:>7.2} ms  p99 {:>7.2} ms",
            v.len(),
            q(0.5),
            q(0.99)
        );
    }
}

/// The fleet's size: the when `full` or with `OC_SOAK=1`, else a reduced one.
fn size(full: bool) -> (usize, usize) {
    if full || std::env::var_os("OC_SOAK").is_some_and(|v| v == "1") {
        (200, 2_000)
    } else {
        (40, 400)
    }
}

#[test]
fn a_fleet_of_agents_works_the_queue_over_http_on_sqlite() {
    let oc = Oc::new();
    let (agents, tasks) = size(true);
    // The data directory exists once a token is made; the tasks go in the same file.
    let r = oc.run(&["db", "migrate"]);
    assert_eq!(r.code, 0, "{r:?}");
    let store = oc_tasks::SqliteTaskStore::open(oc.db()).unwrap();
    let locks = oc_locks::SqliteLockManager::open(oc.db()).unwrap();
    fleet("sqlite", &oc, (&store, &locks), agents, tasks);
}

#[test]
fn a_fleet_of_agents_works_the_queue_over_http_on_postgres() {
    let Some((oc, url)) = crate::postgres::oc("mcp_fleet") else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let (agents, tasks) = size(false);
    let r = oc.run(&["db", "migrate"]);
    assert_eq!(r.code, 0, "{r:?}");
    let opts = oc_postgres::PgOptions::new(&url).unwrap();
    let store = oc_postgres::PgTaskStore::connect(opts.clone()).unwrap();
    let locks = oc_postgres::PgLockManager::connect(oc_postgres::PgLockOptions::new(opts)).unwrap();
    fleet("postgres", &oc, (&store, &locks), agents, tasks);
}
