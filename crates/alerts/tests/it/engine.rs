//! The state machine under a fake clock: pending, firing, repeat, resolved, silences,
//! inhibition, restarts; and a property test of the repeat interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oc_alerts::{Condition, Engine, Error, Kind, Matcher, Notification, Rule, Severity, State};
use oc_metrics::{Snapshot, Sources, collect};
use oc_tasks::SqliteTaskStore;
use oc_time::Timestamp;
use proptest::prelude::*;

fn snapshot() -> Snapshot {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    collect(&Sources::new(&store)).unwrap()
}

/// A rule active while `level` is above zero, measuring `level`.
fn switch_rule(name: &str, severity: Severity, level: &Arc<AtomicU64>) -> Rule {
    let level = level.clone();
    Rule::new(
        name,
        severity,
        Condition::when(move |_| {
            let v = level.load(Ordering::SeqCst);
            (v > 0).then_some(v as f64)
        }),
    )
    .label("disk", "sda")
    .summary("{{name}} at {{value}}")
}

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(mins: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(60 * mins))
}

fn kinds(n: &[Notification]) -> Vec<(Kind, bool, &str)> {
    n.iter()
        .map(|n| (n.kind, n.repeat, n.alert.rule.as_str()))
        .collect()
}

#[test]
fn pending_firing_repeat_resolved() {
    let level = Arc::new(AtomicU64::new(7));
    let rule = switch_rule("Hot", Severity::High, &level).pending(Duration::from_secs(300));
    let mut e = Engine::new(vec![rule])
        .unwrap()
        .repeat_interval(Duration::from_secs(3600));
    let snap = snapshot();

    assert!(e.evaluate(&snap, at(0)).unwrap().is_empty());
    assert_eq!(e.alerts().next().unwrap().state, State::Pending);
    assert!(
        e.evaluate(&snap, at(4)).unwrap().is_empty(),
        "not pending for 5 min yet"
    );

    let sent = e.evaluate(&snap, at(5)).unwrap();
    assert_eq!(kinds(&sent), [(Kind::Firing, false, "Hot")]);
    assert_eq!(sent[0].alert.summary, "Hot at 7");
    assert_eq!(sent[0].alert.labels["disk"], "sda");
    assert_eq!(sent[0].alert.active_since, at(0));

    assert!(
        e.evaluate(&snap, at(30)).unwrap().is_empty(),
        "no repeat before the interval"
    );
    assert!(e.evaluate(&snap, at(64)).unwrap().is_empty());
    let sent = e.evaluate(&snap, at(65)).unwrap();
    assert_eq!(kinds(&sent), [(Kind::Firing, true, "Hot")]);

    level.store(0, Ordering::SeqCst);
    let sent = e.evaluate(&snap, at(70)).unwrap();
    assert_eq!(kinds(&sent), [(Kind::Resolved, false, "Hot")]);
    assert_eq!(
        sent[0].alert.fingerprint,
        e.alerts().next().unwrap().fingerprint
    );
    assert!(
        e.evaluate(&snap, at(71)).unwrap().is_empty(),
        "one resolution only"
    );
    assert_eq!(e.alerts().next().unwrap().state, State::Resolved);

    // Active again: pending again, and the resolved alert is gone an hour after resolving.
    level.store(9, Ordering::SeqCst);
    assert!(e.evaluate(&snap, at(72)).unwrap().is_empty());
    assert_eq!(e.alerts().next().unwrap().state, State::Pending);
    level.store(0, Ordering::SeqCst);
    e.evaluate(&snap, at(73)).unwrap();
    assert_eq!(
        e.alerts().count(),
        0,
        "a pending alert that clears sends and keeps nothing"
    );
}

#[test]
fn pending_that_clears_never_fires() {
    let level = Arc::new(AtomicU64::new(1));
    let rule = switch_rule("Blip", Severity::Low, &level).pending(Duration::from_secs(600));
    let mut e = Engine::new(vec![rule]).unwrap();
    let snap = snapshot();
    assert!(e.evaluate(&snap, at(0)).unwrap().is_empty());
    level.store(0, Ordering::SeqCst);
    assert!(e.evaluate(&snap, at(9)).unwrap().is_empty());
    level.store(1, Ordering::SeqCst);
    assert!(
        e.evaluate(&snap, at(10)).unwrap().is_empty(),
        "the pending clock restarted"
    );
    assert!(e.evaluate(&snap, at(19)).unwrap().is_empty());
    assert_eq!(e.evaluate(&snap, at(20)).unwrap().len(), 1);
}

