//! A tool call accepted and not yet run: [`PendingCall`], its progress, its answer, and the
//! holds it gives back when its answer is not delivered.

use std::sync::atomic::AtomicBool;

use serde_json::{Map, Value, json};

use super::{RpcError, Server, error_line, modern_result, reply};
use crate::tools::{CallContext, Took, ToolError, Toolbox};

/// A tool call accepted and not yet run.
#[derive(Debug)]
pub struct PendingCall {
    pub(super) id: Value,
    pub(super) tool: usize,
    pub(super) arguments: Map<String, Value>,
    pub(super) structured: bool,
    pub(super) modern: bool,
    pub(super) progress_token: Option<Value>,
    /// Who the call runs as: the identity of the session that accepted it.
    pub(super) identity: oc_auth::Identity,
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
    pub(super) fn execute(
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
        let ctx = CallContext::new(&progress, cancelled).as_identity(&self.identity);
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
