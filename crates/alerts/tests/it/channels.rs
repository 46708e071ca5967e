//! Each channel against a real local receiver on 127.0.0.1: exact payloads, retries with
//! backoff, permanent failures, routing, and a dead receiver that delays nobody.

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oc_alerts::notify::{
    AlertmanagerNotifier, LogNotifier, PagerDutyNotifier, SlackNotifier, WebhookNotifier,
};
use oc_alerts::{
    Alert, Dispatcher, Kind, Notification, Notifier, Receiver, RetryPolicy, Severity, State,
};
use oc_time::Timestamp;
use serde_json::{Value, json};

/// An HTTP receiver answering with the scripted statuses (then 200), recording each body.
pub(crate) struct Sink {
    pub(crate) url: String,
    pub(crate) got: Arc<Mutex<Vec<Value>>>,
}

pub(crate) fn sink(script: &[u16]) -> Sink {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut script: VecDeque<u16> = script.iter().copied().collect();
    let seen = got.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            req.as_reader().read_to_string(&mut body).unwrap();
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            seen.lock().unwrap().push(v);
            let code = script.pop_front().unwrap_or(200);
            let _ = req.respond(tiny_http::Response::from_string("").with_status_code(code));
        }
    });
    Sink { url, got }
}

pub(crate) fn note(kind: Kind, severity: Severity) -> Notification {
    let t = Timestamp::from_millis(1_800_000_000_000);
    Notification {
        kind,
        repeat: false,
        alert: Alert {
            rule: "OpencodeHighTaskFailureRate".into(),
            severity,
            labels: BTreeMap::from([("team".to_owned(), "agents".to_owned())]),
            state: if kind == Kind::Firing {
                State::Firing
            } else {
                State::Resolved
            },
            value: 0.25,
            summary: "High task failure rate".into(),
            description: "Task failure rate is 25.00% (above 0.1).".into(),
            active_since: t,
            since: t,
            notified_at: None,
            fingerprint: "0123456789abcdef".into(),
        },
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

const T: Duration = Duration::from_secs(5);

#[test]
fn webhook_payload_and_retries() {
    let s = sink(&[503, 500]);
    let d = Dispatcher::new(
        vec![Receiver::new("hook", WebhookNotifier::new(&s.url, T))],
        quick(),
    )
    .unwrap();
    d.dispatch(&[note(Kind::Firing, Severity::High)]);
    assert!(d.flush(Duration::from_secs(10)));
    let got = s.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "two failures, then success");
    let body = &got[2];
    assert_eq!(body["version"], "1");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["repeat"], false);
    assert_eq!(body["alert"]["rule"], "OpencodeHighTaskFailureRate");
    assert_eq!(body["alert"]["severity"], "high");
    assert_eq!(body["alert"]["labels"]["team"], "agents");
    assert_eq!(body["alert"]["value"], 0.25);
    let st = &d.stats()[0];
    assert_eq!((st.sent, st.retries, st.failed), (1, 2, 0), "{st:?}");
}

#[test]
fn failures_after_the_last_retry_and_refusals_are_counted() {
    let down = sink(&[503, 503, 503]);
    let refuses = sink(&[400]);
    let d = Dispatcher::new(
        vec![
            Receiver::new("down", WebhookNotifier::new(&down.url, T)),
            Receiver::new("refuses", WebhookNotifier::new(&refuses.url, T)),
        ],
        quick(),
    )
    .unwrap();
    d.dispatch(&[note(Kind::Firing, Severity::Critical)]);
    assert!(d.flush(Duration::from_secs(10)));
    let st = d.stats();
    assert_eq!(
        (st[0].sent, st[0].retries, st[0].failed),
        (0, 2, 1),
        "{st:?}"
    );
    assert!(
        st[0].last_error.as_deref().unwrap().contains("503"),
        "{st:?}"
    );
    assert_eq!(
        (st[1].sent, st[1].retries, st[1].failed),
        (0, 0, 1),
        "no retry on 400"
    );
    assert_eq!(down.got.lock().unwrap().len(), 3);
    assert_eq!(refuses.got.lock().unwrap().len(), 1);
}

