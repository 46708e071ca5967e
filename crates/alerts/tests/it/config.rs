//! The TOML configuration: declarative rules, and clear errors for bad ones.

use std::time::Duration;

use oc_alerts::{Config, Engine, Error, Kind};
use oc_metrics::{Sources, collect};
use oc_tasks::{NewTask, SqliteTaskStore, TaskStore};
use oc_time::Timestamp;

#[test]
fn declarative_rules_fire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.toml");
    std::fs::write(
        &path,
        r#"
builtin = false
repeat_interval = "30m"
interval = "10s"

[[rule]]
name = "Backlog"
severity = "high"
metric = "opencode_tasks"
match = { status = "pending" }
op = ">="
threshold = 3
labels = { team = "agents" }
summary = "{{value}} {{labels.status}} tasks for {{labels.team}}"
description = "{{name}} ({{severity}}): at least {{threshold}}"

[[rule]]
name = "MostlyPending"
severity = "low"
for = "2m"
numerator = { metric = "opencode_tasks", labels = { status = "pending" } }
denominator = { metric = "opencode_tasks" }
op = ">"
threshold = 0.5
"#,
    )
    .unwrap();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.rules.len(), 2);
    assert_eq!(cfg.repeat_interval, Duration::from_secs(1800));
    assert_eq!(cfg.interval, Duration::from_secs(10));

    let store = SqliteTaskStore::open_in_memory().unwrap();
    for _ in 0..3 {
        store.create(NewTask::new("t")).unwrap();
    }
    let snap = collect(&Sources::new(&store)).unwrap();
    let mut e = Engine::new(cfg.rules)
        .unwrap()
        .repeat_interval(cfg.repeat_interval);
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    let sent = e.evaluate(&snap, t0).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, Kind::Firing);
    assert_eq!(sent[0].alert.summary, "3 pending tasks for agents");
    assert_eq!(sent[0].alert.description, "Backlog (high): at least 3");
    assert_eq!(
        sent[0].alert.labels["status"], "pending",
        "the series' labels are kept"
    );
    let sent = e
        .evaluate(&snap, t0.saturating_add(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].alert.rule, "MostlyPending");
    assert_eq!(sent[0].alert.value, 1.0);
}

#[test]
fn bad_configs_name_what_is_wrong() {
    let rule = |body: &str| {
        format!("[[rule]]\nname = \"R\"\nseverity = \"low\"\nop = \">\"\nthreshold = 1\n{body}\n")
    };
    let cases = [
        (
            rule("metric = \"opencode_nope\""),
            "unknown metric \"opencode_nope\"",
        ),
        (
            rule("metric = \"opencode_tasks\"\nmatch = { state = \"x\" }"),
            "has no label \"state\"",
        ),
        (
            rule("metric = \"opencode_task_duration_seconds\""),
            "is a histogram",
        ),
        (
            rule("metric = \"opencode_tasks\"\nsummary = \"{{oops}}\""),
            "unknown placeholder {{oops}}",
        ),
        (
            rule("metric = \"opencode_tasks\"\nfor = \"soon\""),
            "not a duration",
        ),
        (rule(""), "give either `metric`"),
        (
            rule("metric = \"opencode_tasks\"\nnumerator = { metric = \"opencode_tasks\" }"),
            "give either `metric`",
        ),
        (
            rule("metric = \"opencode_tasks\"\ncolour = \"red\""),
            "unknown field `colour`",
        ),
        (
            "[[rule]]\nname = \"R\"\nseverity = \"urgent\"\n".to_owned(),
            "urgent",
        ),
        (
            "[thresholds]\nfailure = 1\n".to_owned(),
            "unknown field `failure`",
        ),
        ("interval = \"0s\"\n".to_owned(), "interval"),
    ];
    for (text, want) in cases {
        let err = Config::parse(&text, "alerts.toml").unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("alerts.toml") && msg.contains(want),
            "{want:?} not in: {msg}"
        );
    }
    let missing = Config::load("/nonexistent/alerts.toml").unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/alerts.toml"),
        "{missing}"
    );
}

#[test]
fn debug_output_never_shows_a_receivers_secrets() {
    let cfg = oc_alerts::Config::parse(
        r#"
[[receiver]]
name = "hook"
kind = "webhook"
url = "https://ops:s3cr3tpw@hooks.slack.com/services/T000/B000/XXXXTOKEN?token=qtok123"

[[receiver]]
name = "pager"
kind = "pagerduty"
routing_key = "R0UTINGKEY42"
"#,
        "inline",
    )
    .unwrap();
    let receivers = cfg
        .build_receivers(std::path::Path::new("/nonexistent"))
        .unwrap();
    use oc_alerts::notify::{
        AlertmanagerNotifier, DEFAULT_TIMEOUT, PAGERDUTY_URL, PagerDutyNotifier, SlackNotifier,
        WebhookNotifier,
    };
    let url = cfg.receivers[0].url.clone().unwrap();
    let notifiers = format!(
        "{:?} {:?} {:?} {:?}",
        WebhookNotifier::new(&url, DEFAULT_TIMEOUT),
        SlackNotifier::new(&url, None, DEFAULT_TIMEOUT),
        AlertmanagerNotifier::new(&url, DEFAULT_TIMEOUT),
        PagerDutyNotifier::new(PAGERDUTY_URL, "R0UTINGKEY42", DEFAULT_TIMEOUT),
    );
    let shown = format!("{cfg:?} {:?} {receivers:?} {notifiers}", cfg.receivers);
    for secret in ["s3cr3tpw", "T000", "XXXXTOKEN", "qtok123", "R0UTINGKEY42"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("hooks.slack.com"), "{shown}");
}
