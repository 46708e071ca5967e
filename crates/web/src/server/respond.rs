//! What the routes of the server share: its state ([`Shared`]), bodies read and refused
//! within bounds, the threads of the app (bounded in number and waiting time), bearer checks
//! off the async threads, a tenant's app, and the app's responses as hyper's.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::guard::{Guard, SECURITY_HEADERS};
use crate::http::{McpOptions, Request, Response};
use crate::limits::{Limits, MAX_BODY_BYTES};
use crate::{TenantError, Tenants, Web};

/// Who holds a stream: the identity's tenant and agent.
pub(super) type Who = (Option<oc_auth::Tenant>, String);

/// What every connection shares.
pub(super) struct Shared {
    pub(super) web: Arc<Web>,
    pub(super) guard: Guard,
    pub(super) limits: Limits,
    /// HTTP/1.1 as configured from the limits.
    pub(super) http: http1::Builder,
    /// One permit per thread of the app.
    pub(super) workers: Arc<Semaphore>,
    /// Requests waiting for a permit.
    pub(super) queued: AtomicUsize,
    /// The open connections, oldest first, for [`Shared::evict`].
    pub(super) open: parking_lot::Mutex<Conns>,
    /// One more thread, for `/healthz` only: a probe is answered while every worker is busy
    /// with slow pages (it waits for neither them nor the queue).
    pub(super) probe: Arc<Semaphore>,
    /// MCP at `/mcp`, if served.
    pub(super) mcp: Option<McpOptions>,
    /// One permit per open SSE stream (a waiting MCP call).
    pub(super) streams: Arc<Semaphore>,
    /// Open SSE streams by identity, each at most [`McpOptions::max_streams_per_identity`].
    pub(super) streams_by: Arc<parking_lot::Mutex<std::collections::HashMap<Who, usize>>>,
    /// Tenants' apps and MCP endpoints, chosen by a bearer's tenant.
    pub(super) tenants: Option<Arc<Tenants>>,
    /// One permit per bearer being checked, each on a blocking thread: a check may wait on a
    /// token database or an issuer's keys, never on the two async threads.
    pub(super) checks: Arc<Semaphore>,
}

/// The open connections: for each, whether it has a request being answered, and how to close
/// it.
#[derive(Default)]
pub(super) struct Conns {
    pub(super) next: u64,
    /// By id, which grows: the oldest first.
    pub(super) all: std::collections::BTreeMap<u64, Conn>,
}

pub(super) struct Conn {
    /// Requests of the connection the app is answering (or whose body is being read).
    pub(super) busy: Arc<AtomicUsize>,
    /// Closes the connection.
    pub(super) close: Arc<tokio::sync::Notify>,
}

impl Shared {
    /// At the connection cap: closes the oldest connection that has no request being answered
    /// (idle, or still sending its headers), so that a new client is served; whether one was.
    pub(super) fn evict(&self) -> bool {
        let mut open = self.open.lock();
        let oldest = open
            .all
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::Relaxed) == 0)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.all.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// How much of a refused request's body is read and thrown away, so that closing the
/// connection does not reset it before the client reads the refusal.
const DRAIN_BYTES: usize = 256 * 1024;

/// How long that draining may take.
const DRAIN_FOR: Duration = Duration::from_secs(1);

/// A response body: whole, or streamed (a waiting MCP call's).
pub(super) type Out = hyper::Response<BoxBody<Bytes, Infallible>>;

/// The app of `tenant`, or the refusal: `403` when this server serves no tenants but the
/// default, `503` when the tenant's store cannot be opened or too many tenants are open.
pub(super) fn tenant_app(
    tenants: Option<&Tenants>,
    tenant: &oc_auth::Tenant,
) -> std::result::Result<crate::TenantApp, Response> {
    let Some(tenants) = tenants else {
        return Err(Response::text(
            403,
            "this server serves the default tenant only: this token is of another\n",
        ));
    };
    tenants.get(tenant).map_err(|e| match e {
        TenantError::Full { .. } => Response::text(503, format!("{e}\n")),
        // The reason is for the operator's log (the opener's); it may name the database.
        _ => Response::text(
            503,
            "the tenant's store could not be opened: try again in a moment\n",
        )
        .with("Retry-After", "1".into()),
    })
}

