//! `TaskFileStore`: what a task has besides its row (log, decisions, state, checkpoints, ship
//! cursors), behind one trait with a data-directory and a PostgreSQL implementation
//! (decision 0036).
//!
//! The trait is synchronous and object-safe, like `oc_tasks::TaskStore`: callers choose a
//! store once and pass an `Arc<dyn TaskFileStore>` everywhere. Every method validates its
//! task id ([`check_task_id`](crate::check_task_id)) and checkpoint id
//! ([`check_checkpoint_id`](crate::check_checkpoint_id)) before touching anything; whether
//! the task exists is the caller's question (the task store's).
//!
//! An append is acknowledged only once it can be read back and is as durable as its [`Ack`]
//! asks; an append with an idempotency key that was already written writes nothing and
//! answers the first append's [`Appended`] with `duplicate` set.
//!
//! A batch is all or none, to writers and readers alike: a read that runs while a batch is
//! appended sees all of its entries or none of them. On the data directory
//! ([`DirFileStore`]), every write-out of a log holds the file's `flock` exclusively
//! (`LOCK_EX`), and every read of a live log (tails, pages, queries, `analyze`, `read_after`,
//! `log_end`, reads by id, decisions, `overview`, counts) reads only below a length taken
//! under the file's `LOCK_SH`, held just for the `fstat`: readers of a live log read below a
//! length taken under its `LOCK_SH`, and write-outs hold `LOCK_EX`, so a batch is seen whole or
//! not at all. A checkpoint copies the log under its `LOCK_EX`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oc_time::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::{Checkpoint, Decision, Error, LogAnalysis, LogEntry, Query, ReadReport, Result};

mod dir;

pub use dir::{DECISIONS_SCANNED, DirFileStore, MAX_OPEN_WRITERS};

/// The most bytes one file of a checkpoint may hold, on every backend: past it,
/// `create_checkpoint` is [`Error::InvalidInput`] and nothing is written.
pub const MAX_CHECKPOINT_FILE_BYTES: u64 = 256 << 20;

/// The most bytes of an idempotency key ([`Append::key`]).
pub const MAX_APPEND_KEY_BYTES: usize = 200;

/// How many of a stream's newest entries, at least, remember their keys (PostgreSQL also keeps
/// every key for 24 hours).
pub const KEY_WINDOW_ENTRIES: usize = 1_000;

/// An entry's place in its task's log or decisions, for reading it again
/// ([`TaskFileStore::log_entry`], [`TaskFileStore::decision`]).
///
/// It names the same entry until the log is restored or retained; after that it may name
/// another entry or none (as a rotated file's offset did). PostgreSQL: the entry's sequence
/// number. Data directory: the file's generation in the top 16 bits and the byte offset of the
/// line below, so the live file's ids are its offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EntryId(pub u64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A record with the id it is stored under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored<T> {
    /// Where it is.
    pub id: EntryId,
    /// What it is.
    pub record: T,
}

/// Part of a stream, oldest first.
///
/// A page may hold fewer entries than asked with `more` set (a filter that scanned its budget);
/// `next_skip` continues it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The entries, oldest first.
    pub entries: Vec<Stored<T>>,
    /// Whether there are more past this page (older, for a page from the newest end).
    pub more: bool,
    /// The `skip` of the next page.
    pub next_skip: u64,
    /// Malformed lines skipped and torn bytes seen on the way.
    pub read: ReadReport,
}

impl<T> Page<T> {
    /// A page of `entries`; `more` and `next_skip` as described on [`Page`].
    pub fn new(entries: Vec<Stored<T>>, more: bool, next_skip: u64, read: ReadReport) -> Self {
        Page {
            entries,
            more,
            next_skip,
            read,
        }
    }

    /// No entries, nothing more.
    pub fn empty() -> Self {
        Page::new(Vec::new(), false, 0, ReadReport::default())
    }
}

