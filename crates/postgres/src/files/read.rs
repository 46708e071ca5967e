//! Reading the log and the decisions: tails from the newest end, entries by id, the
//! analysis, the log's end and what follows a cursor.

use oc_jsonl::{
    After, Decision, EntryId, Level, LogAnalysis, LogEntry, Page, ReadReport, Result, Stored,
};
use oc_time::Timestamp;
use tokio_postgres::Row;

use super::PgFileStore;
use super::row::{level_of, signed, unsigned};

/// The most malformed sequence numbers a report keeps (the count goes on).
const KEEP_MALFORMED: usize = 100;

/// Counts a malformed row (`seq`) in `report`.
pub(super) fn malformed(report: &mut ReadReport, seq: i64) {
    report.malformed += 1;
    if report.malformed_lines.len() < KEEP_MALFORMED {
        report.malformed_lines.push(unsigned(seq));
    }
}

impl PgFileStore {
    /// A log row (`seq`, `level`, `body` from column `at`) as an entry, or `None` when it is
    /// malformed (counted in `report`).
    pub(super) fn log_row(
        &self,
        task: &str,
        r: &Row,
        at: usize,
        report: &mut ReadReport,
    ) -> Result<Option<Stored<LogEntry>>> {
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "logs.jsonl", e);
        let seq: i64 = r.try_get(at).map_err(bad)?;
        let level: Option<i16> = r.try_get(at + 1).map_err(bad)?;
        let body: &str = r.try_get(at + 2).map_err(bad)?;
        report.lines += 1;
        let parsed = level
            .and_then(level_of)
            .and_then(|_| serde_json::from_str::<LogEntry>(body).ok());
        match parsed {
            Some(record) => Ok(Some(Stored {
                id: EntryId(unsigned(seq)),
                record,
            })),
            None => {
                malformed(report, seq);
                Ok(None)
            }
        }
    }

    /// A decision row (`seq`, `body`) as a decision, or `None` when it is malformed.
    fn decision_row(
        &self,
        task: &str,
        r: &Row,
        report: &mut ReadReport,
    ) -> Result<Option<Stored<Decision>>> {
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "decisions.jsonl", e);
        let seq: i64 = r.try_get(0).map_err(bad)?;
        let body: &str = r.try_get(1).map_err(bad)?;
        report.lines += 1;
        match serde_json::from_str::<Decision>(body) {
            Ok(record) => Ok(Some(Stored {
                id: EntryId(unsigned(seq)),
                record,
            })),
            Err(_) => {
                malformed(report, seq);
                Ok(None)
            }
        }
    }

    pub(super) fn tail(&self, task: &str, skip: usize, n: usize) -> Result<Page<LogEntry>> {
        let (t, off, lim) = (task.to_owned(), signed(skip), signed(n).saturating_add(1));
        let rows = self
            .call(move |c| async move { c.client.query(&c.stmts.tail, &[&t, &off, &lim]).await })?;
        let more = rows.len() > n;
        let mut read = ReadReport::default();
        let mut entries = Vec::with_capacity(n.min(rows.len()));
        for r in rows.iter().take(n).rev() {
            if let Some(e) = self.log_row(task, r, 0, &mut read)? {
                entries.push(e);
            }
        }
        read.malformed_lines.sort_unstable();
        let next = skip.saturating_add(rows.len().min(n));
        Ok(Page::new(entries, more, next as u64, read))
    }

    pub(super) fn decision_page(
        &self,
        task: &str,
        agent: Option<&str>,
        skip: usize,
        n: usize,
    ) -> Result<Page<Decision>> {
        let (t, off, lim) = (task.to_owned(), signed(skip), signed(n).saturating_add(1));
        let agent = agent.map(str::to_owned);
        let rows = self.call(move |c| async move {
            match agent {
                Some(a) => {
                    c.client
                        .query(&c.stmts.decisions_agent, &[&t, &off, &lim, &a])
                        .await
                }
                None => {
                    c.client
                        .query(&c.stmts.decisions_tail, &[&t, &off, &lim])
                        .await
                }
            }
        })?;
        let more = rows.len() > n;
        let mut read = ReadReport::default();
        let mut entries = Vec::with_capacity(n.min(rows.len()));
        for r in rows.iter().take(n).rev() {
            if let Some(d) = self.decision_row(task, r, &mut read)? {
                entries.push(d);
            }
        }
        read.malformed_lines.sort_unstable();
        let next = skip.saturating_add(rows.len().min(n));
        Ok(Page::new(entries, more, next as u64, read))
    }

    pub(super) fn entry(&self, task: &str, id: EntryId) -> Result<Option<LogEntry>> {
        let Ok(seq) = i64::try_from(id.0) else {
            return Ok(None);
        };
        let t = task.to_owned();
        let row = self
            .call(move |c| async move { c.client.query_opt(&c.stmts.entry, &[&t, &seq]).await })?;
        let Some(r) = row else { return Ok(None) };
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "logs.jsonl", e);
        let level: Option<i16> = r.try_get(0).map_err(bad)?;
        let body: &str = r.try_get(1).map_err(bad)?;
        Ok(level
            .and_then(level_of)
            .and_then(|_| serde_json::from_str(body).ok()))
    }

    pub(super) fn decision_at(&self, task: &str, id: EntryId) -> Result<Option<Decision>> {
        let Ok(seq) = i64::try_from(id.0) else {
            return Ok(None);
        };
        let t = task.to_owned();
        let row =
            self.call(
                move |c| async move { c.client.query_opt(&c.stmts.decision, &[&t, &seq]).await },
            )?;
        let Some(r) = row else { return Ok(None) };
        let body: &str = r
            .try_get(0)
            .map_err(|e| self.corrupt(task, "decisions.jsonl", e))?;
        Ok(serde_json::from_str(body).ok())
    }

    /// The analysis, computed by the server: counts per level and the oldest and newest
    /// times, without reading a row's body.
    pub(super) fn analysis(&self, task: &str) -> Result<LogAnalysis> {
        let t = task.to_owned();
        let rows =
            self.call(move |c| async move { c.client.query(&c.stmts.analyze, &[&t]).await })?;
        let mut a = LogAnalysis::default();
        for l in Level::ALL {
            a.level_counts.insert(l.to_string(), 0);
        }
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "logs.jsonl", e);
        let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
        for r in &rows {
            let level: Option<i16> = r.try_get(0).map_err(bad)?;
            let n = unsigned(r.try_get(1).map_err(bad)?);
            if n == 0 {
                continue;
            }
            a.read.lines += n;
            match level.and_then(level_of) {
                Some(l) => {
                    a.total_logs += n;
                    *a.level_counts.entry(l.to_string()).or_default() += n;
                    let lo: i64 = r.try_get(2).map_err(bad)?;
                    let hi: i64 = r.try_get(3).map_err(bad)?;
                    first = Some(first.map_or(lo, |f| f.min(lo)));
                    last = Some(last.map_or(hi, |h| h.max(hi)));
                }
                None => a.read.malformed += n,
            }
        }
        a.first = first.map(Timestamp::from_millis);
        a.last = last.map(Timestamp::from_millis);
        a.error_count = a.level_counts.get("error").copied().unwrap_or(0);
        a.error_rate = if a.total_logs == 0 {
            0.0
        } else {
            a.error_count as f64 * 100.0 / a.total_logs as f64
        };
        a.span_ms = match (a.first, a.last) {
            (Some(f), Some(l)) => u64::try_from(l.since(f).as_millis()).unwrap_or(u64::MAX),
            _ => 0,
        };
        Ok(a)
    }

    /// The log's generation and last sequence number.
    pub(super) fn end(&self, task: &str) -> Result<(i64, i64)> {
        let t = task.to_owned();
        let r =
            self.call(move |c| async move { c.client.query_one(&c.stmts.log_end, &[&t]).await })?;
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "logs.jsonl", e);
        Ok((r.try_get(0).map_err(bad)?, r.try_get(1).map_err(bad)?))
    }

    /// At most `n` entries after `at` (generation, seq), from the start when the generation
    /// changed since.
    pub(super) fn after(&self, task: &str, at: Option<(i64, i64)>, n: usize) -> Result<After> {
        let (gen_seen, seq) = at.unwrap_or((0, 0));
        let lim = signed(n);
        let mut rows = self.fetch_after(task, seq, lim)?;
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "logs.jsonl", e);
        let mut generation: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(bad)?,
            None => 1,
        };
        let restarted = at.is_some() && generation != gen_seen;
        let mut from = seq;
        if restarted {
            from = 0;
            rows = self.fetch_after(task, 0, lim)?;
            if let Some(r) = rows.first() {
                generation = r.try_get(0).map_err(bad)?;
            }
        }
        let mut read = ReadReport::default();
        let mut entries = Vec::new();
        let mut last = from;
        for r in &rows {
            let s: Option<i64> = r.try_get(2).map_err(bad)?;
            let Some(s) = s else { continue };
            last = s;
            if let Some(e) = self.log_row(task, r, 2, &mut read)? {
                entries.push(e);
            }
        }
        Ok(After::new(
            entries,
            Self::cursor(generation, last)?,
            restarted,
            read,
        ))
    }

    fn fetch_after(&self, task: &str, seq: i64, lim: i64) -> Result<Vec<Row>> {
        let t = task.to_owned();
        self.call(
            move |c| async move { c.client.query(&c.stmts.read_after, &[&t, &seq, &lim]).await },
        )
    }
}
