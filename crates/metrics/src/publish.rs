//! Our figures in the embedder's own `metrics` recorder: [`publish`] once, or a [`Publisher`]
//! thread that publishes a fresh snapshot every so often.

use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Result, Snapshot, describe_all, record};

/// Publishes `snap` into the `metrics` recorder this thread sees (the one the process
/// installed with `metrics::set_global_recorder`, as a Prometheus, OpenTelemetry or StatsD
/// exporter does), under the catalogue's names and labels, with their descriptions and units:
/// counters as their absolute values, gauges set. Without a recorder it does nothing.
///
/// The task-duration histogram is not published: the store keeps its bucket counts, not the
/// observations a recorder takes (`Exporter::render` writes it out as Prometheus text).
pub fn publish(snap: &Snapshot) {
    describe_all();
    record(snap);
}

/// A thread that publishes a snapshot every `every` until stopped (or dropped).
#[derive(Debug)]
pub struct Publisher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing what `read` returns (say `|| collect(&Sources::new(&*store))`), first
    /// at once, then every `every`. A failed reading is skipped (and reported as a `tracing`
    /// warning); the next one tries again.
    pub fn start(
        every: Duration,
        mut read: impl FnMut() -> Result<Snapshot> + Send + 'static,
    ) -> std::io::Result<Publisher> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("oc-metrics-publisher".into())
            .spawn(move || {
                let mut publish_now = || match read() {
                    Ok(snap) => publish(&snap),
                    Err(e) => tracing::warn!(error = %e, "metrics not published"),
                };
                publish_now();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    publish_now();
                }
            })?;
        Ok(Publisher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops publishing and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}
