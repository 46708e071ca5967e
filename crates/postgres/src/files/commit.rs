//! Group commit: appends wait in a bounded queue; a committer task on the store's runtime
//! takes what waits (up to [`MAX_REQUESTS`] requests, [`MAX_ROWS`] rows, [`MAX_BYTES`] bytes)
//! into one call of `files_append`, and answers each caller after the commit. Two committers,
//! each with a connection of its own, so the next batch gathers while one runs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::errors::Failure;
use crate::options::PgOptions;

/// Requests that may wait at once; a caller past it waits for room.
pub(super) const QUEUE: usize = 4_096;
/// The most requests in one call.
pub(super) const MAX_REQUESTS: usize = 1_000;
/// The most rows in one call (a request with more goes alone).
pub(super) const MAX_ROWS: usize = 10_000;
/// The most bytes of bodies in one call (a request with more goes alone).
pub(super) const MAX_BYTES: usize = 8 << 20;
/// Committers, each with a connection of its own.
const COMMITTERS: usize = 2;

/// Which of a task's streams a request appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Log,
    Decision,
}

impl Stream {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Stream::Log => "log",
            Stream::Decision => "decision",
        }
    }
}

/// One row to append: its time in milliseconds, level (logs; `None` never sent by us),
/// agent (decisions) and line.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) ts: i64,
    pub(super) level: Option<i16>,
    pub(super) agent: Option<String>,
    pub(super) body: String,
}

/// What a committed request got: its first `seq`, how many, and whether its key was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placed {
    pub(super) first: i64,
    pub(super) count: i32,
    pub(super) duplicate: bool,
}

/// Why a request was not committed.
#[derive(Debug)]
pub(super) enum Refused {
    /// The call failed; the error is the caller's alone (a batch of one).
    Own(Failure),
    /// The call of a batch of several failed: each caller gets the shared error.
    Shared(Arc<tokio_postgres::Error>),
    /// The server answered something other than one row per request.
    Unanswered,
}

/// One caller's append.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) task: String,
    pub(super) stream: Stream,
    pub(super) key: Option<String>,
    /// Wait for the WAL's flush (`Ack::Durable`).
    pub(super) durable: bool,
    pub(super) rows: Vec<Row>,
    /// Bytes of the rows' bodies.
    pub(super) bytes: usize,
    pub(super) reply: SyncSender<Result<Placed, Refused>>,
}

/// The queue the committers drain.
#[derive(Debug, Default)]
pub(super) struct Queue {
    waiting: Mutex<VecDeque<Request>>,
    room: Condvar,
    ready: tokio::sync::Notify,
}

impl Queue {
    /// Queues `r`, waiting for room while [`QUEUE`] requests wait.
    pub(super) fn push(&self, r: Request) {
        let mut q = self.waiting.lock();
        while q.len() >= QUEUE {
            self.room.wait_for(&mut q, Duration::from_millis(100));
        }
        q.push_back(r);
        drop(q);
        self.ready.notify_one();
    }

    /// What waits, within the bounds of one call (the first request always).
    fn take(&self) -> Vec<Request> {
        let mut q = self.waiting.lock();
        let (mut rows, mut bytes) = (0usize, 0usize);
        let mut batch = Vec::new();
        while let Some(r) = q.front() {
            let over = batch.len() >= MAX_REQUESTS
                || rows + r.rows.len() > MAX_ROWS
                || bytes + r.bytes > MAX_BYTES;
            if over && !batch.is_empty() {
                break;
            }
            rows += r.rows.len();
            bytes += r.bytes;
            if let Some(r) = q.pop_front() {
                batch.push(r);
            }
        }
        if !q.is_empty() {
            // The other committer can take the rest now.
            self.ready.notify_one();
        }
        drop(q);
        self.room.notify_all();
        batch
    }
}

/// Starts the committers on the runtime of `spawn`.
pub(super) fn start(
    queue: &Arc<Queue>,
    opts: &PgOptions,
    spawn: impl Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) {
    for _ in 0..COMMITTERS {
        let (queue, opts) = (queue.clone(), opts.clone());
        spawn(Box::pin(run(queue, opts)));
    }
}

