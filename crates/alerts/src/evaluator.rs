//! The background evaluator: every interval, a snapshot, an evaluation, and the resulting
//! notifications handed to the dispatcher.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use oc_metrics::{AlertFigures, ReceiverFigures, Snapshot};
use oc_time::Timestamp;
use parking_lot::Mutex;

use crate::alert::{Notification, State};
use crate::deliver::Dispatcher;
use crate::engine::Engine;
use crate::rule::Severity;
use crate::{Error, Result};

/// What fires now (every severity, zeros included) and how `dispatcher`'s deliveries went,
/// for `opencode_alerts_firing` and `opencode_alert_notifications_total`: set it as the
/// snapshot's `alerts` before rendering.
pub fn figures(engine: &Engine, dispatcher: Option<&Dispatcher>) -> AlertFigures {
    let firing = Severity::ALL
        .iter()
        .map(|s| {
            let n = engine
                .alerts()
                .filter(|a| a.severity == *s && a.state == State::Firing)
                .count();
            (s.as_str().to_owned(), n as u64)
        })
        .collect();
    let receivers = dispatcher
        .map(|d| {
            d.stats()
                .into_iter()
                .map(|s| ReceiverFigures {
                    receiver: s.receiver,
                    sent: s.sent,
                    failed: s.failed,
                    dropped: s.dropped,
                    retries: s.retries,
                })
                .collect()
        })
        .unwrap_or_default();
    AlertFigures { firing, receivers }
}

/// Evaluates `engine` over `snap` at `now` and has `dispatcher` deliver what it returns.
///
/// An engine with a store commits each notification to the store's outbox for the receivers
/// its severity reaches, then (while it holds the lease) the dispatcher sends what the outbox
/// holds, older rows first: those a previous holder left unsent too. An engine without a store
/// hands the notifications to the dispatcher directly.
pub fn evaluate_once(
    engine: &Mutex<Engine>,
    dispatcher: &Dispatcher,
    snap: &Snapshot,
    now: Timestamp,
) -> Result<Vec<Notification>> {
    let mut e = engine.lock();
    if e.store().is_none() {
        let notes = e.evaluate(snap, now)?;
        dispatcher.dispatch(&notes);
        return Ok(notes);
    }
    let notes = e.evaluate_routed(snap, now, &|n| dispatcher.route(n))?;
    if let Some(outbox) = e.outbox() {
        drop(e);
        dispatcher.send_outbox(&outbox)?;
    }
    Ok(notes)
}

/// How the background evaluator has fared.
#[derive(Debug, Default)]
pub struct EvaluatorStats {
    /// Evaluations run.
    pub runs: AtomicU64,
    /// Evaluations that failed (the snapshot or the state file).
    pub failures: AtomicU64,
    /// The last failure.
    pub last_error: Mutex<Option<String>>,
}

/// Evaluates on its own thread at an interval (the first run at once) until stopped or
/// dropped. Delivery happens on the dispatcher's workers, so a slow receiver never delays
/// an evaluation.
#[derive(Debug)]
pub struct Evaluator {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<EvaluatorStats>,
}

impl Evaluator {
    /// Starts evaluating `engine` every `interval` over the snapshots `snapshot` takes.
    pub fn spawn(
        engine: Arc<Mutex<Engine>>,
        dispatcher: Arc<Dispatcher>,
        interval: Duration,
        snapshot: impl Fn() -> std::result::Result<Snapshot, String> + Send + 'static,
    ) -> Result<Self> {
        let (stop, stopped) = bounded::<()>(0);
        let stats = Arc::new(EvaluatorStats::default());
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("oc-alerts-evaluator".into())
            .spawn(move || {
                loop {
                    let res = snapshot().and_then(|snap| {
                        evaluate_once(&engine, &dispatcher, &snap, Timestamp::now())
                            .map_err(|e| e.to_string())
                    });
                    st.runs.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = res {
                        st.failures.fetch_add(1, Ordering::Relaxed);
                        *st.last_error.lock() = Some(crate::redact(&e));
                    }
                    // A message or a disconnect both mean stop: the lease goes back, so another
                    // replica evaluates at once rather than after its TTL.
                    if !matches!(
                        stopped.recv_timeout(interval),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout)
                    ) {
                        if let Err(e) = engine.lock().release() {
                            *st.last_error.lock() = Some(crate::redact(&e.to_string()));
                        }
                        return;
                    }
                }
            })
            .map_err(|e| Error::Invalid {
                what: "evaluator".into(),
                reason: format!("cannot start its thread: {e}"),
            })?;
        Ok(Evaluator {
            stop: Some(stop),
            thread: Some(thread),
            stats,
        })
    }

    /// Runs and failures so far.
    pub fn stats(&self) -> &EvaluatorStats {
        &self.stats
    }

    /// Stops after the evaluation in progress, if any, and gives the store's lease back.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
