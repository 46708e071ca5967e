//! The protocol core: JSON-RPC over one line per message, in both generations of MCP.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};

use crate::tools::{CallContext, Taken, Took, Tool, ToolError, Toolbox, all};

/// The server's name, in `serverInfo`.
pub const SERVER_NAME: &str = "oc";
/// The stateless revision served to requests that carry their version in `_meta`.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The handshake-era versions `initialize` answers with as asked, newest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Longer messages are refused (and skipped) without being parsed.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// At most this many calls that wait (a `lock_acquire` with `wait_ms`) run at once beside the
/// reading of further messages; [`serve`] refuses more (a tool error, `TOO_MANY_WAITS`, naming
/// the limit) and goes on reading.
pub const MAX_WAITING_CALLS: usize = 32;
/// The one revision whose sessions accept JSON-RPC batches (it says servers must; the
/// revisions before and after it have none).
pub const BATCH_VERSION: &str = "2025-03-26";
/// A batch holds at most this many messages.
pub const MAX_BATCH: usize = 1000;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
/// How long clients may cache `tools/list` and `server/discover` (modern era).
const TTL_MS: u64 = 3_600_000;

const INSTRUCTIONS: &str = "Coordinate with other agents through shared tasks and path locks. \
Workflow: task_claim (note fencing_token and lease_expires_at) -> lock_acquire the paths you will \
edit -> work, recording progress with task_log_append and calling task_heartbeat before the \
lease expires -> lock_release -> task_finish with the token (or task_release to give the task \
back). Pass your agent name as `agent` on every write. A result with isError explains what \
happened (who holds a lock and until when, a lost lease) and what to do.";

/// A JSON-RPC error.
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// The protocol core: one message in, the messages to write out. It does no I/O; [`serve`]
/// drives it over stdin and stdout. Shared between threads, it serves calls concurrently.
#[derive(Debug)]
pub struct Server {
    toolbox: Toolbox,
    tools: Vec<Tool>,
    /// The version a handshake (`initialize`) settled on, if one happened.
    legacy: Mutex<Option<String>>,
}

/// What a message asks of the server ([`Server::accept`]).
#[derive(Debug)]
pub enum Incoming {
    /// Lines to write back at once (none for a notification).
    Answer(Vec<String>),
    /// A tool call to run ([`PendingCall::run`]), which may take a while.
    Call(PendingCall),
    /// The client cancelled the request with this id (`notifications/cancelled`).
    Cancel(Value),
    /// A JSON-RPC batch (sessions negotiated at [`BATCH_VERSION`] only): run it with
    /// [`Batch::run`], which answers one array.
    Batch(Batch),
}

/// A JSON-RPC batch accepted: what each of its messages asks, in order.
#[derive(Debug)]
pub struct Batch {
    items: Vec<Incoming>,
}

/// A tool call accepted and not yet run.
#[derive(Debug)]
pub struct PendingCall {
    id: Value,
    tool: usize,
    arguments: Map<String, Value>,
    structured: bool,
    modern: bool,
    progress_token: Option<Value>,
}

/// How a request is to be answered.
enum Era {
    Modern,
    Legacy(String),
}

impl Server {
    /// A server with the compact default set of tools over `toolbox`.
    pub fn new(toolbox: Toolbox) -> Server {
        let tools = offered(&toolbox, true);
        Server {
            toolbox,
            tools,
            legacy: Mutex::new(None),
        }
    }

    /// Serves every tool, not only the default set (`oc mcp --tools all`).
    pub fn all_tools(mut self) -> Server {
        self.tools = offered(&self.toolbox, false);
        self
    }

    /// The tools served, in `tools/list` order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Handles one line (one message) to the end, a tool call included; returns the lines to
    /// write back (none for a notification or a blank line), each one compact JSON message.
    pub fn handle(&self, line: &str) -> Vec<String> {
        match self.accept(line) {
            Incoming::Answer(lines) => lines,
            Incoming::Call(call) => {
                let never = AtomicBool::new(false);
                call.run(self, &|_| {}, &never).into_iter().collect()
            }
            Incoming::Cancel(_) => Vec::new(),
            Incoming::Batch(batch) => {
                let never = AtomicBool::new(false);
                let mut answer = Vec::new();
                batch.run(self, true, &|_| {}, &never, &mut |line| {
                    answer.push(line.to_owned());
                    true
                });
                answer
            }
        }
    }

