//! Checks of following, ship cursors, retention, counts, listings and the overview.

use std::time::{Duration, Instant};

use serde_json::json;

use super::super::{
    Corrupter, START, append_each, assert_ids_increase, at_secs, decision, entry, line_bytes,
    records, whole_log,
};
use super::*;
use crate::{Append, OverviewRequest, Retention, TaskFileStore};

/// `read_after(None)` gives the log from its start, in chunks of at most `n`; from its cursor,
/// only what was appended since; after a restore, `restarted` and the restored log.
pub fn check_read_after(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "follow";
    let a = store.read_after(t, None, 10).unwrap();
    assert!(a.entries.is_empty() && !a.restarted, "an empty log");
    let mut cursor = a.cursor;
    let all = entries(t, 0..25);
    store
        .append_logs(t, &all[..12], &Append::durable())
        .unwrap();
    let a = store.read_after(t, None, 100).unwrap();
    assert_eq!(records(&a.entries), &all[..12], "from the start");
    assert_ids_increase("read_after", &a.entries);
    let mut got = Vec::new();
    for _ in 0..100 {
        let a = store.read_after(t, Some(&cursor), 5).unwrap();
        assert!(a.entries.len() <= 5 && !a.restarted);
        cursor = a.cursor;
        if a.entries.is_empty() {
            break;
        }
        got.extend(records(&a.entries));
    }
    assert_eq!(got, &all[..12], "in chunks from an empty log's cursor");
    let end = store.log_end(t).unwrap();
    let a = store.read_after(t, Some(&end), 10).unwrap();
    assert!(a.entries.is_empty(), "nothing after the end");
    append_each(store, t, &all[12..15]);
    let a = store.read_after(t, Some(&cursor), 10).unwrap();
    assert_eq!(records(&a.entries), &all[12..15], "only the new entries");
    cursor = a.cursor;
    let a = store.read_after(t, Some(&end), 10).unwrap();
    assert_eq!(records(&a.entries), &all[12..15], "after log_end");
    let a = store.read_after(t, Some(&cursor), 10).unwrap();
    assert!(a.entries.is_empty() && !a.restarted, "nothing new");
    let c = store.create_checkpoint(t, "c", at_secs(1)).unwrap();
    store
        .append_logs(t, &all[15..20], &Append::written())
        .unwrap();
    let a = store.read_after(t, Some(&cursor), 10).unwrap();
    assert_eq!(records(&a.entries), &all[15..20]);
    cursor = a.cursor;
    store.restore_checkpoint(t, &c.id).unwrap();
    append_each(store, t, &all[20..21]);
    let a = store.read_after(t, Some(&cursor), 100).unwrap();
    assert!(a.restarted, "a cursor from before a restore restarts");
    let mut want = all[..15].to_vec();
    want.push(all[20].clone());
    assert_eq!(records(&a.entries), want, "the log from its start");
    let a = store.read_after(t, Some(&a.cursor), 100).unwrap();
    assert!(a.entries.is_empty() && !a.restarted, "and then nothing");
    let foreign = crate::LogCursor::new("no store made this 😀").unwrap();
    let e = store.read_after(t, Some(&foreign), 10).unwrap_err();
    assert!(e.is_invalid_input(), "a cursor the store did not make: {e}");
}

/// `wait` returns by its timeout when nothing is appended, and with no error.
pub fn check_wait_returns_by_timeout(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "wait";
    append_each(store, t, &entries(t, 0..2));
    let end = store.log_end(t).unwrap();
    for timeout in [
        Duration::ZERO,
        Duration::from_millis(50),
        Duration::from_millis(300),
    ] {
        let started = Instant::now();
        store.wait(t, &end, timeout).unwrap();
        let took = started.elapsed();
        assert!(
            took <= timeout + Duration::from_secs(2),
            "wait({timeout:?}) took {took:?}"
        );
    }
    let started = Instant::now();
    store
        .wait("wait-none", &end, Duration::from_millis(100))
        .unwrap_or(());
    assert!(started.elapsed() <= Duration::from_secs(3));
    // A log that grows (already, or while waiting) ends the wait long before its timeout.
    let long = Duration::from_secs(30);
    append_each(store, t, &entries(t, 2..3));
    let started = Instant::now();
    store.wait(t, &end, long).unwrap();
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "wait on a log that already grew took {:?}",
        started.elapsed()
    );
    let end = store.log_end(t).unwrap();
    let took = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            append_each(store, t, &entries(t, 3..4));
        });
        let started = Instant::now();
        store.wait(t, &end, long).unwrap();
        started.elapsed()
    });
    assert!(
        took <= Duration::from_secs(5),
        "wait while an entry is appended took {took:?}"
    );
}

