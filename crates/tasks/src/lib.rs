//! Task store for AI coding agents: a state machine with atomic transitions, claims with leases
//! and fencing tokens, queries and statistics, on SQLite or in memory.
//!
//! # Overview
//!
//! - [`TaskStore`]: the object-safe trait agents program against. Every change is one atomic
//!   check-and-set; a change writes only the fields it is about; `version` bumps on every write.
//! - [`SqliteTaskStore`]: the embedded default, one database file shared safely by threads and
//!   processes (WAL, `BEGIN IMMEDIATE`, busy timeout), with [`StorageStats`] and slow-statement
//!   reporting through SQLite's profiling callback.
//! - [`MemoryTaskStore`]: the same semantics in memory, for tests.
//! - [`Task`], [`TaskStatus`], [`TaskId`], [`NewTask`], [`TaskPatch`], [`Change`]: the model;
//!   [`transition`] applies a change and returns its [`EventKind`], the one list of what
//!   happens to a task, which the store records in the task's history ([`HistoryEntry`],
//!   [`TaskStore::history`]) and hooks (`oc-hooks`) are registered on.
//! - [`RetryPolicy`], [`Unique`], [`LabelFilter`], [`Blockers`], [`Rollup`], [`Created`]: the
//!   work graph (dependencies, readiness, parents, labels, retry policies, unique keys).
//! - [`TaskQuery`], [`TaskFilter`], [`TaskPage`], [`TaskStats`]: listings and statistics.
//! - [`IdempotencyKey`], [`Keyed`]: retries after a timeout. The keyed methods
//!   ([`TaskStore::submit_many_keyed`], [`TaskStore::apply_keyed`],
//!   [`TaskStore::claim_many_keyed`] and the conveniences over them: `claim_next_keyed`,
//!   `claim_keyed`, `complete_keyed`, ...) record the key, per agent, in the transaction of
//!   the change; a retry with the same key and request returns the first result and writes
//!   nothing, another request is [`Error::IdempotencyConflict`]. Keys are kept
//!   [`IDEMPOTENCY_KEY_TTL`] (24 h) and swept [`IDEMPOTENCY_SWEEP_BATCH`] at a time by keyed
//!   writes; calls without a key do no more than before.
//! - Batches for many small jobs: [`TaskStore::complete_many`], [`TaskStore::fail_many`] and
//!   [`TaskStore::heartbeat_many`] (at most [`MAX_BATCH`] items, each item's outcome its own,
//!   one transaction on the memory, SQLite and PostgreSQL stores), and
//!   [`worker::BatchWorker`]: a local queue claimed n at a time, its leases heartbeaten in one
//!   call, its finishes acknowledged in batches.
//! - [`Clock`], [`ManualClock`]: time is an input, so tests never sleep.
//! - [`backend`]: for authors of a backend only (shared validation, graph algorithms, row
//!   mapping, SQL text); no semver promise beyond the crate's minor version.
//!
//! ## Claims
//!
//! An agent claims work with [`TaskStore::claim`] or [`TaskStore::claim_next`] and gets a
//! [`Lease`] whose fencing token is larger than every token handed out before by the same store.
//! It extends the lease with [`TaskStore::heartbeat`] and finishes with [`TaskStore::complete`] or
//! [`TaskStore::fail`], presenting the token; if the lease lapsed and the task was reaped or
//! claimed by someone else, the call fails with [`Error::LeaseLost`] and changes nothing.
//! [`TaskStore::reap_expired`] returns lapsed tasks to pending, or fails them once
//! `max_attempts` runs have been spent.
//!
//! A claim can wait for work: [`TaskStore::claim_next_watched`] with a [`Waiting`] (a timeout,
//! a poll bound, a watcher that can stop it) claims as soon as a task that passes the filter
//! is ready. The memory and SQLite stores wake it by their [`ReadySignal`], bumped by every
//! write of the handle that may make a task ready (and at a backoff's `run_at`), and it polls
//! for other processes' writes; PostgreSQL wakes it by `LISTEN/NOTIFY`. It never claims past
//! its timeout or once stopped, and a task claimed as it was stopped is released.
//!
//! ## The work graph
//!
//! Tasks may depend on other tasks ([`NewTask::depends_on`], [`TaskStore::add_dependency`]),
//! have a parent ([`NewTask::parent`], [`TaskStore::rollup`]), carry labels that claims can
//! ask for ([`TaskStore::claim_next_matching`] with a [`LabelFilter`]), wait for a time
//! ([`NewTask::run_at`]), retry failed runs after a backoff ([`RetryPolicy`]), and hold a
//! unique key ([`NewTask::unique_key`]: creating a task whose key is held returns the holder,
//! see [`Created`]). A task is **ready** when it is pending, every dependency completed and its
//! `run_at` passed; claims hand out ready tasks only, and listings can ask for ready or
//! blocked tasks ([`Readiness`], [`TaskStore::blockers`], [`is_ready`]). Stores keep readiness
//! incrementally (a count of unfinished dependencies per task, written in the transaction that
//! completes a dependency), never by walking the graph on a claim.
//!
//! ```
//! use std::time::Duration;
//! use oc_tasks::{LabelFilter, MemoryTaskStore, NewTask, TaskId, TaskStore};
//!
//! let store = MemoryTaskStore::new();
//! let migration = TaskId::new("migration")?;
//! store.create(NewTask::new("write the migration").id(migration.clone()).label("backend"))?;
//! store.create(NewTask::new("the handler").depends_on(migration.clone()).label("backend"))?;
//! store.create(NewTask::new("the page").label("frontend"))?;
//!
//! let ttl = Duration::from_secs(30);
//! let backend = LabelFilter::any().require("backend");
//! let t = store.claim_next_matching("be-agent", ttl, &backend)?.expect("ready");
//! assert_eq!(t.id, migration, "the handler waits for the migration");
//! assert_eq!(store.claim_next_matching("be-agent", ttl, &backend)?, None);
//! store.complete(&t.id, t.lease.map(|l| l.token), None)?;
//! let next = store.claim_next_matching("be-agent", ttl, &backend)?.expect("now ready");
//! assert_eq!(next.name, "the handler");
//!
//! let first = store.submit(NewTask::new("nightly build").unique_key("nightly"))?;
//! let again = store.submit(NewTask::new("nightly build").unique_key("nightly"))?;
//! assert!(again.duplicate && again.task.id == first.task.id);
//! # Ok::<(), oc_tasks::Error>(())
//! ```
//!
//! ## Durability
//!
//! [`SqliteTaskStore`] commits with `synchronous=NORMAL`: a process crash loses nothing that was
//! committed, an OS crash or a power loss may roll back the last changes, but a fencing token is
//! never handed out twice, whatever crashes (see `oc_sqlite` for the table of what survives
//! what, and [`SqliteOptions::durability`] to sync every commit).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use oc_tasks::{NewTask, SqliteTaskStore, TaskStore, TaskStatus, Error};
//!
//! let store = SqliteTaskStore::open_in_memory()?;
//! store.create(NewTask::new("low").priority(1))?;
//! store.create(NewTask::new("urgent").priority(9))?;
//!
//! let task = store.claim_next("agent-1", Duration::from_secs(30))?.expect("work to do");
//! assert_eq!(task.name, "urgent");
//! let token = task.lease.expect("claims grant a lease").token;
//!
//! // A stale token is refused, and nothing changes.
//! assert!(matches!(store.complete(&task.id, Some(token + 1), None), Err(Error::LeaseLost { .. })));
//! let done = store.complete(&task.id, Some(token), None)?;
//! assert_eq!(done.status, TaskStatus::Completed);
//!
//! let stats = store.stats(5)?;
//! assert_eq!((stats.total, stats.count(TaskStatus::Pending)), (2, 1));
//!
//! // What a dashboard reads every second: the counts the store keeps as it writes, and the
//! // ready and blocked tasks counted up to a cap.
//! let counts = store.counts(10_000)?;
//! assert_eq!((counts.count(TaskStatus::Completed), counts.ready.to_string()), (1, "1".into()));
//! # Ok::<(), oc_tasks::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `sqlite` (default): [`SqliteTaskStore`]. Without it nothing links SQLite: an embedder on
//!   PostgreSQL only (`oc-postgres` builds `oc-tasks` so) builds neither rusqlite nor SQLite.
//! - `bundled-sqlite` (default, implies `sqlite`): compile SQLite from source; turn off to link
//!   the system library.
//! - `testkit`: export [`testkit`], the conformance suite every `TaskStore` must pass, so other
//!   backends (PostgreSQL, say) can run it, with its model-based property test and
//!   `testkit::history`: a concurrent workload and a sequential model its recorded histories
//!   are checked against for linearizability (with `oc-lincheck`).
//! - `tokio`: `AsyncTaskStore`, the store for callers on a tokio runtime: every call on the
//!   runtime's blocking pool, never a worker; a claim whose future is dropped gives its task
//!   back. Off by default, so the default build has no tokio.
//!
//! # Errors
//!
//! [`Error`] is non-exhaustive; classify with [`Error::is_not_found`] (a missing task, or a
//! dependency or parent naming one), [`Error::is_conflict`] (invalid transition, lost lease,
//! version mismatch, duplicate id, dependency cycle, dependents in the way of a delete, a unique
//! key held), [`Error::is_invalid_input`] and [`Error::is_retryable`] (database busy, a lost
//! connection). Every backend fails the same way, [`Error::Backend`]: a message for people and
//! the backend's own error as the source (a `rusqlite::Error`, a `tokio_postgres::Error`), for a
//! caller that needs its code.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