    /// Reads one line (one message): what to answer at once, or a tool call to run.
    pub fn accept(&self, line: &str) -> Incoming {
        let answer = |line| Incoming::Answer(vec![line]);
        if line.trim().is_empty() {
            return Incoming::Answer(Vec::new());
        }
        if line.len() > MAX_MESSAGE_BYTES {
            return answer(too_long(line.len()));
        }
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return answer(error_line(
                    &Value::Null,
                    RpcError::new(-32700, format!("parse error: {e}")),
                ));
            }
        };
        if let Value::Array(items) = msg {
            return self.batch(items);
        }
        self.accept_value(msg)
    }

    /// A batch: accepted exactly in sessions negotiated at [`BATCH_VERSION`].
    fn batch(&self, items: Vec<Value>) -> Incoming {
        let refuse = |message: String| {
            Incoming::Answer(vec![error_line(
                &Value::Null,
                RpcError::new(-32600, message),
            )])
        };
        let session = self
            .legacy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if session.as_deref() != Some(BATCH_VERSION) {
            return refuse(format!(
                "a message is one JSON object: batches are accepted only in sessions negotiated at protocol version {BATCH_VERSION} (this one: {})",
                session.as_deref().unwrap_or("none yet")
            ));
        }
        if items.is_empty() {
            return refuse("an empty batch is not a valid request".into());
        }
        if items.len() > MAX_BATCH {
            return refuse(format!(
                "a batch of {} messages refused: the limit is {MAX_BATCH}",
                items.len()
            ));
        }
        let items = items
            .into_iter()
            .map(|item| {
                let id = item.get("id").filter(|i| i.is_string() || i.is_number());
                if item.get("method").and_then(Value::as_str) == Some("initialize") {
                    let id = id.cloned().unwrap_or(Value::Null);
                    let e = RpcError::new(-32600, "initialize cannot be part of a batch");
                    return Incoming::Answer(vec![error_line(&id, e)]);
                }
                if !item.is_object() {
                    let e = RpcError::new(-32600, "a batch holds JSON-RPC objects");
                    return Incoming::Answer(vec![error_line(&Value::Null, e)]);
                }
                self.accept_value(item)
            })
            .collect();
        Incoming::Batch(Batch { items })
    }

    /// One parsed message (not a batch).
    fn accept_value(&self, msg: Value) -> Incoming {
        let answer = |line| Incoming::Answer(vec![line]);
        let Some(obj) = msg.as_object() else {
            return answer(error_line(
                &Value::Null,
                RpcError::new(-32600, "a message is one JSON object"),
            ));
        };
        let id = obj.get("id").cloned();
        let valid_id = matches!(id, None | Some(Value::String(_) | Value::Number(_)));
        let method = obj.get("method").and_then(Value::as_str);
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !valid_id {
            return answer(error_line(
                &id.filter(|_| valid_id).unwrap_or(Value::Null),
                RpcError::new(-32600, "not a JSON-RPC 2.0 request"),
            ));
        }
        let none = Map::new();
        let params = match obj.get("params") {
            None | Some(Value::Null) => &none,
            Some(Value::Object(p)) => p,
            Some(_) => {
                return match id {
                    Some(id) => answer(error_line(
                        &id,
                        RpcError::new(-32602, "params must be an object"),
                    )),
                    None => Incoming::Answer(Vec::new()),
                };
            }
        };
        let (Some(method), Some(id)) = (method, id) else {
            // A notification (no id) or a response to us (we send no requests): no answer.
            return match (method, params.get("requestId")) {
                (Some("notifications/cancelled"), Some(r)) => Incoming::Cancel(r.clone()),
                _ => Incoming::Answer(Vec::new()),
            };
        };
        if method == "tools/call" {
            return match self.pending(id.clone(), params) {
                Ok(call) => Incoming::Call(call),
                Err(e) => answer(error_line(&id, e)),
            };
        }
        match self.request(method, params) {
            Ok(result) => answer(reply(&id, result)),
            Err(e) => answer(error_line(&id, e)),
        }
    }

    /// Which era a request belongs to: modern when it carries a version in `_meta`.
    fn era(&self, method: &str, params: &Map<String, Value>) -> Result<Option<Era>, RpcError> {
        let meta = params.get("_meta").and_then(Value::as_object);
        match meta.and_then(|m| m.get(META_VERSION)) {
            Some(v) => {
                let v = v.as_str().unwrap_or_default();
                if v != MODERN_VERSION {
                    let mut supported = vec![MODERN_VERSION];
                    supported.extend(LEGACY_VERSIONS);
                    return Err(RpcError {
                        code: -32022,
                        message: "Unsupported protocol version".into(),
                        data: Some(json!({ "supported": supported, "requested": v })),
                    });
                }
                if !meta.is_some_and(|m| m.get(META_CAPS).is_some_and(Value::is_object)) {
                    return Err(RpcError::new(
                        -32602,
                        format!("request _meta is missing required fields: {META_CAPS}"),
                    ));
                }
                Ok(Some(Era::Modern))
            }
            None => match &*self.legacy.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(v) => Ok(Some(Era::Legacy(v.clone()))),
                // Before a handshake only these need none.
                None if matches!(method, "initialize" | "ping") => Ok(None),
                None => Err(RpcError::new(
                    -32602,
                    format!(
                        "request _meta is missing required fields: {META_VERSION}, {META_CAPS} (or send initialize first)"
                    ),
                )),
            },
        }
    }

    fn request(&self, method: &str, params: &Map<String, Value>) -> Result<Value, RpcError> {
        if method == "initialize" {
            return Ok(self.initialize(params));
        }
        let era = self.era(method, params)?;
        let mut result = match method {
            "ping" if !matches!(era, Some(Era::Modern)) => json!({}),
            "server/discover" => json!({
                "supportedVersions": [MODERN_VERSION], "capabilities": { "tools": {} },
                "instructions": INSTRUCTIONS, "ttlMs": TTL_MS, "cacheScope": "public",
            }),
            "tools/list" => {
                let structured = structured(&era);
                let tools: Vec<Value> = self
                    .tools
                    .iter()
                    .map(|t| t.definition(structured))
                    .collect();
                let mut r = json!({ "tools": tools });
                if matches!(era, Some(Era::Modern)) {
                    r["ttlMs"] = json!(TTL_MS);
                    r["cacheScope"] = json!("public");
                }
                r
            }
            other => return Err(RpcError::new(-32601, format!("Method not found: {other}"))),
        };
        if matches!(era, Some(Era::Modern)) || method == "server/discover" {
            modern_result(&mut result);
        }
        Ok(result)
    }

    /// The handshake: the client's version when it is one we speak, else our newest
    /// handshake-era one (never the stateless revision, which has no handshake).
    fn initialize(&self, params: &Map<String, Value>) -> Value {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = asked
            .filter(|v| LEGACY_VERSIONS.contains(v))
            .unwrap_or(LEGACY_VERSIONS[0])
            .to_owned();
        *self.legacy.lock().unwrap_or_else(PoisonError::into_inner) = Some(version.clone());
        json!({
            "protocolVersion": version,
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": server_info(),
            "instructions": INSTRUCTIONS,
        })
    }

    /// Checks a `tools/call` request: the tool exists and its arguments are an object.
    fn pending(&self, id: Value, params: &Map<String, Value>) -> Result<PendingCall, RpcError> {
        let era = self.era("tools/call", params)?;
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::new(-32602, "tools/call needs the tool's `name`"))?;
        let tool = self
            .tools
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| RpcError::new(-32602, format!("Unknown tool: {name}")))?;
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(a)) => a.clone(),
            Some(_) => return Err(RpcError::new(-32602, "`arguments` must be an object")),
        };
        let progress_token = params
            .get("_meta")
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        Ok(PendingCall {
            id,
            tool,
            arguments,
            structured: structured(&era),
            modern: matches!(era, Some(Era::Modern)),
            progress_token,
        })
    }
}

