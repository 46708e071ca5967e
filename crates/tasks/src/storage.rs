//! What every store reports about its storage, whatever the backend: [`StorageStats`] for
//! `oc db stats` and the metrics, and the [`SlowStatement`]s among them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// Default threshold above which a statement (or call) is reported as slow (the seed's one
/// second), on every backend.
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(1);

/// A statement (or call) that ran longer than the store's slow threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowStatement {
    /// What ran: SQLite's SQL text (unexpanded: parameters are not included), or the name of
    /// the store's call (PostgreSQL: `claim_next`, say).
    pub sql: String,
    /// How long it took: SQLite's time running the statement; on PostgreSQL the whole call as
    /// this client saw it (queueing and the network included).
    pub duration_us: u64,
    /// When it finished.
    pub at: Timestamp,
}

impl SlowStatement {
    /// Reports it to `tracing`: a `WARN` event of target `oc_tasks` naming the backend.
    pub fn trace(&self, backend: &str) {
        tracing::warn!(
            target: "oc_tasks",
            backend,
            sql = %self.sql,
            duration_us = self.duration_us,
            "slow statement"
        );
    }
}

/// Called for each slow statement, on the thread that ran it.
pub type SlowCallback = Arc<dyn Fn(&SlowStatement) + Send + Sync>;

/// Size, cache and slow-statement figures of a store's database (for `oc db stats` and
/// metrics), whatever the backend: each fills in what it has, and 0 where it has nothing of
/// the kind. SQLite reports its file, its WAL, its pages and free list, and the page-cache
/// figures of this store's connections; PostgreSQL its database's size in its block size and
/// its buffer hits and reads, no WAL file and no free list of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStats {
    /// Where the store is, for people to read: the database file's path on SQLite
    /// (`:memory:` for a private in-memory database), `postgresql://host:port/database
    /// (schema name)` on PostgreSQL. Serialized as `path`, as before it was store-neutral.
    #[serde(rename = "path")]
    pub location: String,
    /// Bytes of the database: the main file (SQLite), the database on disk (PostgreSQL).
    pub file_bytes: u64,
    /// Bytes of the write-ahead log (SQLite's `-wal`), 0 when absent or not the store's own.
    pub wal_bytes: u64,
    /// Pages (blocks) in the database.
    pub page_count: u64,
    /// Bytes per page (block).
    pub page_size: u64,
    /// Unused pages (SQLite's free list; 0 on PostgreSQL).
    pub freelist_count: u64,
    /// Cache hits: SQLite's page cache summed over this store's open connections,
    /// PostgreSQL's buffer hits of the database since the server's statistics were reset.
    pub cache_hits: u64,
    /// Cache misses: pages SQLite read into its cache, blocks PostgreSQL read from outside its
    /// buffers.
    pub cache_misses: u64,
    /// Statements slower than the threshold since the store opened.
    pub slow_statements: u64,
    /// The slow-statement threshold in milliseconds.
    pub slow_threshold_ms: u64,
    /// The most recent slow statements, oldest first.
    pub recent_slow: Vec<SlowStatement>,
}

impl StorageStats {
    /// Database size: page count × page size.
    pub fn database_bytes(&self) -> u64 {
        self.page_count * self.page_size
    }
}
