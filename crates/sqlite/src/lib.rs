//! SQLite plumbing shared by the opencode-tools stores (`oc-tasks`, `oc-locks`): fencing tokens
//! that are never handed out twice, not even after a power loss; and one implementation of
//! what both stores do with SQLite besides their own tables:
//!
//! - [`Connect`]: opening the writer (in WAL mode, or refused: [`Error::NotWal`]) and the
//!   readers, with the busy timeout, the statement cache and the [`Durability`]'s
//!   `PRAGMA synchronous`;
//! - [`migrate`]: forward-only migrations, one version per component in `oc_schema`;
//! - [`retry_busy`] and [`is_busy`]: trying again while another connection holds the database.
//!
//! Each store keeps its own error type and maps [`Error`] into it.
//!
//! # Why
//!
//! The stores run SQLite in WAL mode with `synchronous=NORMAL`: a commit writes the log but does
//! not wait for `fdatasync`, so a process crash loses nothing while an OS crash or a power loss
//! may roll back the last transactions. That is a fair trade for a task's status, but not for a
//! fencing token. If the transaction that handed out token 42 rolls back, the counter goes back
//! to 41 and the next claimant gets 42 again, so a resource that trusted the first holder's
//! token accepts the second's too.
//!
//! # How
//!
//! [`Fence`] keeps two rows in a component's `(key, value)` meta table: the counter (the last
//! token handed out, written with the transaction that takes it, unsynced) and a ceiling (no
//! token above it was ever returned, always committed with a sync). PostgreSQL keeps its
//! sequences the same way, logging a value ahead of the one it hands out.
//!
//! - A transaction takes tokens through an [`Issuer`] and saves the counter; when a token lies
//!   above the ceiling, the fence is due to settle.
//! - After the commit, and before any token is returned, [`Fence::settle`] raises the ceiling to
//!   the counter plus a reserve (256 by default) in a transaction committed with
//!   `synchronous=FULL`, which syncs the log and so everything committed before it. One sync
//!   thus covers the next 256 tokens.
//! - The first token a handle takes jumps past the ceiling. After a power loss the counter may
//!   have rolled back, but the ceiling, being synced, covers every token ever returned; every
//!   process died with the machine, so every token taken after it comes from a handle's first
//!   jump or above.
//!
//! Tokens therefore strictly increase but are not dense: each handle that takes tokens skips
//! up to a reserve of them.
//!
//! # What survives what
//!
//! For `SqliteTaskStore` (`oc-tasks`) and `SqliteLockManager` (`oc-locks`, feature `sqlite`),
//! once a call has returned:
//!
//! | What | process crash (SIGKILL) | OS crash or power loss (default) | OS crash or power loss with [`Durability::sync_every_commit`] |
//! |---|---|---|---|
//! | tasks created, their transitions and updates | kept | the last changes may roll back (those after the last synced commit); the file stays consistent | kept |
//! | claims (a task running under a lease) | kept | may roll back: the task is as it was before the claim and is claimed again, with a greater token | kept |
//! | locks granted, renewed, released | kept | may roll back: a grant may vanish (the resource is free again), a released lock come back until it expires | kept |
//! | fencing tokens of tasks and of locks | never handed out twice | never handed out twice: every token returned lies below a synced ceiling | never handed out twice |
//! | counters behind the statistics | kept | roll back with their transactions | kept |
//!
//! A rolled-back claim or grant is safe for what the token guards: the next holder's token is
//! greater than the lost one, so a fenced resource still refuses the stale holder.
//! The default syncs once per 256 tokens a handle takes (and once for its first), so that claims
//! and grants cost about what they did without the guarantee; `sync_every_commit(true)` syncs
//! every commit. The in-memory stores (`MemoryTaskStore`, `MemoryLockManager`) keep nothing
//! past their process and never repeat a token while it lives.
//!
//! ```
//! use oc_sqlite::Fence;
//! let mut conn = rusqlite::Connection::open_in_memory()?;
//! conn.execute_batch(
//!     "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
//!      INSERT INTO meta VALUES ('token', 0), ('token_ceiling', 0);",
//! )?;
//! let fence = Fence::new("meta", "token", "token_ceiling", 4);
//! let mut tokens = Vec::new();
//! for _ in 0..6 {
//!     let tx = conn.transaction()?;
//!     let mut issuer = fence.issue(&tx)?;
//!     let token = issuer.take();
//!     issuer.save(&tx)?;
//!     tx.commit()?;
//!     fence.settle(&mut conn)?; // before the token leaves
//!     tokens.push(token);
//! }
//! assert_eq!(tokens, [1, 2, 3, 4, 5, 6]);
//! assert_eq!(fence.syncs(), 2, "one synced commit per reserve of tokens");
//! # Ok::<(), rusqlite::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `testkit`: [`testkit`], a simulated power loss for a SQLite file, built from what `strace`
//!   saw a process write and sync.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