impl PendingCall {
    /// The request's id.
    pub fn id(&self) -> &Value {
        &self.id
    }

    /// Whether the call may wait (so a transport should run it beside reading further
    /// messages, to notice a cancellation).
    pub fn may_wait(&self, server: &Server) -> bool {
        server.tools[self.tool].may_wait(&self.arguments)
    }

    /// Runs the call: `notify` gets each progress notification (only when the request asked
    /// for them, with a `progressToken`); the answer is returned, or nothing once `cancelled`
    /// is set while the call waits.
    pub fn run(
        self,
        server: &Server,
        notify: &(dyn Fn(String) + Sync),
        cancelled: &AtomicBool,
    ) -> Option<String> {
        let mut answer = None;
        self.run_and_deliver(server, notify, cancelled, &mut |line| {
            answer = Some(line.to_owned());
            true
        });
        answer
    }

    /// Runs the call as [`PendingCall::run`] does and hands its answer to `deliver`, which
    /// says whether the answer reached the client. When it did not (the client went away or
    /// cancelled the call just as it was granted), what the call took is given back: each hold
    /// a `lock_acquire` was granted is released if it is still held with the fencing token
    /// granted, so a departed agent holds nothing and a newer hold of the same agent name
    /// (another session's) stays. Returns whether an answer was delivered.
    pub fn run_and_deliver(
        self,
        server: &Server,
        notify: &(dyn Fn(String) + Sync),
        cancelled: &AtomicBool,
        deliver: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        let (answer, took) = self.execute(server, notify, cancelled);
        match answer {
            Some(line) if deliver(&line) => true,
            _ => {
                server.toolbox.give_back(&took.taken);
                false
            }
        }
    }

