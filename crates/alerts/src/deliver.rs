//! Delivery: routing by severity, one worker thread per receiver, timeouts, retries with
//! exponential backoff, counted failures, and the rows of a store's outbox sent once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError, bounded};
use serde::Serialize;

use crate::alert::Notification;
use crate::engine::Outbox;
use crate::notify::{Notifier, SendError};
use crate::rule::Severity;
use crate::store::OutboxEntry;

/// A named notifier and the lowest severity it receives.
pub struct Receiver {
    name: String,
    notifier: Box<dyn Notifier>,
    min_severity: Severity,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.name)
            .field("kind", &self.notifier.kind())
            .field("min_severity", &self.min_severity)
            .finish()
    }
}

impl Receiver {
    /// `notifier` under `name`, routed as the seed does: the log and Alertmanager get every
    /// alert, PagerDuty only critical ones, the others (chat, webhook, email) high and critical.
    pub fn new(name: &str, notifier: impl Notifier + 'static) -> Self {
        let min_severity = match notifier.kind() {
            "log" | "alertmanager" => Severity::Low,
            "pagerduty" => Severity::Critical,
            _ => Severity::High,
        };
        Receiver {
            name: name.to_owned(),
            notifier: Box::new(notifier),
            min_severity,
        }
    }

    /// Receives alerts of `s` and above.
    #[must_use]
    pub fn min_severity(mut self, s: Severity) -> Self {
        self.min_severity = s;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time after.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Sends `n` through `notifier`, retrying transient failures; counts into `c`.
    fn deliver(
        &self,
        notifier: &dyn Notifier,
        n: &Notification,
        c: &Counters,
    ) -> Result<(), SendError> {
        self.deliver_keyed(notifier, n, None, None, c)
            .unwrap_or(Ok(()))
    }

    /// As `deliver`, with an idempotency key, and no attempt started after `deadline`: `None`
    /// when it passed before one (nothing sent, nothing counted but the retries).
    fn deliver_keyed(
        &self,
        notifier: &dyn Notifier,
        n: &Notification,
        key: Option<&str>,
        deadline: Option<Instant>,
        c: &Counters,
    ) -> Option<Result<(), SendError>> {
        let mut wait = self.backoff;
        let attempts = self.attempts.max(1);
        for attempt in 1..=attempts {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let sent = match key {
                Some(k) => notifier.send_keyed(n, k),
                None => notifier.send(n),
            };
            match sent {
                Ok(()) => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    return Some(Ok(()));
                }
                Err(e) if e.permanent || attempt == attempts => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    // An embedder's notifier may quote its URL: hidden before it is kept.
                    let e = SendError {
                        reason: crate::redact(&e.reason),
                        ..e
                    };
                    *c.last_error.lock() = Some(e.reason.clone());
                    return Some(Err(e));
                }
                Err(_) => {
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2).min(self.max_backoff);
                }
            }
        }
        Some(Ok(()))
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    /// Queued or being delivered.
    in_flight: AtomicU64,
    last_error: parking_lot::Mutex<Option<String>>,
}

/// Deliveries of one receiver so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// The receiver.
    pub receiver: String,
    /// Its channel (`slack`, `email`, …).
    pub kind: &'static str,
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications given up on (after the last retry, or refused outright).
    pub failed: u64,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// Notifications dropped because the receiver's queue was full.
    pub dropped: u64,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

/// What a worker sends: a notification handed over directly, or a row of a store's outbox.
enum Job {
    Note(Notification),
    Row(OutboxEntry, Arc<Outbox>),
}

struct Worker {
    name: String,
    kind: &'static str,
    min_severity: Severity,
    tx: Sender<Job>,
    counters: Arc<Counters>,
    notifier: Arc<dyn Notifier>,
    _thread: JoinHandle<()>,
}