#[cfg(feature = "testkit")]
pub mod testkit;

mod busy;
mod connect;
mod error;
mod migrate;

pub use crate::busy::{BUSY_ATTEMPTS, is_busy, retry_busy};
pub use crate::connect::{Connect, STATEMENT_CACHE};
pub use crate::error::Error;
pub use crate::migrate::migrate;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::{Connection, TransactionBehavior};

/// Tokens covered by one synced commit, unless a store is told otherwise.
pub const DEFAULT_RESERVE: u64 = 256;

/// How a SQLite store trades durability for speed (the table above), the same for every
/// store: `SqliteOptions::durability` in `oc-tasks`, `SqliteLockOptions::durability` in
/// `oc-locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    reserve: u64,
    every_commit: bool,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            reserve: DEFAULT_RESERVE,
            every_commit: false,
        }
    }
}

impl Durability {
    /// Fencing tokens covered by one synced commit (default 256, at least 1). Tokens survive
    /// power loss whatever this is; a larger reserve syncs less often and leaves larger gaps
    /// between the tokens of different handles.
    pub fn token_reserve(mut self, n: u64) -> Self {
        self.reserve = n.max(1);
        self
    }

    /// Waits for `fdatasync` at every commit (`synchronous=FULL`), so that nothing committed
    /// is lost to an OS crash or a power loss, at the cost of a sync per write. Off by default:
    /// then the last changes before such a crash may roll back (fencing tokens never do).
    pub fn sync_every_commit(mut self, on: bool) -> Self {
        self.every_commit = on;
        self
    }

    /// The `PRAGMA synchronous` every connection of the store runs.
    pub fn synchronous_pragma(&self) -> &'static str {
        if self.every_commit {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        }
    }

    /// The fence over the rows `counter` and `ceiling` of `table`, with this reserve.
    pub fn fence(&self, table: &str, counter: &str, ceiling: &str) -> Fence {
        Fence::new(table, counter, ceiling, self.reserve)
    }
}

/// A fencing-token counter in a `(key TEXT, value INTEGER)` table whose tokens survive power
/// loss (see the crate docs).
///
/// One per store handle; its transactions must be serialised by the handle (one writer
/// connection behind a mutex), as the stores do.
pub struct Fence {
    issue_sql: String,
    save_sql: String,
    settle_sql: String,
    reserve: u64,
    /// This handle has synced a ceiling above a token it took: later tokens need no jump.
    primed: AtomicBool,
    /// A committed token lies above the synced ceiling; settle before returning it.
    due: AtomicBool,
    syncs: AtomicU64,
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("reserve", &self.reserve)
            .field("primed", &self.primed.load(Ordering::Relaxed))
            .field("syncs", &self.syncs())
            .finish_non_exhaustive()
    }
}

impl Fence {
    /// A fence over the rows `counter` and `ceiling` of `table`; `reserve` tokens (at least 1)
    /// are covered by each synced commit. The names are the caller's constants, never input.
    pub fn new(table: &str, counter: &str, ceiling: &str, reserve: u64) -> Self {
        Fence {
            issue_sql: format!(
                "SELECT (SELECT value FROM {table} WHERE key = '{counter}'),
                        (SELECT value FROM {table} WHERE key = '{ceiling}')"
            ),
            save_sql: format!("UPDATE {table} SET value = ?1 WHERE key = '{counter}'"),
            settle_sql: format!(
                "UPDATE {table} SET value = max(value,
                    (SELECT value FROM {table} WHERE key = '{counter}') + ?1)
                 WHERE key = '{ceiling}'"
            ),
            reserve: reserve.max(1),
            primed: AtomicBool::new(false),
            due: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        }
    }

    /// Reads the counter and the ceiling, inside the write transaction that takes tokens.
    pub fn issue(&self, tx: &Connection) -> rusqlite::Result<Issuer<'_>> {
        let (last, ceiling): (Option<i64>, Option<i64>) = tx
            .prepare_cached(&self.issue_sql)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let u = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        Ok(Issuer {
            fence: self,
            last: u(last),
            ceiling: u(ceiling),
            issued: None,
        })
    }

    /// Makes every token committed so far durable: when a committed token lies above the
    /// synced ceiling, raises the ceiling past it in a transaction committed with
    /// `synchronous=FULL`. Call after each commit that took tokens, before returning them;
    /// it costs an atomic load when nothing is due.
    pub fn settle(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        if !self.due.load(Ordering::Relaxed) {
            return Ok(());
        }
        let level: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        if level < 2 {
            conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        let synced = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(&self.settle_sql)?
                .execute([i64::try_from(self.reserve).unwrap_or(i64::MAX)])?;
            tx.commit()
        })();
        if level < 2 {
            conn.execute_batch(&format!("PRAGMA synchronous = {level}"))?;
        }
        synced?;
        self.due.store(false, Ordering::Relaxed);
        self.primed.store(true, Ordering::Relaxed);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Synced commits this fence has made.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// The tokens of one write transaction: take them with [`Issuer::take`], then