/// How durable an append is when it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ack {
    /// Handed to the operating system (disk) or committed without waiting for the server's
    /// WAL flush (PostgreSQL `synchronous_commit = off`): survives the process, not the
    /// machine.
    Written,
    /// On stable storage: a (group-committed) `fdatasync` on disk, a synchronous commit on
    /// PostgreSQL.
    #[default]
    Durable,
}

/// How to append: the durability asked and an optional idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Append<'a> {
    /// When to acknowledge.
    pub ack: Ack,
    /// A key naming this append: a retry with the same key (same task and stream) writes
    /// nothing. At most [`MAX_APPEND_KEY_BYTES`], printable, checked by [`check_append_key`].
    pub key: Option<&'a str>,
}

impl<'a> Append<'a> {
    /// Durable, without a key.
    pub fn durable() -> Self {
        Append {
            ack: Ack::Durable,
            key: None,
        }
    }

    /// Written, without a key.
    pub fn written() -> Self {
        Append {
            ack: Ack::Written,
            key: None,
        }
    }

    /// With the idempotency key `key`.
    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }
}

/// Whether `key` can be an idempotency key: 1 to [`MAX_APPEND_KEY_BYTES`] bytes, no control
/// characters.
pub fn check_append_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "is empty"
    } else if key.len() > MAX_APPEND_KEY_BYTES {
        "is longer than 200 bytes"
    } else if key.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        field: "idempotency key",
        reason: reason.to_owned(),
    })
}

/// A checkpoint created, or replayed, under an idempotency key
/// ([`TaskFileStore::create_checkpoint_keyed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyedCheckpoint {
    /// The checkpoint: the first one made under the key when `replayed`.
    pub checkpoint: Checkpoint,
    /// The key was known: nothing was created now.
    pub replayed: bool,
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// The first entry's id.
    pub first: EntryId,
    /// How many entries.
    pub count: u32,
    /// The key was known: nothing was written now, and this answers the first append.
    pub duplicate: bool,
}

/// A place in a task's log, for reading what comes after it ([`TaskFileStore::read_after`]).
///
/// Opaque: only the store that made it reads it. A cursor a store cannot read (another
/// store's, or damaged) is [`Error::InvalidInput`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogCursor(String);

impl LogCursor {
    /// The most bytes of a cursor's text.
    pub const MAX_BYTES: usize = 512;

    /// A cursor with the store's own text, refused past [`MAX_BYTES`](Self::MAX_BYTES).
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        if text.len() > Self::MAX_BYTES || text.chars().any(char::is_control) {
            return Err(Error::InvalidInput {
                field: "log cursor",
                reason: "is longer than 512 bytes or holds a control character".to_owned(),
            });
        }
        Ok(LogCursor(text))
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows a cursor ([`TaskFileStore::read_after`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct After {
    /// The entries after the cursor, oldest first.
    pub entries: Vec<Stored<LogEntry>>,
    /// Where the next read starts.
    pub cursor: LogCursor,
    /// The log was replaced (restored, retained) since the cursor was made: `entries` start at
    /// its beginning.
    pub restarted: bool,
    /// Malformed lines skipped on the way.
    pub read: ReadReport,
}

impl After {
    /// What [`TaskFileStore::read_after`] returns.
    pub fn new(
        entries: Vec<Stored<LogEntry>>,
        cursor: LogCursor,
        restarted: bool,
        read: ReadReport,
    ) -> Self {
        After {
            entries,
            cursor,
            restarted,
            read,
        }
    }
}

/// Which of a task's oldest log entries [`TaskFileStore::retain`] deletes: those older than
/// `max_age`, and the oldest past `max_entries` or past `max_bytes` of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Retention {
    /// Entries logged longer ago than this go.
    pub max_age: Option<Duration>,
    /// At most this many entries stay (the newest).
    pub max_entries: Option<u64>,
    /// At most this many bytes of entries stay (the newest).
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// Keeps everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// Entries older than `d` go.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }
    /// The newest `n` stay.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }
    /// The newest entries up to `n` bytes stay.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }
}

/// How much a task has stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FileCounts {
    /// Log entries.
    pub log_entries: u64,
    /// Their bytes, as lines.
    pub log_bytes: u64,
    /// Decisions.
    pub decisions: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Whether a state is saved.
    pub state: bool,
}

/// Every task's logs together, for metrics (the same from every host of a shared store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogVolume {
    /// Tasks with a log.
    pub tasks: u64,
    /// Log files (rotated ones included) on disk; tasks with entries on PostgreSQL.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Complete entries in them.
    pub entries: u64,
}

