//! The memory store's own tests (the shared behaviour is in `testkit`, run on every store).
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

/// A write wakes waiters only once the store's mutex is free (decision 0041): a waiter
/// holding the signal's lock (here, inside the clock it calls under that lock) keeps the
/// writer's wake waiting, and the store must still be readable meanwhile. Were the wake
/// sent under the store's mutex, the read would wait for the waiter, which waits for it.
#[test]
fn writes_wake_waiters_after_unlocking() {
    let store = Arc::new(MemoryTaskStore::new());
    let t = store.create(NewTask::new("t")).unwrap();
    let t = store.claim(&t.id, "w", Duration::from_secs(60)).unwrap();
    let token = t.lease.unwrap().token;
    let signal = store.ready_signal().unwrap();
    // A timed wake far ahead, so that `wait` reads the clock under the signal's lock.
    signal.ready_at(Timestamp::from_millis(i64::MAX / 2));
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let (read_tx, read) = mpsc::channel();
    std::thread::scope(|s| {
        let g = signal.generation();
        s.spawn(move || {
            let first = std::sync::atomic::AtomicBool::new(true);
            let now = || {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    entered_tx.send(()).unwrap();
                    let _ = go_rx.recv();
                }
                Timestamp::EPOCH
            };
            signal.wait(g, Instant::now() + Duration::from_secs(60), &now);
        });
        entered.recv().unwrap();
        let writer = {
            let store = store.clone();
            let id = t.id.clone();
            s.spawn(move || store.complete(&id, Some(token), None))
        };
        {
            let store = store.clone();
            let id = t.id.clone();
            s.spawn(move || {
                while store.get(&id).unwrap().unwrap().status != TaskStatus::Completed {
                    std::thread::yield_now();
                }
                let _ = read_tx.send(());
            });
        }
        let readable = read.recv_timeout(Duration::from_secs(10)).is_ok();
        go.send(()).unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            readable,
            "the store stayed locked while its write waited to wake the waiters"
        );
    });
}
