//! MCP over Streamable HTTP without an HTTP library: [`HttpSessions`] takes a request as plain
//! data ([`HttpRequest`]) and says what to answer ([`HttpAnswer`]): a response at once, or a
//! tool call that may wait ([`HttpCall`]), whose body (JSON, or an SSE stream of progress then
//! the result) the transport writes as it comes. Both eras of the transport are served:
//!
//! - 2026-07-28: every request is a stateless POST whose `MCP-Protocol-Version`, `Mcp-Method`
//!   and `Mcp-Name` headers must match its body (`400`, `-32020` otherwise); no session,
//!   `Mcp-Session-Id` and `Last-Event-ID` ignored, GET and DELETE `405`.
//! - 2025-03-26 to 2025-11-25: `initialize` opens a session (`Mcp-Session-Id`, 128 random
//!   bits), which every later request names (`400` without one, `404` once it is unknown,
//!   expired or another identity's); a `MCP-Protocol-Version` header, when sent, must name a
//!   version of this era (`400` otherwise; not necessarily the one negotiated); `DELETE` ends
//!   the session and stops its waiting calls; GET has no standalone stream (`405`) but
//!   resumes a call's stream after `Last-Event-ID` from a bounded replay buffer.
//!
//! This file holds the endpoint and its sessions' table; the requests and responses are in
//! `http/message.rs`, the 2026-07-28 header rules in `http/headers.rs`, a session's state and
//! replay log in `http/session.rs`, and a call that may wait in `http/waiting.rs` ([`HttpCall`]).

mod headers;
mod message;
mod session;
mod waiting;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use oc_auth::Identity;
use serde_json::Value;

use super::{
    Incoming, LEGACY_VERSIONS, MAX_WAITING_CALLS, META_VERSION, MODERN_VERSION, PendingCall,
    RpcError, Server, error_line,
};
use headers::check_modern_headers;
use message::{sse_event, sse_response};
use session::{STREAMS_KEPT, Session, SessionState, StreamLog, new_session_id};

pub use message::{HttpRequest, HttpResponse};
pub use waiting::HttpCall;

/// Sessions open at once, by default; past it the least recently used session without a
/// waiting call is closed to make room.
pub const MAX_SESSIONS: usize = 1024;
/// Sessions one identity (its tenant and agent) may have open at once, by default: past it,
/// its `initialize` is answered `429` while other identities still open theirs.
pub const MAX_SESSIONS_PER_IDENTITY: usize = 16;
/// A session unused for this long is closed, by default.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// What to answer a request ([`HttpSessions::handle`]).
#[derive(Debug)]
pub enum HttpAnswer {
    /// This response, now.
    Now(HttpResponse),
    /// A call that may wait: send [`HttpCall::status`] and [`HttpCall::headers`], then run it
    /// ([`HttpCall::run`]) and write each piece of body it hands over as it comes.
    Call(Box<HttpCall>),
}

/// Limits of the sessions ([`HttpSessions::new`]).
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// Sessions open at once ([`MAX_SESSIONS`]).
    pub max_sessions: usize,
    /// Sessions one identity (tenant and agent) may have open at once
    /// ([`MAX_SESSIONS_PER_IDENTITY`]): one token cannot crowd out the others.
    pub max_sessions_per_identity: usize,
    /// How long an unused session lives ([`SESSION_IDLE`]).
    pub idle: Duration,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            max_sessions: MAX_SESSIONS,
            max_sessions_per_identity: MAX_SESSIONS_PER_IDENTITY,
            idle: SESSION_IDLE,
        }
    }
}