/// Routes notifications to receivers by severity and delivers them on one worker thread per
/// receiver, so a dead receiver delays neither the evaluator nor the other receivers.
///
/// [`dispatch`](Dispatcher::dispatch) never blocks: each receiver has a queue of 1,024, and a
/// notification that finds it full is dropped and counted.
pub struct Dispatcher {
    workers: Vec<Worker>,
    retry: RetryPolicy,
    /// Outbox rows queued or being sent, so that the next look at the outbox skips them.
    rows: Arc<parking_lot::Mutex<HashSet<u64>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "receivers",
                &self.workers.iter().map(|w| &w.name).collect::<Vec<_>>(),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

const QUEUE: usize = 1024;

/// Sends one outbox row, unless its lease may have lapsed, and marks it delivered.
fn send_row(
    retry: &RetryPolicy,
    notifier: &dyn Notifier,
    row: &OutboxEntry,
    outbox: &Outbox,
    c: &Counters,
) {
    let key = row.id.to_string();
    let sent = retry.deliver_keyed(
        notifier,
        &row.notification,
        Some(&key),
        Some(outbox.send_until),
        c,
    );
    if sent.is_some() {
        // Failing to mark it sends it again later, under the same key.
        if let Err(e) = outbox.store.delivered(&outbox.lease, &[row.id]) {
            *c.last_error.lock() = Some(crate::redact(&e.to_string()));
        }
    }
}

impl Dispatcher {
    /// Starts one worker per receiver; fails if a thread cannot start.
    pub fn new(receivers: Vec<Receiver>, retry: RetryPolicy) -> crate::Result<Self> {
        let rows = Arc::new(parking_lot::Mutex::new(HashSet::new()));
        let workers = receivers
            .into_iter()
            .map(|r| {
                let (tx, rx) = bounded::<Job>(QUEUE);
                let counters = Arc::new(Counters::default());
                let notifier: Arc<dyn Notifier> = Arc::from(r.notifier);
                let thread = {
                    let (c, n, rows) = (counters.clone(), notifier.clone(), rows.clone());
                    std::thread::Builder::new()
                        .name(format!("oc-alerts-{}", r.name))
                        .spawn(move || {
                            for job in rx {
                                match job {
                                    Job::Note(note) => {
                                        let _ = retry.deliver(&*n, &note, &c);
                                    }
                                    Job::Row(row, outbox) => {
                                        send_row(&retry, &*n, &row, &outbox, &c);
                                        rows.lock().remove(&row.id);
                                    }
                                }
                                c.in_flight.fetch_sub(1, Ordering::SeqCst);
                            }
                        })
                };
                let thread = thread.map_err(|e| crate::Error::Invalid {
                    what: format!("receiver {:?}", r.name),
                    reason: format!("cannot start its worker thread: {e}"),
                })?;
                Ok(Worker {
                    kind: notifier.kind(),
                    name: r.name,
                    min_severity: r.min_severity,
                    tx,
                    counters,
                    notifier,
                    _thread: thread,
                })
            })
            .collect::<crate::Result<_>>()?;
        Ok(Dispatcher {
            workers,
            retry,
            rows,
        })
    }

    /// The receivers a notification of this severity reaches.
    pub fn route(&self, n: &Notification) -> Vec<String> {
        self.workers
            .iter()
            .filter(|w| n.alert.severity >= w.min_severity)
            .map(|w| w.name.clone())
            .collect()
    }

    /// Queues the undelivered rows of `outbox` (up to 1,024, oldest first) on their receivers'
    /// workers, skipping those already queued; returns how many were queued. A worker sends a
    /// row only before [`Outbox::send_until`], with its id as the idempotency key, and marks
    /// it delivered after the last attempt (whether it succeeded or not, as
    /// [`dispatch`](Dispatcher::dispatch) gives up). A row for a receiver no longer
    /// configured is marked delivered unsent.
    pub fn send_outbox(&self, outbox: &Outbox) -> crate::Result<usize> {
        let rows = outbox.store.outbox(&outbox.lease, QUEUE)?;
        let shared = Arc::new(outbox.clone());
        let mut orphans = Vec::new();
        let mut queued = 0;
        for row in rows {
            let Some(w) = self.workers.iter().find(|w| w.name == row.receiver) else {
                orphans.push(row.id);
                continue;
            };
            if !self.rows.lock().insert(row.id) {
                continue;
            }
            let id = row.id;
            w.counters.in_flight.fetch_add(1, Ordering::SeqCst);
            match w.tx.try_send(Job::Row(row, shared.clone())) {
                Ok(()) => queued += 1,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    // Still in the outbox: the next look queues it again.
                    w.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.rows.lock().remove(&id);
                }
            }
        }
        if !orphans.is_empty() {
            outbox.store.delivered(&outbox.lease, &orphans)?;
        }
        Ok(queued)
    }

    /// Queues each notification for every receiver its severity reaches.
    pub fn dispatch(&self, notes: &[Notification]) {
        for n in notes {
            for w in self
                .workers
                .iter()
                .filter(|w| n.alert.severity >= w.min_severity)
            {
                w.counters.in_flight.fetch_add(1, Ordering::SeqCst);
                match w.tx.try_send(Job::Note(n.clone())) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        w.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                        w.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Waits until every queued notification is delivered or given up on, at most `timeout`;
    /// false if some are still in flight.
    pub fn flush(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let busy = self
                .workers
                .iter()
                .any(|w| w.counters.in_flight.load(Ordering::SeqCst) > 0);
            if !busy {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `n` to receiver `name` now, whatever its severity, with the retry policy
    /// (`oc alerts test`). `None` if there is no such receiver.
    pub fn send_now(&self, name: &str, n: &Notification) -> Option<Result<(), SendError>> {
        let w = self.workers.iter().find(|w| w.name == name)?;
        Some(self.retry.deliver(&*w.notifier, n, &w.counters))
    }

    /// The receivers' names.
    pub fn receivers(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|w| w.name.as_str())
    }

    /// Per-receiver counts.
    pub fn stats(&self) -> Vec<DeliveryStats> {
        self.workers
            .iter()
            .map(|w| DeliveryStats {
                receiver: w.name.clone(),
                kind: w.kind,
                sent: w.counters.sent.load(Ordering::Relaxed),
                failed: w.counters.failed.load(Ordering::Relaxed),
                retries: w.counters.retries.load(Ordering::Relaxed),
                dropped: w.counters.dropped.load(Ordering::Relaxed),
                last_error: w.counters.last_error.lock().clone(),
            })
            .collect()
    }
}
