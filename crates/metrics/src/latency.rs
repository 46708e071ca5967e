//! `LatencyTracker`: per operation, the last 1,000 samples and their percentiles.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Samples kept per operation.
pub const WINDOW: usize = 1000;

/// Count, extremes, mean and percentiles of an operation's recent calls, in milliseconds.
///
/// Percentile `q` is the sample at index ⌊n·q⌋ of the sorted window (clamped to the last), as the
/// seed's tracker computed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// The operation.
    pub operation: String,
    /// Calls in the window.
    pub count: usize,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub avg_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// A call slower than the tracker's threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowCall {
    /// The operation.
    pub operation: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
}

/// Records call durations per operation, keeping the last [`WINDOW`] of each.
///
/// ```
/// use std::time::Duration;
/// use oc_metrics::LatencyTracker;
/// let t = LatencyTracker::new(Duration::from_secs(1));
/// for ms in 1..=100 {
///     t.record("db_query", Duration::from_millis(ms));
/// }
/// let s = t.stats("db_query").unwrap();
/// assert_eq!((s.count, s.p50_ms, s.p95_ms, s.max_ms), (100, 51.0, 96.0, 100.0));
/// let answer = t.time("task_creation", || 42);
/// assert_eq!(answer, 42);
/// ```
#[derive(Debug)]
pub struct LatencyTracker {
    threshold: Duration,
    ops: Mutex<BTreeMap<String, VecDeque<Duration>>>,
    slow: Mutex<VecDeque<SlowCall>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl LatencyTracker {
    /// A tracker reporting calls slower than `threshold` (the seed used one second).
    pub fn new(threshold: Duration) -> Self {
        LatencyTracker {
            threshold,
            ops: Mutex::new(BTreeMap::new()),
            slow: Mutex::new(VecDeque::new()),
        }
    }

    /// Records one call of `operation`.
    pub fn record(&self, operation: &str, d: Duration) {
        {
            let mut ops = self.ops.lock();
            let w = match ops.get_mut(operation) {
                Some(w) => w,
                None => ops
                    .entry(operation.to_owned())
                    .or_insert_with(|| VecDeque::with_capacity(WINDOW)),
            };
            if w.len() == WINDOW {
                w.pop_front();
            }
            w.push_back(d);
        }
        if d > self.threshold {
            let mut slow = self.slow.lock();
            if slow.len() == 100 {
                slow.pop_front();
            }
            slow.push_back(SlowCall {
                operation: operation.to_owned(),
                duration_ms: ms(d),
            });
        }
    }

    /// Runs `f`, recording how long it took under `operation`.
    pub fn time<T>(&self, operation: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.record(operation, start.elapsed());
        out
    }

    /// The statistics of one operation, if it was ever recorded.
    pub fn stats(&self, operation: &str) -> Option<LatencyStats> {
        let ops = self.ops.lock();
        ops.get(operation).map(|w| summarize(operation, w))
    }

    /// The statistics of every operation, by name.
    pub fn all(&self) -> Vec<LatencyStats> {
        self.ops
            .lock()
            .iter()
            .map(|(op, w)| summarize(op, w))
            .collect()
    }

    /// The most recent slow calls (up to 100), oldest first.
    pub fn slow_calls(&self) -> Vec<SlowCall> {
        self.slow.lock().iter().cloned().collect()
    }
}

fn summarize(operation: &str, w: &VecDeque<Duration>) -> LatencyStats {
    let mut v: Vec<Duration> = w.iter().copied().collect();
    v.sort_unstable();
    let n = v.len();
    let at = |q: f64| ms(v[((n as f64 * q) as usize).min(n - 1)]);
    LatencyStats {
        operation: operation.to_owned(),
        count: n,
        min_ms: ms(v[0]),
        max_ms: ms(v[n - 1]),
        avg_ms: v.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set_are_exact() {
        let t = LatencyTracker::new(Duration::from_millis(500));
        for ms in (1..=1000).rev() {
            t.record("op", Duration::from_millis(ms));
        }
        let s = t.stats("op").unwrap();
        assert_eq!((s.count, s.min_ms, s.max_ms), (1000, 1.0, 1000.0));
        assert_eq!((s.p50_ms, s.p95_ms, s.p99_ms), (501.0, 951.0, 991.0));
        assert_eq!(s.avg_ms, 500.5);
        assert_eq!(
            t.slow_calls().len(),
            100,
            "the last 100 slow calls are kept"
        );
    }

    #[test]
    fn the_window_keeps_the_last_thousand() {
        let t = LatencyTracker::new(Duration::from_secs(60));
        for ms in 0..1500 {
            t.record("op", Duration::from_millis(ms));
        }
        let s = t.stats("op").unwrap();
        assert_eq!((s.count, s.min_ms, s.max_ms), (1000, 500.0, 1499.0));
        assert!(t.slow_calls().is_empty());
        assert!(t.stats("other").is_none());
    }
}