/// The MCP endpoint's state: the server every request shares (its toolbox and tools) and the
/// handshake-era sessions, each a [`Server`] of its own.
#[derive(Debug)]
pub struct HttpSessions {
    server: Server,
    options: HttpOptions,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl HttpSessions {
    /// The endpoint over `server` (its toolbox, tools and identity are the template of every
    /// session and stateless request).
    pub fn new(server: Server, options: HttpOptions) -> HttpSessions {
        HttpSessions {
            server,
            options,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Sessions open now (expired ones included until the next request looks).
    pub fn open_sessions(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// What to answer `req`.
    pub fn handle(&self, req: HttpRequest) -> HttpAnswer {
        let modern = req.header("mcp-protocol-version") == Some(MODERN_VERSION);
        match req.method.as_str() {
            "POST" => self.post(req),
            "DELETE" if !modern => HttpAnswer::Now(self.delete(&req)),
            "GET" if !modern => HttpAnswer::Now(self.get(&req)),
            _ => HttpAnswer::Now(
                HttpResponse::error(405, -32600, "the MCP endpoint takes POST")
                    .header("Allow", if modern { "POST" } else { "POST, GET, DELETE" }),
            ),
        }
    }

    fn post(&self, req: HttpRequest) -> HttpAnswer {
        let now = |r| HttpAnswer::Now(r);
        if let Some(ct) = req.header("content-type")
            && !ct
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        {
            return now(HttpResponse::error(
                415,
                -32600,
                format!("Content-Type must be application/json, not {:.60}", ct),
            ));
        }
        if req.header("accept").is_some()
            && !req.accepts("application/json")
            && !req.accepts("text/event-stream")
        {
            return now(HttpResponse::error(
                406,
                -32600,
                "Accept must list application/json and text/event-stream",
            ));
        }
        let Ok(text) = std::str::from_utf8(&req.body) else {
            return now(HttpResponse::error(
                400,
                -32700,
                "parse error: the body is not UTF-8",
            ));
        };
        let msg: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return now(HttpResponse::error(
                    400,
                    -32700,
                    format!("parse error: {e}"),
                ));
            }
        };
        let method = msg.get("method").and_then(Value::as_str);
        let meta_version = msg
            .get("params")
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_VERSION));
        let session_id = req.header("mcp-session-id");
        let header_version = req.header("mcp-protocol-version");
        // The stateless revision: told by its header or its `_meta`, never by a session.
        if method != Some("initialize")
            && (header_version == Some(MODERN_VERSION)
                || (meta_version.is_some() && session_id.is_none()))
        {
            if let Err(e) = check_modern_headers(&req, &msg) {
                let id = msg.get("id").cloned().unwrap_or(Value::Null);
                return now(HttpResponse::json(400, error_line(&id, e)));
            }
            let server = self.server.session(req.identity.clone());
            return self.answer(&server, None, &req, text, true);
        }
        if method == Some("initialize") {
            return self.initialize(&req, text);
        }
        let Some(sid) = session_id else {
            if msg.get("method").is_none() || msg.get("id").is_none() {
                // A notification or a response that names no session: nothing to do with it.
                return now(HttpResponse::error(
                    400,
                    -32600,
                    "missing Mcp-Session-Id header: send initialize first",
                ));
            }
            let id = msg.get("id").cloned().unwrap_or(Value::Null);
            return now(HttpResponse::json(
                400,
                error_line(
                    &id,
                    RpcError::new(
                        -32600,
                        "missing Mcp-Session-Id header: send initialize first (or use protocol version 2026-07-28 with its _meta and headers)",
                    ),
                ),
            ));
        };
        let Some(session) = self.find(sid, &req.identity) else {
            return now(HttpResponse::error(
                404,
                -32600,
                "unknown or expired session: send initialize again",
            ));
        };
        // A header naming another supported version of the era is accepted, as the spec asks
        // (400 only for an invalid or unsupported one) and as the SDKs' servers do: clients and
        // the conformance suite send 2025-03-26 on sessions negotiated later.
        if let (Some(h), Some(v)) = (header_version, session.server.negotiated())
            && h != v
            && !LEGACY_VERSIONS.contains(&h)
        {
            return now(HttpResponse::error(
                400,
                -32600,
                format!(
                    "MCP-Protocol-Version {:.40} is not a version this server supports (this session's: {v})",
                    h.escape_debug().to_string()
                ),
            ));
        }
        self.answer(&session.server, Some(&session), &req, text, false)
    }

