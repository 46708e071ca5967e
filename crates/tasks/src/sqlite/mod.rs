//! `SqliteTaskStore`: tasks in a SQLite file shared safely by threads and processes.
//!
//! One concept a file: the store and its connections (here), [`SqliteOptions`] (`options.rs`),
//! this store's side of the shared plumbing and the slow-statement log (`connection.rs`; the
//! plumbing itself is `oc_sqlite`'s), the migrations (`schema.rs`), rows and columns
//! (`rows.rs`), the check-and-set every write ends in with the counts and history it keeps
//! (`write.rs`), the edges (`graph.rs`), the `TaskStore` implementation (`store.rs`), listings,
//! counts and statistics (`listing.rs`), storage figures, integrity and backups
//! (`maintenance.rs`), retention of finished tasks (`retention.rs`), and the one FFI call
//! (`ffi.rs`).

mod connection;
mod ffi;
mod graph;
mod keys;
mod listing;
mod maintenance;
mod options;
mod retention;
mod rows;
mod schema;
mod store;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oc_sqlite::Fence;
use parking_lot::Mutex;
use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use self::options::{DEFAULT_BUSY_TIMEOUT, SqliteOptions};

use self::connection::{SlowLog, connect, fence, instrument, plumbing, retry_busy, slow_log};
use crate::Result;

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// A [`crate::TaskStore`] in a SQLite database file.
///
/// One writer connection per store serialises this process's writes without busy-waiting;
/// other processes are kept out by `BEGIN IMMEDIATE` and the busy timeout, so several processes
/// can share one file. Reads use a small pool of connections and never block on writers (WAL).
///
/// ```
/// use oc_tasks::{NewTask, SqliteTaskStore, TaskStore, TaskStatus};
/// let dir = tempfile::tempdir()?;
/// let store = SqliteTaskStore::open(dir.path().join("opencode.db"))?;
/// let t = store.create(NewTask::new("review PR").owner("agent-1"))?;
/// store.start(&t.id, "agent-1")?;
/// let done = store.complete(&t.id, None, Some(serde_json::json!({"ok": true})))?;
/// assert_eq!(done.status, TaskStatus::Completed);
/// assert_eq!(done.owner.as_deref(), Some("agent-1"), "untouched fields survive");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteTaskStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Option<Mutex<Vec<Connection>>>,
    opts: SqliteOptions,
    slow: Arc<SlowLog>,
    fence: Fence,
    /// Bumped by this handle's writes that may make a task ready (other handles and processes
    /// are seen by polling).
    ready: crate::ReadySignal,
}

impl fmt::Debug for SqliteTaskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTaskStore")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl SqliteTaskStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), SqliteOptions::default())
    }

    /// Options to open a store with.
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// A private in-memory database (one connection), for examples and tests.
    pub fn open_in_memory() -> Result<Self> {
        let opts = SqliteOptions::default();
        let slow = slow_log(&opts);
        let mut conn = Connection::open_in_memory()?;
        connect(&opts).configure(&conn, false).map_err(plumbing)?;
        instrument(&mut conn, &slow)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteTaskStore {
            path: PathBuf::from(":memory:"),
            writer: Mutex::new(conn),
            readers: None,
            fence: fence(&opts),
            ready: crate::ReadySignal::new(),
            opts,
            slow,
        })
    }

    fn open_with(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let slow = slow_log(&opts);
        let mut writer = retry_busy(|| {
            let mut c = connect(&opts).writer(path).map_err(plumbing)?;
            instrument(&mut c, &slow)?;
            Ok(c)
        })?;
        retry_busy(|| schema::migrate(&mut writer))?;
        Ok(SqliteTaskStore {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Some(Mutex::new(Vec::new())),
            fence: fence(&opts),
            ready: crate::ReadySignal::new(),
            opts,
            slow,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader connection (the writer's for in-memory stores).
    /// Runs several reads in one read transaction, so that they describe the same snapshot.
    fn read_snapshot<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        self.read(|c| {
            c.execute_batch("BEGIN")?;
            let out = f(c);
            c.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
            out
        })
    }

    fn read<T>(&self, mut f: impl FnMut(&Connection) -> Result<T>) -> Result<T> {
        let Some(pool) = &self.readers else {
            return f(&self.writer.lock());
        };
        let conn = match pool.lock().pop() {
            Some(c) => c,
            None => {
                let mut c = connect(&self.opts).reader(&self.path).map_err(plumbing)?;
                instrument(&mut c, &self.slow)?;
                c
            }
        };
        let out = retry_busy(|| f(&conn));
        let mut idle = pool.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, committing on `Ok`; then
    /// makes any fencing token it took durable before the caller sees it.
    fn write<T>(&self, mut f: impl FnMut(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let out = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })?;
        retry_busy(|| Ok(self.fence.settle(&mut conn)?))?;
        Ok(out)
    }

    /// Synced commits this handle made so that its fencing tokens survive power loss (one per
    /// reserve of tokens, plus one for its first token).
    pub fn token_syncs(&self) -> u64 {
        self.fence.syncs()
    }
}
