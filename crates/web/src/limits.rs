//! The server's bounds, as plain data: every one applies before the guard sees a request, so
//! a client nobody authenticated can hold no more than these.

use std::time::Duration;

/// The largest request body read; a longer one is refused (413): at once when its declared
/// `Content-Length` says so, as it streams when it is chunked.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What one client, and all of them together, may hold of the server ([`crate::ServeOptions`]'s
/// `limits`). The defaults suit an operator's status pages on loopback; see
/// `docs/decisions/0001-oc-serve-on-hyper.md` for why each is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at once; further ones wait in the listening socket's queue (never in
    /// memory) until one closes. Lowered at start to leave 32 of the process's descriptors
    /// (`RLIMIT_NOFILE`) for everything else.
    pub max_connections: usize,
    /// The request line and headers together, in bytes; beyond it, 431 and the connection
    /// closes.
    pub max_header_bytes: usize,
    /// Headers in one request; beyond it, 431 and the connection closes.
    pub max_headers: usize,
    /// How long a client may take to send a request's line and headers, and how long a kept-
    /// alive connection may stay idle before its next request: then it is closed.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body (at most [`MAX_BODY_BYTES`]): then
    /// it gets 408 and the connection closes.
    pub body_timeout: Duration,
    /// How long one write of an answer may stay blocked on a client that does not read: then
    /// the connection closes.
    pub write_timeout: Duration,
    /// Requests that may wait for one of the app's threads (`ServeOptions::workers` of them
    /// answer at once); beyond it, 503 with `Retry-After` at once.
    pub max_queued: usize,
    /// How long a request waits for one of the app's threads before it gets 503.
    pub queue_wait: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 2048,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_queued: 64,
            queue_wait: Duration::from_secs(2),
        }
    }
}