    fn initialize(&self, req: &HttpRequest, text: &str) -> HttpAnswer {
        let Some(sid) = new_session_id() else {
            return HttpAnswer::Now(HttpResponse::error(
                503,
                -32603,
                "no randomness for a session id",
            ));
        };
        let session = Arc::new(Session {
            server: self.server.session(req.identity.clone()),
            state: Mutex::new(SessionState {
                last_used: Instant::now(),
                waiting: HashMap::new(),
                streams: VecDeque::new(),
                next_stream: 0,
            }),
        });
        let answer = session.server.handle(text);
        let ok = answer.first().is_some_and(|a| {
            serde_json::from_str::<Value>(a).is_ok_and(|v| v.get("result").is_some())
        });
        let body = answer.into_iter().next().unwrap_or_default();
        if !ok {
            return HttpAnswer::Now(HttpResponse::json(400, body));
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut sessions);
        let max = self.options.max_sessions_per_identity.max(1);
        let same = |s: &Session| {
            let (a, b) = (s.server.identity(), &req.identity);
            a.agent == b.agent && a.tenant == b.tenant
        };
        if sessions.values().filter(|s| same(s)).count() >= max {
            drop(sessions);
            session.close();
            let id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|m| m.get("id").cloned())
                .unwrap_or(Value::Null);
            let message = format!(
                "this token has {max} sessions open, the most one identity may (max_sessions_per_identity): end one with DELETE, or wait for one to expire"
            );
            return HttpAnswer::Now(
                HttpResponse::json(429, error_line(&id, RpcError::new(-32600, message)))
                    .header("Retry-After", "60"),
            );
        }
        self.make_room(&mut sessions);
        sessions.insert(sid.clone(), session);
        HttpAnswer::Now(HttpResponse::json(200, body).header("Mcp-Session-Id", sid))
    }

    /// The first call in `body` (one JSON-RPC message or a batch) of a served tool that
    /// changes something, with its request id: what a `read` identity may not call, so that
    /// the transport can answer `403 insufficient_scope` (the MCP authorization spec's
    /// step-up) before anything runs. `None` for anything else, malformed bodies included
    /// ([`HttpSessions::handle`] answers those).
    pub fn writing_call(&self, body: &[u8]) -> Option<(String, Value)> {
        let msg: Value = serde_json::from_slice(body).ok()?;
        let one = std::slice::from_ref(&msg);
        let all = match &msg {
            Value::Array(batch) => batch.as_slice(),
            _ => one,
        };
        all.iter().find_map(|m| {
            if m.get("method")?.as_str()? != "tools/call" {
                return None;
            }
            let name = m.get("params")?.get("name")?.as_str()?;
            let tool = self.server.tools().iter().find(|t| t.name == name)?;
            (!tool.read_only)
                .then(|| (name.to_owned(), m.get("id").cloned().unwrap_or(Value::Null)))
        })
    }

    /// Drops expired sessions (unused for [`HttpOptions::idle`], with no waiting call).
    fn expire(&self, sessions: &mut HashMap<String, Arc<Session>>) {
        let idle = self.options.idle;
        sessions.retain(|_, s| {
            let st = s.state.lock().unwrap_or_else(PoisonError::into_inner);
            !st.waiting.is_empty() || st.last_used.elapsed() < idle
        });
    }

    /// Drops expired sessions and, at the cap, the least recently used one with no waiting
    /// call.
    fn make_room(&self, sessions: &mut HashMap<String, Arc<Session>>) {
        self.expire(sessions);
        while sessions.len() >= self.options.max_sessions.max(1) {
            let oldest = sessions
                .iter()
                .filter_map(|(k, s)| {
                    let st = s.state.lock().unwrap_or_else(PoisonError::into_inner);
                    st.waiting.is_empty().then(|| (st.last_used, k.clone()))
                })
                .min();
            let key = match oldest {
                Some((_, k)) => k,
                // Every session has a waiting call: close the least recently used anyway (its
                // calls are cancelled and take nothing).
                None => match sessions
                    .iter()
                    .map(|(k, s)| {
                        (
                            s.state
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .last_used,
                            k.clone(),
                        )
                    })
                    .min()
                {
                    Some((_, k)) => k,
                    None => break,
                },
            };
            if let Some(s) = sessions.remove(&key) {
                s.close();
            }
        }
    }

    /// The session `sid` names, if it is open, unexpired and `identity`'s.
    fn find(&self, sid: &str, identity: &Identity) -> Option<Arc<Session>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get(sid)?;
        if session.server.identity() != identity {
            return None;
        }
        let mut st = session.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.waiting.is_empty() && st.last_used.elapsed() >= self.options.idle {
            drop(st);
            if let Some(s) = sessions.remove(sid) {
                s.close();
            }
            return None;
        }
        st.last_used = Instant::now();
        drop(st);
        Some(Arc::clone(session))
    }

    fn delete(&self, req: &HttpRequest) -> HttpResponse {
        let Some(sid) = req.header("mcp-session-id") else {
            return HttpResponse::error(400, -32600, "missing Mcp-Session-Id header");
        };
        if self.find(sid, &req.identity).is_none() {
            return HttpResponse::error(404, -32600, "unknown or expired session");
        }
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sid);
        if let Some(s) = removed {
            s.close();
        }
        HttpResponse::empty(200)
    }

    fn get(&self, req: &HttpRequest) -> HttpResponse {
        let no_stream = || {
            HttpResponse::error(
                405,
                -32600,
                "no standalone stream: the MCP endpoint takes POST",
            )
            .header("Allow", "POST, DELETE")
        };
        let Some(last) = req.header("last-event-id") else {
            return no_stream();
        };
        let Some(sid) = req.header("mcp-session-id") else {
            return HttpResponse::error(400, -32600, "missing Mcp-Session-Id header");
        };
        let Some(session) = self.find(sid, &req.identity) else {
            return HttpResponse::error(404, -32600, "unknown or expired session");
        };
        let parsed = last
            .split_once('-')
            .and_then(|(s, n)| Some((s.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        let Some((stream, after)) = parsed else {
            return HttpResponse::error(400, -32600, "Last-Event-ID is not an event id of ours");
        };
        let st = session.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(log) = st.streams.iter().find(|l| l.id == stream) else {
            return HttpResponse::error(
                400,
                -32600,
                "that stream is no longer kept: send the request again",
            );
        };
        let mut body = String::new();
        for (seq, data) in log.events.iter().filter(|(s, _)| *s > after) {
            body.push_str(&sse_event(Some(&format!("{stream}-{seq}")), data));
        }
        sse_response().with_body(body)
    }

    /// Answers a message in `server` (a session's, or a stateless request's).
    fn answer(
        &self,
        server: &Server,
        session: Option<&Arc<Session>>,
        req: &HttpRequest,
        text: &str,
        modern: bool,
    ) -> HttpAnswer {
        let json_answer = |lines: Vec<String>| {
            let Some(line) = lines.into_iter().next() else {
                return HttpAnswer::Now(HttpResponse::empty(202));
            };
            HttpAnswer::Now(HttpResponse::json(status_of(&line, modern), line))
        };
        match server.accept(text) {
            Incoming::Answer(lines) => json_answer(lines),
            Incoming::Cancel(id) => {
                if let Some(s) = session {
                    s.cancel(&id);
                }
                HttpAnswer::Now(HttpResponse::empty(202))
            }
            Incoming::Batch(batch) => {
                if let Some(s) = session {
                    for id in batch.cancels() {
                        s.cancel(id);
                    }
                }
                let never = AtomicBool::new(false);
                let mut out = Vec::new();
                batch.run(server, false, &|_| {}, &never, &mut |line| {
                    out.push(line.to_owned());
                    true
                });
                json_answer(out)
            }
            Incoming::Call(call) if !call.may_wait(server) => {
                let never = AtomicBool::new(false);
                json_answer(call.run(server, &|_| {}, &never).into_iter().collect())
            }
            Incoming::Call(call) => self.waiting_call(server, session, req, call, modern),
        }
    }

    fn waiting_call(
        &self,
        server: &Server,
        session: Option<&Arc<Session>>,
        req: &HttpRequest,
        call: PendingCall,
        modern: bool,
    ) -> HttpAnswer {
        let cancelled = Arc::new(AtomicBool::new(false));
        let key = call.id().to_string();
        let mut stream = None;
        if let Some(s) = session {
            let mut st = s.state.lock().unwrap_or_else(PoisonError::into_inner);
            if st.waiting.contains_key(&key) {
                let e = RpcError::new(-32600, "id already in use by a call still waiting");
                return HttpAnswer::Now(HttpResponse::json(200, error_line(call.id(), e)));
            }
            if st.waiting.len() >= MAX_WAITING_CALLS {
                drop(st);
                let refusal = call.refuse(
                    server,
                    "TOO_MANY_WAITS",
                    format!(
                        "at most {MAX_WAITING_CALLS} calls wait at once in a session: retry once one has answered, or with wait_ms 0"
                    ),
                );
                return HttpAnswer::Now(HttpResponse::json(200, refusal));
            }
            st.waiting.insert(key.clone(), Arc::clone(&cancelled));
            let id = st.next_stream;
            st.next_stream += 1;
            if st.streams.len() >= STREAMS_KEPT {
                st.streams.pop_front();
            }
            st.streams.push_back(StreamLog {
                id,
                events: VecDeque::new(),
                next: 0,
            });
            stream = Some(id);
        }
        let sse = req.accepts("text/event-stream");
        let resumable = sse
            && !modern
            && session.is_some_and(|s| s.server.negotiated().as_deref() >= Some("2025-11-25"));
        let head = if sse {
            sse_response()
        } else {
            HttpResponse::json(200, String::new())
        };
        HttpAnswer::Call(Box::new(HttpCall {
            head,
            server: server.session(server.identity().clone()),
            shared: session.map(Arc::clone),
            call,
            cancelled,
            key,
            sse,
            stream: stream.filter(|_| !modern),
            prime: resumable,
        }))
    }
}

/// The status of an answer: errors of the transport's own kind are not `200`.
fn status_of(line: &str, modern: bool) -> u16 {
    if !line.starts_with('{') || !line.contains(r#""error""#) {
        return 200;
    }
    let code = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["error"]["code"].as_i64());
    match code {
        Some(-32700 | -32600) => 400,
        Some(-32022..=-32020) if modern => 400,
        Some(-32602) if modern && line.contains("_meta") => 400,
        Some(-32601) if modern => 404,
        _ => 200,
    }
}
