//! Concurrent histories, recorded from threads and processes, checked for linearizability
//! against sequential models: the evidence Jepsen gathers for etcd, for any backend of the
//! opencode-tools traits (the testkits of `oc-tasks` and `oc-locks` build on it).
//!
//! # How
//!
//! - **Recording.** Each operation is an [`Event`]: the process (or thread) that ran it, what
//!   it asked, when it was invoked and when it returned, read from `CLOCK_MONOTONIC`
//!   ([`mono_ns`]), one clock for every process of a host. The invoke time is taken just before
//!   the call and the return time just after it, so the recorded interval contains the real one
//!   and the checker can only be more lenient than the truth, never report a false anomaly.
//!   [`Recorder`] records threads; [`ProcessLog`] has each process append its events to its own
//!   file, one JSON line each, before acting on a result, and [`read_logs`] joins them. An
//!   operation whose process died before it returned has an [`Outcome::Unknown`]: it may have
//!   taken effect at any moment after its invocation, or never (Jepsen's `:info`).
//! - **Models.** A [`Model`] is the object's sequential specification: from a state, an
//!   operation and its answer, the states it may leave behind (none when the answer is
//!   impossible). Returning a set lets a model be lenient where the truth is unknowable from
//!   outside: a lease that lapses between an operation's invoke and return may or may not have
//!   lapsed for it.
//! - **Checking.** [`check`] searches for a linearization: an order of the operations that
//!   respects real time (an operation that returned before another was invoked comes first)
//!   in which the model accepts every answer. It is the Wing–Gong–Lowe search with memoized
//!   configurations (the set of operations linearized and the model state), after Lowe and
//!   after Horn and Kroening; [`check_by`] first splits the history into independent parts
//!   (a key per task, a lock subtree), which keeps each search small (P-compositionality, as
//!   Porcupine does). A search that exceeds its budget is reported undecided, never passed.
//! - **Direct checks.** [`check_tokens`] checks fencing tokens in linear time: no two grants
//!   share a token, and a grant that returned before another was invoked has the smaller one.
//! - **Faults.** [`faults`]: libfiu's preload around a child process (failing or short
//!   `write`s and syncs) and a tmpfs that fills up, for the stores' fault tests.
//! - **Power loss.** [`strace`]: what a process wrote and synced, the raw material of a
//!   simulated power loss (a crash keeps what was synced and may drop the rest).
//! - **TLS.** [`pki`]: an authority and a server certificate for 127.0.0.1, for the tests of
//!   clients that must verify a server (PostgreSQL, SMTP).
//! - **Figures.** [`publish`] appends a check's figures to `OC_RELIABILITY_OUT`, which
//!   `cargo xtask reliability` collects; [`runs`] picks the quick or the soak (`OC_SOAK=1`)
//!   count; [`SplitMix`] draws workloads from a seed, so a failure names what replays it.
//!
//! ```
//! use oc_lincheck::{History, Model, check};
//!
//! /// A register of one integer: writes, and reads that return the value.
//! struct Register;
//! #[derive(Debug)]
//! enum Op { Write(u8), Read }
//!
//! impl Model for Register {
//!     type Op = Op;
//!     type Ret = u8;
//!     type State = u8;
//!     fn init(&self) -> u8 { 0 }
//!     fn step(&self, s: &u8, op: &Op, ret: Option<&u8>) -> Vec<u8> {
//!         match op {
//!             Op::Write(v) => vec![*v],
//!             Op::Read if ret.is_none_or(|r| r == s) => vec![*s],
//!             Op::Read => vec![],
//!         }
//!     }
//! }
//!
//! let mut h = History::new();
//! h.push(1, Op::Write(7), 0, Some((10, 0)));  // process 1 writes 7 during [0, 10]
//! h.push(2, Op::Read, 5, Some((8, 7)));       // a concurrent read sees 7: fine
//! h.push(2, Op::Read, 20, Some((30, 0)));     // a later read sees 0: the write was lost
//! let report = check(&Register, &h);
//! assert!(!report.is_linearizable());
//! assert_eq!(report.failures.len(), 1);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

mod check;
mod clock;
pub mod faults;
mod figures;
mod history;
pub mod pki;
mod rng;
pub mod strace;
mod summary;
mod tokens;

pub use check::{Failure, Model, Report, check, check_by, check_with};
pub use clock::{mono_ns, wall_ms};
pub use figures::{publish, runs, test_name};
pub use history::{
    Call, Event, History, Outcome, ProcessLog, Recorder, Sink, ThreadSink, read_logs, run_threads,
};
pub use rng::SplitMix;
pub use summary::{Checked, Summary, fail};
pub use tokens::{Grant, TokenReport, check_tokens};
