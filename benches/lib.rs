//! The benchmark workloads of `benchmarks.md`, shared by the criterion benches and the
//! `oc-bench-figures` binary that `cargo xtask bench-report` runs.
//!
//! Every workload is reproduced exactly as the original scripts ran it: data generation stays
//! inside the timed loop, the SQLite figures use the benchmark schema (not the product schema),
//! and database sizes are reported for the main file and the WAL separately.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The raw SQLite workloads (`sqlite.*` figures).
pub mod sqlite {
    use super::*;
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
        let dir = tempfile::tempdir()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
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
}

/// Product-path workloads through `oc-tasks`.
pub mod tasks {
    use std::sync::Arc;

    use super::*;
    use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};

    /// A fresh store in its own temp directory.
    pub fn fresh() -> oc_tasks::Result<(SqliteTaskStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().map_err(|e| oc_tasks::Error::Io {
            path: "tempdir".into(),
            source: e,
        })?;
        let store = SqliteTaskStore::open(dir.path().join("opencode.db"))?;
        Ok((store, dir))
    }

    /// `create_many` of `n` tasks in batches of 1,000 (one transaction each).
    pub fn create_many(store: &SqliteTaskStore, n: usize, seed: u64) -> oc_tasks::Result<Duration> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let start = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let batch = chunk
                .iter()
                .map(|i| {
                    NewTask::new(format!("task {i}"))
                        .priority(rng.random_range(0..10))
                        .owner(format!("agent-{}", i % 8))
                        .meta("index", *i)
                })
                .collect();
            store.create_many(batch)?;
        }
        Ok(start.elapsed())
    }

    /// Tasks of the work-graph workloads.
    pub const GRAPH_TASKS: usize = 100_000;
    /// Claims timed by `claim_over_graph`.
    pub const GRAPH_CLAIMS: usize = 5_000;
    /// Dependents of the task `complete_fanout` completes.
    pub const FANOUT: usize = 1_000;

    /// Loads `GRAPH_TASKS` pending tasks in batches of 1,000; with `blocked`, nine in ten wait
    /// for one gate task that is never completed (so they stay blocked), the rest are ready.
    pub fn load_graph(store: &dyn TaskStore, blocked: bool) -> oc_tasks::Result<()> {
        let gate = oc_tasks::TaskId::new("gate")?;
        if blocked {
            store.create(NewTask::new("gate").id(gate.clone()).priority(-1))?;
        }
        for chunk in (0..GRAPH_TASKS).collect::<Vec<_>>().chunks(1000) {
            let batch = chunk
                .iter()
                .map(|i| {
                    let t = NewTask::new(format!("task {i}")).priority((*i % 10) as i32);
                    if blocked && i % 10 != 0 {
                        t.depends_on(gate.clone())
                    } else {
                        t
                    }
                })
                .collect();
            store.create_many(batch)?;
        }
        Ok(())
    }

    /// `claim_next` `GRAPH_CLAIMS` times on one thread over what `load_graph` loaded.
    pub fn claim_over_graph(store: &dyn TaskStore) -> oc_tasks::Result<Duration> {
        let start = Instant::now();
        for _ in 0..GRAPH_CLAIMS {
            store.claim_next("w", Duration::from_secs(600))?;
        }
        Ok(start.elapsed())
    }

    /// Completing one task that `FANOUT` tasks wait for: the time of the `complete` call
    /// (one transaction that makes all of them ready), checked.
    pub fn complete_fanout(store: &dyn TaskStore, run: u64) -> oc_tasks::Result<Duration> {
        let hub = oc_tasks::TaskId::new(format!("hub{run}"))?;
        store.create(NewTask::new("hub").id(hub.clone()))?;
        store.create_many(
            (0..FANOUT)
                .map(|i| NewTask::new(format!("leaf {i}")).depends_on(hub.clone()))
                .collect(),
        )?;
        let t = store.claim(&hub, "w", Duration::from_secs(600))?;
        let start = Instant::now();
        store.complete(&hub, t.lease.map(|l| l.token), None)?;
        let took = start.elapsed();
        let ready = store.count(
            &oc_tasks::TaskFilter::new()
                .readiness(oc_tasks::Readiness::Ready)
                .dependents_of(hub),
        )?;
        if ready != FANOUT as u64 {
            return Err(oc_tasks::Error::InvalidInput {
                field: "fanout",
                reason: format!("{ready} of {FANOUT} dependents ready"),
            });
        }
        Ok(took)
    }

    /// Pages through every ready task, oldest first, 1,000 at a time; returns the tasks seen
    /// and the time.
    pub fn page_ready(store: &dyn TaskStore) -> oc_tasks::Result<(usize, Duration)> {
        let start = Instant::now();
        let mut after = None;
        let mut seen = 0;
        loop {
            let page = store.list(
                &oc_tasks::TaskQuery::new(
                    oc_tasks::TaskFilter::new().readiness(oc_tasks::Readiness::Ready),
                )
                .order(oc_tasks::Order::Oldest)
                .limit(1000)
                .after(after),
            )?;
            seen += page.tasks.len();
            match page.next {
                Some(c) => after = Some(c),
                None => return Ok((seen, start.elapsed())),
            }
        }
    }

    /// Claims `n` tasks with `claim_next` from `threads` threads; returns the time.
    pub fn claim_next(
        store: Arc<SqliteTaskStore>,
        n: usize,
        threads: usize,
    ) -> oc_tasks::Result<Duration> {
        let start = Instant::now();
        let per = n / threads;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let store = store.clone();
                    s.spawn(move || -> oc_tasks::Result<()> {
                        for _ in 0..per {
                            store.claim_next(&format!("w{t}"), Duration::from_secs(60))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("claim thread"))
        })?;
        Ok(start.elapsed())
    }
}