pub(super) fn full(body: Vec<u8>) -> BoxBody<Bytes, Infallible> {
    BoxBody::new(Full::new(Bytes::from(body)))
}

pub(super) fn too_large() -> Response {
    Response::text(
        413,
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes\n"),
    )
}

/// Why a body was not read.
pub(super) enum Unread {
    /// It grew past [`MAX_BODY_BYTES`].
    TooLarge,
    /// The connection broke (or the chunked encoding was malformed).
    Broken,
}

/// Reads `body` whole, refusing it as soon as it passes [`MAX_BODY_BYTES`] (a chunked body
/// declares no length).
pub(super) async fn read(body: &mut Incoming) -> std::result::Result<Vec<u8>, Unread> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Unread::Broken)?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(Unread::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Reads and throws away up to [`DRAIN_BYTES`] of a refused body for up to [`DRAIN_FOR`], so
/// that the client, still sending, reads the refusal instead of a reset connection. Hyper
/// closes the connection if the body is not read to its end.
pub(super) fn drain(mut body: Incoming) {
    if body.is_end_stream() {
        return;
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN_FOR, async {
            let mut seen = 0;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    });
}

/// A thread of the app: at once if one is free, else after waiting in a bounded queue for a
/// bounded time; `None` when the server is too busy.
/// Checks `req`'s bearer with `verifier` on a blocking thread, at most `workers` at once (a
/// request waits up to the queue's wait for a turn, then is told the check failed): a slow
/// token database or issuer stalls only the requests waiting on it. `None` without a bearer
/// or a verifier.
pub(super) async fn check_bearer(
    req: &Request,
    verifier: Option<&Arc<dyn oc_auth::Verifier>>,
    shared: &Shared,
) -> Option<std::result::Result<oc_auth::Identity, oc_auth::AuthError>> {
    let verifier = Arc::clone(verifier?);
    // Only a bearer is the verifier's: another scheme (the pages' Basic password) is the
    // guard's to judge.
    let header = req.header_value("authorization")?;
    let scheme = header.trim_start().split(' ').next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = match oc_auth::bearer(Some(header)) {
        Ok(token) => token.to_owned(),
        Err(oc_auth::AuthError::Missing) => return None,
        Err(e) => return Some(Err(e)),
    };
    let busy = || {
        Some(Err(oc_auth::AuthError::Backend(
            "too many tokens are being checked: try again in a moment".into(),
        )))
    };
    let Ok(Ok(permit)) = tokio::time::timeout(
        shared.limits.queue_wait,
        Arc::clone(&shared.checks).acquire_owned(),
    )
    .await
    else {
        return busy();
    };
    let checked = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verifier.verify(&token)
    })
    .await;
    checked.map_or_else(|_| busy(), Some)
}

pub(super) async fn worker(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(&shared.workers).try_acquire_owned() {
        return Some(permit);
    }
    struct Queued<'a>(&'a AtomicUsize);
    impl Drop for Queued<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let before = shared.queued.fetch_add(1, Ordering::Relaxed);
    let _queued = Queued(&shared.queued);
    if before >= shared.limits.max_queued {
        return None;
    }
    let waited = tokio::time::timeout(
        shared.limits.queue_wait,
        Arc::clone(&shared.workers).acquire_owned(),
    )
    .await;
    waited.ok()?.ok()
}

/// A thread for `/healthz`: a free worker if there is one, else the one reserved for probes,
/// waited for at most the queue's wait; `None` when even that one stays busy.
pub(super) async fn probe_worker(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(&shared.workers).try_acquire_owned() {
        return Some(permit);
    }
    let waited = tokio::time::timeout(
        shared.limits.queue_wait,
        Arc::clone(&shared.probe).acquire_owned(),
    )
    .await;
    waited.ok()?.ok()
}

/// The app's response as hyper's, with the security headers. A HEAD request gets the same
/// head without the body (hyper leaves it out).
pub(super) fn to_hyper(response: Response) -> Out {
    let mut out = hyper::Response::new(full(response.body));
    *out.status_mut() = hyper::StatusCode::from_u16(response.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = std::iter::once(("Content-Type", response.content_type.to_owned()))
        .chain(response.headers)
        .chain(SECURITY_HEADERS.iter().map(|(n, v)| (*n, (*v).to_owned())));
    for (name, value) in headers {
        // A header the app could not have meant (a newline in a value) is left out.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}