/// Ship cursors read back as set, per collector and per task, independently.
pub fn check_ship_cursors(store: &dyn TaskFileStore, _: &Corrupter) {
    let (t, u) = ("ship", "ship-other");
    assert_eq!(store.ship_cursor(t, "a").unwrap(), None);
    let all = entries(t, 0..6);
    store.append_logs(t, &all[..3], &Append::durable()).unwrap();
    let at3 = store.read_after(t, None, 3).unwrap().cursor;
    store.append_logs(t, &all[3..], &Append::durable()).unwrap();
    let at6 = store.log_end(t).unwrap();
    store.set_ship_cursor(t, "a", &at3).unwrap();
    assert_eq!(store.ship_cursor(t, "a").unwrap().as_ref(), Some(&at3));
    assert_eq!(
        store.ship_cursor(t, "b").unwrap(),
        None,
        "another collector"
    );
    assert_eq!(store.ship_cursor(u, "a").unwrap(), None, "another task");
    store.set_ship_cursor(t, "b", &at6).unwrap();
    assert_eq!(store.ship_cursor(t, "a").unwrap().as_ref(), Some(&at3));
    assert_eq!(store.ship_cursor(t, "b").unwrap().as_ref(), Some(&at6));
    let from_a = store
        .read_after(t, store.ship_cursor(t, "a").unwrap().as_ref(), 10)
        .unwrap();
    assert_eq!(
        records(&from_a.entries),
        &all[3..],
        "a ships what follows its cursor"
    );
    let from_b = store
        .read_after(t, store.ship_cursor(t, "b").unwrap().as_ref(), 10)
        .unwrap();
    assert!(from_b.entries.is_empty(), "b shipped everything");
    store.set_ship_cursor(t, "a", &at6).unwrap();
    assert_eq!(
        store.ship_cursor(t, "a").unwrap().as_ref(),
        Some(&at6),
        "moved on"
    );
    assert_eq!(store.ship_cursor(t, "b").unwrap().as_ref(), Some(&at6));
    // Collector names are the collectors' own (URLs): each is refused as invalid or kept
    // apart from every other.
    let names = ["https://logs.example/in?x=1", "a/b", "../a", "é ✓", "a\\"];
    let mut kept = vec![("a", at6.clone()), ("b", at6.clone())];
    for (i, name) in names.into_iter().enumerate() {
        let at = if i % 2 == 0 { &at3 } else { &at6 };
        match store.set_ship_cursor(t, name, at) {
            Ok(()) => kept.push((name, at.clone())),
            Err(e) => assert!(e.is_invalid_input(), "collector {name:?}: {e}"),
        }
        for (c, at) in &kept {
            assert_eq!(
                store.ship_cursor(t, c).unwrap().as_ref(),
                Some(at),
                "collector {c:?}"
            );
        }
    }
}

