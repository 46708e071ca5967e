//! `Shipper`: log aggregation, sending entries to an HTTP collector (feature `ship`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::task::sha256_hex;
use crate::{Error, Level, LogEntry, Result, TaskFileStore};

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

/// Sends task log entries to an HTTP collector as JSON arrays, with retries and exponential
/// backoff, remembering per task and collector what was acknowledged (the store's
/// [`ship_cursor`](TaskFileStore::ship_cursor)), so a rerun continues where the last one
/// stopped: nothing twice, nothing skipped, whichever host appended the entries and whichever
/// ships them. Each collector (its URL) has its own cursor.
///
/// Each request carries an `Idempotency-Key` (task, the batch's first entry id, hash of the
/// batch), so a collector can also drop a batch it receives twice after a lost acknowledgement.
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

    /// Ships the entries of `task`'s log in `files` that were not shipped to this collector
    /// yet, a batch at a time, moving the store's cursor after each acknowledged batch (a
    /// failed batch leaves it before the batch). A log replaced since (restored, retained) is
    /// shipped from its start.
    pub fn ship_task(&self, files: &dyn TaskFileStore, task: &str) -> Result<ShipReport> {
        let mut report = ShipReport::default();
        let mut at = files.ship_cursor(task, &self.url)?;
        loop {
            let next = files.read_after(task, at.as_ref(), self.opts.batch)?;
            report.malformed += next.read.malformed;
            let read_any = !next.entries.is_empty() || next.read.malformed > 0;
            let first = next.entries.first().map(|e| e.id);
            let batch: Vec<LogEntry> = next
                .entries
                .into_iter()
                .map(|e| e.record)
                .filter(|e| {
                    let kept = self.opts.min_level.is_none_or(|l| e.level >= l);
                    if !kept {
                        report.filtered += 1;
                    }
                    kept
                })
                .collect();
            if !batch.is_empty() {
                let body = serde_json::to_vec(&batch).map_err(|source| Error::Json {
                    path: PathBuf::from(&self.url),
                    source,
                })?;
                let key = format!(
                    "{task}-{}-{}",
                    first.map_or(0, |id| id.0),
                    &sha256_hex(&body)[..16]
                );
                self.send(&key, &body, &mut report)?;
                report.shipped += batch.len() as u64;
                report.batches += 1;
            }
            if !read_any {
                return Ok(report);
            }
            files.set_ship_cursor(task, &self.url, &next.cursor)?;
            at = Some(next.cursor);
        }
    }
}