/// Lock workloads (`locks.*` figures).
pub mod locks {
    use super::*;
    use oc_locks::{LockManager, LockRequest};

    /// Iterations of the throughput loop.
    pub const PAIRS: usize = 1_000_000;
    /// Refusals timed by the conflict-detection workload.
    pub const REFUSALS: usize = 100_000;

    /// The ten requests of the throughput loop: iteration i locks `task-<i % 10>` for
    /// `agent-<i % 5>` (exclusive, 1 s TTL); built once, as interned names would be.
    pub fn requests() -> Vec<LockRequest> {
        (0..10)
            .map(|i| {
                LockRequest::exclusive(&format!("task-{i}"), &format!("agent-{}", i % 5))
                    .map(|r| r.ttl(Duration::from_secs(1)))
            })
            .collect::<oc_locks::Result<_>>()
            .unwrap_or_default()
    }

    /// `throughput`: `n` uncontended acquire+release pairs; returns the time.
    #[inline(never)]
    pub fn acquire_release(
        m: &dyn LockManager,
        reqs: &[LockRequest],
        n: usize,
    ) -> oc_locks::Result<Duration> {
        let start = Instant::now();
        for i in 0..n {
            let r = &reqs[i % reqs.len()];
            let l = m.try_acquire(r)?;
            m.release(&l.resource, &l.owner)?;
        }
        Ok(start.elapsed())
    }

    /// `acquisition_latency`: the time of each acquire in `n` pairs, in nanoseconds.
    pub fn acquisition_latencies(
        m: &dyn LockManager,
        reqs: &[LockRequest],
        n: usize,
    ) -> oc_locks::Result<Vec<u64>> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let r = &reqs[i % reqs.len()];
            let t = Instant::now();
            let l = m.try_acquire(r)?;
            v.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
            m.release(&l.resource, &l.owner)?;
        }
        Ok(v)
    }

    /// `conflict_detection`: one owner holds `task-0`; another's exclusive `try_acquire` is
    /// refused `n` times; the time of each refusal in nanoseconds.
    pub fn conflict_latencies(m: &dyn LockManager, n: usize) -> oc_locks::Result<Vec<u64>> {
        let holder = LockRequest::exclusive("task-0", "holder")?;
        let other = LockRequest::exclusive("task-0", "other")?;
        let held = m.try_acquire(&holder)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let refused = m.try_acquire(&other).is_err();
            v.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
            assert!(refused, "the second owner must be refused");
        }
        m.release(&held.resource, &held.owner)?;
        Ok(v)
    }

    /// Contended throughput: `threads` threads each doing `n / threads` pairs on the same ten
    /// resources (thread t uses owner `agent-t`), waiting when a resource is taken.
    pub fn contended(m: &dyn LockManager, threads: usize, n: usize) -> oc_locks::Result<Duration> {
        let start = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || -> oc_locks::Result<()> {
                        let reqs: Vec<LockRequest> = (0..10)
                            .map(|i| {
                                LockRequest::exclusive(&format!("task-{i}"), &format!("agent-{t}"))
                            })
                            .collect::<oc_locks::Result<_>>()?;
                        for i in 0..n / threads {
                            let l = m.acquire(&reqs[i % 10], Duration::from_secs(10))?;
                            m.release(&l.resource, &l.owner)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("lock thread"))
        })?;
        Ok(start.elapsed())
    }

    /// The value at quantile `q` of sorted `v` (index ⌊n·q⌋, as the seed's tracker takes it).
    pub fn quantile(sorted: &[u64], q: f64) -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
        sorted[i]
    }
}

