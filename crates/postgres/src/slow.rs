//! The calls slower than a threshold, as this client saw them.

use std::time::Duration;

use oc_tasks::{SlowStatement, Timestamp};

/// Calls slower than the threshold, as this client saw them (queueing and the network
/// included).
#[derive(Debug)]
pub(crate) struct SlowLog {
    pub(crate) threshold: Duration,
    pub(crate) count: std::sync::atomic::AtomicU64,
    pub(crate) recent: parking_lot::Mutex<std::collections::VecDeque<SlowStatement>>,
}

/// How many slow calls are kept.
const SLOW_KEEP: usize = 32;

impl SlowLog {
    /// A log of the calls at least `threshold` slow.
    pub(crate) fn new(threshold: Duration) -> Self {
        SlowLog {
            threshold,
            count: Default::default(),
            recent: Default::default(),
        }
    }

    /// Counts a call of `op` that took `took`, at `now_ms` (or this host's time).
    pub(crate) fn record(&self, op: &str, took: Duration, now_ms: Option<i64>) {
        if took < self.threshold {
            return;
        }
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut recent = self.recent.lock();
        if recent.len() == SLOW_KEEP {
            recent.pop_front();
        }
        let s = SlowStatement {
            sql: op.to_owned(),
            duration_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            at: now_ms.map_or_else(Timestamp::now, Timestamp::from_millis),
        };
        s.trace("postgres");
        recent.push_back(s);
    }
}
