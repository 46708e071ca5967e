//! What `oc db` shows and checks of a PostgreSQL store: the server's figures, this client's
//! slow calls, and the invariants the schema's constraints cannot state.

use oc_tasks::{Result, StorageSource, StorageStats};

use super::PgTaskStore;
use super::row::{corrupt, to_u64};
use super::sql::render;

/// What `oc db stats` shows of a PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PgStorageStats {
    /// `SELECT version()`.
    pub server_version: String,
    /// The database's size on disk.
    pub database_bytes: u64,
    /// The tasks table with its indexes and TOAST.
    pub tasks_bytes: u64,
    /// Buffer hits of the database since the server's statistics were reset.
    pub cache_hits: u64,
    /// Blocks read from disk (or the OS cache) instead.
    pub cache_reads: u64,
    /// The server's block (page) size.
    pub block_size: u64,
}

impl StorageSource for PgTaskStore {
    /// The database's size in its block size, buffer hits and reads (the whole database's,
    /// since the server's statistics were reset), and this client's slow calls; PostgreSQL has
    /// no free list or WAL file of the database's own to report.
    fn storage_stats(&self) -> Result<StorageStats> {
        let st = self.server_stats()?;
        let block = st.block_size.max(1);
        Ok(StorageStats {
            location: format!("postgresql://{}", self.opts.target()),
            file_bytes: st.database_bytes,
            wal_bytes: 0,
            page_count: st.database_bytes / block,
            page_size: block,
            freelist_count: 0,
            cache_hits: st.cache_hits,
            cache_misses: st.cache_reads,
            slow_statements: self.slow.count.load(std::sync::atomic::Ordering::Relaxed),
            slow_threshold_ms: u64::try_from(self.slow.threshold.as_millis()).unwrap_or(u64::MAX),
            recent_slow: self.slow.recent.lock().iter().cloned().collect(),
        })
    }
}

impl PgTaskStore {
    /// Server version, sizes and cache figures.
    pub fn server_stats(&self) -> Result<PgStorageStats> {
        self.storage_stats_pg()
    }

    /// Server version, sizes and cache figures.
    fn storage_stats_pg(&self) -> Result<PgStorageStats> {
        let table = format!("{}.tasks", self.table_schema());
        let row = self.call("storage_stats", move |c| async move {
            c.client
                .query_one(include_str!("sql/server_stats.sql"), &[&table])
                .await
        })?;
        let n = |i: usize| -> Result<u64> {
            let v: i64 = row.try_get(i).map_err(|e| corrupt("(stats)", e))?;
            Ok(to_u64(v))
        };
        Ok(PgStorageStats {
            server_version: row.try_get(0).map_err(|e| corrupt("(stats)", e))?,
            database_bytes: n(1)?,
            tasks_bytes: n(2)?,
            cache_hits: n(3)?,
            cache_reads: n(4)?,
            block_size: n(5)?,
        })
    }

    /// Checks what the schema's constraints cannot: the token sequence lies at or above every
    /// lease token in use or in the history (else a token could be handed out twice), every task's count of
    /// unfinished dependencies matches its edges (else it would be handed out too early, or
    /// never), and the kept counts by status match the tasks. Returns the problems found.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let s = self.table_schema();
        let sql = render(include_str!("sql/check.sql"), &s, &[]);
        let row = self.call("check", move |c| async move {
            c.client.query_one(&sql, &[]).await
        })?;
        let (counter, max, miscounted): (i64, i64, Vec<String>) = (
            row.try_get(0).map_err(|e| corrupt("(check)", e))?,
            row.try_get(1).map_err(|e| corrupt("(check)", e))?,
            row.try_get(2).map_err(|e| corrupt("(check)", e))?,
        );
        let mut problems = Vec::new();
        if counter < max {
            problems.push(format!(
                "the token sequence ({counter}) is below a token in use or recorded ({max})"
            ));
        }
        if !miscounted.is_empty() {
            problems.push(format!(
                "unfinished dependencies miscounted on {}",
                miscounted.join(", ")
            ));
        }
        let off: Vec<String> = row.try_get(3).map_err(|e| corrupt("(check)", e))?;
        if !off.is_empty() {
            problems.push(format!("tasks by status miscounted: {}", off.join("; ")));
        }
        Ok(problems)
    }
}
