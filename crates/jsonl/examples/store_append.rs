//! What an append costs through `DirFileStore` (two `flock`s and an `lseek` around each write,
//! decision 0036) against a `JsonlWriter` handed each record to the OS, and keyed appends.
//!
//! `cargo run --release -p oc-jsonl --example store_append [appends]`

use std::time::Instant;

use oc_jsonl::{Append, DirFileStore, JsonlWriter, Level, LogEntry, TaskFileStore, WriterOptions};
use oc_time::Timestamp;

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let entry = |i: usize| {
        LogEntry::new(
            Timestamp::from_millis(i as i64),
            Level::Info,
            "t1",
            "step done",
        )
        .with("i", i)
    };
    let rate = |start: Instant, n: usize| n as f64 / start.elapsed().as_secs_f64();

    let w = JsonlWriter::open(dir.path().join("plain.jsonl"), WriterOptions::default())?;
    let start = Instant::now();
    for i in 0..n {
        w.append(&entry(i))?;
    }
    println!(
        "JsonlWriter (Os):             {:>12.0} appends/s",
        rate(start, n)
    );

    let store = DirFileStore::new(dir.path().join("data"));
    let start = Instant::now();
    for i in 0..n {
        store.append_logs("t1", &[entry(i)], &Append::written())?;
    }
    println!(
        "DirFileStore (Written):       {:>12.0} appends/s",
        rate(start, n)
    );

    let start = Instant::now();
    for i in 0..n {
        let key = format!("k{i}");
        store.append_logs("t2", &[entry(i)], &Append::written().key(&key))?;
    }
    println!(
        "DirFileStore (Written, key):  {:>12.0} appends/s",
        rate(start, n)
    );

    let batch: Vec<LogEntry> = (0..100).map(entry).collect();
    let start = Instant::now();
    for _ in 0..n / 100 {
        store.append_logs("t3", &batch, &Append::written())?;
    }
    println!(
        "DirFileStore (batches of 100): {:>11.0} records/s",
        rate(start, n / 100 * 100)
    );
    Ok(())
}
