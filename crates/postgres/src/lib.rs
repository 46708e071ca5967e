//! PostgreSQL backend for opencode-tools: [`PgTaskStore`] implements [`oc_tasks::TaskStore`],
//! [`PgLockManager`] implements [`oc_locks::LockManager`] and [`PgFileStore`] implements
//! [`oc_jsonl::TaskFileStore`] for agents on many machines, with the semantics of the SQLite
//! and data-directory backends (the same conformance suites and model-based property tests
//! pass against all of them).
//!
//! # Overview
//!
//! - [`PgOptions`]: where the server is (a `postgresql://` URL or libpq `key=value` pairs),
//!   the schema holding the tables (default `oc`), the pool size, an optional test clock.
//! - [`PgTaskStore`]: transitions computed by [`oc_tasks::transition`] and written by one
//!   conditional statement; `claim_next` with `FOR UPDATE SKIP LOCKED`; fencing tokens from the
//!   sequence `task_tokens`, never returned twice and greater for every later claim of a task,
//!   across hosts and crashes (decision 0047; no row every claim or completion updates); time from the database's clock.
//!   Waiting claims (`claim_next_watched`) are woken by `LISTEN/NOTIFY`: a trigger notifies
//!   `oc_tasks_<schema>` from every write that leaves a task pending with nothing to wait for
//!   (sent on commit, with its `run_at` as payload), and one listening connection per store
//!   bumps its `ReadySignal`; polling is the fallback for a lost connection.
//! - [`PgLockManager`]: exclusive and shared locks on hierarchical resources, re-entrant holds,
//!   TTLs and fencing tokens; each operation one call of a server-side function that takes an
//!   advisory lock per path (exclusive on the resource, shared on its ancestors), decides and
//!   writes, so operations on unrelated resources run in parallel (decision 0048); tokens from
//!   a sequence; first-come-first-served waiting across hosts, woken by `LISTEN/NOTIFY` with
//!   polling as the fallback.
//! - Idempotency keys (decision 0043) on both: a keyed change (`*_keyed`) is one transaction
//!   that takes the key's advisory lock, replays a known key, or makes the change and records
//!   the key with its result (`task_keys`, `lock_keys`): retries on any host grant once.
//! - [`PgFileStore`]: a task's log, decisions, state, checkpoints and ship cursors, shared
//!   by every host (decision 0036). Appends are group-committed: a bounded queue drained by
//!   two committers into one call of a server-side function per batch, which assigns each
//!   task's sequence numbers under its row lock and honours idempotency keys. Tails read the
//!   primary key backwards, the analysis is computed by the server from an index, checkpoints
//!   are the files a data directory holds, verified by their SHA-256 when restored in one
//!   transaction (a keyed one records its key in its row, unique per task, files migration
//!   4); followers are woken by `LISTEN/NOTIFY` and poll every second.
//! - [`PgFileImports`]: moves a data directory's task files into those tables
//!   (`oc db import-files`), resumably: a cursor per data directory, task and stream
//!   (`file_imports`) advanced in the transaction that appends each batch of lines, so a killed
//!   import resumes after its last batch and a rerun moves nothing; states and checkpoints
//!   verified and moved when the database has none of that name.
//! - [`PgTokenStore`]: [`oc_auth::TokenStore`], the static bearer tokens `oc serve` accepts,
//!   in the default schema (a token chooses its tenant); only each secret's SHA-256 is kept,
//!   and every call reads the row, so a revocation holds on every host at once.
//! - `PgAlertStore` (feature `alerts`): `oc_alerts::AlertStore` for replicas of an alert
//!   evaluator on one database: states, silences, the outbox, and a lease on the database's
//!   clock so that one replica evaluates and notifies at a time.
//! - `testkit` (feature `testkit`): a throwaway server for tests, on a Unix socket.
//! - Retention (decision 0051): [`PgTaskStore`]'s `prune_finished` deletes or archives
//!   (`task_archive`) finished tasks older than an age, a batch of at most 10,000 per
//!   transaction, never one that a remaining task depends on or is the child of; the counts
//!   by status lose them through the delete's rows of changes. With it, set autovacuum on the
//!   hot tables: `autovacuum_vacuum_scale_factor = 0.01` on `tasks`, a fixed
//!   `autovacuum_vacuum_threshold` (scale factor 0) on `task_tallies` and `task_counts`, and
//!   `idle_in_transaction_session_timeout` on the server, since one session idle in a
//!   transaction stops vacuum from removing any dead row (the statements, and why `fillfactor`
//!   does not help `tasks`, are in the decision; the figures in `docs/BENCHMARKS.md`).
//!
//! The API is synchronous. Inside, `tokio-postgres` runs on a private runtime thread and
//! callers wait on a channel, so the stores work from any thread, including one that runs the
//! caller's own tokio runtime. No library crate below this one depends on tokio.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use oc_postgres::{PgOptions, PgTaskStore};
//! use oc_tasks::{NewTask, TaskStore};
//!
//! let store = PgTaskStore::connect(PgOptions::new("postgresql://agent@db.internal/work")?)?;
//! store.create(NewTask::new("index the repository"))?;
//! let task = store.claim_next("agent-7", Duration::from_secs(30))?;
//! # Ok::<(), oc_tasks::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `tls`: TLS to the server through rustls (ring), checked against the web PKI's roots or
//!   [`PgOptions::tls_ca_file`]; used where the URL asks for it (`sslmode=require`).
//! - `alerts`: `PgAlertStore`, with `oc-alerts`.
//! - `testkit`: throwaway servers, network namespaces and the claim statement, for tests and
//!   benchmarks.
//!
//! # Errors
//!
//! Failures of the server or the connection are [`oc_tasks::Error::Backend`] (and
//! [`oc_locks::Error::Backend`], [`oc_jsonl::Error::Backend`]), retryable when trying again may succeed (a lost connection, a
//! server restarting, a serialization failure). Their message is the server's (with its
//! SQLSTATE) or the client's, one line, never a password; their source is the
//! `tokio_postgres::Error` itself (downcast it for its `code()`), [`BatchFailed`] (whose source
//! is that error) when the group commit of several appends failed, or [`ClientStopped`] when
//! the client's runtime thread stopped. A checkpoint file or state that fails its hash is
//! [`oc_jsonl::Error::Corrupt`], with a path shaped as on disk
//! (`postgres:<schema>/tasks/<id>/checkpoints/<cp>/logs.jsonl`). What a failure means is decided by its
//! SQLSTATE and constraint name (a second task with an id violates `tasks_pkey`, a second
//! holder of a unique key `tasks_unique_key`), never by reading the server's message.
//!
//! # Layout
//!
//! One concept per file (see `docs/decisions/0005-postgres-by-concept.md`):
//!
//! - `options.rs` the connection settings, `pool.rs` the runtime thread and the connections,
//!   `errors.rs` failures classified, `keys.rs` the advisory-lock keys, `slow.rs` the slow
//!   calls, `schema.rs` the migration runner.
//! - `tasks.rs` the task store, with one file per part of it under `tasks/` (`keyed.rs`: the
//!   idempotency keys' transactions; `batch.rs`: `complete_many`, `fail_many` and
//!   `heartbeat_many` in one statement, its SQL beside it); its SQL in
//!   `tasks/sql/*.sql` and its schema's versions in `tasks/migrations/*.sql`.
//! - `locks.rs` the lock manager; its schema's versions in `locks/migrations/*.sql` and its
//!   server-side functions in `locks/functions/NNNN/*.sql`.
//! - `files.rs` the task-file store, with one file per part under `files/` (the group commit
//!   in `commit.rs`); its schema in `files/migrations/*.sql`, its server-side functions
//!   (`files_append`, `files_restore`, `files_retain`) in `files/functions/NNNN/*.sql` and its
//!   statements in `files/sql/*.sql`.
//! - `imports.rs` the importer of data directories; its SQL in `imports/sql/*.sql` (appending
//!   through `files_append`) and its schema's versions in `imports/migrations/*.sql` (pinned
//!   there).
//! - `auth.rs` the token store; its SQL in `auth/sql/*.sql` and its schema's versions in
//!   `auth/migrations/*.sql` (pinned in `pinned.rs`).
//! - `alerts.rs` the alert store; its SQL in `alerts/sql/*.sql` and its schema's versions in
//!   `alerts/migrations/*.sql` (pinned there).
//!
//! Shipped migrations never change: `pinned.rs` holds the SHA-256 of each, as it shipped.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

#[cfg(feature = "alerts")]
mod alerts;
mod auth;
mod errors;
mod files;
mod imports;
mod keys;
mod locks;
mod options;
#[cfg(test)]
mod pinned;
mod pool;
mod schema;
mod slow;
mod tasks;
#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "alerts")]
pub use crate::alerts::PgAlertStore;
pub use crate::auth::PgTokenStore;
pub use crate::errors::{BatchFailed, ClientStopped};
pub use crate::files::{MAX_APPEND_BYTES, MAX_APPEND_ENTRIES, PgFileStore};
pub use crate::imports::{
    Batch, Fate, IMPORT_BATCH_BYTES, IMPORT_BATCH_LINES, ImportCursor, ImportStream, PgFileImports,
    check_source, line_hash,
};
pub use crate::locks::{PgLockManager, PgLockOptions};
pub use crate::options::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, PgOptions};
pub use crate::tasks::{PgStorageStats, PgTaskStore};
