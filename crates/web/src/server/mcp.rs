//! `/mcp` (MCP over Streamable HTTP, [`McpOptions`]) and the OAuth metadata next to it: the
//! `Host` and `Origin` checks, the bearer token (refused with the status and challenge
//! [`McpOptions::challenge`] gives), the step-up of a scope too small for a writing tool, the
//! tenant's endpoint on a thread of the app, and a call that waits streamed on a thread of its
//! own, at most [`McpOptions::max_streams`] at once and
//! [`McpOptions::max_streams_per_identity`] of one identity.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::OwnedSemaphorePermit;

use super::respond::{
    Out, Shared, Unread, Who, check_bearer, drain, full, read, tenant_app, to_hyper, too_large,
    worker,
};
use crate::guard::{SECURITY_HEADERS, authorized, same_origin};
use crate::http::{McpOptions, Method, Request, Response};

/// The protected-resource metadata: `GET` only, from an allowed `Host`, with no token.
pub(super) fn well_known(
    ours: &Request,
    shared: &Shared,
    doc: &crate::http::WellKnown,
) -> Response {
    if let Some(host) = ours.header_value("host")
        && !shared.guard.host_allowed(host)
    {
        return Response::text(403, "this host is not served here\n");
    }
    if ours.method != Method::Get {
        return Response::text(405, "only GET is answered here\n").with("Allow", "GET".into());
    }
    Response::new(200, "application/json", doc.json.clone())
        .with("Cache-Control", "max-age=300".into())
}

/// `/mcp`: the `Host` allow-list and the `Origin` check (against DNS rebinding), the bearer
/// token, then the endpoint on a thread of the app.
pub(super) async fn answer(
    method: String,
    mut ours: Request,
    mut body: Incoming,
    shared: &Shared,
    endpoint: &McpOptions,
    busy: &Arc<AtomicUsize>,
) -> Out {
    let refuse = |status: u16, message: &str| {
        let body = serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":message}});
        Response::new(status, "application/json", body.to_string())
    };
    if let Some(host) = ours.header_value("host")
        && !shared.guard.host_allowed(host)
    {
        drain(body);
        return to_hyper(refuse(403, "this host is not served here"));
    }
    if !same_origin(&ours) {
        drain(body);
        return to_hyper(refuse(403, "cross-origin requests to /mcp are refused"));
    }
    let mut identity = match &endpoint.verifier {
        Some(verifier) => {
            let verified = check_bearer(&ours, Some(verifier), shared)
                .await
                .unwrap_or(Err(oc_auth::AuthError::Missing));
            match verified {
                Ok(identity) => identity,
                Err(e) => {
                    drain(body);
                    let (status, challenge) = (endpoint.challenge)(&e);
                    let (status, message) = match (&e, status) {
                        (oc_auth::AuthError::Backend(_), _) => {
                            (503, "the token store failed: try again in a moment")
                        }
                        (_, 403) => (403, "the token's scope is not enough for /mcp"),
                        _ => (401, "a valid bearer token is required"),
                    };
                    return to_hyper(refuse(status, message).with("WWW-Authenticate", challenge));
                }
            }
        }
        None => {
            // Without verifiers, the pages' token (when one is set) guards `/mcp` as it does
            // every page.
            if let Some(token) = shared.guard.token()
                && !authorized(&ours, token)
            {
                drain(body);
                return to_hyper(refuse(401, "a token is required").with(
                    "WWW-Authenticate",
                    (endpoint.challenge)(&oc_auth::AuthError::Missing).1,
                ));
            }
            oc_auth::Identity::local()
        }
    };
    // The credential's own scope, before a read-only server lowers it: only a credential
    // that could be given more scope is asked to step up.
    let granted = identity.scope;
    if shared.guard.read_only() {
        identity.scope = identity.scope.min(oc_auth::Scope::Read);
    }
    let step_up = endpoint.verifier.is_some() && granted < oc_auth::Scope::Work;
    let challenge = Arc::clone(&endpoint.challenge);
    ours.body = match tokio::time::timeout(shared.limits.body_timeout, read(&mut body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(Unread::TooLarge)) => {
            drain(body);
            return to_hyper(too_large());
        }
        Ok(Err(Unread::Broken)) => {
            return to_hyper(refuse(400, "the request body could not be read"));
        }
        Err(_) => return to_hyper(refuse(408, "the request body did not arrive in time")),
    };
    let Some(permit) = worker(shared).await else {
        return to_hyper(
            refuse(503, "the server is busy: try again in a moment")
                .with("Retry-After", "1".into()),
        );
    };
    let who: Who = (identity.tenant.clone(), identity.agent.clone());
    let request = oc_mcp::HttpRequest {
        method,
        headers: std::mem::take(&mut ours.headers),
        body: std::mem::take(&mut ours.body),
        identity,
    };
    let default = Arc::clone(&endpoint.sessions);
    let tenants = shared.tenants.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // The identity's tenant chooses the tool set: its own store's, and no other.
        let sessions = match &request.identity.tenant {
            None => default,
            Some(t) => match tenant_app(tenants.as_deref(), t) {
                Ok(app) => match app.mcp {
                    Some(sessions) => sessions,
                    None => return Err(refuse(404, "this tenant has no MCP endpoint")),
                },
                Err(refused) => {
                    return Err(refuse(refused.status, refused.body_text().trim_end()));
                }
            },
        };
        // The MCP authorization spec's step-up: a token whose scope cannot call the tool is
        // answered 403 `insufficient_scope`, naming the scope to ask its authorization server
        // for, before the tool runs.
        if step_up && let Some((tool, id)) = sessions.writing_call(&request.body) {
            let needed = oc_auth::AuthError::Forbidden {
                needed: oc_auth::Scope::Work,
                had: granted,
            };
            let body = serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code":-32600,"message":format!(
                "{tool} changes something: this token's scope ({granted}) is not enough, a token with the work scope is (see WWW-Authenticate)"
            )}});
            return Err(Response::new(403, "application/json", body.to_string())
                .with("WWW-Authenticate", challenge(&needed).1));
        }
        Ok(sessions.handle(request))
    })
    .await;
    match answered {
        Ok(Ok(oc_mcp::HttpAnswer::Now(r))) => mcp_response(r.status, r.headers, full(r.body)),
        Ok(Ok(oc_mcp::HttpAnswer::Call(call))) => stream(*call, who, shared, endpoint, busy),
        Ok(Err(refused)) => to_hyper(refused),
        Err(_) => to_hyper(refuse(500, "the request could not be answered")),
    }
}

