//! The HTTP face of opencode-tools, as `oc serve` runs it: `/metrics` (rendered by
//! `oc-metrics`), `/healthz`, `/api/stats`, and the operator's status pages, on a small
//! synchronous server (`tiny_http`, a few worker threads, no async runtime).
//!
//! - [`Web`] is the app: built over a `TaskLifecycle` (so the actions a page offers go through
//!   hooks and history, as the CLI's do), a `LockManager`, the data directory and, optionally,
//!   the alert engine. [`Web::respond`] answers a [`Request`] with a [`Response`] and does no
//!   I/O, so every page and refusal is testable without a socket.
//! - [`serve`] runs it on an address: loopback by default, a token required beyond it; every
//!   request passes the `Host` allow-list (against DNS rebinding), the token, and, for the
//!   POSTs that change anything, the same-origin check and the read-only switch; every
//!   response carries a strict Content-Security-Policy and the other security headers.
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

mod app;
mod guard;
mod http;
mod pages;
mod server;

pub use crate::app::{Alerting, Web};
pub use crate::guard::SECURITY_HEADERS;
pub use crate::http::{Method, Request, Response, ServeOptions};
pub use crate::server::{MAX_BODY_BYTES, ServerHandle, serve};

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
