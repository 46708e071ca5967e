//! Recording histories: from threads ([`Recorder`]) and from processes ([`ProcessLog`],
//! [`read_logs`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::mono_ns;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<R> {
    /// It returned `ret` at `at` (nanoseconds on [`mono_ns`]'s clock).
    Returned {
        /// When it returned.
        at: u64,
        /// What it answered.
        ret: R,
    },
    /// Its process died (or its answer was lost) before it returned: it may have taken effect
    /// at any moment after its invocation, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event<O, R> {
    /// The process or thread that ran it; a process runs one operation at a time.
    pub process: u64,
    /// What it asked.
    pub op: O,
    /// When it was invoked (nanoseconds on [`mono_ns`]'s clock).
    pub invoked: u64,
    /// How it ended.
    pub outcome: Outcome<R>,
}

impl<O, R> Event<O, R> {
    /// The answer, if it returned.
    pub fn ret(&self) -> Option<&R> {
        match &self.outcome {
            Outcome::Returned { ret, .. } => Some(ret),
            Outcome::Unknown => None,
        }
    }

    /// When it returned; `u64::MAX` when it never did.
    pub fn returned(&self) -> u64 {
        match self.outcome {
            Outcome::Returned { at, .. } => at,
            Outcome::Unknown => u64::MAX,
        }
    }
}

/// A concurrent history: operations with their intervals, in no particular order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History<O, R> {
    /// The operations.
    pub events: Vec<Event<O, R>>,
}

impl<O, R> Default for History<O, R> {
    fn default() -> Self {
        History { events: Vec::new() }
    }
}

impl<O, R> History<O, R> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation of `process` invoked at `invoked` that returned `Some((at, ret))`, or
    /// whose outcome is unknown (`None`).
    pub fn push(&mut self, process: u64, op: O, invoked: u64, returned: Option<(u64, R)>) {
        let outcome = match returned {
            Some((at, ret)) => Outcome::Returned { at, ret },
            None => Outcome::Unknown,
        };
        self.events.push(Event {
            process,
            op,
            invoked,
            outcome,
        });
    }

    /// How many operations.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many operations have an unknown outcome.
    pub fn unknown(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Unknown))
            .count()
    }
}

impl<O: Serialize, R: Serialize> History<O, R> {
    /// Writes the history to `path` as JSON, to replay a failure with [`History::load`].
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut f = File::create(path)?;
        serde_json::to_writer(&mut f, self).map_err(io::Error::other)?;
        f.sync_all()
    }
}

impl<O: DeserializeOwned, R: DeserializeOwned> History<O, R> {
    /// Reads a history [`History::save`] wrote.
    pub fn load(path: &Path) -> io::Result<Self> {
        serde_json::from_reader(BufReader::new(File::open(path)?)).map_err(io::Error::other)
    }
}

/// Records the history of threads of one process.
///
/// ```
/// use oc_lincheck::Recorder;
/// let rec: Recorder<&str, u32> = Recorder::new();
/// let call = rec.invoke(1, "read");
/// let value = 7; // the operation itself, between invoke and return
/// call.returned(value);
/// assert_eq!(rec.into_history().len(), 1);
/// ```
#[derive(Debug)]
pub struct Recorder<O, R> {
    events: Mutex<Vec<Event<O, R>>>,
}

impl<O, R> Default for Recorder<O, R> {
    fn default() -> Self {
        Recorder {
            events: Mutex::new(Vec::new()),
        }
    }
}

impl<O, R> Recorder<O, R> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts an operation of `process` (one at a time per process); the time is read last, just
    /// before the caller runs the operation.
    pub fn invoke(&self, process: u64, op: O) -> Call<'_, O, R> {
        Call {
            recorder: self,
            event: Some((process, op, mono_ns())),
        }
    }

    /// The history recorded so far.
    pub fn into_history(self) -> History<O, R> {
        History {
            events: self.events.into_inner(),
        }
    }
}

/// An operation in flight; dropping it without an answer records an unknown outcome.
#[derive(Debug)]
#[must_use = "record the answer with `returned`"]
pub struct Call<'a, O, R> {
    recorder: &'a Recorder<O, R>,
    event: Option<(u64, O, u64)>,
}

impl<O, R> Call<'_, O, R> {
    /// Records the answer; the time is read first, just after the operation returned.
    pub fn returned(mut self, ret: R) {
        let at = mono_ns();
        if let Some((process, op, invoked)) = self.event.take() {
            self.recorder.events.lock().push(Event {
                process,
                op,
                invoked,
                outcome: Outcome::Returned { at, ret },
            });
        }
    }
}