    /// Answers the call with a refusal (an `isError` result) without running it.
    pub fn refuse(self, server: &Server, code: &'static str, message: String) -> String {
        let refusal = ToolError::Refused {
            code,
            message,
            details: Value::Null,
        };
        self.answer(&server.toolbox, Err(refusal))
            .unwrap_or_default()
    }

    /// Runs the call: its answer (none once cancelled) and what it took.
    fn execute(
        &self,
        server: &Server,
        notify: &(dyn Fn(String) + Sync),
        cancelled: &AtomicBool,
    ) -> (Option<String>, Took) {
        let progress = |done: f64, total: Option<f64>, message: &str| {
            if let Some(token) = &self.progress_token {
                let mut params =
                    json!({ "progressToken": token, "progress": done, "message": message });
                if let Some(t) = total {
                    params["total"] = json!(t);
                }
                notify(
                    json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": params })
                        .to_string(),
                );
            }
        };
        let ctx = CallContext::new(&progress, cancelled);
        let tb = &server.toolbox;
        let outcome = server.tools[self.tool].call(tb, &self.arguments, &ctx);
        (self.answer(tb, outcome), ctx.into_took())
    }

    /// The answer to a call that ended with `outcome`; none when it was cancelled.
    fn answer(&self, tb: &Toolbox, outcome: Result<Value, ToolError>) -> Option<String> {
        let mut result = match outcome {
            Ok(out) => {
                let mut r = json!({
                    "content": [{ "type": "text", "text": out.to_string() }],
                    "isError": false,
                });
                if self.structured {
                    r["structuredContent"] = out;
                }
                r
            }
            Err(ToolError::Refused {
                code,
                message,
                details,
            }) => {
                let mut error = json!({ "code": code, "message": message });
                if let Value::Object(d) = details
                    && let Value::Object(e) = &mut error
                {
                    e.extend(d);
                }
                let body = json!({ "error": error, "now": tb.now() });
                json!({
                    "content": [{ "type": "text", "text": body.to_string() }],
                    "isError": true,
                })
            }
            Err(ToolError::Internal(m)) => {
                return Some(error_line(&self.id, RpcError::new(-32603, m)));
            }
            Err(ToolError::Cancelled) => return None,
        };
        if self.modern {
            modern_result(&mut result);
        }
        Some(reply(&self.id, result))
    }
}

impl Batch {
    /// The messages it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none (never, once accepted).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The request ids its `notifications/cancelled` name: none of its own calls (they run
    /// one after another, none waits in [`serve`]), so a transport routes them to the calls it
    /// runs beside the batch, as it does a cancellation sent on its own.
    pub fn cancels(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().filter_map(|item| match item {
            Incoming::Cancel(id) => Some(id),
            _ => None,
        })
    }