/// JSONL workloads (`jsonl.*` figures).
pub mod jsonl {
    use super::*;
    use oc_jsonl::{Durability, JsonlReader, JsonlWriter, WriterOptions};
    use serde::Serialize;

    /// Records of the append workloads.
    pub const RECORDS: usize = 1_000_000;
    /// Records per `append_batch`.
    pub const BATCH: usize = 100;

    /// The benchmark record, field for field as the original script wrote it.
    ///
    /// Generating it allocates nothing: the task id is held inline and records of the same
    /// millisecond share one timestamp text, as a Rust agent would build its log records.
    #[derive(Debug, Serialize)]
    pub struct Record {
        #[serde(rename = "taskId")]
        task_id: TaskName,
        timestamp: Shared,
        level: &'static str,
        operation: &'static str,
        version: u32,
        data: Data,
    }

    /// The record's `data` object.
    #[derive(Debug, Serialize)]
    pub struct Data {
        index: usize,
        value: f64,
        timestamp: i64,
    }

    /// Text shared by the records that hold it, serialised as a JSON string.
    #[derive(Debug, Clone)]
    pub struct Shared(std::rc::Rc<str>);

    impl Serialize for Shared {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&self.0)
        }
    }

    thread_local! {
        /// The last millisecond formatted, and its text: records of the same millisecond share it.
        static ISO: std::cell::RefCell<(i64, Shared)> = std::cell::RefCell::new((i64::MIN, Shared("".into())));
    }

    /// `now` as ISO-8601 with milliseconds, formatting once per millisecond.
    fn iso(now: SystemTime, ms: i64) -> Shared {
        ISO.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != ms {
                *c = (
                    ms,
                    Shared(humantime::format_rfc3339_millis(now).to_string().into()),
                );
            }
            c.1.clone()
        })
    }

    /// `task-<i>`, held inline and serialised as a JSON string.
    #[derive(Debug)]
    pub struct TaskName {
        text: [u8; 25],
        len: u8,
    }

    impl TaskName {
        /// `task-<i>`, without the formatting machinery.
        fn new(mut i: usize) -> Self {
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (i % 10) as u8;
                i /= 10;
                if i == 0 {
                    break;
                }
            }
            let mut text = [0u8; 25];
            text[..5].copy_from_slice(b"task-");
            let len = 5 + digits.len() - at;
            text[5..len].copy_from_slice(&digits[at..]);
            Self {
                text,
                len: len as u8,
            }
        }
    }

    impl Serialize for TaskName {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let text = std::str::from_utf8(&self.text[..usize::from(self.len)])
                .map_err(serde::ser::Error::custom)?;
            s.serialize_str(text)
        }
    }

    /// Record `i`, generated now (generation is part of the timed loop).
    pub fn record(i: usize, rng: &mut SmallRng) -> Record {
        let now = SystemTime::now();
        let ms = oc_time::Timestamp::from(now).as_millis();
        Record {
            task_id: TaskName::new(i),
            timestamp: iso(now, ms),
            level: "info",
            operation: "log-entry",
            version: 1,
            data: Data {
                index: i,
                value: rng.random(),
                timestamp: ms,
            },
        }
    }

    fn writer(path: &Path, durability: Durability) -> oc_jsonl::Result<JsonlWriter> {
        spinning_writer(path, durability, Duration::ZERO)
    }

    fn spinning_writer(
        path: &Path,
        durability: Durability,
        spin: Duration,
    ) -> oc_jsonl::Result<JsonlWriter> {
        JsonlWriter::open(
            path,
            WriterOptions {
                durability,
                spin,
                ..Default::default()
            },
        )
    }

    /// `simple_append`: `n` records, one `append` each, each handed to the OS before it returns.
    #[inline(never)]
    pub fn simple_append(path: &Path, n: usize) -> oc_jsonl::Result<Duration> {
        let w = writer(path, Durability::Os)?;
        let mut rng = SmallRng::seed_from_u64(7);
        let start = Instant::now();
        for i in 0..n {
            w.append(&record(i, &mut rng))?;
        }
        Ok(start.elapsed())
    }

    /// `batch_append`: the same records, `BATCH` per `append_batch`.
    #[inline(never)]
    pub fn batch_append(path: &Path, n: usize) -> oc_jsonl::Result<Duration> {
        let w = writer(path, Durability::Os)?;
        let mut rng = SmallRng::seed_from_u64(7);
        let start = Instant::now();
        let mut batch = Vec::with_capacity(BATCH);
        for i in 0..n {
            batch.push(record(i, &mut rng));
            if batch.len() == BATCH {
                w.append_batch(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            w.append_batch(&batch)?;
        }
        Ok(start.elapsed())
    }

    /// A record as read back: every field parsed (strings borrowed from the line when unescaped).
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Parsed<'a> {
        #[serde(rename = "taskId", borrow)]
        task_id: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        timestamp: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        level: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        operation: std::borrow::Cow<'a, str>,
        version: u32,
        data: ParsedData,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct ParsedData {
        index: u64,
        value: f64,
        timestamp: i64,
    }

    /// `read_parse`: every line read and parsed into the record type; returns the time and the lines.
    pub fn read_parse(path: &Path) -> oc_jsonl::Result<(Duration, u64)> {
        let start = Instant::now();
        let mut parsed = 0u64;
        let report = JsonlReader::open(path).for_each_line(|_, line| {
            if serde_json::from_slice::<Parsed<'_>>(line).is_ok() {
                parsed += 1;
            }
            true
        })?;
        std::hint::black_box(report);
        Ok((start.elapsed(), parsed))
    }

    /// Bytes of each entry's message in the tail workload, as an agent writes them over MCP.
    pub const TAIL_ENTRY: usize = 800_000;
    /// Entries of the tail workload's log: 44 MB, the log that took 21 s in `oc logs tail`
    /// when each 64 KiB block read re-searched and re-copied what was read before.
    pub const TAIL_LOG_ENTRIES: usize = 55;
    /// Entries the tail workload reads: what a task's page shows.
    pub const TAIL_LINES: usize = 20;

    /// A log at `path` of `entries` entries of [`TAIL_ENTRY`] bytes.
    pub fn large_log(path: &Path, entries: usize) -> oc_jsonl::Result<()> {
        let w = writer(path, Durability::Os)?;
        let message = "x".repeat(TAIL_ENTRY);
        for i in 0..entries {
            let at = oc_time::Timestamp::from_millis(i64::try_from(i).unwrap_or(i64::MAX));
            w.append(
                &oc_jsonl::LogEntry::new(at, oc_jsonl::Level::Info, "big", message.as_str())
                    .with("i", i),
            )?;
        }
        Ok(())
    }

    /// `tail_large`: the last `n` entries of the log at `path`, read backwards and parsed;
    /// returns the time and the entries parsed.
    pub fn tail_large(path: &Path, n: usize) -> oc_jsonl::Result<(Duration, usize)> {
        let start = Instant::now();
        let tail = JsonlReader::open(path).tail_lines(0, n)?;
        let parsed = tail
            .lines
            .iter()
            .filter(|l| serde_json::from_slice::<oc_jsonl::LogEntry>(&l.text).is_ok())
            .count();
        Ok((start.elapsed(), parsed))
    }

    /// A filtered read: records whose `data.index` is a multiple of 1000, streaming.
    pub fn filtered_read(path: &Path) -> oc_jsonl::Result<(Duration, u64, u64)> {
        #[derive(serde::Deserialize)]
        struct Slim {
            data: SlimData,
        }
        #[derive(serde::Deserialize)]
        struct SlimData {
            index: u64,
        }
        let start = Instant::now();
        let mut hits = 0u64;
        let report = JsonlReader::open(path).for_each_line(|_, line| {
            if serde_json::from_slice::<Slim>(line).is_ok_and(|r| r.data.index % 1000 == 0) {
                hits += 1;
            }
            true
        })?;
        Ok((start.elapsed(), report.lines, hits))
    }

    /// Durable appends per second, and appends per `fdatasync`: `writers` threads appending
    /// for `run` under `durability` (waiters spinning for up to `spin` under group commit).
    pub fn durable(
        path: &Path,
        durability: Durability,
        spin: Duration,
        writers: usize,
        run: Duration,
    ) -> oc_jsonl::Result<(f64, f64)> {
        let syncs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = syncs.clone();
        let w = spinning_writer(path, durability, spin)?.observe_fsync(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let start = Instant::now();
        let total: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..writers)
                .map(|t| {
                    let w = &w;
                    s.spawn(move || -> oc_jsonl::Result<usize> {
                        let mut rng = SmallRng::seed_from_u64(t as u64);
                        let mut n = 0;
                        while start.elapsed() < run {
                            w.append(&record(n, &mut rng))?;
                            n += 1;
                        }
                        Ok(n)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("writer thread"))
                .sum::<oc_jsonl::Result<usize>>()
        })?;
        let syncs = syncs.load(std::sync::atomic::Ordering::Relaxed).max(1);
        Ok((
            total as f64 / start.elapsed().as_secs_f64(),
            total as f64 / syncs as f64,
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn records_have_the_original_layout() {
            let mut rng = SmallRng::seed_from_u64(7);
            let line = serde_json::to_string(&record(12_345, &mut rng)).expect("serialise");
            let v: serde_json::Value = serde_json::from_str(&line).expect("parse");
            let ms = v["data"]["timestamp"].as_i64().expect("epoch ms");
            let iso = v["timestamp"].as_str().expect("ISO text");
            assert_eq!(iso.len(), "2026-02-19T10:00:00.000Z".len());
            assert_eq!(
                humantime::parse_rfc3339(iso).expect("ISO-8601"),
                SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
            );
            let value = v["data"]["value"].as_f64().expect("random float");
            let expected = format!(
                r#"{{"taskId":"task-12345","timestamp":"{iso}","level":"info","operation":"log-entry","version":1,"data":{{"index":12345,"value":{value},"timestamp":{ms}}}}}"#
            );
            assert_eq!(line, expected);
        }

        #[test]
        fn task_names_hold_any_index() {
            for i in [0, 9, 10, 99_999, usize::MAX] {
                let json = serde_json::to_string(&TaskName::new(i)).expect("serialise");
                assert_eq!(json, format!("\"task-{i}\""));
            }
        }
    }
}

/// Lifecycle workloads (`hooks.*` figures): the cost of a transition with hooks.
pub mod hooks {
    use super::*;
    use std::sync::Arc;

    use oc_hooks::{Hooks, Overflow, TaskLifecycle};
    use oc_tasks::{MemoryTaskStore, NewTask};

    /// A lifecycle on an in-memory store with `n` trivial after-hooks, inline or background
    /// (no task logs: this measures the hook machinery, not the disk).
    pub fn lifecycle(n: usize, background: bool) -> TaskLifecycle {
        let hooks = Arc::new(Hooks::new());
        for i in 0..n {
            let name = format!("h{i}");
            if background {
                // Drop on overflow: a benchmark must never wait for a worker.
                let _ = hooks.after_background(&name, &[], 0, 65_536, Overflow::Drop, |_| Ok(()));
            } else {
                hooks.after(&name, &[], 0, |_| Ok(()));
            }
        }
        TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), hooks)
    }

    /// `n` creations through `life`; returns the time.
    #[inline(never)]
    pub fn creates(life: &TaskLifecycle, n: usize) -> oc_hooks::Result<Duration> {
        let start = Instant::now();
        for i in 0..n {
            life.create(NewTask::new("t").priority((i % 7) as i32))?;
        }
        Ok(start.elapsed())
    }
}

/// Metrics workloads (`metrics.*` figures).
pub mod metrics {
    use super::*;
    use std::sync::Arc;

    use oc_hooks::{EventKind, Hooks, TaskEvent, TaskLifecycle};
    use oc_metrics::{LatencyTracker, Snapshot};
    use oc_tasks::{MemoryTaskStore, NewTask, TaskId, TaskStore};

    /// A lifecycle on an in-memory store with `n` pending tasks, with or without in-process
    /// instrumentation: an after-hook recording each finished run into a `LatencyTracker`.
    /// (Run durations themselves are counted by every store, instrumented or not.)
    pub fn lifecycle(
        n: usize,
        instrumented: bool,
    ) -> (TaskLifecycle, Vec<TaskId>, Option<Arc<LatencyTracker>>) {
        let hooks = Arc::new(Hooks::new());
        let tracker = instrumented.then(|| Arc::new(LatencyTracker::new(Duration::from_secs(1))));
        if let Some(t) = &tracker {
            let t = t.clone();
            hooks.after(
                "task-duration",
                &[EventKind::Completed, EventKind::Failed],
                0,
                move |ev| {
                    if let TaskEvent::Completed {
                        duration: Some(d), ..
                    }
                    | TaskEvent::Failed {
                        duration: Some(d), ..
                    } = ev
                    {
                        t.record("task", *d);
                    }
                    Ok(())
                },
            );
        }
        let store = Arc::new(MemoryTaskStore::new());
        let ids = store
            .create_many((0..n).map(|i| NewTask::new(format!("t{i}"))).collect())
            .expect("create")
            .into_iter()
            .map(|t| t.id)
            .collect();
        (TaskLifecycle::new(store, hooks), ids, tracker)
    }

    /// Starts and completes each task: two transitions each; returns the time.
    #[inline(never)]
    pub fn run(life: &TaskLifecycle, ids: &[TaskId]) -> oc_hooks::Result<Duration> {
        let start = Instant::now();
        for id in ids {
            life.start(id, "a")?;
            life.complete(id, None, None)?;
        }
        Ok(start.elapsed())
    }

    /// A snapshot with `series` hook series (three per hook), for render timing.
    pub fn big_snapshot(series: usize) -> Snapshot {
        let tasks = MemoryTaskStore::new().stats(0).expect("stats");
        let hooks = (0..series / 3)
            .map(|i| oc_hooks::HookStats {
                id: i as u64,
                name: format!("hook-{i}"),
                runs: i as u64,
                ..Default::default()
            })
            .collect();
        Snapshot {
            taken_at: oc_time::Timestamp::now(),
            tasks,
            locks: None,
            storage: None,
            logs: None,
            process: None,
            latency: Vec::new(),
            violations: Vec::new(),
            hooks,
            alerts: None,
        }
    }
}

/// Peak resident memory of this process so far, in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak-RSS mark so the next [`peak_rss`] covers only what follows (Linux ≥ 4.0).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `oc-alerts`: evaluating many rules over one snapshot.
pub mod alerts {
    use super::*;

    use oc_alerts::{Condition, Engine, Op, Rule, Selector, Severity};
    use oc_locks::{LockManager, LockRequest, MemoryLockManager};
    use oc_metrics::{Snapshot, Sources, collect};
    use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};

    /// A snapshot of 1,000 tasks (100 failed) and a lock manager with conflicts.
    pub fn snapshot() -> Snapshot {
        let store = MemoryTaskStore::new();
        for (i, t) in store
            .create_many((0..1000).map(|i| NewTask::new(format!("t{i}"))).collect())
            .expect("create")
            .into_iter()
            .enumerate()
        {
            if i % 10 == 0 {
                store.start(&t.id, "a").expect("start");
                store.fail(&t.id, None, "boom").expect("fail");
            }
        }
        let locks = MemoryLockManager::new();
        let req = |o: &str| LockRequest::exclusive("repo/a", o).expect("request");
        locks.acquire(&req("one"), Duration::ZERO).expect("lock");
        for _ in 0..3 {
            let _ = locks.try_acquire(&req("two"));
        }
        collect(&Sources::new(&store).locks(&locks)).expect("collect")
    }

    /// `n` rules: a third thresholds over a labelled metric, a third ratios, a third closures;
    /// about half of them fire.
    pub fn rules(n: usize) -> Vec<Rule> {
        (0..n)
            .map(|i| {
                let t = (i % 200) as f64;
                let condition = match i % 3 {
                    0 => Condition::metric(
                        Selector::new("opencode_tasks").label("status", "pending"),
                        Op::Gt,
                        t * 9.0,
                    ),
                    1 => Condition::ratio(
                        Selector::new("opencode_tasks").label("status", "failed"),
                        Selector::new("opencode_tasks"),
                        Op::Gt,
                        t / 1000.0,
                    ),
                    _ => Condition::when(move |s| {
                        let v = s.tasks.total as f64;
                        (v > t * 10.0).then_some(v)
                    }),
                };
                Rule::new(&format!("rule-{i}"), Severity::Medium, condition)
                    .summary("{{name}} at {{value}}")
            })
            .collect()
    }

    /// An engine over `rules(n)`, evaluated once so that it is in its steady state.
    pub fn engine(n: usize, snap: &Snapshot) -> Engine {
        let mut e = Engine::new(rules(n)).expect("rules");
        e.evaluate(snap, oc_time::Timestamp::EPOCH)
            .expect("evaluate");
        e
    }
}

