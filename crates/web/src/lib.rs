//! The HTTP face of opencode-tools, as `oc serve` runs it: `/metrics` (rendered by
//! `oc-metrics`), `/healthz`, `/api/stats`, and the operator's status pages, on a bounded
//! HTTP/1.1 server (hyper on a small tokio runtime of its own, behind the `server` feature).
//!
//! - [`Web`] is the app: built over a `TaskLifecycle` (so the actions a page offers go through
//!   hooks and history, as the CLI's do), a `LockManager`, the store of the tasks' files
//!   (`Arc<dyn oc_jsonl::TaskFileStore>`, [`Web::files`]), optionally a note on a task's files
//!   shown as a banner on its page ([`Web::file_notes`]), and, optionally, the alert engine. [`Web::respond`] answers a [`Request`] with a [`Response`] and does no
//!   I/O, so every page and refusal is testable without a socket.
//! - `serve` (feature `server`) runs it on an address: loopback by default, a token required
//!   beyond it; every request passes the `Host` allow-list (against DNS rebinding), the token,
//!   and, for the POSTs that change anything, the same-origin check, the read-only switch and
//!   who acts ([`Actions`]): a session of the pages' login or an `admin` bearer (the token, or
//!   one an `oc_auth::Verifier` accepts), on loopback too, unless actions are
//!   [`Actions::Open`] (`oc serve --no-auth`); every response carries a strict
//!   Content-Security-Policy and the other security headers.
//! - The login ([`Sessions`]): a one-time token (256 random bits, usable once within
//!   [`LOGIN_FOR`]) that `oc serve` prints in a URL; `GET /login?token=…` exchanges it for a
//!   session cookie (`HttpOnly`, `SameSite=Strict`) and redirects to `/`; sessions live in
//!   memory (at most [`MAX_SESSIONS`], each ending after [`SESSION_IDLE`] idle, at
//!   `POST /logout`, or at a restart). Reading needs a credential too once actions do (or a
//!   token is set): a session, the token, or any bearer the verifier accepts, on loopback too;
//!   `/healthz` stays open, and [`ServeOptions::metrics_open`] opens `GET /metrics` to
//!   loopback clients alone.
//! - Before any of that, every client is bounded ([`Limits`], in [`ServeOptions`]): request line
//!   and headers (16 KiB, 64 headers: else 431), the body ([`MAX_BODY_BYTES`]: a larger declared
//!   length gets 413 before anything is read, a chunked body is cut as it streams), the time to
//!   send headers (also the keep-alive idle time), the body, and to take an answer, the open
//!   connections (the soft descriptor limit is raised to the hard one at start; at the cap, a
//!   new client is served by closing the oldest connection with no request being answered,
//!   idle or still sending headers), and the requests answered at once
//!   (`ServeOptions::workers` threads run the synchronous app; a bounded queue waits a bounded
//!   time for them, then 503 with `Retry-After`; `/healthz` has one more thread of its own).
//!   The accept loop survives every error, resting briefly when descriptors run out.
//! - With [`ServeOptions::mcp`] ([`McpOptions`]), `/mcp` serves MCP over Streamable HTTP
//!   (`oc_mcp::HttpSessions`, both protocol eras) behind the same bounds: the `Host` allow-list,
//!   an `Origin` that is present and not this server's refused (403), and a bearer token turned
//!   into an `oc_auth::Identity` by the configured `oc_auth::Verifier` (401, or 403 for a
//!   scope that is not enough, with `WWW-Authenticate`, both from [`McpOptions::challenge`];
//!   no verifier: every request is the local process's). [`McpOptions::metadata`] (a
//!   [`WellKnown`]: the OAuth protected-resource metadata) is served at its paths with no
//!   token, behind the same bounds and `Host` check. A call that waits streams (SSE) on a thread of its
//!   own, at most [`McpOptions::max_streams`] at once and
//!   [`McpOptions::max_streams_per_identity`] of one identity (`429` past it), and stops,
//!   taking nothing, when its client goes away. A bearer whose scope is below `work` calling a
//!   tool that changes something is answered `403` with the challenge's
//!   `insufficient_scope` (the MCP authorization spec's step-up) before the tool runs.
//! - Tenants ([`Tenants`], in [`ServeOptions::tenants`]): the tenant of a request's bearer
//!   (an `oc_auth::Identity`) chooses the app and the MCP endpoint that serve it, opened on
//!   first use, by one request (others of the tenant wait), at most [`MAX_TENANTS`] at once
//!   (then `503`); the login's sessions and the server's token are the default tenant's. Nothing in a request
//!   but its verified bearer names a tenant.
//! - `/healthz` runs the health check (SQLite's integrity check, for `oc serve`) at most once
//!   per [`HEALTH_FOR`]; probes in between get its last answer.
//! - The pages are HTML rendered on the server (`maud`, which escapes everything agents wrote),
//!   with one small script and one stylesheet shipped inside the binary. Every action is a
//!   plain form that works with scripts off; with scripts on, the page refreshes itself every
//!   few seconds while it is visible.
//! - The overview is read at most once a second, whatever the number of open pages, from the
//!   counts the store keeps as it writes (`TaskStore::counts`), so it costs the same over a
//!   million tasks as over ten.
//!
//! ```
//! use std::sync::Arc;
//! use oc_hooks::{Hooks, TaskLifecycle};
//! use oc_locks::MemoryLockManager;
//! use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};
//! use oc_web::{Method, Request, Web};
//!
//! let store = Arc::new(MemoryTaskStore::new());
//! store.create(NewTask::new("<b>index</b> the repo"))?;
//! let web = Web::new(TaskLifecycle::new(store, Arc::new(Hooks::new())), Arc::new(MemoryLockManager::new()));
//! let page = web.respond(&Request::new(Method::Get, "/ui/tasks"));
//! assert_eq!(page.status, 200);
//! assert!(page.body_text().contains("&lt;b&gt;index&lt;/b&gt; the repo"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `server`: `serve` and `ServerHandle`, over hyper, hyper-util and tokio. Without it the crate
//!   has no async runtime in its tree; the app, its pages and refusals, and the limits' data are
//!   all there.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

mod app;
// Only the server asks the guard; without it the guard is kept, and tested, for when it is on.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod guard;
mod http;
mod limits;
mod pages;
#[cfg(feature = "server")]
mod server;
mod session;
mod tenants;

pub use crate::app::{Alerting, FileNotes, HEALTH_FOR, Web};
pub use crate::guard::SECURITY_HEADERS;
pub use crate::http::{
    Actions, Challenge, MAX_STREAMS, MAX_STREAMS_PER_IDENTITY, McpOptions, Method, Request,
    Response, ServeOptions, WellKnown, bearer_challenge,
};
pub use crate::limits::{Limits, MAX_BODY_BYTES};
#[cfg(feature = "server")]
pub use crate::server::{ServerHandle, serve};
pub use crate::session::{LOGIN_FOR, LoginError, MAX_SESSIONS, SESSION_IDLE, Sessions};
pub use crate::tenants::{MAX_TENANTS, OpenTenant, TenantApp, TenantError, Tenants};

/// What can go wrong starting the server.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server could not start (address taken, no token for a public address...).
    Serve(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Serve(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;