#[test]
fn silences_mute_until_they_end() {
    let level = Arc::new(AtomicU64::new(1));
    let mut e = Engine::new(vec![switch_rule("Noisy", Severity::High, &level)]).unwrap();
    let snap = snapshot();
    let s = e
        .silence(
            vec![
                Matcher::parse("alertname=Noisy").unwrap(),
                Matcher::parse("disk=sda").unwrap(),
            ],
            at(0),
            Duration::from_secs(3600),
            "maintenance",
        )
        .unwrap();
    assert_eq!(s.id, 1);
    assert!(e.evaluate(&snap, at(0)).unwrap().is_empty(), "silenced");
    assert_eq!(
        e.alerts().next().unwrap().state,
        State::Firing,
        "state still tracked"
    );
    assert!(e.evaluate(&snap, at(59)).unwrap().is_empty());
    let sent = e.evaluate(&snap, at(60)).unwrap();
    assert_eq!(
        kinds(&sent),
        [(Kind::Firing, false, "Noisy")],
        "sent once the silence ends"
    );
    assert!(e.silences().is_empty(), "ended silences are dropped");

    // A silence that does not match mutes nothing; one that matches, expired early, neither.
    let other = Matcher::parse("severity!=high").unwrap();
    e.silence(vec![other], at(61), Duration::from_secs(3600), "")
        .unwrap();
    level.store(0, Ordering::SeqCst);
    assert_eq!(
        kinds(&e.evaluate(&snap, at(62)).unwrap()),
        [(Kind::Resolved, false, "Noisy")]
    );

    let id = e
        .silence(
            vec![Matcher::parse("alertname=Noisy").unwrap()],
            at(63),
            Duration::from_secs(3600),
            "",
        )
        .unwrap()
        .id;
    assert!(e.expire_silence(id, at(63)).unwrap());
    assert!(!e.expire_silence(999, at(63)).unwrap());
    level.store(1, Ordering::SeqCst);
    assert_eq!(e.evaluate(&snap, at(64)).unwrap().len(), 1);
}

#[test]
fn resolution_of_an_alert_never_sent_is_not_sent() {
    let level = Arc::new(AtomicU64::new(1));
    let mut e = Engine::new(vec![switch_rule("Quiet", Severity::High, &level)]).unwrap();
    let snap = snapshot();
    e.silence(
        vec![Matcher::parse("alertname=Quiet").unwrap()],
        at(0),
        Duration::from_secs(600),
        "",
    )
    .unwrap();
    assert!(e.evaluate(&snap, at(0)).unwrap().is_empty());
    level.store(0, Ordering::SeqCst);
    assert!(e.evaluate(&snap, at(1)).unwrap().is_empty());
}

#[test]
fn matchers_and_silences_reject_bad_input() {
    for bad in ["novalue", "=x", "bad name=x"] {
        assert!(
            matches!(Matcher::parse(bad), Err(Error::Invalid { .. })),
            "{bad}"
        );
    }
    let m = Matcher::parse(r#"severity != "critical""#).unwrap();
    assert!(m.negated);
    assert_eq!(m.to_string(), "severity!=critical");
    let mut e = Engine::new(vec![]).unwrap();
    assert!(
        e.silence(vec![], at(0), Duration::from_secs(1), "")
            .is_err(),
        "silence everything"
    );
}

#[test]
fn critical_inhibits_lower_severities_of_the_same_rule_and_labels() {
    let warn = Arc::new(AtomicU64::new(1));
    let crit = Arc::new(AtomicU64::new(1));
    let mut e = Engine::new(vec![
        switch_rule("Disk", Severity::Medium, &warn),
        switch_rule("Disk", Severity::Critical, &crit),
        switch_rule("Other", Severity::Medium, &warn),
    ])
    .unwrap();
    let snap = snapshot();
    let sent = e.evaluate(&snap, at(0)).unwrap();
    let mut got: Vec<_> = sent
        .iter()
        .map(|n| (n.alert.rule.as_str(), n.alert.severity))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("Disk", Severity::Critical), ("Other", Severity::Medium)]
    );

    crit.store(0, Ordering::SeqCst);
    let sent = e.evaluate(&snap, at(1)).unwrap();
    let got: Vec<_> = sent
        .iter()
        .map(|n| (n.kind, n.alert.rule.as_str(), n.alert.severity))
        .collect();
    assert!(
        got.contains(&(Kind::Resolved, "Disk", Severity::Critical)),
        "{got:?}"
    );
    assert!(
        got.contains(&(Kind::Firing, "Disk", Severity::Medium)),
        "{got:?}"
    );
    assert_eq!(got.len(), 2);
}