/// [`Issuer::save`] before the commit.
#[derive(Debug)]
pub struct Issuer<'f> {
    fence: &'f Fence,
    last: u64,
    ceiling: u64,
    issued: Option<u64>,
}

impl Issuer<'_> {
    /// The next token. A handle's first token lies above the synced ceiling, whatever the
    /// counter says, since the counter may have rolled back in a power loss.
    pub fn take(&mut self) -> u64 {
        let base = match self.issued {
            Some(t) => t,
            None if self.fence.primed.load(Ordering::Relaxed) => self.last,
            None => self.last.max(self.ceiling),
        };
        let t = base.saturating_add(1);
        self.issued = Some(t);
        t
    }

    /// Writes the counter when tokens were taken, and marks the fence due to settle when one
    /// lies above the ceiling.
    pub fn save(&self, tx: &Connection) -> rusqlite::Result<()> {
        let Some(t) = self.issued else { return Ok(()) };
        tx.prepare_cached(&self.fence.save_sql)?
            .execute([i64::try_from(t).unwrap_or(i64::MAX)])?;
        if t > self.ceiling {
            self.fence.due.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn db(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta VALUES ('t', 0), ('c', 0);",
        )
        .unwrap();
        c
    }

    fn take(fence: &Fence, conn: &mut Connection, n: usize) -> Vec<u64> {
        let tx = conn.transaction().unwrap();
        let mut issuer = fence.issue(&tx).unwrap();
        let v = (0..n).map(|_| issuer.take()).collect();
        issuer.save(&tx).unwrap();
        tx.commit().unwrap();
        fence.settle(conn).unwrap();
        v
    }

    fn value(conn: &Connection, key: &str) -> u64 {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
    }

    #[test]
    fn the_ceiling_is_raised_by_a_reserve_and_covers_every_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = db(&dir.path().join("a.db"));
        let fence = Fence::new("meta", "t", "c", 10);
        let mut all = Vec::new();
        for n in [1, 3, 9, 1, 12] {
            all.extend(take(&fence, &mut c, n));
            assert!(value(&c, "c") >= *all.last().unwrap());
        }
        assert_eq!(
            all,
            (1..=26).collect::<Vec<_>>(),
            "one handle: dense tokens"
        );
        assert_eq!(
            fence.syncs(),
            3,
            "settled after the batches ending at tokens 1, 13 and 26"
        );
        assert_eq!(
            c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            1,
            "NORMAL again after settling"
        );
    }

    #[test]
    fn a_rolled_back_counter_never_repeats_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = db(&dir.path().join("a.db"));
        let fence = Fence::new("meta", "t", "c", 8);
        let before = take(&fence, &mut c, 5);
        // As after a power loss: the unsynced counter went back, the synced ceiling did not.
        c.execute("UPDATE meta SET value = 2 WHERE key = 't'", [])
            .unwrap();
        let again = Fence::new("meta", "t", "c", 8);
        let after = take(&again, &mut c, 3);
        assert!(
            after[0] > *before.last().unwrap(),
            "{before:?} then {after:?}"
        );
        assert_eq!(
            after[0],
            5 + 8 + 1,
            "the first token of a handle jumps past the ceiling"
        );
    }

    #[test]
    fn two_handles_on_one_file_interleave_strictly_increasing_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let (mut a, mut b) = (db(&path), db(&path));
        let (fa, fb) = (
            Fence::new("meta", "t", "c", 3),
            Fence::new("meta", "t", "c", 3),
        );
        let mut seen = Vec::new();
        for i in 0..20 {
            let (f, c) = if i % 3 == 0 {
                (&fb, &mut b)
            } else {
                (&fa, &mut a)
            };
            seen.extend(take(f, c, 1 + i % 2));
            assert!(value(c, "c") >= *seen.last().unwrap());
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }

    #[test]
    fn a_failed_transaction_leaves_nothing_due() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO meta VALUES ('t', 0), ('c', 0);",
        )
        .unwrap();
        let fence = Fence::new("meta", "t", "c", 4);
        {
            let tx = c.transaction().unwrap();
            let mut issuer = fence.issue(&tx).unwrap();
            issuer.take();
            // Rolled back before saving: nothing is due.
        }
        fence.settle(&mut c).unwrap();
        assert_eq!(fence.syncs(), 0);
        assert_eq!(value(&c, "t"), 0);
    }
}
