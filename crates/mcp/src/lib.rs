//! The toolkit as a Model Context Protocol server: coding agents (Claude Code, Codex, opencode,
//! Cursor) call tasks, locks and a task's log, decisions and checkpoints as tools, with the
//! toolkit's guarantees intact.
//!
//! - [`Server`] is the protocol core. It does no I/O of its own: [`Server::accept`] takes one
//!   line (one JSON-RPC message) and says what to answer at once, or hands back a tool call
//!   ([`PendingCall`]) to run, which reports progress through a callback and answers nothing
//!   once cancelled; [`Server::handle`] does both in one step. It speaks both generations of
//!   the protocol that agents use today: the handshake era (`initialize`, versions 2024-11-05
//!   to 2025-11-25, answering the client's version when it is one of them) and the stateless
//!   2026-07-28 revision (`server/discover`, the per-request `_meta`, `resultType`,
//!   `ttlMs`/`cacheScope`).
//! - [`Toolbox`] holds what the tools act on: a `TaskLifecycle` (so hooks and history apply to
//!   agents' calls as to the CLI's), a `LockManager`, and optionally the store of the tasks'
//!   files, an `Arc<dyn oc_jsonl::TaskFileStore>` on a data directory or PostgreSQL
//!   ([`Toolbox::files`]). Embedders build one over their own backends.
//! - [`serve`] runs the server over a reader and a writer (stdin and stdout): one compact JSON
//!   message per line, nothing else on the writer. A `lock_acquire` or `task_claim` that waits
//!   (`wait_ms`; a claim waits for a ready task with its `labels`) runs beside the
//!   reading of further messages (at most [`MAX_WAITING_CALLS`] at once; more are refused with
//!   `TOO_MANY_WAITS`, and reading goes on): it sends progress notifications when asked to, and
//!   a `notifications/cancelled` (on its own or inside a batch) stops it. Request ids are unique
//!   within a session: a waiting call whose id a waiting call under way already has is refused
//!   (`-32600`, "id already in use"), so a cancellation, and the end of input, reach every wait.
//! - The end of input means the client went away: [`serve`] cancels every wait under way (it
//!   leaves the queue and takes nothing) and returns as soon as they have stopped. An answer is
//!   written only while its call is still wanted, and a grant whose answer is not delivered
//!   (cancelled or cut off as it was made, or the writer failing) is released
//!   ([`PendingCall::run_and_deliver`]): a departed agent never holds a lock for its TTL, and a
//!   task claimed for an answer not delivered is released with its fencing token. What
//!   is given back is the hold the call was granted, by its fencing token: a newer hold of the
//!   same agent name (another session's) stays, and a hold a later call of the same batch
//!   released is not released twice.
//! - Every tool that changes something takes an optional `idempotency_key` (decision 0043),
//!   the acting agent's: a retry with the same key and arguments answers the first call's
//!   result with `replayed: true` and changes nothing; the same key with other arguments is
//!   refused (`IDEMPOTENCY_CONFLICT`). The task-file tools' keys (`task_log_append`,
//!   `decision_record`, `checkpoint_create`) are the task's, not the agent's. A keyed claim whose answer is not delivered is given
//!   back with its key forgotten, so the retry claims afresh; a replayed grant is never given
//!   back (it is the first call's); a keyed lock grant whose answer is not delivered is kept
//!   for the retry to replay (the lock manager cannot forget a key with a release yet).
//! - [`HttpSessions`] serves the same tools over Streamable HTTP without an HTTP library of its
//!   own: a request as plain data ([`HttpRequest`]) in, a response or a waiting call
//!   ([`HttpCall`], whose body a transport writes as it comes) out. The stateless 2026-07-28
//!   revision is checked header against body (`MCP-Protocol-Version`, `Mcp-Method`,
//!   `Mcp-Name`: `400` and `-32020` on a mismatch); the handshake era gets sessions
//!   (`Mcp-Session-Id`, at most [`MAX_SESSIONS`], [`MAX_SESSIONS_PER_IDENTITY`] per identity, closed after [`SESSION_IDLE`] unused, each
//!   its own [`Server`] over the one shared toolbox and bound to the identity that opened it),
//!   `DELETE`, SSE progress then the result for a call that waits, and resumption after
//!   `Last-Event-ID` from a bounded replay buffer. A waiting call stops, taking nothing, when
//!   its client goes away ([`HttpCall::cancel_flag`]), cancels it, or ends its session.
//! - JSON-RPC batches are accepted exactly in sessions negotiated at [`BATCH_VERSION`]
//!   (2025-03-26, whose specification requires them; the other revisions have none): one array
//!   of the answers, none for notifications, an empty array an Invalid Request, and no call in
//!   a batch waits ([`Batch`]).
//! - Lists are bounded: `task_log_query` and `decision_list` answer a page (50 by default, at
//!   most 500 entries and 1,000 decisions), the decisions read backwards from the newest end at
//!   the cost of the page, with `skip`/`next_skip` to the older ones.
//! - Appends are durable before they are answered; `task_log_append` takes an optional
//!   `idempotency_key`, so a retry after a lost answer writes nothing and answers
//!   `duplicate: true`.
//!
//! - Every call runs as an [`oc_auth::Identity`]: `oc mcp` over stdio as the local process
//!   ([`Identity::local`](oc_auth::Identity::local): any agent, named by the `agent` argument
//!   or `OC_AGENT`), an HTTP session as its bearer token's ([`Server::session`]). The checks are
//!   central ([`Tool::call`]): a tool that changes something needs the `work` scope
//!   (`FORBIDDEN`); a `work` identity acts as its own agent only (`NOT_YOUR_AGENT` for another
//!   name), and heartbeats, finishes or releases a task only while its own agent holds the
//!   lease, whatever agent name or fencing token it passes.
//!
//! Business outcomes (a conflict, a lost lease, a missing task, a bad argument value) are tool
//! results with `isError` and a message a model can act on; an unknown tool or a malformed
//! request is a JSON-RPC error; a malformed line never ends the server. Refusals are said from
//! what the task is now: a claim of a running task names who holds it and until when
//! (`ALREADY_CLAIMED`, with `owner`, `lease_expires_at`, `retry_after_ms`), finishing or
//! claiming a finished task says it is "already completed at …" (`ALREADY_FINISHED`), and a
//! lost lease says where the task went.
//!
//! ```
//! use std::sync::Arc;
//! use oc_hooks::{Hooks, TaskLifecycle};
//! use oc_locks::MemoryLockManager;
//! use oc_mcp::{Server, Toolbox};
//! use oc_tasks::MemoryTaskStore;
//!
//! let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
//! let server = Server::new(Toolbox::new(life, Arc::new(MemoryLockManager::new())));
//! let out = server.handle(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
//! assert!(out[0].contains(r#""protocolVersion":"2025-11-25""#));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

mod protocol;
mod tools;

pub use protocol::{
    BATCH_VERSION, Batch, HttpAnswer, HttpCall, HttpOptions, HttpRequest, HttpResponse,
    HttpSessions, Incoming, LEGACY_VERSIONS, MAX_BATCH, MAX_MESSAGE_BYTES, MAX_SESSIONS,
    MAX_SESSIONS_PER_IDENTITY, MAX_WAITING_CALLS, MODERN_VERSION, PendingCall, SERVER_NAME,
    SESSION_IDLE, Server, serve,
};
pub use tools::{CallContext, Tool, ToolError, Toolbox};
