//! The background evaluator over a real store, delivering to a local webhook; the figures it
//! exports through `oc-metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use oc_alerts::{
    Condition, Config, Dispatcher, Engine, Evaluator, Receiver, RetryPolicy, Rule, Severity,
    figures,
};
use oc_metrics::{Exporter, Sources, collect};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};

#[test]
fn evaluates_in_the_background_and_notifies_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteTaskStore::open(dir.path().join("o.db")).unwrap());
    let rule = Rule::new(
        "Backlog",
        Severity::High,
        Condition::when(|s| (s.tasks.total >= 2).then_some(s.tasks.total as f64)),
    );
    let engine = Arc::new(parking_lot::Mutex::new(
        Engine::open(vec![rule], dir.path().join("alerts.json")).unwrap(),
    ));
    let crate::channels::Sink { url, got } = crate::channels::sink(&[]);
    let hook = oc_alerts::notify::WebhookNotifier::new(&url, Duration::from_secs(5));
    let dispatcher = Arc::new(
        Dispatcher::new(vec![Receiver::new("hook", hook)], RetryPolicy::default()).unwrap(),
    );
    let s = store.clone();
    let ev = Evaluator::spawn(
        engine.clone(),
        dispatcher.clone(),
        Duration::from_millis(20),
        move || collect(&Sources::new(&*s)).map_err(|e| e.to_string()),
    )
    .unwrap();

    // Two evaluations over an empty store, and their deliveries, are done: nothing was sent.
    while ev.stats().runs.load(Ordering::Relaxed) < 2 {
        std::thread::yield_now();
    }
    assert!(dispatcher.flush(Duration::from_secs(5)));
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing fires with no tasks"
    );
    store.create(NewTask::new("a")).unwrap();
    store.create(NewTask::new("b")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never notified");
        std::thread::sleep(Duration::from_millis(10));
    }
    let runs = ev.stats().runs.load(Ordering::Relaxed);
    while ev.stats().runs.load(Ordering::Relaxed) < runs + 5 {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dispatcher.flush(Duration::from_secs(5)));
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "five more evaluations, no repeat"
    );
    assert_eq!(ev.stats().failures.load(Ordering::Relaxed), 0);
    ev.stop();

    // The exported figures: one high alert firing, one notification sent.
    let mut snap = collect(&Sources::new(&*store)).unwrap();
    snap.alerts = Some(figures(&engine.lock(), Some(&dispatcher)));
    assert_eq!(
        snap.value("opencode_alerts_firing", &[("severity", "high")]),
        Some(1.0)
    );
    assert_eq!(
        snap.value("opencode_alerts_firing", &[("severity", "low")]),
        Some(0.0)
    );
    assert_eq!(
        snap.value(
            "opencode_alert_notifications_total",
            &[("receiver", "hook"), ("result", "sent")]
        ),
        Some(1.0)
    );
    let text = Exporter::new().unwrap().render(&snap);
    assert!(
        text.contains("opencode_alerts_firing{severity=\"high\"} 1"),
        "{text}"
    );
}

#[test]
fn receivers_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        r##"
[retry]
attempts = 2
backoff = "10ms"

[[receiver]]
name = "ops-log"
kind = "log"

[[receiver]]
name = "chat"
kind = "slack"
url = "http://127.0.0.1:9/slack"
channel = "#alerts"

[[receiver]]
name = "pager"
kind = "pagerduty"
routing_key = "k"
min_severity = "high"

[[receiver]]
name = "mail"
kind = "email"
server = "127.0.0.1:25"
from = "oc@example.com"
to = ["ops@example.com"]
"##,
        "alerts.toml",
    )
    .unwrap();
    assert_eq!(cfg.retry.attempts, 2);
    assert_eq!(cfg.retry.backoff, Duration::from_millis(10));
    let receivers = cfg.build_receivers(dir.path()).unwrap();
    let names: Vec<&str> = receivers.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["ops-log", "chat", "pager", "mail"]);
    assert!(
        dir.path().join("alerts.jsonl").exists(),
        "the log receiver opened its file"
    );

    // No receivers configured: the log in the data directory.
    let receivers = Config::default().build_receivers(dir.path()).unwrap();
    assert_eq!(receivers.len(), 1);

    let bad = |text: &str, want: &str| {
        let err = Config::parse(text, "alerts.toml").unwrap_err().to_string();
        assert!(err.contains(want), "{want:?} not in {err}");
    };
    bad(
        "[[receiver]]\nname = \"x\"\nkind = \"slack\"\n",
        "a slack receiver needs `url`",
    );
    bad(
        "[[receiver]]\nname = \"x\"\nkind = \"pigeon\"\n",
        "unknown kind \"pigeon\"",
    );
    bad(
        "[[receiver]]\nname = \"x\"\nkind = \"email\"\nserver = \"h:25\"\nfrom = \"a\"\n",
        "needs `to`",
    );
    bad(
        "[[receiver]]\nname = \"x\"\nkind = \"log\"\n[[receiver]]\nname = \"x\"\nkind = \"log\"\n",
        "defined twice",
    );
    bad(
        "[[receiver]]\nname = \"x\"\nkind = \"log\"\ntimeout = \"later\"\n",
        "not a duration",
    );
}

#[test]
fn failed_snapshots_are_counted_and_evaluation_goes_on() {
    let engine = Arc::new(parking_lot::Mutex::new(Engine::new(vec![]).unwrap()));
    let dispatcher = Arc::new(Dispatcher::new(vec![], RetryPolicy::default()).unwrap());
    let ev = Evaluator::spawn(engine, dispatcher, Duration::from_millis(1), || {
        Err("database is locked".to_owned())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ev.stats().failures.load(Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "never retried");
        std::thread::yield_now();
    }
    assert_eq!(
        ev.stats().last_error.lock().as_deref(),
        Some("database is locked")
    );
    ev.stop();
}
