//! Log entries and decisions: the records of the per-task files.

use std::fmt;
use std::str::FromStr;

use oc_time::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The bytes of one text of an entry (a message, a decision's reasoning, data as JSON) that a
/// page or a terminal shows: past it the text is cut (see [`cut`]) and the whole entry is one
/// link or one `--full` away. Machine-readable output (`--json`, the MCP tools) is never cut.
pub const SHOWN_BYTES: usize = 4 * 1024;

/// `text` cut to at most `max` bytes at a character boundary, and its whole length in bytes
/// when it was cut (`None` when it is shown whole).
///
/// ```
/// assert_eq!(oc_jsonl::cut("héllo", 2), ("h", Some(6)));
/// assert_eq!(oc_jsonl::cut("hello", 5), ("hello", None));
/// ```
pub fn cut(text: &str, max: usize) -> (&str, Option<usize>) {
    if text.len() <= max {
        return (text, None);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], Some(text.len()))
}

/// `n` with thousands separated by commas, as pages and terminals show counts:
///
/// ```
/// assert_eq!(oc_jsonl::thousands(1_234_567), "1,234,567");
/// assert_eq!(oc_jsonl::thousands(999), "999");
/// ```
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Severity of a log entry, ordered `Trace < Debug < Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected but handled (`warning` is accepted on input).
    Warn,
    /// A failure.
    Error,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 5] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ];

    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            // The original wrote "warning" for cancellations; read both.
            "warn" | "warning" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(Error::InvalidInput {
                field: "level",
                reason: format!("unknown level {s:?} (expected trace, debug, info, warn or error)"),
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One line of a task's `logs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When it was logged.
    pub timestamp: Timestamp,
    /// Severity.
    pub level: Level,
    /// What happened.
    pub message: String,
    /// The task it belongs to.
    #[serde(rename = "taskId")]
    pub task_id: String,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

impl LogEntry {
    /// An entry with no structured fields.
    pub fn new(
        timestamp: Timestamp,
        level: Level,
        task_id: &str,
        message: impl Into<String>,
    ) -> Self {
        LogEntry {
            timestamp,
            level,
            message: message.into(),
            task_id: task_id.to_owned(),
            data: Map::new(),
        }
    }

    /// Adds a structured field.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }
}

/// One line of a task's `decisions.jsonl`: what an agent decided and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// The deciding agent.
    #[serde(rename = "agentId")]
    pub agent: String,
    /// The decision.
    pub decision: String,
    /// Why.
    pub reasoning: String,
    /// Anything else.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}
