//! [`SqliteOptions`]: how to open a [`SqliteTaskStore`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use oc_sqlite::Durability;

use super::SqliteTaskStore;
use crate::{Clock, DEFAULT_SLOW_THRESHOLD, Result, SlowCallback, SlowStatement, SystemClock};

/// Default wait for another writer (thread or process) before a statement gives up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open a [`SqliteTaskStore`].
#[derive(Clone)]
pub struct SqliteOptions {
    pub(super) busy_timeout: Duration,
    pub(super) durability: Durability,
    pub(super) slow_threshold: Duration,
    pub(super) on_slow: Option<SlowCallback>,
    pub(super) clock: Arc<dyn Clock>,
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("busy_timeout", &self.busy_timeout)
            .field("slow_threshold", &self.slow_threshold)
            .field("durability", &self.durability)
            .field("on_slow", &self.on_slow.is_some())
            .field("clock", &self.clock)
            .finish()
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            durability: Durability::default(),
            slow_threshold: DEFAULT_SLOW_THRESHOLD,
            on_slow: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl SqliteOptions {
    /// Default options: 5 s busy timeout, 1 s slow threshold, system clock.
    pub fn new() -> Self {
        Self::default()
    }
    /// How long a statement waits for other writers before failing with a retryable error.
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }
    /// Statements at least this slow are counted and kept in [`crate::StorageStats::recent_slow`].
    pub fn slow_threshold(mut self, d: Duration) -> Self {
        self.slow_threshold = d;
        self
    }
    /// Also calls `f` for each slow statement.
    pub fn on_slow(mut self, f: impl Fn(&SlowStatement) + Send + Sync + 'static) -> Self {
        self.on_slow = Some(Arc::new(f));
        self
    }
    /// What survives an OS crash or a power loss, at what cost (`oc_sqlite::Durability`:
    /// tokens covered by one synced commit, or a sync at every commit).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// The clock for timestamps and leases.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Opens (creating if needed) the database at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteTaskStore> {
        SqliteTaskStore::open_with(path.as_ref(), self)
    }
}