#[cfg(feature = "tokio")]
mod asynchronous;
pub mod backend;
mod error;
mod graph;
mod history;
mod id;
mod idempotency;
mod memory;
mod model;
mod query;
mod retention;
#[cfg(feature = "sqlite")]
mod sqlite;
mod storage;
mod store;
mod wait;
pub mod worker;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

#[cfg(feature = "tokio")]
pub use crate::asynchronous::AsyncTaskStore;
pub use crate::error::{Error, Result};
pub use crate::graph::{
    Blockers, Created, LabelFilter, MAX_BACKOFF, MAX_DEPENDENCIES, MAX_LABEL_LEN, MAX_LABELS,
    MAX_SCHEDULE_AHEAD, MAX_UNIQUE_KEY_LEN, OnDependents, Readiness, RetryPolicy, Rollup, Unique,
    UniqueScope, is_ready,
};
pub use crate::history::HistoryEntry;
pub use crate::id::{MAX_ID_LEN, TaskId};
pub use crate::idempotency::{
    IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, Keyed, MAX_IDEMPOTENCY_KEY_LEN,
};
pub use crate::memory::MemoryTaskStore;
pub use crate::model::{
    Change, DEFAULT_MAX_ATTEMPTS, EventKind, Lease, MAX_LEASE, MIN_LEASE, NewTask, ReapedTask,
    Task, TaskPatch, TaskStatus, reap, transition,
};
pub use crate::query::{
    Capped, Cursor, DEFAULT_LIMIT, MAX_LIMIT, Order, RUN_BUCKETS_MS, RunDurations, TaskCounts,
    TaskFilter, TaskPage, TaskQuery, TaskStats, TaskSummary,
};
pub use crate::retention::{
    ArchivedTask, DEFAULT_PRUNE_BATCH, MAX_PRUNE_BATCH, PruneReport, RetentionPolicy, Retire,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use crate::sqlite::{DEFAULT_BUSY_TIMEOUT, SqliteOptions, SqliteTaskStore};
pub use crate::storage::{DEFAULT_SLOW_THRESHOLD, SlowCallback, SlowStatement, StorageStats};
pub use crate::store::{MAX_BATCH, StorageSource, TaskStore};
pub use crate::wait::{DEFAULT_POLL, ReadySignal, WATCH_EVERY, Waiting};
pub use oc_time::{Clock, ManualClock, SystemClock, Timestamp};
