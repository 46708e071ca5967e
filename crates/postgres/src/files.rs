//! `PgFileStore`: a task's log, decisions, state, checkpoints and ship cursors in
//! PostgreSQL, shared by every host (decision 0036).
//!
//! One concept per file: the schema's versions (`migrations.rs`, `migrations/*.sql`) and its
//! server-side functions (`functions/NNNN/*.sql`), the statements (`statements.rs`,
//! `sql/*.sql`), records to lines and back (`row.rs`), the group commit of appends
//! (`commit.rs`), reading (`read.rs`, and queries in `query.rs`), checkpoints
//! (`checkpoint.rs`) and following (`follow.rs`). This file holds the store and the
//! [`TaskFileStore`] methods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_jsonl::{
    After, Append, Appended, Checkpoint, Decision, EntryId, Error, FileCounts, KeyedCheckpoint,
    LogAnalysis, LogCursor, LogEntry, LogVolume, Page, Query, Result, Retention, TaskFileStore,
    check_append_key, check_checkpoint_id, check_task_id,
};
use oc_time::Timestamp;
use serde_json::Value;

use crate::errors::{Failure, files_error, shared_files_error};
use crate::options::PgOptions;
use crate::pool::{Conn, Pool};
use crate::schema::migrate;

mod checkpoint;
mod commit;
mod follow;
mod migrations;
mod query;
mod read;
mod row;
mod state;
mod statements;

use commit::{Queue, Refused, Request, Row, Stream};
use follow::Follow;
use migrations::COMPONENT;
pub(crate) use migrations::MIGRATIONS;
use row::{corrupt, level_code, line, signed, unsigned};
use statements::FileStatements;

/// The most rows one append may hold.
pub const MAX_APPEND_ENTRIES: usize = 100_000;
/// The most bytes (as lines) one append may hold.
pub const MAX_APPEND_BYTES: usize = 64 << 20;
/// The most entries one call of `files_retain` deletes (each call its own transaction).
const RETAIN_STEP: i32 = 10_000;
/// How long idempotency keys are kept, at least.
const KEY_AGE: Duration = Duration::from_secs(24 * 3600);

/// A [`TaskFileStore`] on PostgreSQL: every host connected to the same database and schema
/// reads what any of them wrote.
///
/// - Appends (log entries and decisions) are group-committed: they wait in a bounded queue
///   (4,096 requests) that a committer on the store's runtime drains into one call of the
///   server-side function `files_append` (up to 1,000 requests, 10,000 rows, 8 MiB), which
///   locks the tasks' rows in id order, skips requests whose idempotency key is known
///   (answering their first range as a duplicate), assigns sequence numbers under the row
///   lock (so a task's entries commit in order), inserts, bumps the counters and notifies
///   each task once. Two committers, each on its own connection, so the next batch gathers
///   while one runs. Every caller is answered after the commit; `Ack::Written` alone commits
///   with `synchronous_commit = off`.
/// - Reads are single statements on indexes: a tail reads the primary key backwards (the
///   rows it returns and skips), a level query merges one range per level, the analysis is
///   one `GROUP BY level` on an index-only scan.
/// - Checkpoints are the files a data directory holds, built by the server in one statement
///   with their SHA-256, and beside them each line's time and level or agent; a restore
///   checks every file against its manifest and replaces the log, decisions and state in one
///   transaction, or changes nothing. It reads no line of a checkpoint that kept those, and
///   keeps the entries that are still the file's lines (decision 0038).
/// - `wait` is woken by `LISTEN/NOTIFY` (one listening connection per store), and looks
///   every second as well.
pub struct PgFileStore {
    pool: Pool<FileStatements>,
    opts: PgOptions,
    queue: Arc<Queue>,
    follow: Arc<Follow>,
}

