//! What appends cost when several writers (each its own `DirFileStore`, so its own file
//! description and `flock`, as separate processes have) append batches to one task's log while
//! readers tail it: each write-out holds `LOCK_EX`, each read takes `LOCK_SH` for an `fstat`.
//!
//! `cargo run --release -p oc-jsonl --example store_contention [writers] [readers] [secs]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oc_jsonl::{Append, DirFileStore, Level, LogEntry, TaskFileStore};
use oc_time::Timestamp;

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: u64| -> Result<u64, std::num::ParseIntError> {
        std::env::args().nth(i).map_or(Ok(d), |a| a.parse())
    };
    let (writers, readers, secs) = (arg(1, 4)?, arg(2, 2)?, arg(3, 3)?);
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let (appended, tails) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut threads = Vec::new();
    for w in 0..writers {
        let (data, stop, appended) = (data.clone(), stop.clone(), appended.clone());
        threads.push(std::thread::spawn(move || {
            let store = DirFileStore::new(data);
            let batch: Vec<LogEntry> = (0..10)
                .map(|i| {
                    LogEntry::new(Timestamp::from_millis(i), Level::Info, "t1", "step done")
                        .with("w", w)
                })
                .collect();
            while !stop.load(Ordering::Relaxed) {
                if store.append_logs("t1", &batch, &Append::written()).is_ok() {
                    appended.fetch_add(10, Ordering::Relaxed);
                }
            }
        }));
    }
    for _ in 0..readers {
        let (data, stop, tails) = (data.clone(), stop.clone(), tails.clone());
        threads.push(std::thread::spawn(move || {
            let store = DirFileStore::new(data);
            while !stop.load(Ordering::Relaxed) {
                if store.log_tail("t1", 0, 20).is_ok() {
                    tails.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let took = start.elapsed().as_secs_f64();
    for t in threads {
        let _ = t.join();
    }
    println!(
        "{writers} writers, {readers} readers: {:>10.0} records/s appended, {:>8.0} tails/s",
        appended.load(Ordering::Relaxed) as f64 / took,
        tails.load(Ordering::Relaxed) as f64 / took
    );
    Ok(())
}