/// What a task's page asks for at once ([`TaskFileStore::overview`]): the newest end of the
/// log and of the decisions, and a page of checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OverviewRequest {
    /// Log entries skipped from the newest end.
    pub log_skip: usize,
    /// Log entries shown.
    pub log_n: usize,
    /// Decisions skipped from the newest end.
    pub decisions_skip: usize,
    /// Decisions shown.
    pub decisions_n: usize,
    /// Checkpoints skipped, newest first.
    pub checkpoints_skip: usize,
    /// Checkpoints shown.
    pub checkpoints_n: usize,
}

impl OverviewRequest {
    /// `log_n` log entries after skipping `log_skip`, and so on.
    pub fn new(
        (log_skip, log_n): (usize, usize),
        (decisions_skip, decisions_n): (usize, usize),
        (checkpoints_skip, checkpoints_n): (usize, usize),
    ) -> Self {
        OverviewRequest {
            log_skip,
            log_n,
            decisions_skip,
            decisions_n,
            checkpoints_skip,
            checkpoints_n,
        }
    }
}

/// A task's log, decisions and checkpoints as its page shows them; each part fails alone.
#[derive(Debug)]
#[non_exhaustive]
pub struct Overview {
    /// The newest log entries.
    pub log: Result<Page<LogEntry>>,
    /// The newest decisions.
    pub decisions: Result<Page<Decision>>,
    /// Checkpoints, newest first, and whether there are more.
    pub checkpoints: Result<(Vec<Checkpoint>, bool)>,
}

impl Overview {
    /// The three parts.
    pub fn new(
        log: Result<Page<LogEntry>>,
        decisions: Result<Page<Decision>>,
        checkpoints: Result<(Vec<Checkpoint>, bool)>,
    ) -> Self {
        Overview {
            log,
            decisions,
            checkpoints,
        }
    }
}

/// The longest [`TaskFileStore::wait`] sleeps at once when a store cannot be woken.
pub const WAIT_POLL: Duration = Duration::from_millis(200);

/// A task's log, decisions, state, checkpoints and ship cursors: on a data directory
/// (`DirFileStore`) or in PostgreSQL (`oc_postgres::PgFileStore`).
pub trait TaskFileStore: Send + Sync + fmt::Debug {
    /// Where it stores, for messages and `oc health` (a path, or `postgres:<schema>`).
    fn location(&self) -> String;

