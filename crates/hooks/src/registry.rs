//! `Hooks`: the registry of before- and after-hooks, their statistics and background workers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use oc_tasks::EventKind;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, TaskEvent};

/// Identifies a registered hook.
pub type HookId = u64;

/// A before-hook: `Err(reason)` vetoes the transition.
pub type BeforeFn = dyn Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync;
/// An after-hook: `Err(message)` is counted and reported, never undoes anything.
pub type AfterFn = dyn Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync;
/// Called for each after-hook failure.
pub type FailureCallback = dyn Fn(&HookFailure) + Send + Sync;

/// Hooks slower than this are reported by default.
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(1);

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the change, able to veto it.
    Before,
    /// After the change is committed.
    After,
}

/// What a background hook's queue does when full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// The transition waits for room (nothing is lost).
    Block,
    /// The event is dropped and counted (the transition never waits).
    Drop,
}

/// A registered hook, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookInfo {
    /// Its id.
    pub id: HookId,
    /// Its name.
    pub name: String,
    /// Before or after.
    pub phase: Phase,
    /// The kinds it runs for (empty: all).
    pub kinds: Vec<EventKind>,
    /// Lower runs first; ties in registration order.
    pub priority: i32,
    /// Runs on its own worker thread.
    pub background: bool,
}

/// Per-hook statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookStats {
    /// The hook.
    pub id: HookId,
    /// Its name.
    pub name: String,
    /// Times it ran.
    pub runs: u64,
    /// Times it failed (error or panic); for before-hooks, vetoes are not failures.
    pub failures: u64,
    /// Vetoes (before-hooks).
    pub vetoes: u64,
    /// Runs slower than the threshold.
    pub slow: u64,
    /// Events dropped because its queue was full (background, `Overflow::Drop`).
    pub dropped: u64,
    /// Total run time, in microseconds.
    pub total_us: u64,
    /// Longest run, in microseconds.
    pub max_us: u64,
}

/// An after-hook that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookFailure {
    /// The hook.
    pub id: HookId,
    /// Its name.
    pub hook: String,
    /// The event it ran for.
    pub event: EventKind,
    /// Its error, or the panic message.
    pub error: String,
}

/// A hook that ran longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowHook {
    /// The hook.
    pub id: HookId,
    /// Its name.
    pub hook: String,
    /// How long it took, in microseconds.
    pub duration_us: u64,
}

/// What the inline after-hooks of one transition did (background ones report through statistics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookReport {
    /// After-hooks that failed.
    pub failures: Vec<HookFailure>,
    /// Hooks (before or after) slower than the threshold.
    pub slow: Vec<SlowHook>,
    /// Events dropped by full background queues.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    failures: AtomicU64,
    vetoes: AtomicU64,
    slow: AtomicU64,
    dropped: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Counters {
    /// Counts a run of the hook `name` that took `d`; a `slow` one is also reported to
    /// `tracing` (`WARN`, target `oc_hooks`).
    fn record(&self, name: &str, d: Duration, slow: bool) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "oc_hooks",
                hook = name,
                duration_us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
                "slow hook"
            );
        }
    }
}

#[derive(Clone)]
enum Run {
    Before(Arc<BeforeFn>),
    After(Arc<AfterFn>),
    Background {
        tx: Sender<Arc<TaskEvent>>,
        overflow: Overflow,
    },
}

#[derive(Clone)]
struct Entry {
    id: HookId,
    name: Arc<str>,
    kinds: Vec<EventKind>,
    priority: i32,
    run: Run,
    counters: Arc<Counters>,
}

impl Entry {
    fn wants(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
    fn phase(&self) -> Phase {
        match self.run {
            Run::Before(_) => Phase::Before,
            _ => Phase::After,
        }
    }
}

/// A hook's id, name and counters.
type Named = (HookId, Arc<str>, Arc<Counters>);

struct Worker {
    done: Receiver<()>,
}

/// The hook registry. Cheap to share (`Arc<Hooks>`); hooks may be added and removed at any time,
/// also from inside a hook (each transition runs the hooks registered when it started).
///
/// Hooks are registered on kinds of [`EventKind`], the list the task's history records too;
/// a failure put back to pending by its retry policy fires the hooks on
/// [`EventKind::Failed`], so a hook on [`EventKind::RetryScheduled`] never runs (see
/// [`TaskEvent`]).
pub struct Hooks {
    entries: RwLock<Vec<Entry>>,
    /// Statistics of removed hooks, kept for `stats`.
    retired: Mutex<Vec<Named>>,
    next: AtomicU64,
    slow_threshold: Duration,
    on_failure: RwLock<Option<Arc<FailureCallback>>>,
    workers: Mutex<Vec<Worker>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("hooks", &self.list())
            .field("slow_threshold", &self.slow_threshold)
            .finish()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self::new()
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

/// Runs `f`, turning a panic into an error.
fn guarded(f: impl FnOnce() -> std::result::Result<(), String>) -> std::result::Result<(), String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(format!("panicked: {}", panic_message(p))),
    }
}