#[test]
fn slack_text_is_the_seeds() {
    let s = sink(&[]);
    let n = SlackNotifier::new(&s.url, Some("#alerts"), T);
    n.send(&note(Kind::Firing, Severity::High)).unwrap();
    n.send(&note(Kind::Resolved, Severity::High)).unwrap();
    let got = s.got.lock().unwrap().clone();
    assert_eq!(
        got[0],
        json!({
            "channel": "#alerts",
            "text": "[high] High task failure rate: Task failure rate is 25.00% (above 0.1).",
        })
    );
    assert!(
        got[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("RESOLVED [high] High task failure rate")
    );
}

#[test]
fn pagerduty_triggers_and_resolves_with_one_dedup_key() {
    let s = sink(&[]);
    let n = PagerDutyNotifier::new(&s.url, "R0UTINGKEY", T);
    n.send(&note(Kind::Firing, Severity::Critical)).unwrap();
    n.send(&note(Kind::Resolved, Severity::Critical)).unwrap();
    let got = s.got.lock().unwrap().clone();
    let (trigger, resolve) = (&got[0], &got[1]);
    assert_eq!(trigger["routing_key"], "R0UTINGKEY");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "oc-0123456789abcdef");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "opencode-tools");
    assert_eq!(
        trigger["payload"]["summary"],
        "High task failure rate: Task failure rate is 25.00% (above 0.1)."
    );
    assert_eq!(
        resolve,
        &json!({"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": "oc-0123456789abcdef"})
    );
}

#[test]
fn routing_by_severity_follows_the_seed() {
    let (log, slack, page, am) = (sink(&[]), sink(&[]), sink(&[]), sink(&[]));
    let d = Dispatcher::new(
        vec![
            Receiver::new("hook", WebhookNotifier::new(&log.url, T)).min_severity(Severity::Low),
            Receiver::new("chat", SlackNotifier::new(&slack.url, None, T)),
            Receiver::new("pager", PagerDutyNotifier::new(&page.url, "k", T)),
            Receiver::new("am", AlertmanagerNotifier::new(&am.url, T)),
        ],
        quick(),
    )
    .unwrap();
    d.dispatch(&[
        note(Kind::Firing, Severity::Medium),
        note(Kind::Firing, Severity::High),
        note(Kind::Firing, Severity::Critical),
    ]);
    assert!(d.flush(Duration::from_secs(10)));
    let count = |s: &Sink| s.got.lock().unwrap().len();
    assert_eq!(count(&log), 3, "everything to the low-severity receiver");
    assert_eq!(count(&slack), 2, "chat gets high and critical");
    assert_eq!(count(&page), 1, "only critical pages");
    assert_eq!(count(&am), 3, "Alertmanager routes on its side");
}

#[test]
fn a_dead_receiver_delays_nobody() {
    // Accepts connections and never answers.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    let ok = sink(&[]);
    let d = Dispatcher::new(
        vec![
            Receiver::new(
                "dead",
                WebhookNotifier::new(&dead_url, Duration::from_secs(3)),
            ),
            Receiver::new("ok", WebhookNotifier::new(&ok.url, T)),
        ],
        quick(),
    )
    .unwrap();
    let start = std::time::Instant::now();
    d.dispatch(&[note(Kind::Firing, Severity::High)]);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "dispatch never blocks"
    );
    while d.stats()[1].sent == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the live receiver waited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!d.flush(Duration::ZERO), "the dead one is still trying");
    drop(dead);
}

#[test]
fn log_channel_appends_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let n = LogNotifier::open(&path).unwrap();
    n.send(&note(Kind::Firing, Severity::Medium)).unwrap();
    n.send(&note(Kind::Resolved, Severity::Medium)).unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["level"], "warn");
    assert_eq!(lines[0]["message"], "alert firing: High task failure rate");
    assert_eq!(lines[1]["level"], "info");
    assert_eq!(lines[1]["data"]["alert"]["fingerprint"], "0123456789abcdef");
}

/// Delivers nothing until the test lets it: a receiver stuck on one notification.
struct Stuck(crossbeam_channel::Receiver<()>);

impl Notifier for Stuck {
    fn kind(&self) -> &'static str {
        "stuck"
    }
    fn send(&self, _: &Notification) -> Result<(), oc_alerts::SendError> {
        self.0
            .recv()
            .map_err(|_| oc_alerts::SendError::transient("closed"))
    }
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (release, wait) = crossbeam_channel::unbounded();
    let d = Dispatcher::new(
        vec![Receiver::new("stuck", Stuck(wait)).min_severity(Severity::Low)],
        quick(),
    )
    .unwrap();
    let notes = vec![note(Kind::Firing, Severity::High); 1030];
    d.dispatch(&notes);
    let dropped = d.stats()[0].dropped;
    // 1,024 queued, and at most one taken by the worker before the queue filled.
    assert!((5..=6).contains(&dropped), "dropped {dropped}");
    for _ in 0..1030 {
        release.send(()).unwrap();
    }
    assert!(d.flush(Duration::from_secs(10)));
    let st = &d.stats()[0];
    assert_eq!(st.sent + st.dropped, 1030, "{st:?}");
}
