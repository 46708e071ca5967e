//! Pages of a task's log and decisions on the data directory, with their entries' ids.

use serde::de::DeserializeOwned;

use crate::{
    Decision, EntryId, JsonlReader, LineAt, LogEntry, Page, Query, ReadReport, Result, Stored,
};

use super::DECISIONS_SCANNED;

/// The bits of an [`EntryId`] that hold the byte offset; the file's generation (0: the live
/// file, 1: the one rotated last, ...) is above them.
const OFFSET_BITS: u32 = 48;

/// `at` as an [`EntryId`].
pub(super) fn entry_id(at: LineAt) -> EntryId {
    EntryId((u64::from(at.file) << OFFSET_BITS) | (at.offset & ((1 << OFFSET_BITS) - 1)))
}

/// `id` as where its line starts.
pub(super) fn line_at(id: EntryId) -> LineAt {
    LineAt {
        file: u32::try_from(id.0 >> OFFSET_BITS).unwrap_or(u32::MAX),
        offset: id.0 & ((1 << OFFSET_BITS) - 1),
    }
}

/// The `n` records before the newest `skip` of `reader`, oldest first: lines that do not parse
/// (or are too long to be held) are counted in the report.
pub(super) fn tail_page<T: DeserializeOwned>(
    reader: &JsonlReader,
    skip: usize,
    n: usize,
) -> Result<Page<T>> {
    if n == 0 {
        // `tail_lines` answers `more: false` for no lines: whether older ones exist is asked.
        let page = reader.tail_lines(skip, 1)?;
        let next = skip as u64;
        return Ok(Page::new(
            Vec::new(),
            !page.lines.is_empty(),
            next,
            ReadReport::default(),
        ));
    }
    let tail = reader.tail_lines(skip, n)?;
    let mut report = ReadReport::default();
    let mut entries = Vec::with_capacity(tail.lines.len());
    for line in &tail.lines {
        report.lines += 1;
        match serde_json::from_slice::<T>(&line.text) {
            Ok(record) => entries.push(Stored {
                id: entry_id(line.at),
                record,
            }),
            Err(_) => report.malformed += 1,
        }
    }
    let next = skip.saturating_add(tail.lines.len()) as u64;
    Ok(Page::new(entries, tail.more, next, report))
}

/// The line `id` of `reader`, parsed; `None` if no line starts there or it does not parse.
pub(super) fn by_id<T: DeserializeOwned>(reader: &JsonlReader, id: EntryId) -> Result<Option<T>> {
    Ok(reader
        .line_at(line_at(id))?
        .and_then(|line| serde_json::from_slice(&line).ok()))
}

/// A page of decisions counted from the newest end (`skip` the newest, then `n` before them),
/// by `agent` if given, reading at most [`DECISIONS_SCANNED`] lines with a filter.
pub(super) fn decision_page(
    reader: &JsonlReader,
    agent: Option<&str>,
    skip: usize,
    n: usize,
) -> Result<Page<Decision>> {
    let mut shown: Vec<Stored<Decision>> = Vec::new();
    let (mut at, mut more) = (skip, false);
    let mut report = ReadReport::default();
    if n == 0 {
        let page = reader.tail_lines(skip, 1)?;
        return Ok(Page::new(
            Vec::new(),
            !page.lines.is_empty(),
            skip as u64,
            report,
        ));
    }
    loop {
        let want = if agent.is_some() {
            DECISIONS_SCANNED
                .saturating_add(skip)
                .saturating_sub(at)
                .min(n.max(256))
        } else {
            n - shown.len()
        };
        if want == 0 {
            // The scan's budget is spent, with older lines left (the last page had more).
            break;
        }
        let page = reader.tail_lines(at, want)?;
        let read = page.lines.len();
        let mut page_more = page.more;
        for (i, line) in page.lines.iter().enumerate().rev() {
            report.lines += 1;
            match serde_json::from_slice::<Decision>(&line.text) {
                Ok(d) if agent.is_none_or(|a| d.agent == a) => shown.push(Stored {
                    id: entry_id(line.at),
                    record: d,
                }),
                Ok(_) => {}
                Err(_) => report.malformed += 1,
            }
            at += 1;
            if shown.len() == n {
                page_more |= i > 0;
                break;
            }
        }
        more = page_more;
        if shown.len() == n || read < want || !page.more {
            break;
        }
    }
    shown.reverse();
    Ok(Page::new(shown, more, at as u64, report))
}

/// The entries of `reader` that `q` selects, in its order, with `more` if others match past
/// its limit.
pub(super) fn query(reader: &JsonlReader, q: &Query) -> Result<Page<LogEntry>> {
    let mut kept: std::collections::VecDeque<Stored<LogEntry>> = Default::default();
    let mut skipped = 0usize;
    let mut bad = 0u64;
    let mut more = false;
    // One more than asked, to know whether more follow.
    let window = q
        .limit
        .map(|l| l.saturating_add(q.offset).saturating_add(1));
    let mut report = reader.for_each_line_at(|_, at, line| {
        let Ok(record) = serde_json::from_slice::<LogEntry>(line) else {
            bad += 1;
            return true;
        };
        if !q.matches(&record) {
            return true;
        }
        let s = Stored {
            id: entry_id(at),
            record,
        };
        if q.newest_first {
            kept.push_back(s);
            if window.is_some_and(|w| kept.len() > w) {
                kept.pop_front();
                more = true;
            }
            true
        } else if skipped < q.offset {
            skipped += 1;
            true
        } else if q.limit.is_some_and(|l| kept.len() >= l) {
            more = true;
            false
        } else {
            kept.push_back(s);
            true
        }
    })?;
    report.malformed += bad;
    let limit = q.limit.unwrap_or(usize::MAX);
    let entries: Vec<Stored<LogEntry>> = if q.newest_first {
        let total = kept.len();
        let shown: Vec<_> = kept.into_iter().rev().skip(q.offset).take(limit).collect();
        more |= total > q.offset.saturating_add(shown.len());
        shown
    } else {
        kept.into()
    };
    let next = q.offset.saturating_add(entries.len()) as u64;
    Ok(Page::new(entries, more, next, report))
}
