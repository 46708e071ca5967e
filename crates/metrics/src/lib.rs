//! Metrics for opencode-tools (planned).
//!
//! `oc-metrics` will provide the metric catalogue, collectors that read the other crates' statistics at scrape time,
//! a latency tracker with percentiles, process and SQLite statistics, and performance goals.
//! See `ARCHITECTURE.md` and issue 6; nothing is exported yet.
