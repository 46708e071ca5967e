//! Shipping to a real HTTP receiver on 127.0.0.1 that fails some requests: every entry arrives
//! exactly once, across retries and reruns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oc_jsonl::{DirFileStore, Level, LogEntry, ShipOptions, Shipper, TaskFiles};
use oc_time::Timestamp;
use serde_json::Value;

/// A collector that answers 500 to every `fail_every`-th request (recording nothing then), or to
/// everything while `down` is set, and otherwise records the entries it receives.
struct Collector {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
}

fn collector(fail_every: u64) -> Collector {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ingest", server.server_addr().to_ip().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let (r, q, d) = (received.clone(), requests.clone(), down.clone());
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let n = q.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            let ok = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("Idempotency-Key"))
                && req.headers().iter().any(|h| {
                    h.field.equiv("Content-Type") && h.value.as_str() == "application/json"
                });
            if d.load(Ordering::SeqCst) || n % fail_every == 0 || !ok {
                let _ = req.respond(tiny_http::Response::empty(500));
                continue;
            }
            let batch: Vec<Value> = serde_json::from_str(&body).unwrap();
            r.lock().unwrap().extend(batch);
            let _ = req.respond(tiny_http::Response::empty(200));
        }
    });
    Collector {
        url,
        received,
        requests,
        down,
    }
}

fn log(t: &TaskFiles, from: usize, to: usize) {
    for i in from..to {
        let level = if i % 5 == 0 {
            Level::Error
        } else {
            Level::Info
        };
        t.append_log(
            &LogEntry::new(
                Timestamp::from_millis(i as i64),
                level,
                "t1",
                format!("m{i}"),
            )
            .with("i", i),
        )
        .unwrap();
    }
}

fn opts() -> ShipOptions {
    let mut o = ShipOptions::default().retries(4, Duration::from_millis(5));
    o.batch = 7;
    o
}

fn received_indexes(c: &Collector) -> Vec<u64> {
    c.received
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["data"]["i"].as_u64().unwrap())
        .collect()
}

#[test]
fn every_entry_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = TaskFiles::new(dir.path(), "t1").unwrap();
    let c = collector(3);
    log(&t, 0, 50);
    let shipper = Shipper::new(&c.url, opts()).unwrap();
    let r = shipper
        .ship_task(&DirFileStore::new(dir.path()), "t1")
        .unwrap();
    assert_eq!(r.shipped, 50);
    assert!(r.retries > 0, "the collector failed some requests: {r:?}");
    log(&t, 50, 73);
    assert_eq!(
        shipper
            .ship_task(&DirFileStore::new(dir.path()), "t1")
            .unwrap()
            .shipped,
        23,
        "a rerun sends only what is new"
    );
    assert_eq!(
        shipper
            .ship_task(&DirFileStore::new(dir.path()), "t1")
            .unwrap()
            .shipped,
        0
    );
    assert_eq!(
        received_indexes(&c),
        (0..73).collect::<Vec<_>>(),
        "in order, once each"
    );
}

#[test]
fn a_dead_collector_leaves_the_cursor_before_the_failed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let t = TaskFiles::new(dir.path(), "t1").unwrap();
    let c = collector(u64::MAX);
    log(&t, 0, 20);
    let shipper = Shipper::new(&c.url, opts()).unwrap();
    shipper
        .ship_task(&DirFileStore::new(dir.path()), "t1")
        .unwrap();
    log(&t, 20, 40);
    c.down.store(true, Ordering::SeqCst);
    let e = shipper
        .ship_task(&DirFileStore::new(dir.path()), "t1")
        .unwrap_err();
    assert!(
        e.to_string().contains(&c.url) || format!("{e:?}").contains("gave up"),
        "{e:?}"
    );
    assert_eq!(
        c.requests.load(Ordering::SeqCst),
        3 + 4,
        "three batches, then four attempts"
    );
    c.down.store(false, Ordering::SeqCst);
    assert_eq!(
        shipper
            .ship_task(&DirFileStore::new(dir.path()), "t1")
            .unwrap()
            .shipped,
        20
    );
    assert_eq!(received_indexes(&c), (0..40).collect::<Vec<_>>());
}

#[test]
fn level_filter_and_bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let t = TaskFiles::new(dir.path(), "t1").unwrap();
    let c = collector(u64::MAX);
    log(&t, 0, 30);
    let r = Shipper::new(&c.url, opts().min_level(Some(Level::Error)))
        .unwrap()
        .ship_task(&DirFileStore::new(dir.path()), "t1")
        .unwrap();
    assert_eq!((r.shipped, r.filtered), (6, 24));
    assert_eq!(received_indexes(&c), [0, 5, 10, 15, 20, 25]);
    assert!(
        Shipper::new("ftp://x", ShipOptions::default())
            .unwrap_err()
            .is_invalid_input()
    );
}
