//! `PgFileImports`: moving a data directory's task files into PostgreSQL (`oc db import-files`,
//! decision 0036), resumable and idempotent.
//!
//! A cursor per data directory (its `source` id), task and stream (`file_imports`) says which
//! line was moved last and the SHA-256 of that line. Each batch of lines is appended through the
//! group commit's own server-side function (`files_append`, after what the database holds) and
//! the cursor advanced in the same transaction, under the cursor row's lock: a killed import
//! resumes after its last committed batch, a rerun moves nothing, and two importers of the same
//! lines never both move them. States and checkpoints need no cursor: a state moves when the
//! task has none, a checkpoint by its id, verified against its manifest before and by the
//! server as it is stored. One concept per file: the schema (`migrations.rs`,
//! `migrations/*.sql`), the statements (`statements.rs`, `sql/*.sql`); this file holds the
//! importer.

use std::sync::Arc;

use oc_jsonl::{
    Checkpoint, Decision, Error, Level, LogEntry, MAX_CHECKPOINT_FILE_BYTES, MAX_STATE_BYTES,
    Result, check_checkpoint_id, check_task_id,
};
use oc_time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::errors::files_error;
use crate::options::PgOptions;
use crate::pool::{Conn, Pool};
use crate::schema::migrate;

mod migrations;
mod statements;

use migrations::{COMPONENT, MIGRATIONS};
use statements::ImportStatements;

/// The most lines one batch holds: each batch commits with its cursor.
pub const IMPORT_BATCH_LINES: usize = 1000;
/// The most bytes (as lines) one batch holds.
pub const IMPORT_BATCH_BYTES: usize = 8 << 20;
/// The longest source id, in bytes.
const MAX_SOURCE_BYTES: usize = 64;
/// The component the task files' schema is recorded under (`files/migrations.rs`).
const FILES_COMPONENT: &str = "oc-files";

/// Which of a task's logs a cursor is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportStream {
    /// `logs.jsonl` (and its rotated files).
    Log,
    /// `decisions.jsonl`.
    Decision,
}

impl ImportStream {
    fn name(self) -> &'static str {
        match self {
            ImportStream::Log => "log",
            ImportStream::Decision => "decision",
        }
    }
}

/// How far the import of one stream of one task from one data directory got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCursor {
    /// The number of the last line moved (1-based, across the rotated files oldest first);
    /// 0 before the first batch.
    pub lines: u64,
    /// The SHA-256 (hex) of that line, as it was read.
    pub last_hash: Option<String>,
    /// The bytes moved, newlines included.
    pub bytes: u64,
}

impl ImportCursor {
    /// Whether `line` (without its newline) is the line this cursor moved last: when it is
    /// not, the source was replaced or rotated away since, and importing on would duplicate or
    /// skip.
    pub fn ends_with(&self, line: &[u8]) -> bool {
        self.last_hash.as_deref() == Some(line_hash(line).as_str())
    }
}

/// What [`PgFileImports::import_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// The lines were appended; the cursor now stands here.
    Moved(ImportCursor),
    /// The cursor was no longer where the caller said (another import moved lines meanwhile):
    /// nothing was written; it stands here.
    Stale(ImportCursor),
}

/// What became of a state or checkpoint offered to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    /// It was not there: it is now.
    Moved,
    /// The same was already there (a state equal to it; a checkpoint with the same files).
    Present,
    /// Something else was there, and is kept.
    Conflict,
}

/// The SHA-256 (hex) of a line, as cursors record it.
pub fn line_hash(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `state.json` holds, as `oc_jsonl` writes it.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    checksum: String,
    #[serde(rename = "savedAt")]
    saved_at: Timestamp,
    state: Value,
}

/// A line read from a data directory as a row: its text (not UTF-8 or with a NUL character,
/// which PostgreSQL's text cannot hold: replaced by U+FFFD, and malformed anyway), its time,
/// level and agent (each `None` for a line that is not a record of its stream).
struct Row {
    ts: i64,
    level: Option<i16>,
    agent: Option<String>,
    body: String,
}

