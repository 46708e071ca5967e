//! Maintenance: storage figures ([`StorageStats`]), the integrity check, backups.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::{SqliteTaskStore, ffi};
use crate::{Error, Result, StorageStats};

impl SqliteTaskStore {
    /// File sizes, page counts, cache hits and misses, and slow statements.
    pub fn storage_stats(&self) -> Result<StorageStats> {
        let (page_count, page_size, freelist_count) = self.read(|c| {
            Ok((
                c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))?,
                c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))?,
                c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))?,
            ))
        })?;
        let (mut hits, mut misses) = ffi::cache_hits_misses(&self.writer.lock());
        if let Some(pool) = &self.readers {
            for c in pool.lock().iter() {
                let (h, m) = ffi::cache_hits_misses(c);
                hits += h;
                misses += m;
            }
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(StorageStats {
            location: self.path.display().to_string(),
            file_bytes: size(&self.path),
            wal_bytes: size(Path::new(&wal)),
            page_count: u64::try_from(page_count).unwrap_or(0),
            page_size: u64::try_from(page_size).unwrap_or(0),
            freelist_count: u64::try_from(freelist_count).unwrap_or(0),
            cache_hits: hits,
            cache_misses: misses,
            slow_statements: self.slow.count.load(Ordering::Relaxed),
            slow_threshold_ms: u64::try_from(self.slow.threshold.as_millis()).unwrap_or(u64::MAX),
            recent_slow: self.slow.recent.lock().iter().cloned().collect(),
        })
    }

    /// Runs SQLite's `PRAGMA integrity_check`, then checks that every task's count of
    /// unfinished dependencies matches its edges and that the kept counts by status match
    /// the tasks; returns the problems found (empty when healthy).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let problems: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
            let mut problems: Vec<String> = problems.into_iter().filter(|p| p != "ok").collect();
            if problems.is_empty() {
                let miscounted: Vec<String> = c
                    .prepare(
                        "SELECT t.id FROM tasks t WHERE t.waiting <> (
                            SELECT count(*) FROM task_deps d JOIN tasks x ON x.id = d.depends_on
                            WHERE d.task_id = t.id AND x.status <> 'completed')
                         ORDER BY 1 LIMIT 10",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !miscounted.is_empty() {
                    problems.push(format!(
                        "unfinished dependencies miscounted on {}",
                        miscounted.join(", ")
                    ));
                }
                let off: Vec<String> = c
                    .prepare(
                        "SELECT m.key || ' is ' || m.value || ', the tasks say ' || (
                            SELECT count(*) FROM tasks WHERE 'count_' || status = m.key)
                         FROM oc_tasks_meta m WHERE m.key LIKE 'count_%' AND m.value <> (
                            SELECT count(*) FROM tasks WHERE 'count_' || status = m.key)",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !off.is_empty() {
                    problems.push(format!("tasks by status miscounted: {}", off.join("; ")));
                }
            }
            Ok(problems)
        })
    }

    /// Copies a consistent snapshot of the last committed state into a new file at `dest`
    /// (`VACUUM INTO`), while other connections keep working.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest_str = dest.to_str().ok_or_else(|| Error::InvalidInput {
            field: "backup path",
            reason: format!("{} is not valid UTF-8", dest.display()),
        })?;
        self.read(|c| {
            c.execute("VACUUM INTO ?1", [dest_str])?;
            Ok(())
        })
    }
}

impl crate::StorageSource for SqliteTaskStore {
    fn storage_stats(&self) -> Result<StorageStats> {
        SqliteTaskStore::storage_stats(self)
    }
}
