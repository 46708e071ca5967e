//! The protocol core: JSON-RPC over one line per message, in both generations of MCP.

use std::io::{BufRead, Read, Write};

use serde_json::{Map, Value, json};

use crate::tools::{Tool, ToolError, Toolbox, all};

/// The server's name, in `serverInfo`.
pub const SERVER_NAME: &str = "oc";
/// The stateless revision served to requests that carry their version in `_meta`.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The handshake-era versions `initialize` answers with as asked, newest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Longer messages are refused (and skipped) without being parsed.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
/// How long clients may cache `tools/list` and `server/discover` (modern era).
const TTL_MS: u64 = 3_600_000;

const INSTRUCTIONS: &str = "Coordinate with other agents through shared tasks and path locks. \
Workflow: task_claim (note fencing_token and lease_expires_at) -> lock_acquire the paths you will \
edit -> work, calling task_heartbeat before the lease expires -> lock_release -> task_finish \
with the token. Pass your agent name as `agent` on every write. A result with isError explains \
what happened (who holds a lock and until when, a lost lease) and what to do.";

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
/// drives it over stdin and stdout.
#[derive(Debug)]
pub struct Server {
    toolbox: Toolbox,
    tools: Vec<Tool>,
    /// The version a handshake (`initialize`) settled on, if one happened.
    legacy: Option<String>,
}

/// How a request is to be answered.
enum Era {
    Modern,
    Legacy(String),
}

impl Server {
    /// A server with the compact default set of tools over `toolbox`.
    pub fn new(toolbox: Toolbox) -> Server {
        Server {
            toolbox,
            tools: all().into_iter().filter(|t| t.default_set).collect(),
            legacy: None,
        }
    }

    /// Serves every tool, not only the default set (`oc mcp --tools all`).
    pub fn all_tools(mut self) -> Server {
        self.tools = all();
        self
    }

    /// The tools served, in `tools/list` order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Handles one line (one message); returns the lines to write back (none for a
    /// notification or a blank line), each one compact JSON message.
    pub fn handle(&mut self, line: &str) -> Vec<String> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        if line.len() > MAX_MESSAGE_BYTES {
            return vec![too_long(line.len())];
        }
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return vec![error_line(
                    &Value::Null,
                    RpcError::new(-32700, format!("parse error: {e}")),
                )];
            }
        };
        let Some(obj) = msg.as_object() else {
            return vec![error_line(
                &Value::Null,
                RpcError::new(
                    -32600,
                    "a message is one JSON object (batches are not supported)",
                ),
            )];
        };
        let id = obj.get("id").cloned();
        let valid_id = matches!(id, None | Some(Value::String(_) | Value::Number(_)));
        let method = obj.get("method").and_then(Value::as_str);
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !valid_id {
            return vec![error_line(
                &id.filter(|_| valid_id).unwrap_or(Value::Null),
                RpcError::new(-32600, "not a JSON-RPC 2.0 request"),
            )];
        }
        let (Some(method), Some(id)) = (method, id) else {
            // A notification (no id) or a response to us (we send no requests): no answer.
            return Vec::new();
        };
        let none = Map::new();
        let params = match obj.get("params") {
            None | Some(Value::Null) => &none,
            Some(Value::Object(p)) => p,
            Some(_) => {
                return vec![error_line(
                    &id,
                    RpcError::new(-32602, "params must be an object"),
                )];
            }
        };
        match self.request(method, params) {
            Ok(result) => vec![json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()],
            Err(e) => vec![error_line(&id, e)],
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
            None => match &self.legacy {
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

    fn request(&mut self, method: &str, params: &Map<String, Value>) -> Result<Value, RpcError> {
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
            "tools/call" => self.call(params, structured(&era))?,
            other => return Err(RpcError::new(-32601, format!("Method not found: {other}"))),
        };
        if matches!(era, Some(Era::Modern)) || method == "server/discover" {
            result["resultType"] = json!("complete");
            result["_meta"] = json!({ META_SERVER: server_info() });
        }
        Ok(result)
    }

    /// The handshake: the client's version when it is one we speak, else our newest
    /// handshake-era one (never the stateless revision, which has no handshake).
    fn initialize(&mut self, params: &Map<String, Value>) -> Value {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = asked
            .filter(|v| LEGACY_VERSIONS.contains(v))
            .unwrap_or(LEGACY_VERSIONS[0])
            .to_owned();
        self.legacy = Some(version.clone());
        json!({
            "protocolVersion": version,
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": server_info(),
            "instructions": INSTRUCTIONS,
        })
    }

    fn call(&self, params: &Map<String, Value>, structured: bool) -> Result<Value, RpcError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::new(-32602, "tools/call needs the tool's `name`"))?;
        let tool = self
            .tools
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| RpcError::new(-32602, format!("Unknown tool: {name}")))?;
        let empty = Map::new();
        let args = match params.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(a)) => a,
            Some(_) => return Err(RpcError::new(-32602, "`arguments` must be an object")),
        };
        match tool.call(&self.toolbox, args) {
            Ok(out) => {
                let mut r = json!({
                    "content": [{ "type": "text", "text": out.to_string() }],
                    "isError": false,
                });
                if structured {
                    r["structuredContent"] = out;
                }
                Ok(r)
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
                let body = json!({ "error": error, "now": self.toolbox.now() });
                Ok(json!({
                    "content": [{ "type": "text", "text": body.to_string() }],
                    "isError": true,
                }))
            }
            Err(ToolError::Internal(m)) => Err(RpcError::new(-32603, m)),
        }
    }
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
/// one per line out, flushed after each; returns at the end of input. A line that is not
/// UTF-8 or too long is answered with an error and skipped.
pub fn serve(
    server: &mut Server,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut input = input;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Read at most one byte past the limit, so a huge line cannot exhaust memory.
        let n = Read::take(&mut input, MAX_MESSAGE_BYTES as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let replies = if buf.last() != Some(&b'\n') && n > MAX_MESSAGE_BYTES {
            // Skip the rest of the over-long line.
            let mut skipped = n;
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let m = Read::take(&mut input, 1 << 20).read_until(b'\n', &mut sink)?;
                skipped += m;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            vec![too_long(skipped)]
        } else {
            match std::str::from_utf8(&buf) {
                Ok(line) => server.handle(line.trim_end_matches(['\n', '\r'])),
                Err(_) => server.handle("\u{0}not utf-8"),
            }
        };
        for r in replies {
            output.write_all(r.as_bytes())?;
            output.write_all(b"\n")?;
            output.flush()?;
        }
    }
}