    /// The ids of tasks with anything stored, sorted, after `after`, at most `limit`.
    fn tasks(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;

    /// How much `task` has stored.
    fn counts(&self, task: &str) -> Result<FileCounts>;

    /// Every task's logs together.
    fn volume(&self) -> Result<LogVolume>;

    /// Appends `entries` to `task`'s log, in order, all or none.
    ///
    /// A record deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) or a line longer than
    /// [`MAX_LINE_BYTES`](crate::MAX_LINE_BYTES) is refused with nothing written.
    fn append_logs(&self, task: &str, entries: &[LogEntry], how: &Append<'_>) -> Result<Appended>;

    /// The entries of `task`'s log that `q` selects.
    fn query(&self, task: &str, q: &Query) -> Result<Page<LogEntry>>;

    /// The `n` entries before the newest `skip`, oldest first; `more` if older ones exist.
    fn log_tail(&self, task: &str, skip: usize, n: usize) -> Result<Page<LogEntry>>;

    /// The log entry `id`, if it is (still) there and readable.
    fn log_entry(&self, task: &str, id: EntryId) -> Result<Option<LogEntry>>;

    /// The seed's analysis of `task`'s whole log.
    fn analyze(&self, task: &str) -> Result<LogAnalysis>;

    /// A cursor at the current end of `task`'s log (for following from now on).
    fn log_end(&self, task: &str) -> Result<LogCursor>;

    /// At most `n` entries after `after` (from the log's start if `None`), oldest first.
    fn read_after(&self, task: &str, after: Option<&LogCursor>, n: usize) -> Result<After>;

    /// Returns when `task`'s log may have grown past `at`, or after `timeout`. The default
    /// sleeps at most [`WAIT_POLL`]: a store that can be woken returns sooner.
    fn wait(&self, task: &str, at: &LogCursor, timeout: Duration) -> Result<()> {
        let _ = at;
        crate::check_task_id(task)?;
        std::thread::sleep(timeout.min(WAIT_POLL));
        Ok(())
    }

    /// Appends a decision to `task`'s decisions.
    fn append_decision(&self, task: &str, d: &Decision, how: &Append<'_>) -> Result<Appended>;

    /// The `n` decisions (by `agent` if given) before the newest `skip`, oldest first.
    fn decisions(
        &self,
        task: &str,
        agent: Option<&str>,
        skip: usize,
        n: usize,
    ) -> Result<Page<Decision>>;

    /// The decision `id`, if it is (still) there and readable.
    fn decision(&self, task: &str, id: EntryId) -> Result<Option<Decision>>;

    /// Replaces `task`'s state (at most [`MAX_STATE_BYTES`](crate::MAX_STATE_BYTES)).
    fn save_state(&self, task: &str, state: &Value) -> Result<()>;

    /// `task`'s state, if saved.
    fn load_state(&self, task: &str) -> Result<Option<Value>>;

    /// Copies `task`'s state, log and decisions into a new checkpoint, with their hashes.
    fn create_checkpoint(
        &self,
        task: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<Checkpoint>;

    /// `n` checkpoints after skipping `skip`, newest first, and whether there are more.
    fn checkpoint_page(&self, task: &str, skip: usize, n: usize)
    -> Result<(Vec<Checkpoint>, bool)>;

    /// Replaces `task`'s state, log and decisions with checkpoint `id`'s, after verifying every
    /// file's hash (else [`Error::Corrupt`] and nothing changed).
    fn restore_checkpoint(&self, task: &str, id: &str) -> Result<Checkpoint>;

    /// Deletes the checkpoints `ids` (those that exist) and returns the ids deleted.
    fn delete_checkpoints(&self, task: &str, ids: &[String]) -> Result<Vec<String>>;

    /// Deletes the oldest log entries past `r`'s bounds; returns how many.
    fn retain(&self, task: &str, r: &Retention, now: Timestamp) -> Result<u64>;

    /// [`create_checkpoint`](Self::create_checkpoint) under an idempotency key (per task,
    /// [`check_append_key`]'s rules), recorded with the checkpoint atomically: a retry with
    /// the same key and description creates nothing and answers the first checkpoint with
    /// `replayed` set (while it exists: a deleted checkpoint takes its key with it); the same
    /// key with another description is [`Error::IdempotencyConflict`]. A refused creation
    /// records no key. The default is [`Error::Unsupported`]: only the store can record the
    /// key with the checkpoint.
    fn create_checkpoint_keyed(
        &self,
        task: &str,
        description: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        let _ = (task, description, key, now);
        Err(Error::Unsupported {
            what: "checkpoint idempotency keys",
        })
    }

    /// Where `collector` last acknowledged `task`'s log, if it did.
    fn ship_cursor(&self, task: &str, collector: &str) -> Result<Option<LogCursor>>;

    /// Records that `collector` acknowledged `task`'s log up to `at`.
    fn set_ship_cursor(&self, task: &str, collector: &str, at: &LogCursor) -> Result<()>;

    /// Appends one entry, durably.
    fn append_log(&self, task: &str, entry: &LogEntry) -> Result<Appended> {
        self.append_logs(task, std::slice::from_ref(entry), &Append::durable())
    }

    /// Every checkpoint, newest first.
    fn checkpoints(&self, task: &str) -> Result<Vec<Checkpoint>> {
        let mut all = Vec::new();
        loop {
            let (page, more) = self.checkpoint_page(task, all.len(), 1_000)?;
            let got = page.len();
            all.extend(page);
            if !more || got == 0 {
                return Ok(all);
            }
        }
    }

    /// Keeps the newest `keep` checkpoints; returns the ids deleted.
    fn prune_checkpoints(&self, task: &str, keep: usize) -> Result<Vec<String>> {
        let doomed: Vec<String> = self
            .checkpoints(task)?
            .into_iter()
            .skip(keep)
            .map(|c| c.id)
            .collect();
        self.delete_checkpoints(task, &doomed)
    }

    /// Keeps the newest checkpoints whose files together fit in `max_bytes`, and always the
    /// newest one; returns the ids deleted.
    fn prune_checkpoints_to_bytes(&self, task: &str, max_bytes: u64) -> Result<Vec<String>> {
        let doomed = crate::task::over_bytes(&self.checkpoints(task)?, max_bytes);
        self.delete_checkpoints(task, &doomed)
    }

    /// What a task's page shows ([`OverviewRequest`]); a store may read it more cheaply than
    /// the three calls the default makes.
    fn overview(&self, task: &str, r: &OverviewRequest) -> Overview {
        Overview::new(
            self.log_tail(task, r.log_skip, r.log_n),
            self.decisions(task, None, r.decisions_skip, r.decisions_n),
            self.checkpoint_page(task, r.checkpoints_skip, r.checkpoints_n),
        )
    }
}

/// Forwards every method, so `&S`, `Box<S>` and `Arc<S>` (and `Arc<dyn TaskFileStore>`) are
/// stores too.
macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<S: TaskFileStore + ?Sized> TaskFileStore for $ty {
            fn location(&self) -> String { (**self).location() }
            fn tasks(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
                (**self).tasks(after, limit)
            }
            fn counts(&self, task: &str) -> Result<FileCounts> { (**self).counts(task) }
            fn volume(&self) -> Result<LogVolume> { (**self).volume() }
            fn append_logs(&self, task: &str, entries: &[LogEntry], how: &Append<'_>)
                -> Result<Appended> { (**self).append_logs(task, entries, how) }
            fn query(&self, task: &str, q: &Query) -> Result<Page<LogEntry>> {
                (**self).query(task, q)
            }
            fn log_tail(&self, task: &str, skip: usize, n: usize) -> Result<Page<LogEntry>> {
                (**self).log_tail(task, skip, n)
            }
            fn log_entry(&self, task: &str, id: EntryId) -> Result<Option<LogEntry>> {
                (**self).log_entry(task, id)
            }
            fn analyze(&self, task: &str) -> Result<LogAnalysis> { (**self).analyze(task) }
            fn log_end(&self, task: &str) -> Result<LogCursor> { (**self).log_end(task) }
            fn read_after(&self, task: &str, after: Option<&LogCursor>, n: usize)
                -> Result<After> { (**self).read_after(task, after, n) }
            fn wait(&self, task: &str, at: &LogCursor, timeout: Duration) -> Result<()> {
                (**self).wait(task, at, timeout)
            }
            fn append_decision(&self, task: &str, d: &Decision, how: &Append<'_>)
                -> Result<Appended> { (**self).append_decision(task, d, how) }
            fn decisions(&self, task: &str, agent: Option<&str>, skip: usize, n: usize)
                -> Result<Page<Decision>> { (**self).decisions(task, agent, skip, n) }
            fn decision(&self, task: &str, id: EntryId) -> Result<Option<Decision>> {
                (**self).decision(task, id)
            }
            fn save_state(&self, task: &str, state: &Value) -> Result<()> {
                (**self).save_state(task, state)
            }
            fn load_state(&self, task: &str) -> Result<Option<Value>> {
                (**self).load_state(task)
            }
            fn create_checkpoint(&self, task: &str, description: &str, now: Timestamp)
                -> Result<Checkpoint> { (**self).create_checkpoint(task, description, now) }
            fn create_checkpoint_keyed(&self, task: &str, description: &str, key: &str,
                now: Timestamp) -> Result<KeyedCheckpoint> {
                (**self).create_checkpoint_keyed(task, description, key, now)
            }
            fn checkpoint_page(&self, task: &str, skip: usize, n: usize)
                -> Result<(Vec<Checkpoint>, bool)> { (**self).checkpoint_page(task, skip, n) }
            fn restore_checkpoint(&self, task: &str, id: &str) -> Result<Checkpoint> {
                (**self).restore_checkpoint(task, id)
            }
            fn delete_checkpoints(&self, task: &str, ids: &[String]) -> Result<Vec<String>> {
                (**self).delete_checkpoints(task, ids)
            }
            fn retain(&self, task: &str, r: &Retention, now: Timestamp) -> Result<u64> {
                (**self).retain(task, r, now)
            }
            fn ship_cursor(&self, task: &str, collector: &str) -> Result<Option<LogCursor>> {
                (**self).ship_cursor(task, collector)
            }
            fn set_ship_cursor(&self, task: &str, collector: &str, at: &LogCursor)
                -> Result<()> { (**self).set_ship_cursor(task, collector, at) }
            fn append_log(&self, task: &str, entry: &LogEntry) -> Result<Appended> {
                (**self).append_log(task, entry)
            }
            fn checkpoints(&self, task: &str) -> Result<Vec<Checkpoint>> {
                (**self).checkpoints(task)
            }
            fn prune_checkpoints(&self, task: &str, keep: usize) -> Result<Vec<String>> {
                (**self).prune_checkpoints(task, keep)
            }
            fn prune_checkpoints_to_bytes(&self, task: &str, max_bytes: u64)
                -> Result<Vec<String>> { (**self).prune_checkpoints_to_bytes(task, max_bytes) }
            fn overview(&self, task: &str, r: &OverviewRequest) -> Overview {
                (**self).overview(task, r)
            }
        }
    )*};
}

forward!(&S, Box<S>, Arc<S>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_printable() {
        assert!(check_append_key("retry-1").is_ok());
        assert!(check_append_key("").unwrap_err().is_invalid_input());
        assert!(check_append_key(&"k".repeat(201)).is_err());
        assert!(check_append_key(&"k".repeat(200)).is_ok());
        assert!(check_append_key("a\nb").is_err());
    }

    #[test]
    fn cursors_are_bounded() {
        assert_eq!(
            LogCursor::new("3:17").map(|c| c.to_string()).ok(),
            Some("3:17".into())
        );
        assert!(LogCursor::new("x".repeat(513)).is_err());
        assert!(LogCursor::new("a\u{1b}[2J").is_err());
    }

    #[test]
    fn the_trait_is_object_safe_through_every_pointer() {
        fn takes(_: &dyn TaskFileStore) {}
        fn boxed(s: Box<dyn TaskFileStore>) -> Arc<dyn TaskFileStore> {
            Arc::new(s)
        }
        let _ = (takes as fn(&dyn TaskFileStore), boxed as fn(_) -> _);
    }
}