fn row(stream: ImportStream, line: &[u8]) -> Row {
    let body = String::from_utf8_lossy(line).replace('\0', "\u{fffd}");
    match stream {
        ImportStream::Log => match serde_json::from_slice::<LogEntry>(line) {
            Ok(e) => Row {
                ts: e.timestamp.as_millis(),
                level: Level::ALL
                    .iter()
                    .position(|l| *l == e.level)
                    .and_then(|i| i16::try_from(i).ok()),
                agent: None,
                body,
            },
            Err(_) => Row {
                ts: 0,
                level: None,
                agent: None,
                body,
            },
        },
        ImportStream::Decision => match serde_json::from_slice::<Decision>(line) {
            Ok(d) => Row {
                ts: d.timestamp.as_millis(),
                level: None,
                agent: Some(d.agent.replace('\0', "\u{fffd}")),
                body,
            },
            Err(_) => Row {
                ts: 0,
                level: None,
                agent: None,
                body,
            },
        },
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Checks a data directory's id: 1 to 64 bytes of ASCII letters, digits and `-`.
pub fn check_source(source: &str) -> Result<()> {
    if source.is_empty()
        || source.len() > MAX_SOURCE_BYTES
        || !source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::InvalidInput {
            field: "source",
            reason: format!(
                "a data directory's id is 1 to {MAX_SOURCE_BYTES} ASCII letters, digits and '-'"
            ),
        });
    }
    Ok(())
}

/// Moves a data directory's task files into the task-file store's tables on PostgreSQL
/// (those of `PgFileStore` on the same schema), keeping a cursor per data directory, task and
/// stream so that an import resumes and never moves a line twice.
pub struct PgFileImports {
    pool: Pool<ImportStatements>,
    opts: PgOptions,
}

