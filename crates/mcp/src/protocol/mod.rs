//! The protocol core: JSON-RPC over one line per message, in both generations of MCP.
//!
//! This file holds the messages and the revisions: [`Server`] reads a message and says what
//! it asks ([`Incoming`]). A tool call is run in `call.rs` ([`PendingCall`]), a JSON-RPC batch
//! in `batch.rs` ([`Batch`]), and `stdio.rs` drives the server over stdin and stdout ([`serve`]).

mod batch;
mod call;
mod http;
mod stdio;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use oc_auth::Identity;
use serde_json::{Map, Value, json};

use crate::tools::{Tool, Toolbox, all};

pub use batch::Batch;
pub use call::PendingCall;
pub use http::{
    HttpAnswer, HttpCall, HttpOptions, HttpRequest, HttpResponse, HttpSessions, MAX_SESSIONS,
    MAX_SESSIONS_PER_IDENTITY, SESSION_IDLE,
};
pub use stdio::serve;

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
///
/// A server is one session (one stdio process, one HTTP session) over a toolbox that many
/// sessions may share ([`Server::session`]): what a handshake settled is the session's own, and
/// so is the [`Identity`] its calls run as (the local process's unless
/// [`Server::as_identity`] says otherwise).
#[derive(Debug)]
pub struct Server {
    toolbox: Arc<Toolbox>,
    tools: Arc<[Tool]>,
    /// The version a handshake (`initialize`) settled on, if one happened.
    legacy: Mutex<Option<String>>,
    identity: Identity,
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

/// How a request is to be answered.
enum Era {
    Modern,
    Legacy(String),
}

impl Server {
    /// A server with the compact default set of tools over `toolbox`.
    pub fn new(toolbox: Toolbox) -> Server {
        let tools = offered(&toolbox, true).into();
        Server {
            toolbox: Arc::new(toolbox),
            tools,
            legacy: Mutex::new(None),
            identity: Identity::local(),
        }
    }

    /// Serves every tool, not only the default set (`oc mcp --tools all`).
    pub fn all_tools(mut self) -> Server {
        self.tools = offered(&self.toolbox, false).into();
        self
    }

    /// Runs this session's calls as `identity` (a verified bearer token's, on HTTP).
    pub fn as_identity(mut self, identity: Identity) -> Server {
        self.identity = identity;
        self
    }

    /// Who this session's calls run as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A new session over the same toolbox and tools: no handshake yet, its calls run as
    /// `identity`.
    pub fn session(&self, identity: Identity) -> Server {
        Server {
            toolbox: Arc::clone(&self.toolbox),
            tools: Arc::clone(&self.tools),
            legacy: Mutex::new(None),
            identity,
        }
    }

    /// The version this session's handshake settled on, if one happened.
    pub fn negotiated(&self) -> Option<String> {
        self.legacy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
            identity: self.identity.clone(),
        })
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