    /// Runs every message in order and hands `deliver` one array of the answers (nothing when
    /// all were notifications); its cancellations are not acted on here ([`Batch::cancels`]).
    /// With `waits` false, a call that would wait is refused (`TOO_MANY_WAITS`: [`serve`]
    /// never blocks its reading on a batch).
    ///
    /// When the array is not delivered, what each call took and still holds is given back, as
    /// for a call on its own ([`PendingCall::run_and_deliver`]): a hold a later call of the
    /// same batch released (`[lock_acquire R, lock_release R]`) was given back already and is
    /// not released a second time.
    pub fn run(
        self,
        server: &Server,
        waits: bool,
        notify: &(dyn Fn(String) + Sync),
        cancelled: &AtomicBool,
        deliver: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        let mut lines = Vec::new();
        let mut taken: Vec<Taken> = Vec::new();
        for item in self.items {
            match item {
                Incoming::Answer(a) => lines.extend(a),
                Incoming::Cancel(_) | Incoming::Batch(_) => {}
                Incoming::Call(call) if !waits && call.may_wait(server) => {
                    lines.push(call.refuse(
                        server,
                        "TOO_MANY_WAITS",
                        "a call in a batch does not wait: send lock_acquire with wait_ms on its own, or with wait_ms 0".into(),
                    ));
                }
                Incoming::Call(call) => {
                    let (answer, took) = call.execute(server, notify, cancelled);
                    lines.extend(answer);
                    // A release undoes the batch's latest take of that lock by that owner.
                    for (resource, owner) in took.released {
                        if let Some(i) = taken
                            .iter()
                            .rposition(|t| t.resource == resource && t.owner == owner)
                        {
                            taken.remove(i);
                        }
                    }
                    taken.extend(took.taken);
                }
            }
        }
        if lines.is_empty() {
            server.toolbox.give_back(&taken);
            return false;
        }
        let delivered = deliver(&format!("[{}]", lines.join(",")));
        if !delivered {
            server.toolbox.give_back(&taken);
        }
        delivered
    }
}

/// The tools of `toolbox` can serve: the default set only, or all; those on task files only
/// when it has them.
fn offered(toolbox: &Toolbox, default_only: bool) -> Vec<Tool> {
    all()
        .into_iter()
        .filter(|t| (t.default_set || !default_only) && (!t.needs_files || toolbox.has_files()))
        .collect()
}

/// What every result of the stateless revision carries.
fn modern_result(result: &mut Value) {
    result["resultType"] = json!("complete");
    result["_meta"] = json!({ META_SERVER: server_info() });
}

fn reply(id: &Value, result: Value) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()
}

fn too_long(len: usize) -> String {
    error_line(
        &Value::Null,
        RpcError::new(
            -32600,
            format!("message of {len} bytes refused: the limit is {MAX_MESSAGE_BYTES}"),
        ),
    )
}

/// `structuredContent`, `outputSchema` and `title` exist from 2025-06-18 on.
fn structured(era: &Option<Era>) -> bool {
    match era {
        Some(Era::Legacy(v)) => v.as_str() >= "2025-06-18",
        _ => true,
    }
}

fn server_info() -> Value {
    json!({ "name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION") })
}

fn error_line(id: &Value, e: RpcError) -> String {
    let mut error = json!({ "code": e.code, "message": e.message });
    if let Some(d) = e.data {
        error["data"] = d;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error }).to_string()
}

