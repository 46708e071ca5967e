//! `AlertStore`: the conformance checks on `FileAlertStore`, and the engine and dispatcher on
//! it: one evaluator at a time, commits refused after a take-over, the outbox delivered once
//! (with its id as the `Idempotency-Key`), a dead holder's rows sent by the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oc_alerts::testkit::{alert, check_all, outgoing};
use oc_alerts::{
    AlertStore, Condition, Dispatcher, Engine, FileAlertStore, Kind, Outbox, Receiver, RetryPolicy,
    Rule, Severity, State, evaluate_once,
};
use oc_metrics::{Snapshot, Sources, collect};
use oc_tasks::SqliteTaskStore;
use oc_time::Timestamp;
use parking_lot::Mutex as PMutex;

fn snapshot() -> Snapshot {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    collect(&Sources::new(&store)).unwrap()
}

fn rule(level: &Arc<AtomicU64>) -> Rule {
    let level = level.clone();
    Rule::new(
        "Hot",
        Severity::High,
        Condition::when(move |_| {
            let v = level.load(Ordering::SeqCst);
            (v > 0).then_some(v as f64)
        }),
    )
}

/// What a request carried: its `Idempotency-Key` and its `status`.
type Got = Arc<Mutex<Vec<(Option<String>, String)>>>;

/// An HTTP receiver recording each request's `Idempotency-Key` and `status`.
struct Keys {
    url: String,
    got: Got,
}

fn keys() -> Keys {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let key = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Idempotency-Key"))
                .map(|h| h.value.to_string());
            let mut body = String::new();
            req.as_reader().read_to_string(&mut body).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            seen.lock()
                .unwrap()
                .push((key, v["status"].as_str().unwrap_or("").to_owned()));
            let _ = req.respond(tiny_http::Response::from_string(""));
        }
    });
    Keys { url, got }
}

fn dispatcher(url: &str) -> Dispatcher {
    let hook = oc_alerts::notify::WebhookNotifier::new(url, Duration::from_secs(5));
    Dispatcher::new(vec![Receiver::new("hook", hook)], RetryPolicy::default()).unwrap()
}

#[test]
fn file_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    check_all(
        &mut || {
            n += 1;
            let path = dir.path().join(format!("state-{n}.json"));
            (
                Arc::new(FileAlertStore::new(&path)),
                Arc::new(FileAlertStore::new(&path)),
            )
        },
        Duration::from_millis(200),
    );
}

#[test]
fn file_store_lease_goes_to_whoever_asks_and_the_old_holder_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts-state.json");
    let store: Arc<dyn AlertStore> = Arc::new(FileAlertStore::new(&path));
    let ttl = Duration::from_secs(15);
    let first = store.lease("a", ttl).unwrap().unwrap();
    let again = store.lease("a", ttl).unwrap().unwrap();
    assert_eq!(first.token, again.token);
    let theirs = store.lease("b", ttl).unwrap().unwrap();
    assert_ne!(
        theirs.token, first.token,
        "granted at once, with a new token"
    );
    let x = alert("X", "0x1", State::Firing);
    assert!(
        !store
            .commit(&first, std::slice::from_ref(&x), &[], &[])
            .unwrap()
    );
    assert!(
        store.load().unwrap().is_empty(),
        "the refused commit wrote nothing"
    );
    assert!(
        store
            .commit(&theirs, std::slice::from_ref(&x), &[], &[])
            .unwrap()
    );
    // The file survives another process: the same lease, the same state.
    let reopened = FileAlertStore::new(&path);
    assert_eq!(reopened.load().unwrap(), [x]);
    assert_eq!(
        reopened.lease("b", ttl).unwrap().unwrap().token,
        theirs.token
    );
}

#[test]
fn the_outbox_is_delivered_once_with_its_id_as_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AlertStore> =
        Arc::new(FileAlertStore::new(dir.path().join("alerts-state.json")));
    let level = Arc::new(AtomicU64::new(1));
    let engine = PMutex::new(Engine::with_store(vec![rule(&level)], store.clone(), "h1").unwrap());
    let k = keys();
    let d = dispatcher(&k.url);
    let snap = snapshot();
    let sent = evaluate_once(&engine, &d, &snap, Timestamp::now()).unwrap();
    assert_eq!(sent.len(), 1);
    for _ in 0..3 {
        assert!(
            evaluate_once(&engine, &d, &snap, Timestamp::now())
                .unwrap()
                .is_empty()
        );
    }
    assert!(d.flush(Duration::from_secs(10)));
    level.store(0, Ordering::SeqCst);
    let sent = evaluate_once(&engine, &d, &snap, Timestamp::now()).unwrap();
    assert_eq!(sent[0].kind, Kind::Resolved);
    evaluate_once(&engine, &d, &snap, Timestamp::now()).unwrap();
    assert!(d.flush(Duration::from_secs(10)));
    let got = k.got.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            (Some("1".to_owned()), "firing".to_owned()),
            (Some("2".to_owned()), "resolved".to_owned())
        ]
    );
    let lease = store.lease("h1", Duration::from_secs(15)).unwrap().unwrap();
    assert!(
        store.outbox(&lease, 10).unwrap().is_empty(),
        "all delivered"
    );
    assert_eq!(d.stats()[0].sent, 2);
}

