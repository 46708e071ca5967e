//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) receives an alert
//! through the Alertmanager channel, lists it, and drops it once resolved.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oc_alerts::notify::AlertmanagerNotifier;
use oc_alerts::{Alert, Kind, Notification, Notifier, Severity, State};
use oc_time::Timestamp;
use serde_json::Value;

const BIN: &str = "prometheus-alertmanager";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alerts(base: &str) -> Option<Vec<Value>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let body = agent
        .get(format!("{base}/api/v2/alerts"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    serde_json::from_str(&body).ok()
}

fn ours(list: &[Value]) -> Option<&Value> {
    list.iter()
        .find(|a| a["labels"]["alertname"] == "OcAlertmanagerProbe")
}

#[test]
fn a_real_alertmanager_receives_and_resolves() {
    if Command::new(BIN).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("OC_REQUIRE_ALERTMANAGER").is_none(),
            "{BIN} is required here but missing"
        );
        eprintln!("{BIN} not installed: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let _am = Killed(
        Command::new(BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while alerts(&base).is_none() {
        assert!(Instant::now() < deadline, "Alertmanager did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let now = Timestamp::now();
    let mut n = Notification {
        kind: Kind::Firing,
        repeat: false,
        alert: Alert {
            rule: "OcAlertmanagerProbe".into(),
            severity: Severity::Critical,
            labels: [("team".to_owned(), "agents".to_owned())].into(),
            state: State::Firing,
            value: 1.0,
            summary: "Probe".into(),
            description: "Sent by the oc-alerts tests".into(),
            active_since: now,
            since: now,
            notified_at: None,
            fingerprint: "feedfacefeedface".into(),
        },
    };
    let am = AlertmanagerNotifier::new(&base, Duration::from_secs(5));
    am.send(&n).unwrap();
    let listed = alerts(&base).unwrap();
    let a = ours(&listed).unwrap_or_else(|| panic!("not listed: {listed:?}"));
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["team"], "agents");
    assert_eq!(a["annotations"]["summary"], "Probe");
    assert_eq!(
        a["annotations"]["description"],
        "Sent by the oc-alerts tests"
    );
    assert_eq!(a["status"]["state"], "active");
    let ends = Timestamp::parse_rfc3339(a["endsAt"].as_str().unwrap()).unwrap();
    assert!(
        ends.since(now) >= Duration::from_secs(4 * 3600),
        "held until the repeat: {a}"
    );

    n.kind = Kind::Resolved;
    n.alert.state = State::Resolved;
    n.alert.since = Timestamp::now();
    am.send(&n).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = alerts(&base).unwrap();
        if ours(&listed).is_none() {
            break; // resolved alerts leave Alertmanager's list of alerts
        }
        assert!(Instant::now() < deadline, "still listed: {listed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
