//! Crash-safe JSONL logs and the per-task persistence layers.
//!
//! # Overview
//!
//! - [`JsonlWriter`]: `append` and `append_batch` with a [`Durability`] chosen per writer
//!   (buffered, each append handed to the OS, `fdatasync` per append, or group commit), torn-tail
//!   repair on open, and [`Rotation`] by size or line count with retention. Records are written
//!   as compact JSON, byte for byte as `serde_json::to_writer` writes them (by a serialiser of
//!   our own that is faster on short strings, and leaves what it does not handle to `serde_json`).
//!   A record nested deeper than [`MAX_DEPTH`] (64 levels of arrays and objects) is refused
//!   with nothing written: `serde_json` reads 127, and a record it cannot read back is never
//!   acknowledged.
//! - [`JsonlReader`]: every complete line across rotated files, oldest first, in bounded memory;
//!   malformed lines are skipped and counted with their line numbers, a torn tail is reported;
//!   [`Query`] filters by level, time and fields with limit and offset from either end;
//!   [`JsonlReader::tail`] and [`JsonlReader::tail_lines`] read backwards in blocks of
//!   [`TAIL_BLOCK`], at the cost of the lines they return and skip (each byte searched once,
//!   [`Tail`] says how many), with where each line starts for [`JsonlReader::line_at`];
//!   [`JsonlReader::analyze`] gives the seed's log analysis; [`JsonlReader::count_lines`]
//!   counts lines reading only what was appended since the last count ([`LineCounts`]).
//!   A line longer than [`MAX_LINE_BYTES`] is never held (skipped as malformed; the writer
//!   refuses such a record), a gzipped file is read up to [`MAX_GZ_BYTES`] decompressed, and a
//!   [`Follower`] reads at most [`FOLLOW_CHUNK`] per poll.
//! - [`cut`] and [`SHOWN_BYTES`]: how much of one text of an entry a page or a terminal shows;
//!   [`thousands`]: counts as pages and terminals show them (`1,234,567`).
//! - [`TaskFiles`]: `<data>/tasks/<id>/` with `state.json` (atomic, checksummed),
//!   `logs.jsonl` ([`LogEntry`]), `decisions.jsonl` ([`Decision`]) and `checkpoints/<id>/`
//!   (manifest of files and SHA-256 hashes; create, list, verified restore, prune). Nothing in
//!   the data directory is trusted: every path is built from validated names, and no link is
//!   followed on the way (directories opened with `O_NOFOLLOW`, files reached with `openat`).
//! - [`TaskFileStore`]: the same layers behind one object-safe trait, on a data directory
//!   ([`DirFileStore`]) or in PostgreSQL (`oc_postgres::PgFileStore`), so every host of a fleet
//!   reads what any wrote. [`DirFileStore`] keeps up to [`MAX_OPEN_WRITERS`] writers open (group
//!   commit for [`Ack::Durable`]), takes idempotency keys (a top-level `idem` field on an
//!   append's last line, which readers ignore), and replaces a live log (restore, retention)
//!   under its `flock`, so no process's append is lost. Readers of a live log read below a
//!   length taken under its `LOCK_SH`, and write-outs hold `LOCK_EX`: a batch is seen whole or
//!   not at all. A checkpoint may be made under an idempotency key
//!   ([`TaskFileStore::create_checkpoint_keyed`], per task): the key is written into the
//!   checkpoint's directory before its manifest, under an `flock` on the task's `checkpoints`
//!   directory, and a retry answers the first checkpoint.
//! - `Shipper` (feature `ship`): log aggregation to an HTTP collector in JSON batches, with
//!   retries, backoff and a per-collector cursor kept by the store
//!   (`TaskFileStore::ship_cursor`), so nothing is sent twice or skipped, on any store.
//!
//! # Example
//!
//! ```
//! use oc_jsonl::{JsonlReader, JsonlWriter, Level, LogEntry, Query, WriterOptions};
//! use oc_time::Timestamp;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("logs.jsonl");
//! let w = JsonlWriter::open(&path, WriterOptions::default())?;
//! for (i, level) in [Level::Info, Level::Warn, Level::Error].into_iter().enumerate() {
//!     w.append(&LogEntry::new(Timestamp::from_millis(i as i64), level, "t1", "step").with("i", i))?;
//! }
//! let (warnings, report) = JsonlReader::open(&path).query(&Query::new().min_level(Level::Warn))?;
//! assert_eq!(warnings.len(), 2);
//! assert_eq!((report.malformed, report.torn_tail_bytes), (0, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `ship`: `Shipper`, with `ureq` (rustls) as the HTTP client.
//! - `testkit`: `testkit`, the conformance suite every [`TaskFileStore`] must pass
//!   (`file_store_conformance_tests!`, one `#[test]` per check), the model test
//!   (`testkit::model`) and `testkit::ModelStore`, a store in memory (with `proptest` and
//!   `oc-lincheck`).
//!
//! # Errors
//!
//! [`Error`] is non-exhaustive: I/O errors name their path; a file that fails verification is
//! `Corrupt` and is never silently replaced; path-like task ids are `InvalidTaskId`; a record
//! too deep to read back is `InvalidInput` (field `record`), refused before anything is written;
//! a symbolic link, special file or misplaced directory met in the data directory is `Unsafe`
//! (naming the path and what it is), refused without following, reading or writing through it.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

mod entry;
mod error;
mod fsx;
mod json;
mod reader;
#[cfg(feature = "ship")]
mod ship;
mod store;
mod sync;
mod task;
#[cfg(feature = "testkit")]
pub mod testkit;
mod writer;

pub use crate::entry::{Decision, Level, LogEntry, SHOWN_BYTES, cut, thousands};
pub use crate::error::{Error, Result};
pub use crate::json::{MAX_DEPTH, MAX_LINE_BYTES};
pub use crate::reader::{
    COUNT_BUDGET, FOLLOW_CHUNK, Follower, JsonlReader, LineAt, LineCount, LineCounts, LogAnalysis,
    MAX_GZ_BYTES, Query, ReadReport, TAIL_BLOCK, Tail, TailLine, read_records,
};
#[cfg(feature = "ship")]
pub use crate::ship::{ShipOptions, ShipReport, Shipper};
pub use crate::store::{
    Ack, After, Append, Appended, DECISIONS_SCANNED, DirFileStore, EntryId, FileCounts,
    KEY_WINDOW_ENTRIES, KeyedCheckpoint, LogCursor, LogVolume, MAX_APPEND_KEY_BYTES,
    MAX_CHECKPOINT_FILE_BYTES, MAX_OPEN_WRITERS, Overview, OverviewRequest, Page, Retention,
    Stored, TaskFileStore, WAIT_POLL, check_append_key,
};
pub use crate::task::{
    Checkpoint, CheckpointBodies, CheckpointFile, MAX_DESCRIPTION, MAX_MANIFEST_BYTES,
    MAX_STATE_BYTES, TaskFiles, check_checkpoint_id, check_task_id, read_file, write_atomic,
};
pub use crate::writer::{
    Durability, JsonlWriter, MAX_SPIN, Rotation, WriterOptions, existing_rotated, rotated_path,
};