#[test]
fn a_dead_holders_rows_are_sent_by_the_next_before_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts-state.json");
    let store: Arc<dyn AlertStore> = Arc::new(FileAlertStore::new(&path));
    // The dead holder committed a firing notification and died before sending it.
    let x = alert("Old", "0ld", State::Firing);
    let dead = store
        .lease("dead", Duration::from_secs(15))
        .unwrap()
        .unwrap();
    assert!(
        store
            .commit(
                &dead,
                std::slice::from_ref(&x),
                &[],
                &[outgoing("hook", &x)]
            )
            .unwrap()
    );

    let level = Arc::new(AtomicU64::new(1));
    let engine =
        PMutex::new(Engine::with_store(vec![rule(&level)], store.clone(), "next").unwrap());
    let k = keys();
    let d = dispatcher(&k.url);
    evaluate_once(&engine, &d, &snapshot(), Timestamp::now()).unwrap();
    assert!(d.flush(Duration::from_secs(10)));
    let got = k.got.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            (Some("1".to_owned()), "firing".to_owned()),
            (Some("2".to_owned()), "firing".to_owned())
        ],
        "the old row first"
    );
}

#[test]
fn a_taken_over_engine_sends_nothing_and_only_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts-state.json");
    let level = Arc::new(AtomicU64::new(1));
    let open = |holder: &str| {
        let store: Arc<dyn AlertStore> = Arc::new(FileAlertStore::new(&path));
        PMutex::new(Engine::with_store(vec![rule(&level)], store, holder).unwrap())
    };
    let (a, b) = (open("a"), open("b"));
    let k = keys();
    let (da, db) = (dispatcher(&k.url), dispatcher(&k.url));
    let snap = snapshot();

    // a evaluates and commits, but its dispatcher has not looked at the outbox yet when b
    // takes the lease over: b sends the row, once; a's stale outbox reads empty.
    let sent = a
        .lock()
        .evaluate_routed(&snap, Timestamp::now(), &|n| da.route(n))
        .unwrap();
    assert_eq!(sent.len(), 1);
    let stale = a.lock().outbox().unwrap();
    assert!(
        evaluate_once(&b, &db, &snap, Timestamp::now())
            .unwrap()
            .is_empty(),
        "b read a's state: nothing changed"
    );
    assert_eq!(da.send_outbox(&stale).unwrap(), 0, "a lost its lease");
    assert!(db.flush(Duration::from_secs(10)));
    assert_eq!(k.got.lock().unwrap().len(), 1);
    assert_eq!(
        b.lock().alerts().next().map(|x| x.state),
        Some(State::Firing)
    );
}

#[test]
fn nothing_is_sent_once_a_third_of_the_lease_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AlertStore> =
        Arc::new(FileAlertStore::new(dir.path().join("alerts-state.json")));
    let lease = store.lease("h", Duration::from_secs(15)).unwrap().unwrap();
    let x = alert("X", "0x1", State::Firing);
    assert!(
        store
            .commit(
                &lease,
                std::slice::from_ref(&x),
                &[],
                &[outgoing("hook", &x)]
            )
            .unwrap()
    );
    let k = keys();
    let d = dispatcher(&k.url);
    let late = Outbox {
        store: store.clone(),
        lease: lease.clone(),
        send_until: Instant::now(),
    };
    assert_eq!(d.send_outbox(&late).unwrap(), 1);
    assert!(d.flush(Duration::from_secs(10)));
    assert!(k.got.lock().unwrap().is_empty(), "too late to send");
    assert_eq!(store.outbox(&lease, 10).unwrap().len(), 1, "still to send");
    let on_time = Outbox {
        send_until: Instant::now() + Duration::from_secs(10),
        ..late
    };
    assert_eq!(d.send_outbox(&on_time).unwrap(), 1);
    assert!(d.flush(Duration::from_secs(10)));
    assert_eq!(k.got.lock().unwrap().len(), 1);
    assert!(store.outbox(&lease, 10).unwrap().is_empty());
}

#[test]
fn silences_from_another_replica_are_read_at_each_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts-state.json");
    let level = Arc::new(AtomicU64::new(1));
    let open = |holder: &str| {
        let store: Arc<dyn AlertStore> = Arc::new(FileAlertStore::new(&path));
        Engine::with_store(vec![rule(&level)], store, holder).unwrap()
    };
    let (mut evaluator, mut other) = (open("a"), open("b"));
    let now = Timestamp::now();
    other
        .silence(
            vec![oc_alerts::Matcher::parse("alertname=Hot").unwrap()],
            now,
            Duration::from_secs(3600),
            "from b",
        )
        .unwrap();
    assert!(
        evaluator.evaluate(&snapshot(), now).unwrap().is_empty(),
        "silenced by the other replica"
    );
    assert_eq!(evaluator.silences().len(), 1);
}

