//! What a model check of a history found, and the figures of many such checks.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::{History, Report, TokenReport};

/// A history checked two ways: linearizable against its model, and its fencing tokens.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The linearizability search.
    pub linearizability: Report,
    /// Fencing tokens over every grant or claim.
    pub tokens: TokenReport,
}

impl Checked {
    /// Whether both checks passed.
    pub fn is_ok(&self) -> bool {
        self.linearizability.is_linearizable() && self.tokens.is_ok()
    }
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}tokens: {}", self.linearizability, self.tokens)
    }
}

/// The figures of a run of checks, for [`crate::publish`].
#[derive(Debug, Clone, Default)]
pub struct Summary {
    histories: usize,
    operations: usize,
    unknown: usize,
    grants: usize,
    largest: usize,
    nodes: u64,
    answers: BTreeMap<&'static str, usize>,
}

impl Summary {
    /// Adds a checked history of `operations` operations, with how its calls ended.
    pub fn add(&mut self, checked: &Checked, answers: BTreeMap<&'static str, usize>) {
        let r = &checked.linearizability;
        self.histories += 1;
        self.operations += r.operations;
        self.unknown += r.unknown;
        self.grants += checked.tokens.grants;
        self.largest = self.largest.max(r.largest);
        self.nodes += r.nodes;
        for (k, n) in answers {
            *self.answers.entry(k).or_insert(0) += n;
        }
    }

    /// The figures, with the run's concurrency and what it did to the processes, if anything.
    pub fn figures(&self, concurrency: usize, extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({
            "histories": self.histories, "operations": self.operations,
            "unknown_outcomes": self.unknown, "grants": self.grants, "concurrency": concurrency,
            "largest_part": self.largest, "search_nodes": self.nodes, "answers": self.answers,
            "not_linearizable": 0, "tokens_repeated": 0,
        });
        if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    }
}

/// Saves `history` in the temporary directory and panics with `what` failed, `checked`, and
/// how to replay the check: `replay` with `{}` standing for the saved file.
#[allow(clippy::panic)]
pub fn fail<O: Serialize, R: Serialize>(
    history: &History<O, R>,
    what: &str,
    replay: &str,
    checked: &Checked,
) -> ! {
    let saved = std::env::temp_dir().join(format!(
        "oc-history-{}-{}.json",
        std::process::id(),
        crate::mono_ns()
    ));
    let replay = match history.save(&saved) {
        Ok(()) => replay.replace("{}", &saved.display().to_string()),
        Err(e) => format!("(the history could not be saved: {e})"),
    };
    panic!("{what}: {checked}\nreplay: {replay}");
}