/// A committer: takes batches and commits each with one call, until the runtime stops.
async fn run(queue: Arc<Queue>, opts: PgOptions) {
    let mut conn: Option<(Client, Statement)> = None;
    loop {
        let batch = queue.take();
        if batch.is_empty() {
            queue.ready.notified().await;
            continue;
        }
        let now = opts.clock.as_ref().map(|c| c.now().as_millis());
        commit(&mut conn, &opts, batch, now).await;
    }
}

/// The parameters of `sql/append.sql`, in its order (`$1` … `$10`).
struct AppendParams {
    tasks: Vec<String>,
    keys: Vec<Option<String>>,
    streams: Vec<&'static str>,
    /// Each row's request, from 1.
    requests: Vec<i32>,
    ts: Vec<i64>,
    levels: Vec<Option<i16>>,
    agents: Vec<Option<String>>,
    bodies: Vec<String>,
    now: Option<i64>,
    written_only: bool,
}

impl AppendParams {
    /// The batch's parameters (its rows moved out of it) and the callers to answer.
    fn new(
        batch: Vec<Request>,
        now: Option<i64>,
    ) -> (Self, Vec<SyncSender<Result<Placed, Refused>>>) {
        let rows: usize = batch.iter().map(|r| r.rows.len()).sum();
        let mut p = AppendParams {
            tasks: Vec::with_capacity(batch.len()),
            keys: Vec::with_capacity(batch.len()),
            streams: Vec::with_capacity(batch.len()),
            requests: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            levels: Vec::with_capacity(rows),
            agents: Vec::with_capacity(rows),
            bodies: Vec::with_capacity(rows),
            now,
            written_only: batch.iter().all(|r| !r.durable),
        };
        let mut replies = Vec::with_capacity(batch.len());
        for (i, r) in batch.into_iter().enumerate() {
            let request = i32::try_from(i + 1).unwrap_or(i32::MAX);
            p.tasks.push(r.task);
            p.keys.push(r.key);
            p.streams.push(r.stream.as_str());
            for row in r.rows {
                p.requests.push(request);
                p.ts.push(row.ts);
                p.levels.push(row.level);
                p.agents.push(row.agent);
                p.bodies.push(row.body);
            }
            replies.push(r.reply);
        }
        (p, replies)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.tasks,
            &self.keys,
            &self.streams,
            &self.requests,
            &self.ts,
            &self.levels,
            &self.agents,
            &self.bodies,
            &self.now,
            &self.written_only,
        ]
    }
}

/// Commits `batch` with one call on `conn` (connecting first if it has none or lost it) and
/// answers every caller.
async fn commit(
    conn: &mut Option<(Client, Statement)>,
    opts: &PgOptions,
    batch: Vec<Request>,
    now: Option<i64>,
) {
    let (params, replies) = AppendParams::new(batch, now);
    let out = async {
        if conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            let (client, _) = crate::pool::connect(&opts.config, &opts.tls, |_| {}).await?;
            let s = format!("\"{}\"", opts.schema);
            let stmt =
                super::statements::prepare(&client, &s, include_str!("sql/append.sql")).await?;
            *conn = Some((client, stmt));
        }
        match conn.as_ref() {
            Some((client, stmt)) => client.query(stmt, &params.params()).await,
            None => unreachable!("connected above"),
        }
    }
    .await;
    match out {
        Ok(rows) => {
            let mut answers: Vec<Option<Placed>> = vec![None; replies.len()];
            for row in rows {
                let got = (|| -> Result<(usize, Placed), tokio_postgres::Error> {
                    let i: i32 = row.try_get(0)?;
                    Ok((
                        usize::try_from(i).unwrap_or(0),
                        Placed {
                            first: row.try_get(1)?,
                            count: row.try_get(2)?,
                            duplicate: row.try_get(3)?,
                        },
                    ))
                })();
                if let Ok((i, placed)) = got
                    && (1..=answers.len()).contains(&i)
                {
                    answers[i - 1] = Some(placed);
                }
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer.ok_or(Refused::Unanswered));
            }
        }
        Err(e) if replies.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(Refused::Own(Failure::Pg(e))));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(Refused::Shared(e.clone())));
            }
        }
    }
}