#[test]
fn duplicate_rules_are_refused() {
    let l = Arc::new(AtomicU64::new(0));
    let err = Engine::new(vec![
        switch_rule("Twice", Severity::Low, &l),
        switch_rule("Twice", Severity::Low, &l),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("Twice"), "{err}");
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.json");
    let level = Arc::new(AtomicU64::new(3));
    let rules = || vec![switch_rule("Sticky", Severity::High, &level)];
    let snap = snapshot();
    {
        let mut e = Engine::open(rules(), &path).unwrap();
        assert_eq!(e.evaluate(&snap, at(0)).unwrap().len(), 1);
        e.silence(
            vec![Matcher::parse("alertname=Else").unwrap()],
            at(0),
            Duration::from_secs(7200),
            "kept",
        )
        .unwrap();
    }
    let mut e = Engine::open(rules(), &path).unwrap();
    assert_eq!(e.silences().len(), 1, "silences are kept");
    assert!(
        e.evaluate(&snap, at(1)).unwrap().is_empty(),
        "a restart does not re-fire"
    );
    level.store(0, Ordering::SeqCst);
    let sent = e.evaluate(&snap, at(2)).unwrap();
    assert_eq!(
        kinds(&sent),
        [(Kind::Resolved, false, "Sticky")],
        "nor forget what fires"
    );
    let next = e
        .silence(
            vec![Matcher::parse("a=b").unwrap()],
            at(2),
            Duration::from_secs(1),
            "",
        )
        .unwrap();
    assert_eq!(next.id, 2, "silence ids continue");

    // A rule removed from the config: its alerts are dropped on load.
    let e = Engine::open(vec![], &path).unwrap();
    assert_eq!(e.alerts().count(), 0);

    // A damaged state file is an error naming it, and is left as it was.
    std::fs::write(&path, b"{not json").unwrap();
    let err = Engine::open(rules(), &path).unwrap_err();
    assert!(matches!(err, Error::State { .. }), "{err}");
    assert!(err.to_string().contains("alerts.json"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{not json");
}

proptest! {
    /// Evaluating again and again never sends a second firing notification for an alert
    /// before the repeat interval, unless it resolved in between; and a resolution always
    /// follows a firing notification.
    #[test]
    fn no_repeat_before_the_interval(
        repeat_s in 1u64..7200,
        pending_s in 0u64..600,
        steps in proptest::collection::vec((0u64..1800, any::<bool>(), any::<bool>()), 1..60),
    ) {
        let level = Arc::new(AtomicU64::new(0));
        let hot = Arc::new(AtomicU64::new(0));
        let rule = switch_rule("P", Severity::High, &level).pending(Duration::from_secs(pending_s));
        let crit = switch_rule("P", Severity::Critical, &hot);
        let mut e = Engine::new(vec![rule, crit]).unwrap().repeat_interval(Duration::from_secs(repeat_s));
        let snap = snapshot();
        let mut now = T0;
        let mut last_fired = std::collections::HashMap::new();
        for (advance, active, critical) in steps {
            now = now.saturating_add(Duration::from_secs(advance));
            level.store(u64::from(active), Ordering::SeqCst);
            hot.store(u64::from(critical), Ordering::SeqCst);
            for n in e.evaluate(&snap, now).unwrap() {
                let fp = n.alert.fingerprint.clone();
                match n.kind {
                    Kind::Firing => {
                        if let Some(prev) = last_fired.get(&fp) {
                            prop_assert!(now.since(*prev) >= Duration::from_secs(repeat_s));
                            prop_assert!(n.repeat);
                        } else {
                            prop_assert!(!n.repeat);
                        }
                        last_fired.insert(fp, now);
                    }
                    Kind::Resolved => {
                        prop_assert!(last_fired.remove(&fp).is_some(), "resolved without firing");
                    }
                }
            }
        }
    }
}

#[test]
fn a_state_file_planted_as_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let level = Arc::new(AtomicU64::new(3));
    let rules = || vec![switch_rule("Sticky", Severity::High, &level)];
    // A valid state elsewhere, with a silence: through a link it would be loaded as ours.
    let elsewhere = dir.path().join("elsewhere.json");
    Engine::open(rules(), &elsewhere)
        .unwrap()
        .silence(
            vec![Matcher::parse("alertname=Sticky").unwrap()],
            at(0),
            Duration::from_secs(7200),
            "planted",
        )
        .unwrap();
    let path = dir.path().join("alerts.json");
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let err = Engine::open(rules(), &path).unwrap_err();
    assert!(matches!(err, Error::State { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}
