//! JSONL workloads (`jsonl.*` figures).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use oc_jsonl::{Durability, JsonlReader, JsonlWriter, WriterOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
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