impl std::fmt::Debug for PgFileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFileStore")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl PgFileStore {
    /// Connects to the server of `opts`, migrates the schema's `oc-files` component (once,
    /// whatever other hosts do at the same time), and starts the committers and the listener.
    pub fn connect(opts: PgOptions) -> Result<Self> {
        let pool = Pool::new(&opts, "files").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
            source: Box::new(e),
        })?;
        let schema = opts.schema.clone();
        let migrations: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| m.replace("{n}", &schema))
            .collect();
        let found = pool
            .dedicated(move |mut c| async move {
                let refs: Vec<&str> = migrations.iter().map(String::as_str).collect();
                migrate(&mut c, &schema, COMPONENT, &refs).await
            })
            .map_err(files_error)?;
        if let Err(found) = found {
            return Err(Error::backend(
                "postgres",
                false,
                format!(
                    "the schema {} is at version {found} of {COMPONENT}; this build knows {}",
                    opts.schema,
                    MIGRATIONS.len()
                ),
            ));
        }
        let queue = Arc::new(Queue::default());
        commit::start(&queue, &opts, |f| pool.spawn(f));
        let follow = Arc::new(Follow::default());
        pool.spawn(follow::listen(follow.clone(), opts.clone()));
        Ok(PgFileStore {
            pool,
            opts,
            queue,
            follow,
        })
    }

    /// Connects to `url` with default options.
    pub fn open(url: &str) -> Result<Self> {
        let opts = PgOptions::new(url).map_err(|e| Error::InvalidInput {
            field: "database url",
            reason: e.to_string(),
        })?;
        Self::connect(opts)
    }

    /// The schema the files are in.
    pub fn schema(&self) -> &str {
        &self.opts.schema
    }

    /// The injected clock's time, or `None` for the database's.
    fn clock_ms(&self) -> Option<i64> {
        self.opts.clock.as_ref().map(|c| c.now().as_millis())
    }

    /// Runs `f` on a pooled connection.
    fn call<T: Send + 'static, Fut>(
        &self,
        f: impl FnOnce(Arc<Conn<FileStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        self.pool.call(f).map_err(files_error)
    }

    /// `Corrupt` for what was read from `file` of `task`.
    fn corrupt(&self, task: &str, file: &str, reason: impl std::fmt::Display) -> Error {
        corrupt(&self.opts.schema, task, file, reason)
    }

    /// Appends `rows` to `task`'s `stream` through the group commit.
    fn append(
        &self,
        task: &str,
        stream: Stream,
        rows: Vec<Row>,
        how: &Append<'_>,
    ) -> Result<Appended> {
        if let Some(k) = how.key {
            check_append_key(k)?;
        }
        if rows.len() > MAX_APPEND_ENTRIES {
            return Err(Error::InvalidInput {
                field: "entries",
                reason: format!("{} in one append; at most {MAX_APPEND_ENTRIES}", rows.len()),
            });
        }
        let bytes: usize = rows.iter().map(|r| r.body.len() + 1).sum();
        if bytes > MAX_APPEND_BYTES {
            return Err(Error::InvalidInput {
                field: "entries",
                reason: format!("{bytes} bytes in one append; at most {MAX_APPEND_BYTES}"),
            });
        }
        if rows.is_empty() {
            let end = self.call({
                let task = task.to_owned();
                move |c| async move { c.client.query_one(&c.stmts.log_end, &[&task]).await }
            })?;
            let next: i64 = end
                .try_get(1)
                .map_err(|e| self.corrupt(task, "logs.jsonl", e))?;
            return Ok(Appended {
                first: EntryId(unsigned(next) + 1),
                count: 0,
                duplicate: false,
            });
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.queue.push(Request {
            task: task.to_owned(),
            stream,
            key: how.key.map(str::to_owned),
            durable: how.ack == oc_jsonl::Ack::Durable,
            rows,
            bytes,
            reply,
        });
        match answer.recv() {
            Ok(Ok(p)) => Ok(Appended {
                first: EntryId(unsigned(p.first)),
                count: u32::try_from(p.count).unwrap_or(0),
                duplicate: p.duplicate,
            }),
            Ok(Err(Refused::Own(f))) => Err(files_error(f)),
            Ok(Err(Refused::Shared(e))) => Err(shared_files_error(e)),
            Ok(Err(Refused::Unanswered)) => Err(self.corrupt(
                task,
                stream_file(stream),
                "the group commit did not answer this append",
            )),
            Err(_) => Err(files_error(Failure::Stopped)),
        }
    }

    /// Parses a cursor this store made: `generation:seq`.
    fn parse_cursor(c: &LogCursor) -> Result<(i64, i64)> {
        let bad = || Error::InvalidInput {
            field: "log cursor",
            reason: format!(
                "{:?} is not a PostgreSQL log cursor (generation:seq)",
                c.as_str().chars().take(80).collect::<String>()
            ),
        };
        let (g, s) = c.as_str().split_once(':').ok_or_else(bad)?;
        let g: i64 = g.parse().map_err(|_| bad())?;
        let s: i64 = s.parse().map_err(|_| bad())?;
        if g < 1 || s < 0 {
            return Err(bad());
        }
        Ok((g, s))
    }

    fn cursor(generation: i64, seq: i64) -> Result<LogCursor> {
        LogCursor::new(format!("{generation}:{seq}"))
    }
}

