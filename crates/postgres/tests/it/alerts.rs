//! `PgAlertStore` on a real server: the `oc_alerts` conformance checks, the lease exclusive
//! and handed over when it lapses by the database's clock, a stale commit writing nothing, and
//! two engines on one database notifying once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oc_alerts::testkit::{alert, check_all, outgoing};
use oc_alerts::{AlertStore, Condition, Engine, Rule, Severity, State};
use oc_postgres::{PgAlertStore, PgOptions};
use oc_time::Timestamp;

use crate::server::{fresh_options, server};

/// Two stores on one fresh schema.
fn pair(opts: &PgOptions) -> (Arc<dyn AlertStore>, Arc<dyn AlertStore>) {
    (
        Arc::new(PgAlertStore::connect(opts.clone()).unwrap()),
        Arc::new(PgAlertStore::connect(opts.clone()).unwrap()),
    )
}

#[test]
fn alert_store_conformance() {
    let Some(pg) = server() else {
        return;
    };
    check_all(&mut || pair(&fresh_options(pg)), Duration::from_millis(500));
}

#[test]
fn alert_lease_is_exclusive_until_it_lapses_by_the_database_clock() {
    let Some(pg) = server() else {
        return;
    };
    let (a, b) = pair(&fresh_options(pg));
    let ttl = Duration::from_secs(2);
    let asked = Instant::now();
    let la = a.lease("host-a", ttl).unwrap().unwrap();
    let now: i64 = pg
        .psql(
            "postgres",
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let left = la.until.as_millis() - now;
    assert!(
        (0..=2000).contains(&left),
        "the deadline is the database's time and the ttl: {left} ms left"
    );
    assert!(b.lease("host-b", ttl).unwrap().is_none(), "held by a");
    assert_eq!(a.lease("host-a", ttl).unwrap().unwrap().token, la.token);
    // a stops renewing: b gets it once it lapsed, not before.
    let lb = loop {
        if let Some(l) = b.lease("host-b", ttl).unwrap() {
            break l;
        }
        assert!(asked.elapsed() < Duration::from_secs(20), "never lapsed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        asked.elapsed() >= ttl - Duration::from_millis(100),
        "taken before it lapsed: {:?}",
        asked.elapsed()
    );
    assert_ne!(lb.token, la.token);
    assert!(a.lease("host-a", ttl).unwrap().is_none(), "now b's");

    // a, back from a pause, commits under its lapsed lease: nothing is written.
    let x = alert("X", "0x1", State::Firing);
    assert!(
        !a.commit(&la, std::slice::from_ref(&x), &[], &[outgoing("hook", &x)])
            .unwrap()
    );
    assert!(b.load().unwrap().is_empty());
    assert!(b.outbox(&lb, 10).unwrap().is_empty());
    let rows = pg
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM \"{}\".alert_outbox",
                fresh_schema_of(&a)
            ),
        )
        .unwrap();
    assert_eq!(rows.trim(), "0", "no outbox row either");
}

/// The schema a store's `Debug` names.
fn fresh_schema_of(store: &Arc<dyn AlertStore>) -> String {
    let d = format!("{store:?}");
    let i = d.find("schema: \"").unwrap() + "schema: \"".len();
    d[i..].split('"').next().unwrap().to_owned()
}

#[test]
fn alert_lease_on_an_injected_clock_lapses_when_it_says() {
    let Some(pg) = server() else {
        return;
    };
    let clock = oc_tasks::ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let opts = fresh_options(pg).clock(Arc::new(clock.clone()) as Arc<dyn oc_tasks::Clock>);
    let (a, b) = pair(&opts);
    let ttl = Duration::from_secs(15);
    let la = a.lease("a", ttl).unwrap().unwrap();
    assert_eq!(la.until.as_millis(), 1_800_000_015_000);
    clock.advance(Duration::from_millis(14_999));
    assert!(b.lease("b", ttl).unwrap().is_none());
    assert!(a.commit(&la, &[], &[], &[]).unwrap(), "still a's");
    clock.advance(Duration::from_millis(1));
    assert!(!a.commit(&la, &[], &[], &[]).unwrap(), "lapsed");
    assert!(b.lease("b", ttl).unwrap().is_some());
}