/// One stream of an identity, counted while it lives.
struct StreamOf {
    by: Arc<parking_lot::Mutex<std::collections::HashMap<Who, usize>>>,
    who: Who,
}

impl StreamOf {
    /// Counts a stream of `who`, unless it has `max` open already.
    fn take(
        by: &Arc<parking_lot::Mutex<std::collections::HashMap<Who, usize>>>,
        who: Who,
        max: usize,
    ) -> Option<StreamOf> {
        let mut open = by.lock();
        let n = open.entry(who.clone()).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(StreamOf {
            by: Arc::clone(by),
            who,
        })
    }
}

impl Drop for StreamOf {
    fn drop(&mut self) {
        let mut open = self.by.lock();
        if let Some(n) = open.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

/// Runs a waiting MCP call on a thread of its own and streams what it sends; the call is
/// cancelled (and takes nothing) when the body is dropped: the client went away. An identity
/// holds at most [`McpOptions::max_streams_per_identity`] streams (`429` past it), everyone at
/// most [`McpOptions::max_streams`] (`503`).
fn stream(
    call: oc_mcp::HttpCall,
    who: Who,
    shared: &Shared,
    endpoint: &McpOptions,
    busy: &Arc<AtomicUsize>,
) -> Out {
    let max = endpoint.max_streams_per_identity;
    let Some(mine) = StreamOf::take(&shared.streams_by, who, max) else {
        let message = format!(
            "this token has {max} calls waiting, the most one identity may (max_streams_per_identity): end one, or try again in a moment"
        );
        let body = serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":message}});
        return to_hyper(
            Response::new(429, "application/json", body.to_string())
                .with("Retry-After", "1".into()),
        );
    };
    let Ok(permit) = Arc::clone(&shared.streams).try_acquire_owned() else {
        let body = serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"too many calls are waiting on this server: try again in a moment"}});
        return to_hyper(
            Response::new(503, "application/json", body.to_string())
                .with("Retry-After", "1".into()),
        );
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let cancel = call.cancel_flag();
    let done = Arc::new(tokio::sync::Notify::new());
    let watch = tx.clone();
    let finished = Arc::clone(&done);
    // The connection closed (hyper dropped the body) while the call waits: stop it.
    tokio::spawn(async move {
        tokio::select! {
            () = watch.closed() => cancel.store(true, Ordering::SeqCst),
            () = finished.notified() => {}
        }
    });
    let (status, headers) = (call.status(), call.headers().to_vec());
    let spawned = std::thread::Builder::new()
        .name("oc-mcp-call".into())
        .spawn(move || {
            call.run(&mut |bytes| tx.blocking_send(Bytes::from(bytes)).is_ok());
            done.notify_one();
        });
    if spawned.is_err() {
        let body = serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"no thread for the call: try again in a moment"}});
        return to_hyper(
            Response::new(503, "application/json", body.to_string())
                .with("Retry-After", "1".into()),
        );
    }
    busy.fetch_add(1, Ordering::Relaxed);
    let body = Streamed {
        rx,
        _permit: permit,
        _mine: mine,
        busy: Arc::clone(busy),
    };
    mcp_response(status, headers, BoxBody::new(body))
}

/// A streamed body: what the call's thread sends, until it ends. While it lives the
/// connection counts as answering (never evicted as idle) and holds a stream permit.
struct Streamed {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    _permit: OwnedSemaphorePermit,
    _mine: StreamOf,
    busy: Arc<AtomicUsize>,
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// An MCP response with the endpoint's headers and the security headers it does not set.
fn mcp_response(
    status: u16,
    headers: Vec<(String, String)>,
    body: BoxBody<Bytes, Infallible>,
) -> Out {
    let mut out = hyper::Response::new(body);
    *out.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let own = |n: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
    let security: Vec<(String, String)> = SECURITY_HEADERS
        .iter()
        .filter(|(n, _)| !own(n))
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    for (name, value) in headers.iter().cloned().chain(security) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}