/// The file a stream is on disk, for messages.
fn stream_file(s: Stream) -> &'static str {
    match s {
        Stream::Log => "logs.jsonl",
        Stream::Decision => "decisions.jsonl",
    }
}

/// Refuses text PostgreSQL cannot hold (a NUL character).
fn check_text(field: &'static str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::InvalidInput {
            field,
            reason: "contains a NUL character, which PostgreSQL cannot store".to_owned(),
        });
    }
    Ok(())
}

/// The longest collector name, in bytes, as on disk.
const MAX_COLLECTOR_BYTES: usize = 2048;

/// Checks a collector's name: 1 to [`MAX_COLLECTOR_BYTES`], no control characters.
fn check_collector(c: &str) -> Result<()> {
    if c.is_empty() || c.len() > MAX_COLLECTOR_BYTES || c.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            field: "collector",
            reason: format!("must be 1 to {MAX_COLLECTOR_BYTES} bytes without control characters"),
        });
    }
    Ok(())
}

impl TaskFileStore for PgFileStore {
    fn location(&self) -> String {
        format!("postgres:{}", self.opts.schema)
    }

    fn tasks(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        if let Some(a) = after {
            check_task_id(a)?;
        }
        let after = after.map(str::to_owned);
        let limit = signed(limit);
        let rows =
            self.call(
                move |c| async move { c.client.query(&c.stmts.tasks, &[&after, &limit]).await },
            )?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(|e| self.corrupt("", "", e)))
            .collect()
    }

    fn counts(&self, task: &str) -> Result<FileCounts> {
        check_task_id(task)?;
        let t = task.to_owned();
        let r =
            self.call(move |c| async move { c.client.query_one(&c.stmts.counts, &[&t]).await })?;
        let get = |i: usize| -> Result<i64> {
            r.try_get(i)
                .map_err(|e| self.corrupt(task, "logs.jsonl", e))
        };
        Ok(FileCounts {
            log_entries: unsigned(get(0)?),
            log_bytes: unsigned(get(1)?),
            decisions: unsigned(get(2)?),
            checkpoints: unsigned(get(4)?),
            state: r
                .try_get(3)
                .map_err(|e| self.corrupt(task, "state.json", e))?,
        })
    }

    fn volume(&self) -> Result<LogVolume> {
        let r = self.call(|c| async move { c.client.query_one(&c.stmts.volume, &[]).await })?;
        let get = |i: usize| -> Result<u64> {
            r.try_get::<_, i64>(i)
                .map(unsigned)
                .map_err(|e| self.corrupt("", "", e))
        };
        let tasks = get(0)?;
        Ok(LogVolume {
            tasks,
            files: tasks,
            bytes: get(1)?,
            entries: get(2)?,
        })
    }

    fn append_logs(&self, task: &str, entries: &[LogEntry], how: &Append<'_>) -> Result<Appended> {
        check_task_id(task)?;
        let rows = entries
            .iter()
            .map(|e| {
                Ok(Row {
                    ts: e.timestamp.as_millis(),
                    level: Some(level_code(e.level)),
                    agent: None,
                    body: line(e)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.append(task, Stream::Log, rows, how)
    }

    fn query(&self, task: &str, q: &Query) -> Result<Page<LogEntry>> {
        check_task_id(task)?;
        self.run_query(task, q)
    }

    fn log_tail(&self, task: &str, skip: usize, n: usize) -> Result<Page<LogEntry>> {
        check_task_id(task)?;
        self.tail(task, skip, n)
    }

    fn log_entry(&self, task: &str, id: EntryId) -> Result<Option<LogEntry>> {
        check_task_id(task)?;
        self.entry(task, id)
    }

    fn analyze(&self, task: &str) -> Result<LogAnalysis> {
        check_task_id(task)?;
        self.analysis(task)
    }

    fn log_end(&self, task: &str) -> Result<LogCursor> {
        check_task_id(task)?;
        let (g, s) = self.end(task)?;
        Self::cursor(g, s)
    }

    fn read_after(&self, task: &str, after: Option<&LogCursor>, n: usize) -> Result<After> {
        check_task_id(task)?;
        let at = after.map(Self::parse_cursor).transpose()?;
        self.after(task, at, n)
    }

    fn wait(&self, task: &str, at: &LogCursor, timeout: Duration) -> Result<()> {
        check_task_id(task)?;
        let want = Self::parse_cursor(at)?;
        let deadline = Instant::now() + timeout;
        let mut seen = self.follow.enter(task);
        let out = (|| loop {
            if self.end(task)? != want {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            seen = self
                .follow
                .wait(task, seen, deadline.min(now + follow::POLL));
        })();
        self.follow.leave(task);
        out
    }

    fn append_decision(&self, task: &str, d: &Decision, how: &Append<'_>) -> Result<Appended> {
        check_task_id(task)?;
        check_text("agent", &d.agent)?;
        let row = Row {
            ts: d.timestamp.as_millis(),
            level: None,
            agent: Some(d.agent.clone()),
            body: line(d)?,
        };
        self.append(task, Stream::Decision, vec![row], how)
    }

    fn decisions(
        &self,
        task: &str,
        agent: Option<&str>,
        skip: usize,
        n: usize,
    ) -> Result<Page<Decision>> {
        check_task_id(task)?;
        if let Some(a) = agent {
            check_text("agent", a)?;
        }
        self.decision_page(task, agent, skip, n)
    }

    fn decision(&self, task: &str, id: EntryId) -> Result<Option<Decision>> {
        check_task_id(task)?;
        self.decision_at(task, id)
    }

    fn save_state(&self, task: &str, state: &Value) -> Result<()> {
        check_task_id(task)?;
        self.store_state(task, state)
    }

    fn load_state(&self, task: &str) -> Result<Option<Value>> {
        check_task_id(task)?;
        self.read_state(task)
    }

    fn create_checkpoint(
        &self,
        task: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<Checkpoint> {
        check_task_id(task)?;
        Ok(self.checkpoint(task, description, None, now)?.checkpoint)
    }

    fn create_checkpoint_keyed(
        &self,
        task: &str,
        description: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<KeyedCheckpoint> {
        check_task_id(task)?;
        check_append_key(key)?;
        self.checkpoint(task, description, Some(key), now)
    }

    fn checkpoint_page(
        &self,
        task: &str,
        skip: usize,
        n: usize,
    ) -> Result<(Vec<Checkpoint>, bool)> {
        check_task_id(task)?;
        self.checkpoints_page(task, skip, n)
    }

    fn restore_checkpoint(&self, task: &str, id: &str) -> Result<Checkpoint> {
        check_task_id(task)?;
        check_checkpoint_id(id)?;
        self.restore(task, id)
    }

    fn delete_checkpoints(&self, task: &str, ids: &[String]) -> Result<Vec<String>> {
        check_task_id(task)?;
        for id in ids {
            check_checkpoint_id(id)?;
        }
        self.delete(task, ids)
    }

    fn retain(&self, task: &str, r: &Retention, now: Timestamp) -> Result<u64> {
        check_task_id(task)?;
        let ms = |d: Duration| signed(d.as_millis());
        let (age, entries, bytes) = (
            r.max_age.map(ms),
            r.max_entries.map(signed),
            r.max_bytes.map(signed),
        );
        let (now, key_age) = (now.as_millis(), ms(KEY_AGE));
        let mut total = 0u64;
        loop {
            let t = task.to_owned();
            let row = self.call(move |c| async move {
                c.client
                    .query_one(
                        &c.stmts.retain,
                        &[&t, &age, &entries, &bytes, &now, &RETAIN_STEP, &key_age],
                    )
                    .await
            })?;
            let n: i64 = row
                .try_get(0)
                .map_err(|e| self.corrupt(task, "logs.jsonl", e))?;
            total += unsigned(n);
            if n < i64::from(RETAIN_STEP) {
                return Ok(total);
            }
        }
    }

    fn ship_cursor(&self, task: &str, collector: &str) -> Result<Option<LogCursor>> {
        check_task_id(task)?;
        check_collector(collector)?;
        let (t, c) = (task.to_owned(), collector.to_owned());
        let row = self.call(move |cn| async move {
            cn.client.query_opt(&cn.stmts.ship_cursor, &[&t, &c]).await
        })?;
        match row {
            None => Ok(None),
            Some(r) => {
                let g: i64 = r
                    .try_get(0)
                    .map_err(|e| self.corrupt(task, "logs.jsonl", e))?;
                let s: i64 = r
                    .try_get(1)
                    .map_err(|e| self.corrupt(task, "logs.jsonl", e))?;
                Self::cursor(g, s).map(Some)
            }
        }
    }

    fn set_ship_cursor(&self, task: &str, collector: &str, at: &LogCursor) -> Result<()> {
        check_task_id(task)?;
        check_collector(collector)?;
        let (g, s) = Self::parse_cursor(at)?;
        let (t, c) = (task.to_owned(), collector.to_owned());
        self.call(move |cn| async move {
            cn.client
                .execute(&cn.stmts.set_ship_cursor, &[&t, &c, &g, &s])
                .await
        })?;
        Ok(())
    }
}
