//! `Shipper`: log aggregation, sending entries to an HTTP collector (feature `ship`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::task::sha256_hex;

/// Where a task's cursors are kept, in its directory.
const CURSOR_FILE: &str = "ship-cursor.json";

/// The most a cursor file may hold (one cursor per collector, each a line number and a hash).
const MAX_CURSOR_BYTES: u64 = 1 << 20;
use crate::{Error, Level, LogEntry, Result, TaskFiles};

/// How to ship.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShipOptions {
    /// Entries per request (a JSON array).
    pub batch: usize,
    /// Only entries at this level or more severe are sent (the others are passed over).
    pub min_level: Option<Level>,
    /// Attempts per batch before giving up (the cursor stays before the batch).
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            batch: 100,
            min_level: None,
            attempts: 5,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(10),
        }
    }
}

impl ShipOptions {
    /// Only entries at `level` or above.
    pub fn min_level(mut self, level: Option<Level>) -> Self {
        self.min_level = level;
        self
    }
    /// Attempts and first backoff.
    pub fn retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }
}

/// What one shipping run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipReport {
    /// Entries sent (and acknowledged).
    pub shipped: u64,
    /// Entries passed over by the level filter.
    pub filtered: u64,
    /// Lines that were not log entries (passed over).
    pub malformed: u64,
    /// Requests that succeeded.
    pub batches: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

/// Where shipping stopped, per collector URL: the number of lines processed and the hash of
/// the last one, so that rotation (which renumbers lines) cannot make it resend or skip.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    line: u64,
    hash: String,
}

/// Sends task log entries to an HTTP collector as JSON arrays, with retries and exponential
/// backoff, remembering per task and collector what was acknowledged (in `ship-cursor.json`),
/// so a rerun continues where the last one stopped: nothing twice, nothing skipped.
///
/// Each request carries an `Idempotency-Key` (task, first line, hash of the batch), so a
/// collector can also drop a batch it receives twice after a lost acknowledgement.
#[derive(Debug)]
pub struct Shipper {
    url: String,
    agent: ureq::Agent,
    opts: ShipOptions,
}

impl Shipper {
    /// A shipper to `url` (`http://` or `https://`).
    pub fn new(url: &str, opts: ShipOptions) -> Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::InvalidInput {
                field: "url",
                reason: format!("{url:?} is not an http:// or https:// URL"),
            });
        }
        if opts.batch == 0 {
            return Err(Error::InvalidInput {
                field: "batch",
                reason: "must be at least 1".into(),
            });
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Shipper {
            url: url.to_owned(),
            agent,
            opts,
        })
    }

    fn cursor_path(files: &TaskFiles) -> PathBuf {
        files.dir().join(CURSOR_FILE)
    }

    /// The cursors, read through the task directory's handle (never through a link), at most
    /// [`MAX_CURSOR_BYTES`].
    ///
    /// Entries are kept as JSON: a collector's cursor written by `DirFileStore`
    /// (`{"cursor": ...}`) is carried over unchanged when this shipper saves its own.
    fn load_cursors(files: &TaskFiles) -> Result<BTreeMap<String, serde_json::Value>> {
        let path = Self::cursor_path(files);
        match files.read_file(CURSOR_FILE, MAX_CURSOR_BYTES)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
                path,
                reason: e.to_string(),
            }),
            None => Ok(BTreeMap::new()),
        }
    }

    fn save_cursor(&self, files: &TaskFiles, c: &Cursor) -> Result<()> {
        let mut all = Self::load_cursors(files)?;
        let own = serde_json::to_value(c).map_err(|source| Error::Json {
            path: Self::cursor_path(files),
            source,
        })?;
        all.insert(self.url.clone(), own);
        let path = Self::cursor_path(files);
        let bytes = serde_json::to_vec_pretty(&all).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        files.write_file(CURSOR_FILE, &bytes)
    }

    /// Sends one batch, retrying; the error after the last attempt names the cause.
    fn send(&self, key: &str, body: &[u8], report: &mut ShipReport) -> Result<()> {
        let mut wait = self.opts.backoff;
        let mut last = String::new();
        for attempt in 1..=self.opts.attempts {
            let res = self
                .agent
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", key)
                .send(body);
            match res {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                    return Err(Error::InvalidInput {
                        field: "collector",
                        reason: format!("{} refused the batch: HTTP {}", self.url, r.status()),
                    });
                }
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            if attempt < self.opts.attempts {
                report.retries += 1;
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
            }
        }
        Err(Error::Io {
            path: PathBuf::from(&self.url),
            source: std::io::Error::other(format!(
                "gave up after {} attempts: {last}",
                self.opts.attempts
            )),
        })
    }

    /// Ships the entries of one task that were not shipped to this collector yet.
    pub fn ship_task(&self, files: &TaskFiles) -> Result<ShipReport> {
        let mut report = ShipReport::default();
        // Another format (the store's cursor) reads as nothing shipped here yet.
        let saved: Cursor = Self::load_cursors(files)?
            .remove(&self.url)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let reader = files.logs();
        // Where to resume: the line after the one whose hash the cursor remembers (rotation may
        // have renumbered it); without a match, the start.
        let mut resume_after = 0u64;
        if saved.line > 0 {
            reader.for_each_line(|n, line| {
                if sha256_hex(line) == saved.hash {
                    resume_after = n;
                    return n < saved.line;
                }
                true
            })?;
        }
        let mut batch: Vec<LogEntry> = Vec::with_capacity(self.opts.batch);
        let mut first_line = 0u64;
        let mut last = Cursor {
            line: resume_after,
            hash: saved.hash.clone(),
        };
        let mut failure = None;
        let flush = |batch: &mut Vec<LogEntry>,
                     first_line: u64,
                     upto: &Cursor,
                     report: &mut ShipReport|
         -> Result<()> {
            if !batch.is_empty() {
                let body = serde_json::to_vec(&*batch).map_err(|source| Error::Json {
                    path: files.log_path(),
                    source,
                })?;
                let key = format!(
                    "{}-{first_line}-{}",
                    files
                        .dir()
                        .file_name()
                        .map(|s| s.to_string_lossy())
                        .unwrap_or_default(),
                    &sha256_hex(&body)[..16]
                );
                self.send(&key, &body, report)?;
                report.shipped += batch.len() as u64;
                report.batches += 1;
                batch.clear();
            }
            self.save_cursor(files, upto)
        };
        reader.for_each_line(|n, line| {
            if n <= resume_after {
                return true;
            }
            let cur = Cursor {
                line: n,
                hash: sha256_hex(line),
            };
            match serde_json::from_slice::<LogEntry>(line) {
                Err(_) => report.malformed += 1,
                Ok(e) if self.opts.min_level.is_some_and(|l| e.level < l) => report.filtered += 1,
                Ok(e) => {
                    if batch.is_empty() {
                        first_line = n;
                    }
                    batch.push(e);
                    if batch.len() == self.opts.batch
                        && let Err(err) = flush(&mut batch, first_line, &cur, &mut report)
                    {
                        failure = Some(err);
                        return false;
                    }
                }
            }
            last = cur;
            true
        })?;
        if let Some(err) = failure {
            return Err(err);
        }
        if last.line > resume_after || !batch.is_empty() {
            flush(&mut batch, first_line, &last, &mut report)?;
        }
        Ok(report)
    }
}
