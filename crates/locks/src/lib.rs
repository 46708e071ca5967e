//! Lock manager for AI coding agents: exclusive and shared locks on hierarchical resources,
//! with fencing tokens, expiry, re-entrant holds and first-come-first-served waiting, in one
//! process or shared by several processes through a SQLite file.
//!
//! # Overview
//!
//! - [`LockManager`]: the object-safe trait; [`LockManagerExt::guard`] adds RAII guards.
//! - [`MemoryLockManager`]: one process, as fast as a mutex allows.
//! - `SqliteLockManager` (feature `sqlite`): several processes on one machine share locks through
//!   the database file the task store uses (its own tables and migrations). Its fencing tokens
//!   are never handed out twice, not even after an OS crash or a power loss, while a grant
//!   itself may roll back then (see `oc_sqlite` for what survives what).
//! - [`Resource`] (`repo/src/main.rs`: a lock on `repo/src` overlaps it), [`Owner`], [`LockMode`],
//!   [`LockRequest`], [`Lock`] (a grant, with its fencing token and expiry), [`LockStats`] (the
//!   seed's `totalLocks`, `activeLocks`, `expiredLocks`, `conflictsDetected`, `averageHoldTime`, and more).
//! - [`IdempotencyKey`], [`Keyed`]: retries after a timeout. [`LockManager::acquire_many_keyed`]
//!   (and `acquire_keyed`) and [`LockManager::release_keyed`] record the key, per agent, with
//!   the grant or release (under the manager's mutex, in SQLite's transaction); a retry with the
//!   same key and request returns the first grant (its token, its holds) and adds no hold,
//!   another request is [`Error::IdempotencyConflict`]. Keys are kept [`IDEMPOTENCY_KEY_TTL`]
//!   (24 h), swept by keyed calls; calls without a key do no more than before.
//!   [`LockManager::release_forgetting`] gives back a keyed grant whose answer was lost and
//!   forgets its key in one step, so a retry acquires anew.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use oc_locks::{LockManager, LockManagerExt, LockRequest, MemoryLockManager};
//!
//! let locks = MemoryLockManager::new();
//! let a = locks.try_acquire(&LockRequest::shared("repo/docs", "agent-1")?)?;
//! let b = locks.try_acquire(&LockRequest::shared("repo/docs/intro.md", "agent-2")?)?;
//! assert!(b.token > a.token, "fencing tokens only grow");
//! assert!(locks.try_acquire(&LockRequest::exclusive("repo", "agent-3")?).is_err());
//!
//! let guard = locks.guard(&LockRequest::exclusive("repo/src", "agent-3")?, Duration::from_secs(1))?;
//! assert_eq!(locks.stats()?.active_locks, 3);
//! drop(guard);
//! assert_eq!(locks.stats()?.total_locks, 3);
//! # Ok::<(), oc_locks::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `sqlite`: `SqliteLockManager`. `bundled-sqlite`: the same, compiling SQLite from source.
//! - `testkit`: export [`testkit`], the conformance suite every `LockManager` must pass, its
//!   model-based property test, and `testkit::history`: a concurrent workload and a sequential
//!   model its recorded histories are checked against for linearizability (with `oc-lincheck`).
//! - `tokio`: `AsyncLockManager`, the manager for callers on a tokio runtime: waits run on the
//!   runtime's blocking pool, never a worker, keep their place in the queue, and end when their
//!   future is dropped, taking nothing. Off by default, so the default build has no tokio.
//!
//! # Errors
//!
//! [`Error`] is non-exhaustive. A refused request is `Conflict` (or `Timeout` after waiting) and
//! names the holders; releasing or renewing a lock one does not hold is `NotHeld`, naming who does;
//! a lock that lapsed first is `Expired`. Classify with [`Error::is_conflict`],
//! [`Error::is_not_found`], [`Error::is_invalid_input`] and [`Error::is_retryable`]. Every
//! backend fails the same way, [`Error::Backend`]: a message for people and the backend's own
//! error as the source (a `rusqlite::Error`, a `tokio_postgres::Error`), for a caller that needs
//! its code.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

#[cfg(feature = "tokio")]
mod asynchronous;
pub mod backend;
mod error;
mod idempotency;
mod manager;
mod memory;
mod model;
mod resource;
#[cfg(feature = "sqlite")]
mod sqlite;
mod sync;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

#[cfg(feature = "tokio")]
pub use crate::asynchronous::AsyncLockManager;
pub use crate::backend::{KeepWaiting, WATCH_EVERY};
pub use crate::error::{Error, Result};
pub use crate::idempotency::{
    IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, Keyed, MAX_IDEMPOTENCY_KEY_LEN,
};
pub use crate::manager::{LockGuard, LockManager, LockManagerExt};
pub use crate::memory::MemoryLockManager;
pub use crate::model::{
    Holder, Lock, LockMode, LockRequest, LockStats, OldestLock, OwnerCount, TtlPolicy,
};
pub use crate::resource::{MAX_OWNER_LEN, MAX_RESOURCE_LEN, Owner, Resource};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use crate::sqlite::{SqliteLockManager, SqliteLockOptions};
pub use oc_time::{Clock, ManualClock, SystemClock, Timestamp};