#[test]
fn alert_engines_on_one_database_evaluate_one_at_a_time() {
    let Some(pg) = server() else {
        return;
    };
    let (sa, sb) = pair(&fresh_options(pg));
    let level = Arc::new(AtomicU64::new(1));
    let rule = || {
        let level = level.clone();
        Rule::new(
            "Hot",
            Severity::High,
            Condition::when(move |_| {
                let v = level.load(Ordering::SeqCst);
                (v > 0).then_some(v as f64)
            }),
        )
    };
    let mut a = Engine::with_store(vec![rule()], sa, "a").unwrap();
    let mut b = Engine::with_store(vec![rule()], sb, "b").unwrap();
    let store = oc_tasks::MemoryTaskStore::new();
    let snap = oc_metrics::collect(&oc_metrics::Sources::new(&store)).unwrap();
    let route = |_: &oc_alerts::Notification| vec!["hook".to_owned()];
    let mut sent = 0;
    for _ in 0..3 {
        sent += a
            .evaluate_routed(&snap, Timestamp::now(), &route)
            .unwrap()
            .len();
        sent += b
            .evaluate_routed(&snap, Timestamp::now(), &route)
            .unwrap()
            .len();
    }
    assert_eq!(sent, 1, "one firing notification for the fleet");
    assert!(a.is_evaluating() && !b.is_evaluating());
    assert_eq!(
        b.alerts().next().map(|x| x.state),
        Some(State::Firing),
        "b reloads a's state"
    );
    let rows = a.outbox().unwrap();
    assert_eq!(rows.store.outbox(&rows.lease, 10).unwrap().len(), 1);
    assert!(b.outbox().is_none());
    // a gives up the lease: b evaluates next, from a's state, and sends nothing new.
    a.release().unwrap();
    assert!(
        b.evaluate_routed(&snap, Timestamp::now(), &route)
            .unwrap()
            .is_empty()
    );
    assert!(b.is_evaluating());
    let ob = b.outbox().unwrap();
    assert_eq!(
        ob.store.outbox(&ob.lease, 10).unwrap().len(),
        1,
        "a's unsent row is b's to send"
    );
}

#[test]
fn a_stopped_evaluator_gives_its_lease_back_at_once() {
    let Some(pg) = server() else {
        return;
    };
    let (sa, sb) = pair(&fresh_options(pg));
    let engine = Engine::with_store(vec![], sa, "replica-a")
        .unwrap()
        .lease_ttl(Duration::from_secs(3600));
    let dispatcher =
        Arc::new(oc_alerts::Dispatcher::new(vec![], oc_alerts::RetryPolicy::default()).unwrap());
    let tasks = oc_tasks::MemoryTaskStore::new();
    let ev = oc_alerts::Evaluator::spawn(
        Arc::new(parking_lot::Mutex::new(engine)),
        dispatcher,
        Duration::from_millis(5),
        move || oc_metrics::collect(&oc_metrics::Sources::new(&tasks)).map_err(|e| e.to_string()),
    )
    .unwrap();
    while ev.stats().runs.load(Ordering::Relaxed) < 2 {
        std::thread::yield_now();
    }
    let ttl = Duration::from_secs(60);
    assert!(sb.lease("replica-b", ttl).unwrap().is_none(), "held by a");
    ev.stop();
    assert!(
        sb.lease("replica-b", ttl).unwrap().is_some(),
        "stopping gave the lease back: b evaluates without waiting out a's hour"
    );
}

#[test]
fn alert_store_failures_are_backend_errors_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there now.
    let opts = PgOptions::new(&format!(
        "postgresql://agent:hunter2@127.0.0.1:{port}/work?connect_timeout=2"
    ))
    .unwrap();
    let err = PgAlertStore::connect(opts).unwrap_err();
    assert!(
        matches!(
            err,
            oc_alerts::Error::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.is_retryable(),
        "a refused connection may succeed later: {err}"
    );
    assert!(!err.is_invalid_input());
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps its source"
    );
}