impl std::fmt::Debug for PgFileImports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFileImports")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl PgFileImports {
    /// Connects to the server of `opts` and migrates the schema's task files and import
    /// cursors (once, whatever other hosts do at the same time).
    pub fn connect(opts: PgOptions) -> Result<Self> {
        let pool = Pool::new(&opts, "imports").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
            source: Box::new(e),
        })?;
        let schema = opts.schema.clone();
        let files: Vec<String> = crate::files::MIGRATIONS
            .iter()
            .map(|m| m.replace("{n}", &schema))
            .collect();
        let found = pool
            .dedicated(move |mut c| async move {
                let refs: Vec<&str> = files.iter().map(String::as_str).collect();
                let f = migrate(&mut c, &schema, FILES_COMPONENT, &refs).await?;
                let i = migrate(&mut c, &schema, COMPONENT, MIGRATIONS).await?;
                Ok::<_, tokio_postgres::Error>(f.and(i))
            })
            .map_err(files_error)?;
        if let Err(found) = found {
            return Err(Error::backend(
                "postgres",
                false,
                format!(
                    "the schema {} is at version {found} of its task files or imports, newer \
                     than this build knows",
                    opts.schema
                ),
            ));
        }
        Ok(PgFileImports { pool, opts })
    }

    fn call<T: Send + 'static, Fut>(
        &self,
        f: impl FnOnce(Arc<Conn<ImportStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        self.pool.call(f).map_err(files_error)
    }

    /// `Corrupt` for what was read back from `file` of `task`.
    fn corrupt(&self, task: &str, file: &str, reason: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            path: format!("postgres:{}/tasks/{task}/{file}", self.opts.schema).into(),
            reason: reason.to_string(),
        }
    }

    /// Where the import of `stream` of `task` from data directory `source` got to; `None`
    /// before its first batch.
    pub fn cursor(
        &self,
        source: &str,
        task: &str,
        stream: ImportStream,
    ) -> Result<Option<ImportCursor>> {
        check_source(source)?;
        check_task_id(task)?;
        let (s, t) = (source.to_owned(), task.to_owned());
        let row = self.call(move |c| async move {
            c.client
                .query_opt(&c.stmts.cursor, &[&s, &t, &stream.name()])
                .await
        })?;
        row.map(|r| self.cursor_of(task, &r)).transpose()
    }

    fn cursor_of(&self, task: &str, r: &tokio_postgres::Row) -> Result<ImportCursor> {
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "imports", e);
        Ok(ImportCursor {
            lines: unsigned(r.try_get(0).map_err(bad)?),
            last_hash: r.try_get(1).map_err(bad)?,
            bytes: unsigned(r.try_get(2).map_err(bad)?),
        })
    }

    /// Appends `lines` (each its number in the source and its bytes, without the newline, in
    /// order, numbered after `at.lines`) to `stream` of `task`, after what the database holds,
    /// and moves the cursor of (`source`, `task`, `stream`) to the last of them, in one
    /// transaction. Nothing is written when the cursor is not at `at` ([`Batch::Stale`]).
    /// A line that is not a record of its stream is stored as a malformed row (counted by
    /// readers, as on disk). At most [`IMPORT_BATCH_LINES`] lines and [`IMPORT_BATCH_BYTES`].
    pub fn import_batch(
        &self,
        source: &str,
        task: &str,
        stream: ImportStream,
        at: &ImportCursor,
        lines: &[(u64, Vec<u8>)],
    ) -> Result<Batch> {
        check_source(source)?;
        check_task_id(task)?;
        let bytes: usize = lines.iter().map(|(_, l)| l.len() + 1).sum();
        if lines.len() > IMPORT_BATCH_LINES || bytes > IMPORT_BATCH_BYTES {
            return Err(Error::InvalidInput {
                field: "lines",
                reason: format!(
                    "{} lines of {bytes} bytes in one batch; at most {IMPORT_BATCH_LINES} and \
                     {IMPORT_BATCH_BYTES}",
                    lines.len()
                ),
            });
        }
        let Some((last, last_line)) = lines.last() else {
            return Ok(Batch::Moved(at.clone()));
        };
        if lines.first().is_some_and(|(n, _)| *n <= at.lines)
            || lines.windows(2).any(|w| w[1].0 <= w[0].0)
        {
            return Err(Error::InvalidInput {
                field: "lines",
                reason: "line numbers must increase, after the cursor's".to_owned(),
            });
        }
        let next = ImportCursor {
            lines: *last,
            last_hash: Some(line_hash(last_line)),
            bytes: at.bytes.saturating_add(bytes as u64),
        };
        let rows: Vec<Row> = lines.iter().map(|(_, l)| row(stream, l)).collect();
        let ts: Vec<i64> = rows.iter().map(|r| r.ts).collect();
        let levels: Vec<Option<i16>> = rows.iter().map(|r| r.level).collect();
        let agents: Vec<Option<String>> = rows.iter().map(|r| r.agent.clone()).collect();
        let bodies: Vec<String> = rows.into_iter().map(|r| r.body).collect();
        let count = i32::try_from(bodies.len()).unwrap_or(i32::MAX);
        let (s, t, want, to) = (source.to_owned(), task.to_owned(), at.clone(), next.clone());
        let out = self
            .pool
            .transaction(move |tx, st| {
                Box::pin(async move {
                    let name = stream.name();
                    tx.execute(&st.claim, &[&s, &t, &name]).await?;
                    let r = tx.query_one(&st.lock, &[&s, &t, &name]).await?;
                    let now = ImportCursor {
                        lines: unsigned(r.try_get(0)?),
                        last_hash: r.try_get(1)?,
                        bytes: unsigned(r.try_get(2)?),
                    };
                    if now != want {
                        return Ok(Err(now));
                    }
                    tx.query(
                        &st.append,
                        &[&t, &count, &name, &ts, &levels, &agents, &bodies],
                    )
                    .await?;
                    tx.execute(
                        &st.advance,
                        &[
                            &s,
                            &t,
                            &name,
                            &signed(to.lines),
                            &to.last_hash,
                            &signed(to.bytes),
                        ],
                    )
                    .await?;
                    Ok(Ok(()))
                })
            })
            .map_err(files_error)?;
        Ok(match out {
            Ok(()) => Batch::Moved(next),
            Err(now) => Batch::Stale(now),
        })
    }

    /// Gives `task` the state `state` if it has none ([`Fate::Moved`]); else answers whether
    /// the one it has is equal ([`Fate::Present`]) or not ([`Fate::Conflict`], kept).
    pub fn import_state(&self, task: &str, state: &Value) -> Result<Fate> {
        check_task_id(task)?;
        let invalid = |reason: String| Error::InvalidInput {
            field: "state",
            reason,
        };
        let canonical = serde_json::to_vec(state).map_err(|e| invalid(e.to_string()))?;
        let file = StateFile {
            checksum: hex(&Sha256::digest(&canonical)),
            saved_at: self
                .opts
                .clock
                .as_ref()
                .map_or_else(Timestamp::now, |c| c.now()),
            state: state.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| invalid(e.to_string()))?;
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(invalid(format!(
                "its file would take {} bytes; at most {MAX_STATE_BYTES} are read back",
                bytes.len()
            )));
        }
        let t = task.to_owned();
        let r =
            self.call(
                move |c| async move { c.client.query_one(&c.stmts.state, &[&t, &bytes]).await },
            )?;
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "state.json", e);
        if r.try_get::<_, bool>(0).map_err(bad)? {
            return Ok(Fate::Moved);
        }
        let held: Option<Vec<u8>> = r.try_get(1).map_err(bad)?;
        let same = held
            .and_then(|b| serde_json::from_slice::<StateFile>(&b).ok())
            .is_some_and(|f| f.state == *state);
        Ok(if same { Fate::Present } else { Fate::Conflict })
    }

    /// Stores checkpoint `cp` of `task` with its files (`files`: each name and content, as
    /// the manifest lists them), verified: a file that does not match the manifest's length
    /// and SHA-256 is `Corrupt` and nothing is stored. When the task already has a checkpoint
    /// of that id: [`Fate::Present`] if its files have the same names, lengths and hashes,
    /// else [`Fate::Conflict`] (kept as it is).
    pub fn import_checkpoint(
        &self,
        task: &str,
        cp: &Checkpoint,
        files: &[(String, Vec<u8>)],
    ) -> Result<Fate> {
        check_task_id(task)?;
        check_checkpoint_id(&cp.id)?;
        let path = |name: &str| format!("checkpoints/{}/{name}", cp.id);
        if cp.task_id != task {
            return Err(Error::InvalidInput {
                field: "checkpoint",
                reason: format!("it belongs to another task than {task}"),
            });
        }
        if files.len() != cp.files.len() {
            return Err(Error::InvalidInput {
                field: "checkpoint",
                reason: "give each file its manifest lists, once".to_owned(),
            });
        }
        for f in &cp.files {
            let Some((_, body)) = files.iter().find(|(n, _)| *n == f.name) else {
                return Err(Error::InvalidInput {
                    field: "checkpoint",
                    reason: format!("{} is missing", f.name),
                });
            };
            let (len, sum) = (body.len() as u64, hex(&Sha256::digest(body)));
            if len > MAX_CHECKPOINT_FILE_BYTES || len != f.bytes || sum != f.sha256 {
                return Err(Error::Corrupt {
                    path: path(&f.name).into(),
                    reason: format!(
                        "{len} bytes with SHA-256 {sum}; its manifest says {} bytes with {}",
                        f.bytes, f.sha256
                    ),
                });
            }
        }
        let mut want: Vec<(String, i64, String)> = cp
            .files
            .iter()
            .map(|f| (f.name.clone(), signed(f.bytes), f.sha256.clone()))
            .collect();
        want.sort();
        let (t, id, at, desc) = (
            task.to_owned(),
            cp.id.clone(),
            cp.created_at.as_millis(),
            cp.description.clone(),
        );
        let bodies: Vec<(String, Vec<u8>, String)> = cp
            .files
            .iter()
            .filter_map(|f| {
                files
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map(|(n, b)| (n.clone(), b.clone(), f.sha256.clone()))
            })
            .collect();
        let out = self
            .pool
            .transaction(move |tx, st| {
                Box::pin(async move {
                    tx.execute(&st.touch, &[&t]).await?;
                    if tx
                        .query_opt(&st.checkpoint, &[&t, &id, &at, &desc])
                        .await?
                        .is_some()
                    {
                        for (name, body, sum) in &bodies {
                            if tx
                                .query_opt(&st.checkpoint_file, &[&t, &id, name, body, sum])
                                .await?
                                .is_none()
                            {
                                return Ok(Err(name.clone()));
                            }
                        }
                        return Ok(Ok(Fate::Moved));
                    }
                    let mut held = Vec::new();
                    for r in tx.query(&st.checkpoint_files, &[&t, &id]).await? {
                        held.push((
                            r.try_get::<_, String>(0)?,
                            r.try_get::<_, i64>(1)?,
                            r.try_get::<_, String>(2)?,
                        ));
                    }
                    Ok(Ok(if held == want {
                        Fate::Present
                    } else {
                        Fate::Conflict
                    }))
                })
            })
            .map_err(files_error)?;
        out.map_err(|name| Error::Corrupt {
            path: path(&name).into(),
            reason: "the server's SHA-256 of it differs from its manifest's".to_owned(),
        })
    }
}