impl Hooks {
    /// An empty registry with the default slow threshold (1 s).
    pub fn new() -> Self {
        Self::with_slow_threshold(DEFAULT_SLOW_THRESHOLD)
    }

    /// An empty registry reporting hooks slower than `threshold`.
    pub fn with_slow_threshold(threshold: Duration) -> Self {
        Hooks {
            entries: RwLock::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
            slow_threshold: threshold,
            on_failure: RwLock::new(None),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Calls `f` for every after-hook failure, besides counting it.
    pub fn on_failure(&self, f: impl Fn(&HookFailure) + Send + Sync + 'static) {
        *self.on_failure.write() = Some(Arc::new(f));
    }

    fn add(&self, name: &str, kinds: &[EventKind], priority: i32, run: Run) -> HookId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            id,
            name: Arc::from(name),
            kinds: kinds.to_vec(),
            priority,
            run,
            counters: Arc::new(Counters::default()),
        };
        let mut entries = self.entries.write();
        // Stable: equal priorities keep registration order.
        let at = entries.partition_point(|e| e.priority <= priority);
        entries.insert(at, entry);
        id
    }

    /// Registers a before-hook for `kinds` (empty: all); `Err(reason)` vetoes the transition.
    pub fn before(
        &self,
        name: &str,
        kinds: &[EventKind],
        priority: i32,
        f: impl Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> HookId {
        self.add(name, kinds, priority, Run::Before(Arc::new(f)))
    }

    /// Registers an after-hook for `kinds` (empty: all), run inline after each committed change.
    pub fn after(
        &self,
        name: &str,
        kinds: &[EventKind],
        priority: i32,
        f: impl Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> HookId {
        self.add(name, kinds, priority, Run::After(Arc::new(f)))
    }

    /// Registers an after-hook that runs on its own worker thread, fed by a queue of `capacity`
    /// events; `overflow` says what a transition does when the queue is full.
    pub fn after_background(
        &self,
        name: &str,
        kinds: &[EventKind],
        priority: i32,
        capacity: usize,
        overflow: Overflow,
        f: impl Fn(&TaskEvent) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Result<HookId> {
        if capacity == 0 {
            return Err(Error::InvalidInput {
                field: "capacity",
                reason: "must be at least 1".into(),
            });
        }
        let (tx, rx) = crossbeam_channel::bounded::<Arc<TaskEvent>>(capacity);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let counters = Arc::new(Counters::default());
        let worker_counters = counters.clone();
        let on_failure = self.on_failure.read().clone();
        let slow = self.slow_threshold;
        let hook_name: Arc<str> = Arc::from(name);
        let thread_name = format!("oc-hook-{name}");
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let wname = hook_name.clone();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                for ev in rx {
                    let start = Instant::now();
                    let res = guarded(|| f(&ev));
                    let d = start.elapsed();
                    worker_counters.record(&wname, d, d >= slow);
                    if let Err(error) = res {
                        worker_counters.failures.fetch_add(1, Ordering::Relaxed);
                        if let Some(cb) = &on_failure {
                            cb(&HookFailure {
                                id,
                                hook: wname.to_string(),
                                event: ev.kind(),
                                error,
                            });
                        }
                    }
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::Io {
                what: "starting a background hook thread".into(),
                source: e,
            })?;
        let entry = Entry {
            id,
            name: hook_name,
            kinds: kinds.to_vec(),
            priority,
            run: Run::Background { tx, overflow },
            counters,
        };
        {
            let mut entries = self.entries.write();
            let at = entries.partition_point(|e| e.priority <= priority);
            entries.insert(at, entry);
        }
        self.workers.lock().push(Worker { done: done_rx });
        Ok(id)
    }

    /// Removes a hook; a background hook's worker finishes its queue and exits.
    /// Returns whether the hook existed.
    pub fn unregister(&self, id: HookId) -> bool {
        let mut entries = self.entries.write();
        match entries.iter().position(|e| e.id == id) {
            Some(i) => {
                let e = entries.remove(i);
                self.retired
                    .lock()
                    .push((e.id, e.name.clone(), e.counters.clone()));
                true
            }
            None => false,
        }
    }

    /// The registered hooks, in the order they run.
    pub fn list(&self) -> Vec<HookInfo> {
        self.entries
            .read()
            .iter()
            .map(|e| HookInfo {
                id: e.id,
                name: e.name.to_string(),
                phase: e.phase(),
                kinds: e.kinds.clone(),
                priority: e.priority,
                background: matches!(e.run, Run::Background { .. }),
            })
            .collect()
    }

    /// Statistics of every hook ever registered (removed ones included).
    pub fn stats(&self) -> Vec<HookStats> {
        let live: Vec<Named> = self
            .entries
            .read()
            .iter()
            .map(|e| (e.id, e.name.clone(), e.counters.clone()))
            .collect();
        let mut all: Vec<_> = live
            .into_iter()
            .chain(self.retired.lock().iter().cloned())
            .collect();
        all.sort_by_key(|(id, _, _)| *id);
        all.into_iter()
            .map(|(id, name, c)| HookStats {
                id,
                name: name.to_string(),
                runs: c.runs.load(Ordering::Relaxed),
                failures: c.failures.load(Ordering::Relaxed),
                vetoes: c.vetoes.load(Ordering::Relaxed),
                slow: c.slow.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
                total_us: c.total_ns.load(Ordering::Relaxed) / 1000,
                max_us: c.max_ns.load(Ordering::Relaxed) / 1000,
            })
            .collect()
    }

    fn matching(&self, kind: EventKind, phase: Phase) -> Vec<Entry> {
        self.entries
            .read()
            .iter()
            .filter(|e| e.phase() == phase && e.wants(kind))
            .cloned()
            .collect()
    }

    /// Whether any before-hook wants `kind` (lets callers skip preparing an event).
    pub fn has_before(&self, kind: EventKind) -> bool {
        self.entries
            .read()
            .iter()
            .any(|e| e.phase() == Phase::Before && e.wants(kind))
    }

    /// Runs the before-hooks for `ev` in order; the first veto stops the rest.
    pub fn run_before(&self, ev: &TaskEvent, report: &mut HookReport) -> Result<()> {
        for e in self.matching(ev.kind(), Phase::Before) {
            let Run::Before(f) = &e.run else { continue };
            let start = Instant::now();
            let res = guarded(|| f(ev));
            let d = start.elapsed();
            self.note_slow(&e, d, report);
            if let Err(reason) = res {
                e.counters.vetoes.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Vetoed {
                    hook: e.name.to_string(),
                    reason,
                });
            }
        }
        Ok(())
    }

    fn note_slow(&self, e: &Entry, d: Duration, report: &mut HookReport) {
        let slow = d >= self.slow_threshold;
        e.counters.record(&e.name, d, slow);
        if slow {
            report.slow.push(SlowHook {
                id: e.id,
                hook: e.name.to_string(),
                duration_us: u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            });
        }
    }

    /// Runs the after-hooks for `ev`: inline ones now (failures caught and counted), background
    /// ones queued. Never fails: the change is already committed.
    pub fn run_after(&self, ev: &TaskEvent, report: &mut HookReport) {
        let entries = self.matching(ev.kind(), Phase::After);
        if entries.is_empty() {
            return;
        }
        let mut shared: Option<Arc<TaskEvent>> = None;
        for e in entries {
            match &e.run {
                Run::After(f) => {
                    let start = Instant::now();
                    let res = guarded(|| f(ev));
                    self.note_slow(&e, start.elapsed(), report);
                    if let Err(error) = res {
                        e.counters.failures.fetch_add(1, Ordering::Relaxed);
                        let failure = HookFailure {
                            id: e.id,
                            hook: e.name.to_string(),
                            event: ev.kind(),
                            error,
                        };
                        if let Some(cb) = self.on_failure.read().clone() {
                            cb(&failure);
                        }
                        report.failures.push(failure);
                    }
                }
                Run::Background { tx, overflow } => {
                    let ev = shared.get_or_insert_with(|| Arc::new(ev.clone())).clone();
                    let sent = match overflow {
                        Overflow::Block => tx.send(ev).is_ok(),
                        Overflow::Drop => match tx.try_send(ev) {
                            Ok(()) => true,
                            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
                        },
                    };
                    if !sent {
                        e.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        report.dropped += 1;
                    }
                }
                Run::Before(_) => {}
            }
        }
    }

    /// Stops taking background events and waits up to `deadline` for the workers to finish their
    /// queues; returns how many workers were still busy at the deadline.
    pub fn shutdown(&self, deadline: Duration) -> usize {
        let background: Vec<HookId> = self
            .entries
            .read()
            .iter()
            .filter(|e| matches!(e.run, Run::Background { .. }))
            .map(|e| e.id)
            .collect();
        for id in background {
            // Dropping the entry drops its sender: the worker drains what is queued, then exits.
            self.unregister(id);
        }
        let until = Instant::now() + deadline;
        let workers = std::mem::take(&mut *self.workers.lock());
        workers
            .into_iter()
            .filter(|w| {
                let left = until.saturating_duration_since(Instant::now());
                w.done.recv_timeout(left).is_err()
            })
            .count()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        // Give background hooks a bounded chance to finish what they were handed.
        self.shutdown(Duration::from_secs(5));
    }
}