/// The `mcp.*` workloads: tool calls over stdio to a running `oc mcp`, beside the same
/// operations as one `oc` process per call.
pub mod mcp {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

    use anyhow::{Context, bail};
    use serde_json::{Value, json};

    use super::*;

    /// The `oc` binary: `$OC_BIN`, or the one built beside the running executable.
    pub fn oc_binary() -> anyhow::Result<PathBuf> {
        if let Some(p) = std::env::var_os("OC_BIN") {
            return Ok(PathBuf::from(p));
        }
        let exe = std::env::current_exe()?;
        let oc = exe.with_file_name("oc");
        if oc.exists() {
            Ok(oc)
        } else {
            bail!("no oc binary at {} (build it, or set OC_BIN)", oc.display())
        }
    }

    /// A running `oc mcp` on a data directory, after its handshake.
    pub struct Session {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
        next_id: u64,
    }

    impl std::fmt::Debug for Session {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Session")
                .field("next_id", &self.next_id)
                .finish()
        }
    }

    impl Session {
        /// Starts `oc --data-dir <data> mcp --tools all` and shakes hands.
        pub fn start(oc: &Path, data: &Path) -> anyhow::Result<Session> {
            let mut child = Command::new(oc)
                .arg("--data-dir")
                .arg(data)
                .args(["mcp", "--tools", "all"])
                .env("OC_AGENT", "bench")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting oc mcp")?;
            let stdin = child.stdin.take().context("stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("stdout")?);
            let mut s = Session {
                child,
                stdin,
                stdout,
                next_id: 0,
            };
            s.request(
                "initialize",
                json!({"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"oc-bench","version":"1"}}),
            )?;
            Ok(s)
        }

        fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
            self.next_id += 1;
            let msg = json!({"jsonrpc":"2.0","id":self.next_id,"method":method,"params":params});
            let mut line = msg.to_string();
            line.push('\n');
            self.stdin.write_all(line.as_bytes())?;
            self.stdin.flush()?;
            let mut answer = String::new();
            if self.stdout.read_line(&mut answer)? == 0 {
                bail!("oc mcp ended");
            }
            let mut v: Value = serde_json::from_str(&answer)?;
            if v.get("error").is_some() {
                bail!("{method}: {}", v["error"]);
            }
            Ok(v["result"].take())
        }

        /// One tool call, round trip; its `structuredContent` (a refusal is an error).
        pub fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
            let r = self.request("tools/call", json!({"name": tool, "arguments": arguments}))?;
            if r["isError"] == json!(true) {
                bail!("{tool}: {}", r["content"][0]["text"]);
            }
            Ok(r["structuredContent"].clone())
        }
    }

    impl Drop for Session {
        fn drop(&mut self) {
            // Closing stdin ends the server.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Milliseconds each call of `f` took, for `n` calls.
    pub fn latencies(
        n: usize,
        mut f: impl FnMut(usize) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            f(i)?;
            out.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(out)
    }

    /// Runs `oc --data-dir <data> <args>` once, failing unless it succeeds.
    pub fn oc_once(oc: &Path, data: &Path, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(oc)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env("OC_AGENT", "bench")
            .stdout(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "oc {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// The hot paths whose instruction counts are kept in `benches/instructions.json` and checked
/// by CI (`cargo xtask instructions --check`): each function runs its operation `ITERATIONS`
/// times on fixtures made before it, so callgrind's inclusive count of the function divided by
/// the iterations is the cost of one, repeatable on a noisy machine where time is not.
pub mod hot {
    use std::sync::Arc;

    use oc_hooks::{Hooks, TaskLifecycle};
    use oc_jsonl::JsonlWriter;
    use oc_locks::{LockManager, LockRequest};
    use oc_tasks::{TaskId, TaskStore};

    use super::*;

    /// Operations per hot path.
    pub const ITERATIONS: usize = 2_000;
    /// Records per batch in [`batched_append`].
    pub const APPEND_BATCH: usize = 100;

    /// The functions callgrind counts, by the name of their figure.
    pub const PATHS: [(&str, &str); 4] = [
        ("lock_pair", "oc_benches::hot::lock_pair"),
        ("batched_append", "oc_benches::hot::batched_append"),
        ("claim", "oc_benches::hot::claim"),
        (
            "transition_with_hook",
            "oc_benches::hot::transition_with_hook",
        ),
    ];

    /// An uncontended acquire and release on the lock manager, [`ITERATIONS`] times, cycling
    /// through `reqs`.
    #[inline(never)]
    pub fn lock_pair(m: &dyn LockManager, reqs: &[LockRequest]) -> oc_locks::Result<()> {
        for i in 0..ITERATIONS {
            let l = m.try_acquire(&reqs[i % reqs.len()])?;
            m.release(&l.resource, &l.owner)?;
        }
        Ok(())
    }

    /// [`ITERATIONS`] records appended in batches of [`APPEND_BATCH`] (one write each).
    #[inline(never)]
    pub fn batched_append(w: &JsonlWriter, records: &[jsonl::Record]) -> oc_jsonl::Result<()> {
        for batch in records.chunks(APPEND_BATCH) {
            w.append_batch(batch)?;
        }
        Ok(())
    }

    /// [`ITERATIONS`] claims of the next ready task; returns each claimed task and its token.
    #[inline(never)]
    pub fn claim(store: &dyn TaskStore) -> oc_tasks::Result<Vec<(TaskId, u64)>> {
        let mut out = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            if let Some(t) = store.claim_next("hot", Duration::from_secs(3600))? {
                out.push((t.id.clone(), t.lease.map_or(0, |l| l.token)));
            }
        }
        Ok(out)
    }

    /// Each claimed task completed through the lifecycle, whose one before-hook runs first.
    #[inline(never)]
    pub fn transition_with_hook(
        life: &TaskLifecycle,
        claimed: &[(TaskId, u64)],
    ) -> oc_hooks::Result<()> {
        for (id, token) in claimed {
            life.complete(id, Some(*token), None)?;
        }
        Ok(())
    }

    /// Makes the fixtures in `dir` and runs every hot path once, in [`PATHS`] order.
    pub fn run_all(dir: &Path) -> anyhow::Result<()> {
        let locks = oc_locks::SqliteLockManager::open(dir.join("opencode.db"))?;
        let reqs = super::locks::requests();
        lock_pair(&locks, &reqs)?;

        let w = JsonlWriter::open(dir.join("hot.jsonl"), oc_jsonl::WriterOptions::default())?;
        let mut rng = SmallRng::seed_from_u64(7);
        let records: Vec<jsonl::Record> = (0..ITERATIONS)
            .map(|i| jsonl::record(i, &mut rng))
            .collect();
        batched_append(&w, &records)?;

        let store: Arc<dyn TaskStore> =
            Arc::new(oc_tasks::SqliteTaskStore::open(dir.join("opencode.db"))?);
        store.create_many(
            (0..ITERATIONS)
                .map(|i| oc_tasks::NewTask::new(format!("hot {i}")))
                .collect(),
        )?;
        let claimed = claim(&*store)?;
        anyhow::ensure!(claimed.len() == ITERATIONS, "claimed {}", claimed.len());
        let hooks = Arc::new(Hooks::new());
        hooks.before("policy", &[], 0, |_| Ok(()));
        let life = TaskLifecycle::new(store, hooks);
        transition_with_hook(&life, &claimed)?;
        Ok(())
    }
}