fn retain_case(
    store: &dyn TaskFileStore,
    t: &str,
    n: u64,
    r: Retention,
    now: oc_time::Timestamp,
    kept: std::ops::Range<u64>,
) {
    let all = entries(t, 0..n);
    store
        .append_logs(t, &all[..n as usize / 2], &Append::durable())
        .unwrap();
    append_each(store, t, &all[n as usize / 2..]);
    let gone = store.retain(t, &r, now).unwrap();
    let want = entries(t, kept.clone());
    assert_eq!(gone, n - want.len() as u64, "{t}: {r:?} deleted");
    assert_log(store, t, &want, &format!("{t}: {r:?}"));
    let c = store.counts(t).unwrap();
    assert_eq!(c.log_entries, want.len() as u64, "{t}: counted");
    assert_eq!(
        c.log_bytes,
        want.iter().map(line_bytes).sum::<u64>(),
        "{t}: bytes counted"
    );
    for s in whole_log(store, t) {
        assert_eq!(
            store.log_entry(t, s.id).unwrap().as_ref(),
            Some(&s.record),
            "{t}: by id after retention"
        );
    }
    assert_eq!(
        store.retain(t, &r, now).unwrap(),
        0,
        "{t}: a second retention deletes nothing"
    );
    append_each(store, t, &entries(t, n..n + 1));
    let mut after = want;
    after.push(entry(t, n));
    assert_log(store, t, &after, &format!("{t}: appends after retention"));
}

/// Retention by entries keeps exactly the newest `max_entries`.
pub fn check_retain_entries(store: &dyn TaskFileStore, _: &Corrupter) {
    retain_case(
        store,
        "ret-n5",
        20,
        Retention::new().max_entries(5),
        at_secs(100),
        15..20,
    );
    retain_case(
        store,
        "ret-n0",
        6,
        Retention::new().max_entries(0),
        at_secs(100),
        6..6,
    );
    retain_case(
        store,
        "ret-n9",
        6,
        Retention::new().max_entries(9),
        at_secs(100),
        0..6,
    );
    retain_case(store, "ret-none", 6, Retention::new(), at_secs(100), 0..6);
    assert_eq!(
        store
            .retain("ret-empty", &Retention::new().max_entries(0), START)
            .unwrap(),
        0
    );
}

/// Retention by bytes keeps exactly the newest entries whose lines fit.
pub fn check_retain_bytes(store: &dyn TaskFileStore, _: &Corrupter) {
    for (t, n, keep) in [("ret-b4", 20u64, 4u64), ("ret-b1", 9, 1), ("ret-b0", 5, 0)] {
        let fit: u64 = (n - keep..n).map(|i| line_bytes(&entry(t, i))).sum();
        retain_case(
            store,
            t,
            n,
            Retention::new().max_bytes(fit),
            at_secs(1000),
            n - keep..n,
        );
    }
    let t = "ret-bless";
    let fit: u64 = (17..20).map(|i| line_bytes(&entry(t, i))).sum();
    retain_case(
        store,
        t,
        20,
        Retention::new().max_bytes(fit - 1),
        at_secs(1000),
        18..20,
    );
    let t = "ret-both";
    let fit: u64 = (14..20).map(|i| line_bytes(&entry(t, i))).sum();
    retain_case(
        store,
        t,
        20,
        Retention::new().max_bytes(fit).max_entries(3),
        at_secs(1000),
        17..20,
    );
}

/// Retention by age deletes the entries more than `max_age` before `now`; one exactly
/// `max_age` old stays.
pub fn check_retain_age(store: &dyn TaskFileStore, _: &Corrupter) {
    // Entry i is at START + i s; now is START + 30 s.
    retain_case(
        store,
        "ret-a10",
        20,
        Retention::new().max_age(Duration::from_secs(20)),
        at_secs(30),
        10..20,
    );
    retain_case(
        store,
        "ret-a-all",
        5,
        Retention::new().max_age(Duration::from_secs(1)),
        at_secs(30),
        5..5,
    );
    retain_case(
        store,
        "ret-a-none",
        5,
        Retention::new().max_age(Duration::from_secs(3600)),
        at_secs(30),
        0..5,
    );
    retain_case(
        store,
        "ret-a-mixed",
        20,
        Retention::new()
            .max_age(Duration::from_millis(25_500))
            .max_entries(12),
        at_secs(30),
        8..20,
    );
}

