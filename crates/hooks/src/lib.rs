//! Task lifecycle hooks that can veto, and `TaskLifecycle`, the one API for transitions.
//!
//! # Overview
//!
//! - [`TaskEvent`]: created, started, claimed, completed, failed, cancelled, retried, lease
//!   expired, released, deleted, each with the task as it is after the change; hooks are
//!   registered on kinds of [`oc_tasks::EventKind`], the one list the task's history records
//!   too (a failure retried after a backoff is a `Failed` event; see [`TaskEvent`]).
//! - [`Hooks`]: before-hooks (may veto with a reason: [`Error::Vetoed`]) and after-hooks (run
//!   after the change is committed; errors and panics are caught, counted and reported, never
//!   undo anything), by kind, with priorities (lower first, ties in registration order);
//!   background after-hooks on their own thread behind a bounded queue ([`Overflow`]); slow-hook
//!   reports; per-hook [`HookStats`]; the seed's `register_after_task_start/complete/fail`.
//! - [`TaskLifecycle`]: any `TaskStore` + the hooks: every transition is previewed, offered
//!   to the before-hooks, written with a check-and-set (the store records it in the task's
//!   history in the same transaction) and handed to the after-hooks. Its `*_keyed` methods take
//!   an [`oc_tasks::IdempotencyKey`]: the before-hooks, then the store's keyed call; a replay
//!   (`Keyed::replayed`) runs no after-hook, since they ran when the change was made
//!   (decision 0043).
//! - [`builtin`]: a checkpoint before completion; forwarding events to any `Fn(&TaskEvent)`.
//! - [`Refusal`]: a refused claim or token-checked change said from what the task is now
//!   (who holds it until when, finished when, where a lost lease went), in the words the CLI
//!   and the MCP server both use ([`TaskLifecycle::refusal`]).
//!
//! # Example: the seed's monitoring hooks
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use oc_hooks::{Hooks, TaskLifecycle};
//! use oc_tasks::{MemoryTaskStore, NewTask};
//!
//! let hooks = Arc::new(Hooks::new());
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let s = seen.clone();
//! hooks.register_after_task_start(move |task, agent| s.lock().unwrap().push(format!("started {} by {agent}", task.id)));
//! let s = seen.clone();
//! hooks.register_after_task_complete(move |task, _result| s.lock().unwrap().push(format!("completed {}", task.id)));
//!
//! let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), hooks);
//! let t = life.create(NewTask::new("x").id("t1".parse()?))?.into_task();
//! life.start(&t.id, "agent-1")?;
//! life.complete(&t.id, None, None)?;
//! assert_eq!(*seen.lock().unwrap(), ["started t1 by agent-1", "completed t1"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! [`Error::Vetoed`] names the hook and its reason; store errors pass through as [`Error::Task`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

mod error;
mod event;
mod lifecycle;
mod refusal;
mod registry;

pub use crate::error::{Error, Result};
pub use crate::event::TaskEvent;
pub use crate::lifecycle::{Committed, TaskLifecycle, builtin};
pub use crate::refusal::Refusal;
pub use crate::registry::{
    AfterFn, BeforeFn, DEFAULT_SLOW_THRESHOLD, FailureCallback, HookFailure, HookId, HookInfo,
    HookReport, HookStats, Hooks, Overflow, Phase, SlowHook,
};