/// What one step of the fleet model does.
#[derive(Debug, Clone)]
enum Step {
    /// Replica `i` evaluates, then delivers its outbox (or dies before delivering: `false`).
    Evaluate(usize, bool),
    /// The condition flips.
    Flip,
    /// Replica `i` dies and a new one, under a new holder name, takes its place.
    Restart(usize),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..3usize, proptest::bool::weighted(0.8)).prop_map(|(i, d)| Step::Evaluate(i, d)),
        2 => Just(Step::Flip),
        1 => (0..3usize).prop_map(Step::Restart),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(24))]

    /// Three replicas on one store, evaluating in any order, dying between a commit and its
    /// delivery, restarting: every row is delivered at most once, the notifications of the
    /// alert alternate firing and resolved, and once someone delivers after the last change,
    /// the last one says what the alert is.
    #[test]
    fn a_fleet_on_one_store_notifies_each_change_once(
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts-state.json");
        let level = Arc::new(AtomicU64::new(0));
        let mut born = 0;
        let open = |born: &mut u32| {
            *born += 1;
            let store: Arc<dyn AlertStore> = Arc::new(FileAlertStore::new(&path));
            Engine::with_store(vec![rule(&level)], store, &format!("h{born}")).unwrap()
        };
        let mut fleet: Vec<Engine> = (0..3).map(|_| open(&mut born)).collect();
        let snap = snapshot();
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let mut delivered: Vec<(u64, Kind)> = Vec::new();
        let route = |_: &oc_alerts::Notification| vec!["r".to_owned()];
        let deliver = |e: &Engine, delivered: &mut Vec<(u64, Kind)>| {
            if let Some(o) = e.outbox() {
                let rows = o.store.outbox(&o.lease, 100).unwrap();
                let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
                delivered.extend(rows.iter().map(|r| (r.id, r.notification.kind)));
                o.store.delivered(&o.lease, &ids).unwrap();
            }
        };
        for (n, s) in steps.into_iter().enumerate() {
            let now = t0.saturating_add(Duration::from_secs(60 * n as u64));
            match s {
                Step::Evaluate(i, live) => {
                    fleet[i].evaluate_routed(&snap, now, &route).unwrap();
                    if live {
                        deliver(&fleet[i], &mut delivered);
                    } else {
                        fleet[i] = open(&mut born);
                    }
                }
                Step::Flip => {
                    level.fetch_xor(1, Ordering::SeqCst);
                }
                Step::Restart(i) => fleet[i] = open(&mut born),
            }
        }
        // Someone evaluates and delivers after the last change.
        let end = t0.saturating_add(Duration::from_secs(60 * 100));
        fleet[0].evaluate_routed(&snap, end, &route).unwrap();
        deliver(&fleet[0], &mut delivered);

        let mut ids: Vec<u64> = delivered.iter().map(|d| d.0).collect();
        ids.dedup();
        proptest::prop_assert_eq!(ids.len(), delivered.len(), "a row delivered twice");
        for w in delivered.windows(2) {
            proptest::prop_assert_ne!(w[0].1, w[1].1, "two {:?} in a row: {:?}", w[0].1, delivered);
        }
        proptest::prop_assert!(delivered.first().is_none_or(|d| d.1 == Kind::Firing));
        let firing = level.load(Ordering::SeqCst) > 0;
        let last = delivered.last().map(|d| d.1);
        proptest::prop_assert!(
            if firing { last == Some(Kind::Firing) } else { last != Some(Kind::Firing) },
            "ends {:?} while firing is {}: {:?}", last, firing, delivered
        );
    }
}

#[test]
fn writers_of_one_state_file_never_lose_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts-state.json");
    let now = Timestamp::now();
    // Two stores on one file, as two processes have: only the file lock orders them.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = FileAlertStore::new(&path);
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .add_silence(&oc_alerts::Silence {
                            id: 0,
                            matchers: vec![oc_alerts::Matcher::parse("a=b").unwrap()],
                            starts_at: now,
                            ends_at: now.saturating_add(Duration::from_secs(3600)),
                            comment: format!("{w}-{i}"),
                        })
                        .unwrap();
                    let l = store
                        .lease(&format!("w{w}"), Duration::from_secs(15))
                        .unwrap()
                        .unwrap();
                    let x = alert("X", &format!("{w}{i:03}"), State::Firing);
                    let _ = store
                        .commit(&l, std::slice::from_ref(&x), &[], &[])
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = FileAlertStore::new(&path);
    let silences = store.silences().unwrap();
    assert_eq!(silences.len(), 50, "every silence kept");
    let mut ids: Vec<u64> = silences.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50, "each under its own number");
}

#[test]
fn a_lock_file_planted_as_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts-state.json");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("alerts-state.json.lock")).unwrap();
    let err = FileAlertStore::new(&path).load().unwrap_err();
    assert!(matches!(err, oc_alerts::Error::State { .. }), "{err}");
}