/// `counts` and `volume` agree with what was written; `volume` sums every task's log.
pub fn check_counts_and_volume(store: &dyn TaskFileStore, _: &Corrupter) {
    assert_eq!(
        store.volume().unwrap(),
        crate::LogVolume::default(),
        "an empty store"
    );
    assert_eq!(
        store.counts("vol-none").unwrap(),
        crate::FileCounts::default()
    );
    let mut bytes = 0;
    let mut total = 0;
    for (i, t) in ["vol-a", "vol-b", "vol-c"].into_iter().enumerate() {
        let n = 3 + 4 * i as u64;
        let es = entries(t, 0..n);
        store.append_logs(t, &es[..2], &Append::durable()).unwrap();
        append_each(store, t, &es[2..]);
        for d in 0..i as u64 {
            store
                .append_decision(t, &decision(d), &Append::durable())
                .unwrap();
        }
        if i == 1 {
            store.save_state(t, &json!({"i": i})).unwrap();
            store.create_checkpoint(t, "c", START).unwrap();
        }
        let c = store.counts(t).unwrap();
        let b: u64 = es.iter().map(line_bytes).sum();
        assert_eq!(
            c,
            crate::FileCounts {
                log_entries: n,
                log_bytes: b,
                decisions: i as u64,
                checkpoints: u64::from(i == 1),
                state: i == 1,
            },
            "{t}"
        );
        bytes += b;
        total += n;
    }
    // A task with only decisions has no log.
    store
        .append_decision("vol-d", &decision(0), &Append::durable())
        .unwrap();
    let v = store.volume().unwrap();
    assert_eq!((v.tasks, v.entries, v.bytes), (3, total, bytes), "{v:?}");
    assert!(v.files >= v.tasks, "at least a file per task's log: {v:?}");
}

/// `tasks` lists every task with anything stored, sorted, in keyset pages.
pub fn check_tasks_listed(store: &dyn TaskFileStore, _: &Corrupter) {
    assert!(store.tasks(None, 10).unwrap().is_empty());
    let names = ["t-log", "t-dec", "t-state", "t-cp", "a:1", "z.9", "m_2"];
    store.append_log("t-log", &entry("t-log", 0)).unwrap();
    store
        .append_decision("t-dec", &decision(0), &Append::durable())
        .unwrap();
    store.save_state("t-state", &json!(1)).unwrap();
    store.create_checkpoint("t-cp", "c", START).unwrap();
    for t in &names[4..] {
        store.append_log(t, &entry(t, 0)).unwrap();
    }
    let mut want: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(store.tasks(None, 100).unwrap(), want);
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let page = store.tasks(after.as_deref(), 2).unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last().cloned() else {
            break;
        };
        got.extend(page);
        after = Some(last);
    }
    assert_eq!(got, want, "keyset pages of 2");
    assert!(store.tasks(Some("zzz"), 10).unwrap().is_empty());
}

/// `overview` answers what the three separate calls answer.
pub fn check_overview(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "overview";
    write_task(store, t, 0, 9, json!(1));
    for i in 0..4 {
        store
            .append_decision(t, &decision(10 + i), &Append::written())
            .unwrap();
        store
            .create_checkpoint(t, &format!("c{i}"), at_secs(i))
            .unwrap();
    }
    for t in [t, "overview-none"] {
        for r in [
            OverviewRequest::new((0, 5), (0, 5), (0, 2)),
            OverviewRequest::new((3, 100), (2, 1), (1, 10)),
            OverviewRequest::new((0, 0), (0, 0), (0, 0)),
        ] {
            let o = store.overview(t, &r);
            let log = o.log.unwrap();
            let tail = store.log_tail(t, r.log_skip, r.log_n).unwrap();
            assert_eq!(
                (&log.entries, log.more, log.next_skip),
                (&tail.entries, tail.more, tail.next_skip),
                "{t} {r:?}: log"
            );
            let ds = o.decisions.unwrap();
            let want = store
                .decisions(t, None, r.decisions_skip, r.decisions_n)
                .unwrap();
            assert_eq!(
                (&ds.entries, ds.more, ds.next_skip),
                (&want.entries, want.more, want.next_skip),
                "{t} {r:?}: decisions"
            );
            assert_eq!(
                o.checkpoints.unwrap(),
                store
                    .checkpoint_page(t, r.checkpoints_skip, r.checkpoints_n)
                    .unwrap(),
                "{t} {r:?}: checkpoints"
            );
        }
    }
}