/// Serves `server` over `input` and `output` (stdin and stdout): one message per line in,
/// one per line out, each written whole and flushed. A line that is not UTF-8 or too long is
/// answered with an error and skipped.
///
/// Calls that may wait (a `lock_acquire` with `wait_ms`) run on their own threads, at most
/// [`MAX_WAITING_CALLS`] at once (more are refused at once, `TOO_MANY_WAITS`), so the server
/// always goes on reading: other calls are answered meanwhile, and a
/// `notifications/cancelled` for a waiting call (on its own or inside a batch) stops its wait
/// (and nothing is answered for it). Request ids are unique within a session: a waiting call
/// whose id a waiting call under way already has is refused (JSON-RPC `-32600`, "id already in
/// use"), so every cancellation reaches the one call it names.
///
/// The end of input means the client went away: every wait under way is cancelled (it leaves
/// the queue, taking nothing) and `serve` returns as soon as they have stopped, within
/// [`WATCH_EVERY`](oc_locks::WATCH_EVERY) or so. An answer is written only while its call is
/// still wanted: a grant made just as the input ended, or whose answer cannot be written, is
/// released rather than left to a client that will never read it.
pub fn serve(
    server: &Server,
    input: impl BufRead,
    output: impl Write + Send,
) -> std::io::Result<()> {
    let out = Mutex::new(Output {
        writer: output,
        failed: None,
    });
    let write = |line: &str| {
        let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
        o.write_line(line);
        o.failed.is_none()
    };
    let notify = &|n: String| {
        write(&n);
    };
    // Waiting calls by request id (its JSON text), with the flag that cancels each. Delivering
    // a waiting call's answer and cancelling it both happen under this lock, so a call is
    // either answered or cancelled (and gives back what it took), never both nor neither.
    let waiting: Mutex<HashMap<String, Arc<AtomicBool>>> = Mutex::new(HashMap::new());
    let running = AtomicUsize::new(0);
    // A `notifications/cancelled`, on its own or in a batch: stops the waiting call it names.
    let cancel = |id: &Value| {
        if let Some(flag) = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id.to_string())
        {
            flag.store(true, Ordering::SeqCst);
        }
    };
    let read = std::thread::scope(|scope| -> std::io::Result<()> {
        let mut lines = Lines::new(input);
        let read = loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if out
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .failed
                .is_some()
            {
                break Ok(());
            }
            let call = match line {
                Line::Text(text) => server.accept(&text),
                Line::NotUtf8 => server.accept("\u{0}not utf-8"),
                Line::TooLong(len) => Incoming::Answer(vec![too_long(len)]),
            };
            match call {
                Incoming::Answer(lines) => lines.iter().for_each(|l| {
                    write(l);
                }),
                Incoming::Cancel(id) => cancel(&id),
                Incoming::Call(call) if call.may_wait(server) => {
                    if running.load(Ordering::SeqCst) >= MAX_WAITING_CALLS {
                        write(&call.refuse(
                            server,
                            "TOO_MANY_WAITS",
                            format!(
                                "{MAX_WAITING_CALLS} calls are already waiting, the most this server runs at once: retry once one has answered, or call with wait_ms 0"
                            ),
                        ));
                        continue;
                    }
                    let key = call.id().to_string();
                    let flag = Arc::new(AtomicBool::new(false));
                    {
                        let mut w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                        if w.contains_key(&key) {
                            // Ids are unique within a session: a second call under this id
                            // could be neither cancelled nor told apart in the answers.
                            drop(w);
                            write(&error_line(
                                call.id(),
                                RpcError::new(
                                    -32600,
                                    "id already in use: a call with this id is still waiting; request ids must be unique within a session",
                                ),
                            ));
                            continue;
                        }
                        w.insert(key.clone(), Arc::clone(&flag));
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    let (waiting, running, out) = (&waiting, &running, &out);
                    scope.spawn(move || {
                        let mut deliver = |answer: &str| {
                            let w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                            if flag.load(Ordering::SeqCst) {
                                return false;
                            }
                            let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
                            o.write_line(answer);
                            drop(w);
                            o.failed.is_none()
                        };
                        call.run_and_deliver(server, notify, &flag, &mut deliver);
                        let mut w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                        if w.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flag)) {
                            w.remove(&key);
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Incoming::Call(call) => {
                    let never = AtomicBool::new(false);
                    call.run_and_deliver(server, notify, &never, &mut |a| write(a));
                }
                Incoming::Batch(batch) => {
                    batch.cancels().for_each(&cancel);
                    let never = AtomicBool::new(false);
                    batch.run(server, false, notify, &never, &mut |a| write(a));
                }
            }
        };
        // The client went away (or nobody reads the answers any more): stop the waits rather
        // than finish them; an answer not yet written will not be.
        for flag in waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            flag.store(true, Ordering::SeqCst);
        }
        read
    });
    let mut o = out.into_inner().unwrap_or_else(PoisonError::into_inner);
    read?;
    match o.failed.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The writer, and the first error writing to it (after which nothing more is written).
struct Output<W> {
    writer: W,
    failed: Option<std::io::Error>,
}

impl<W: Write> Output<W> {
    fn write_line(&mut self, line: &str) {
        if self.failed.is_some() {
            return;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if let Err(e) = self
            .writer
            .write_all(&buf)
            .and_then(|()| self.writer.flush())
        {
            self.failed = Some(e);
        }
    }
}

/// One input line, as read.
enum Line {
    Text(String),
    NotUtf8,
    TooLong(usize),
}

/// Reads lines of at most [`MAX_MESSAGE_BYTES`], so a huge line cannot exhaust memory.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Lines<R> {
        Lines {
            input,
            buf: Vec::new(),
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        self.buf.clear();
        // Read at most one byte past the limit.
        let n = Read::take(&mut self.input, MAX_MESSAGE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') && n > MAX_MESSAGE_BYTES {
            // Skip the rest of the over-long line.
            let mut skipped = n;
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let m = Read::take(&mut self.input, 1 << 20).read_until(b'\n', &mut sink)?;
                skipped += m;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            return Ok(Some(Line::TooLong(skipped)));
        }
        Ok(Some(match std::str::from_utf8(&self.buf) {
            Ok(line) => Line::Text(line.trim_end_matches(['\n', '\r']).to_owned()),
            Err(_) => Line::NotUtf8,
        }))
    }
}
