//! The benchmark workloads of `benchmarks.md`, shared by the criterion benches and the
//! `oc-bench-figures` binary that `cargo xtask bench-report` runs.
//!
//! Every workload is reproduced exactly as the original scripts ran it: data generation stays
//! inside the timed loop, the SQLite figures use the benchmark schema (not the product schema),
//! and database sizes are reported for the main file and the WAL separately.
//!
//! One module per family of figures (`sqlite.*`, `tasks.*`, `locks.*`, ...), and [`hot`], the
//! hot paths whose instruction counts CI checks.

pub mod alerts;
pub mod hooks;
pub mod hot;
pub mod jsonl;
pub mod locks;
pub mod mcp;
pub mod metrics;
pub mod sqlite;
pub mod tasks;

/// Peak resident memory of this process so far, in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak-RSS mark so the next [`peak_rss`] covers only what follows (Linux ≥ 4.0).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
