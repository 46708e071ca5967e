//! Our figures in a recorder the embedder installed: `metrics-util`'s debugging recorder.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use oc_metrics::{Publisher, Sources, collect, publish};
use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};

/// How the recorder shows a gauge's value (its values compare only through `Debug`).
fn gauge_of(v: f64) -> Option<String> {
    Some(format!("{:?}", DebugValue::Gauge(v.into())))
}

/// The value of the series `name` with `labels`, if the recorder holds it.
fn value(
    seen: &[(
        CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<String> {
    seen.iter()
        .find(|(k, ..)| {
            k.kind() == kind
                && k.key().name() == name
                && k.key()
                    .labels()
                    .map(|l| (l.key(), l.value()))
                    .collect::<Vec<_>>()
                    == labels
        })
        .map(|(.., v)| format!("{v:?}"))
}

#[test]
fn a_snapshot_is_published_with_the_catalogues_names_labels_and_descriptions() {
    let store = MemoryTaskStore::new();
    store.create(NewTask::new("a")).unwrap();
    store.create(NewTask::new("b")).unwrap();
    store.claim_next("w", Duration::from_secs(60)).unwrap();
    let snap = collect(&Sources::new(&store)).unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || publish(&snap));
    let seen = snapshotter.snapshot().into_vec();
    let gauge = |status| {
        value(
            &seen,
            MetricKind::Gauge,
            "opencode_tasks",
            &[("status", status)],
        )
    };
    assert_eq!(gauge("pending"), gauge_of(1.0));
    assert_eq!(gauge("running"), gauge_of(1.0));
    assert_eq!(
        value(
            &seen,
            MetricKind::Counter,
            "opencode_tasks_total",
            &[("status", "pending")]
        ),
        Some(format!("{:?}", DebugValue::Counter(2)))
    );
    assert_eq!(
        value(&seen, MetricKind::Gauge, "opencode_tasks_ready", &[]),
        gauge_of(1.0)
    );
    let (_, unit, help, _) = seen
        .iter()
        .find(|(k, ..)| k.key().name() == "opencode_tasks")
        .unwrap();
    assert!(help.as_deref().is_some_and(|h| !h.is_empty()), "described");
    assert_eq!(*unit, Some(metrics::Unit::Count));
    // Every published name is the catalogue's.
    for (k, ..) in &seen {
        assert!(
            oc_metrics::CATALOGUE
                .iter()
                .any(|d| d.name == k.key().name()),
            "{} is not in the catalogue",
            k.key().name()
        );
    }
}

/// A publisher publishes into the global recorder at once and then every period, with fresh
/// readings, until stopped.
#[test]
fn a_publisher_keeps_the_installed_recorder_current() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // This test binary's only global recorder (nextest runs each test in its own process).
    recorder.install().unwrap();
    let store = std::sync::Arc::new(MemoryTaskStore::new());
    let reading = std::sync::Arc::clone(&store);
    let publisher = Publisher::start(Duration::from_millis(10), move || {
        collect(&Sources::new(&*reading))
    })
    .unwrap();
    let pending = || {
        value(
            &snapshotter.snapshot().into_vec(),
            MetricKind::Gauge,
            "opencode_tasks",
            &[("status", "pending")],
        )
    };
    let until = |want: f64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pending() != gauge_of(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "never published {want}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    until(0.0);
    store.create(NewTask::new("later")).unwrap();
    until(1.0);
    publisher.stop();
}