impl<O, R> Drop for Call<'_, O, R> {
    fn drop(&mut self) {
        if let Some((process, op, invoked)) = self.event.take() {
            self.recorder.events.lock().push(Event {
                process,
                op,
                invoked,
                outcome: Outcome::Unknown,
            });
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
enum Line<O, R> {
    Invoke { p: u64, id: u64, t: u64, op: O },
    Return { p: u64, id: u64, t: u64, ret: R },
}

/// The history of one process, appended to its own file as it runs: one JSON line when an
/// operation is invoked and one when it returns, each a single unbuffered `write`, so that a
/// process killed at any moment leaves every operation it started, finished or not.
#[derive(Debug)]
pub struct ProcessLog {
    file: File,
    process: u64,
    next: u64,
}

impl ProcessLog {
    /// Creates (or appends to) the log of `process` at `path`.
    pub fn open(path: &Path, process: u64) -> io::Result<ProcessLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ProcessLog {
            file,
            process,
            next: 0,
        })
    }

    fn write<O: Serialize, R: Serialize>(&mut self, line: &Line<O, R>) -> io::Result<()> {
        let mut buf = serde_json::to_vec(line).map_err(io::Error::other)?;
        buf.push(b'\n');
        self.file.write_all(&buf)
    }

    /// Records that `op` is invoked now; returns its id for [`ProcessLog::returned`].
    pub fn invoke<O: Serialize>(&mut self, op: &O) -> io::Result<u64> {
        let id = self.next;
        self.next += 1;
        let line: Line<&O, ()> = Line::Invoke {
            p: self.process,
            id,
            t: mono_ns(),
            op,
        };
        self.write(&line)?;
        Ok(id)
    }

    /// Records that operation `id` returned `ret` now.
    pub fn returned<R: Serialize>(&mut self, id: u64, ret: &R) -> io::Result<()> {
        let line: Line<(), &R> = Line::Return {
            p: self.process,
            id,
            t: mono_ns(),
            ret,
        };
        self.write(&line)
    }
}

/// Joins the logs of several processes into one history. An operation invoked but never
/// returned has an unknown outcome; a torn last line (a process killed inside its `write`) is
/// skipped, as is a line that is not an event.
pub fn read_logs<O: DeserializeOwned, R: DeserializeOwned, P: AsRef<Path>>(
    paths: &[P],
) -> io::Result<History<O, R>> {
    let mut history = History::new();
    for path in paths {
        let mut invoked: BTreeMap<(u64, u64), (O, u64)> = BTreeMap::new();
        for line in BufReader::new(File::open(path)?).lines() {
            match serde_json::from_str::<Line<O, R>>(&line?) {
                Ok(Line::Invoke { p, id, t, op }) => {
                    invoked.insert((p, id), (op, t));
                }
                Ok(Line::Return { p, id, t, ret }) => {
                    if let Some((op, inv)) = invoked.remove(&(p, id)) {
                        history.push(p, op, inv, Some((t, ret)));
                    }
                }
                Err(_) => {}
            }
        }
        for ((p, _), (op, inv)) in invoked {
            history.push(p, op, inv, None);
        }
    }
    Ok(history)
}

/// Where a workload records its calls: [`ThreadSink`] (one thread's share of a [`Recorder`])
/// or a [`ProcessLog`] (a process's file). The same workload code runs on both.
pub trait Sink<O, R> {
    /// Records that `op` is invoked, runs `call`, and records its answer (`None`: no answer the
    /// caller can trust, an unknown outcome); returns the answer.
    fn record(&mut self, op: O, call: impl FnOnce(&O) -> Option<R>) -> io::Result<Option<R>>;
}

/// One thread's share of a [`Recorder`].
#[derive(Debug)]
pub struct ThreadSink<'a, O, R> {
    recorder: &'a Recorder<O, R>,
    process: u64,
}

impl<O: Clone, R: Clone> Sink<O, R> for ThreadSink<'_, O, R> {
    fn record(&mut self, op: O, call: impl FnOnce(&O) -> Option<R>) -> io::Result<Option<R>> {
        let pending = self.recorder.invoke(self.process, op.clone());
        let ret = call(&op);
        if let Some(r) = &ret {
            pending.returned(r.clone());
        }
        Ok(ret)
    }
}

impl<O: Serialize, R: Serialize> Sink<O, R> for ProcessLog {
    fn record(&mut self, op: O, call: impl FnOnce(&O) -> Option<R>) -> io::Result<Option<R>> {
        let id = self.invoke(&op)?;
        let ret = call(&op);
        if let Some(r) = &ret {
            self.returned(id, r)?;
        }
        Ok(ret)
    }
}

/// Runs `body` on `threads` threads (given its id and its sink) and returns the history they
/// recorded. With `tick`, a further thread calls it every millisecond meanwhile (to move a
/// manual clock, say).
pub fn run_threads<O: Clone + Send, R: Clone + Send>(
    threads: usize,
    tick: Option<&(dyn Fn() + Sync)>,
    body: impl Fn(u64, &mut ThreadSink<'_, O, R>) + Sync,
) -> History<O, R> {
    let recorder: Recorder<O, R> = Recorder::new();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some(tick) = tick {
            let done = &done;
            s.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    tick();
                }
            });
        }
        let workers: Vec<_> = (0..threads as u64)
            .map(|process| {
                let (recorder, body) = (&recorder, &body);
                s.spawn(move || {
                    body(process, &mut ThreadSink { recorder, process });
                })
            })
            .collect();
        for w in workers {
            // A worker that panicked left its call unknown; the history is still checked.
            let _ = w.join();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    recorder.into_history()
}
