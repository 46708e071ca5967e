//! The raw SQLite workloads (`sqlite.*` figures).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;

/// Rows loaded by `batch_insert`.
pub const ROWS: usize = 100_000;
/// Rows per transaction.
pub const BATCH: usize = 1_000;
/// Random primary-key reads.
pub const READS: usize = 10_000;
/// Range queries of 100 rows.
pub const RANGES: usize = 1_000;
/// Autocommit updates.
pub const UPDATES: usize = 10_000;

const STATUSES: [&str; 5] = ["created", "running", "paused", "completed", "failed"];

/// A fresh benchmark database in its own temp directory.
pub struct Db {
    /// The connection (one, as in the original).
    pub conn: Connection,
    /// The database file.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    rng: SmallRng,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// ISO-8601 with milliseconds, as `new Date().toISOString()`.
pub fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Opens a fresh file with the benchmark pragmas and schema (indexes before loading).
pub fn open_fresh() -> rusqlite::Result<Db> {
    let dir =
        tempfile::tempdir().map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let path = dir.path().join("bench.db");
    let conn = Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -64000;
             PRAGMA temp_store = MEMORY;
             CREATE TABLE tasks (
                taskId TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                metadata TEXT NOT NULL,
                currentVersion INTEGER NOT NULL,
                createdAt TEXT NOT NULL,
                updatedAt TEXT NOT NULL
             );
             CREATE INDEX idx_status ON tasks(status);
             CREATE INDEX idx_updatedAt ON tasks(updatedAt);",
    )?;
    Ok(Db {
        conn,
        path,
        _dir: dir,
        rng: SmallRng::seed_from_u64(42),
    })
}

/// `batch_insert`: 100 transactions of 1,000 rows, rows generated inside the timed loop.
#[inline(never)]
pub fn batch_insert(db: &mut Db) -> rusqlite::Result<Duration> {
    let start = Instant::now();
    for b in 0..ROWS / BATCH {
        // Generate the batch first, as the original did before each transaction.
        let rows: Vec<(String, &str, String, String)> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| {
                let v: f64 = db.rng.random();
                (
                    format!("task-{i}"),
                    STATUSES[i % 5],
                    format!(
                        r#"{{"value":{v},"nested":{{"data":"test-{i}"}},"array":[1,2,3,4,5]}}"#
                    ),
                    iso_now(),
                )
            })
            .collect();
        let tx = db.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO tasks (taskId, status, metadata, currentVersion, createdAt, updatedAt)
                     VALUES (?1, ?2, ?3, 1, ?4, ?4)",
            )?;
            for (id, status, meta, now) in &rows {
                stmt.execute((id, status, meta, now))?;
            }
        }
        tx.commit()?;
    }
    Ok(start.elapsed())
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<usize> {
    // Read every column, as `SELECT *` into an object would.
    let mut n = 0;
    for i in 0..6 {
        n += match r.get_ref(i)? {
            rusqlite::types::ValueRef::Text(t) => t.len(),
            _ => 1,
        };
    }
    Ok(n)
}

/// `single_read`: 10,000 prepared point reads on uniformly random ids.
#[inline(never)]
pub fn single_read(db: &mut Db) -> rusqlite::Result<Duration> {
    let start = Instant::now();
    let mut stmt = db
        .conn
        .prepare_cached("SELECT * FROM tasks WHERE taskId = ?1")?;
    let mut sink = 0;
    for _ in 0..READS {
        let id = format!("task-{}", db.rng.random_range(0..ROWS));
        let mut rows = stmt.query([&id])?;
        while let Some(r) = rows.next()? {
            sink += read_row(r)?;
        }
    }
    std::hint::black_box(sink);
    Ok(start.elapsed())
}

/// `range_query`: 1,000 queries of 100 rows by status, cycling statuses.
#[inline(never)]
pub fn range_query(db: &mut Db) -> rusqlite::Result<Duration> {
    let start = Instant::now();
    let mut stmt = db
        .conn
        .prepare_cached("SELECT * FROM tasks WHERE status = ?1 LIMIT 100")?;
    let mut sink = 0;
    for q in 0..RANGES {
        let mut rows = stmt.query([STATUSES[q % 5]])?;
        while let Some(r) = rows.next()? {
            sink += read_row(r)?;
        }
    }
    std::hint::black_box(sink);
    Ok(start.elapsed())
}

/// `update`: 10,000 autocommit updates of random rows.
#[inline(never)]
pub fn update(db: &mut Db) -> rusqlite::Result<Duration> {
    let start = Instant::now();
    let mut stmt = db.conn.prepare_cached(
        "UPDATE tasks SET status = 'completed', currentVersion = 2, updatedAt = ?1 WHERE taskId = ?2",
    )?;
    for _ in 0..UPDATES {
        let id = format!("task-{}", db.rng.random_range(0..ROWS));
        stmt.execute((iso_now(), id))?;
    }
    Ok(start.elapsed())
}

/// `full_scan`: one `SELECT *` reading all rows; returns the time and the row count.
#[inline(never)]
pub fn full_scan(db: &mut Db) -> rusqlite::Result<(Duration, usize)> {
    let start = Instant::now();
    let mut stmt = db.conn.prepare_cached("SELECT * FROM tasks")?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    let mut sink = 0;
    while let Some(r) = rows.next()? {
        sink += read_row(r)?;
        n += 1;
    }
    std::hint::black_box(sink);
    Ok((start.elapsed(), n))
}

/// Bytes of the main file and of the WAL, connection still open.
pub fn sizes(db: &Db) -> (u64, u64) {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = db.path.clone().into_os_string();
    wal.push("-wal");
    (size(&db.path), size(Path::new(&wal)))
}

/// Closes the connection (checkpointing the WAL) and returns the main file's size.
pub fn size_after_close(db: Db) -> u64 {
    let Db {
        conn, path, _dir, ..
    } = db;
    drop(conn);
    std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
}

/// A database loaded by `batch_insert`, for the read benches.
pub fn loaded() -> rusqlite::Result<Db> {
    let mut db = open_fresh()?;
    batch_insert(&mut db)?;
    Ok(db)
}
