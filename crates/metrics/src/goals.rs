//! Performance goals, checked against measured percentiles.

use serde::{Deserialize, Serialize};

use crate::LatencyTracker;

/// The seed's performance goals, in milliseconds, each checked against the p95 of an operation
/// recorded in a [`LatencyTracker`] under the name given by [`PerformanceGoals::OPERATIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceGoals {
    /// `lock_acquisition` (10 ms).
    pub lock_acquisition_ms: f64,
    /// `task_creation` (100 ms).
    pub task_creation_ms: f64,
    /// `log_append` (1 ms).
    pub log_append_ms: f64,
    /// `checkpoint_creation` (100 ms).
    pub checkpoint_creation_ms: f64,
    /// `db_query` (5 ms).
    pub db_query_ms: f64,
}

impl Default for PerformanceGoals {
    fn default() -> Self {
        PerformanceGoals {
            lock_acquisition_ms: 10.0,
            task_creation_ms: 100.0,
            log_append_ms: 1.0,
            checkpoint_creation_ms: 100.0,
            db_query_ms: 5.0,
        }
    }
}

/// A goal the measured p95 misses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The goal's name, as the seed spelled it (`lockAcquisitionMs`...).
    pub metric: String,
    /// The goal, in milliseconds.
    pub goal: f64,
    /// The measured p95, in milliseconds.
    pub actual: f64,
}

impl PerformanceGoals {
    /// Operation names, with the seed's goal names.
    pub const OPERATIONS: [(&'static str, &'static str); 5] = [
        ("lock_acquisition", "lockAcquisitionMs"),
        ("task_creation", "taskCreationMs"),
        ("log_append", "logAppendMs"),
        ("checkpoint_creation", "checkpointCreationMs"),
        ("db_query", "dbQueryMs"),
    ];

    fn goal(&self, operation: &str) -> Option<f64> {
        match operation {
            "lock_acquisition" => Some(self.lock_acquisition_ms),
            "task_creation" => Some(self.task_creation_ms),
            "log_append" => Some(self.log_append_ms),
            "checkpoint_creation" => Some(self.checkpoint_creation_ms),
            "db_query" => Some(self.db_query_ms),
            _ => None,
        }
    }

    /// The goals whose operation's measured p95 exceeds them (operations never measured pass).
    ///
    /// ```
    /// use std::time::Duration;
    /// use oc_metrics::{LatencyTracker, PerformanceGoals};
    /// let t = LatencyTracker::new(Duration::from_secs(1));
    /// t.record("log_append", Duration::from_millis(3));
    /// t.record("db_query", Duration::from_millis(1));
    /// let v = PerformanceGoals::default().check(&t);
    /// assert_eq!(v.len(), 1);
    /// assert_eq!((v[0].metric.as_str(), v[0].goal, v[0].actual), ("logAppendMs", 1.0, 3.0));
    /// ```
    pub fn check(&self, tracker: &LatencyTracker) -> Vec<Violation> {
        Self::OPERATIONS
            .iter()
            .filter_map(|(op, metric)| {
                let goal = self.goal(op)?;
                let s = tracker.stats(op)?;
                (s.p95_ms > goal).then(|| Violation {
                    metric: (*metric).to_owned(),
                    goal,
                    actual: s.p95_ms,
                })
            })
            .collect()
    }
}
