//! Checks of the log: appends, pages, reads by id, queries, limits, ids, keys, analysis.

use std::time::Duration;

use serde_json::{Value, json};

use super::super::{
    Corrupter, START, append_each, assert_ids_increase, at_secs, decision, entry, records,
    whole_decisions, whole_log,
};
use super::*;
use crate::{
    Append, Decision, EntryId, Level, LogEntry, MAX_DEPTH, MAX_LINE_BYTES, OverviewRequest, Query,
    Retention, TaskFileStore,
};

/// Appends read back equal, singly and batched, with increasing ids; `Appended` counts them
/// and its `first` reads back the batch's first entry. Decisions alike.
pub fn check_appends_read_back(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "appends";
    let mut expected = entries(t, 0..3);
    let ids = append_each(store, t, &expected);
    for (id, e) in ids.iter().zip(&expected) {
        assert_eq!(store.log_entry(t, *id).unwrap().as_ref(), Some(e), "by id");
    }
    for (size, ack) in [
        (1u64, Append::written()),
        (4, Append::durable()),
        (17, Append::written()),
    ] {
        let from = expected.len() as u64;
        let batch = entries(t, from..from + size);
        let a = store.append_logs(t, &batch, &ack).unwrap();
        assert_eq!(
            (a.count, a.duplicate),
            (size as u32, false),
            "a batch of {size}"
        );
        assert_eq!(
            store.log_entry(t, a.first).unwrap().as_ref(),
            batch.first(),
            "Appended::first reads back the batch's first entry"
        );
        expected.extend(batch);
        assert_log(store, t, &expected, "after a batch");
    }
    // An entry written with another task's id in it is stored as given, under this task.
    let odd = LogEntry::new(
        START,
        Level::Warn,
        "someone-else",
        "é ✓ \u{1F600} \"quoted\"\\",
    )
    .with("nested", json!({"a": [1, 2, {"b": null}], "f": 1.5}));
    append_each(store, t, std::slice::from_ref(&odd));
    expected.push(odd);
    assert_log(store, t, &expected, "after an entry with nested data");
    assert!(
        whole_log(store, "appends-other").is_empty(),
        "another task's log is empty"
    );

    let ds: Vec<Decision> = (0..6).map(decision).collect();
    let mut firsts = Vec::new();
    for d in &ds {
        let a = store.append_decision(t, d, &Append::durable()).unwrap();
        assert_eq!((a.count, a.duplicate), (1, false), "a decision appended");
        firsts.push(a.first);
    }
    for (id, d) in firsts.iter().zip(&ds) {
        assert_eq!(
            store.decision(t, *id).unwrap().as_ref(),
            Some(d),
            "decision by id"
        );
    }
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "decision ids increase"
    );
    assert_decisions(store, t, &ds, "decisions appended");
}

/// `log_tail(skip, n)` is the `n` entries before the newest `skip`, oldest first, with `more`
/// exactly when older ones exist and `next_skip` = `skip` + what it returned.
pub fn check_tails_and_pages(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "tails";
    let empty = store.log_tail(t, 0, 10).unwrap();
    assert!(
        empty.entries.is_empty() && !empty.more && empty.next_skip == 0,
        "an empty log's tail: {empty:?}"
    );
    let all = entries(t, 0..23);
    store
        .append_logs(t, &all[..10], &Append::durable())
        .unwrap();
    append_each(store, t, &all[10..]);
    let len = all.len();
    for skip in 0..=len + 2 {
        for n in [0, 1, 2, 5, 22, 23, 30] {
            let p = store.log_tail(t, skip, n).unwrap();
            let end = len.saturating_sub(skip);
            let start = end.saturating_sub(n);
            assert_eq!(
                records(&p.entries),
                &all[start..end],
                "log_tail({skip}, {n}) of {len}"
            );
            assert_ids_increase("a tail", &p.entries);
            assert_eq!(p.more, start > 0, "log_tail({skip}, {n}) of {len}: more");
            assert_eq!(
                p.next_skip,
                (skip + (end - start)) as u64,
                "log_tail({skip}, {n}) of {len}: next_skip"
            );
            assert_eq!(p.read.malformed, 0, "nothing malformed");
        }
    }
    for n in [1, 4, 7, 23] {
        let mut skip = 0;
        let mut got = Vec::new();
        loop {
            let p = store.log_tail(t, skip, n).unwrap();
            got.splice(0..0, records(&p.entries));
            if !p.more {
                break;
            }
            skip = p.next_skip as usize;
        }
        assert_eq!(got, all, "pages of {n} followed by next_skip");
    }
}

/// Every entry and decision reads back by its id; an id of nothing, or of another task, is
/// `None`.
pub fn check_reads_by_id(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "byid";
    let all = entries(t, 0..12);
    store.append_logs(t, &all[..6], &Append::written()).unwrap();
    append_each(store, t, &all[6..]);
    let log = whole_log(store, t);
    assert_eq!(records(&log), all);
    for s in &log {
        assert_eq!(
            store.log_entry(t, s.id).unwrap().as_ref(),
            Some(&s.record),
            "log_entry({})",
            s.id
        );
        assert_eq!(
            store.log_entry("byid-other", s.id).unwrap(),
            None,
            "another (empty) task has no entry {}",
            s.id
        );
    }
    for ds in 0..4 {
        store
            .append_decision(t, &decision(ds), &Append::durable())
            .unwrap();
    }
    for s in whole_decisions(store, t, None, 3) {
        assert_eq!(store.decision(t, s.id).unwrap().as_ref(), Some(&s.record));
    }
    assert_eq!(store.log_entry(t, EntryId(u64::MAX)).unwrap(), None);
    assert_eq!(store.decision(t, EntryId(u64::MAX)).unwrap(), None);
    assert_eq!(store.log_entry("byid-none", EntryId(0)).unwrap(), None);
}

/// Queries answer what a plain list filtered by [`Query::matches`] holds: by level, time
/// range, fields, offset and limit, oldest or newest first.
pub fn check_queries(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "queries";
    let all = entries(t, 0..40);
    store
        .append_logs(t, &all[..20], &Append::durable())
        .unwrap();
    append_each(store, t, &all[20..]);
    let mut queries = Vec::new();
    for level in [
        None,
        Some(Level::Trace),
        Some(Level::Info),
        Some(Level::Error),
    ] {
        for (since, until) in [
            (None, None),
            (Some(at_secs(5)), None),
            (None, Some(at_secs(30))),
            (Some(at_secs(10)), Some(at_secs(11))),
            (Some(at_secs(50)), None),
        ] {
            for fields in [
                vec![],
                vec![("k", json!(1))],
                vec![("k", json!(2)), ("even", json!(true))],
            ] {
                for (offset, limit) in [
                    (0, None),
                    (0, Some(3)),
                    (2, Some(4)),
                    (5, None),
                    (100, Some(1)),
                ] {
                    for newest in [false, true] {
                        let mut q = Query::new().between(since, until).page(offset, limit);
                        if let Some(l) = level {
                            q = q.min_level(l);
                        }
                        for (k, v) in &fields {
                            q = q.field(*k, v.clone());
                        }
                        if newest {
                            q = q.newest();
                        }
                        queries.push(q);
                    }
                }
            }
        }
    }
    queries.push(Query::new().field("missing", 1));
    queries.push(Query::new().field("i", json!("7")));
    for q in &queries {
        let mut hits: Vec<&LogEntry> = all.iter().filter(|e| q.matches(e)).collect();
        if q.newest_first {
            hits.reverse();
        }
        let total = hits.len();
        let want: Vec<LogEntry> = hits
            .into_iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        let p = store.query(t, q).unwrap();
        assert_eq!(records(&p.entries), want, "{q:?}");
        let end = q.offset + want.len();
        assert_eq!(p.more, end < total, "{q:?}: more ({total} match)");
        assert_eq!(p.next_skip, end as u64, "{q:?}: next_skip");
        let mut ids: Vec<EntryId> = p.entries.iter().map(|s| s.id).collect();
        if q.newest_first {
            ids.reverse();
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{q:?}: ids in order");
        for s in &p.entries {
            assert_eq!(store.log_entry(t, s.id).unwrap().as_ref(), Some(&s.record));
        }
    }
    let p = store.query("queries-none", &Query::new()).unwrap();
    assert!(p.entries.is_empty() && !p.more, "an empty log's query");
}

/// A value of arrays and objects nested `depth` deep (a scalar at the bottom).
fn nested(depth: usize) -> Value {
    let mut v = json!("bottom");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "k": v })
        };
    }
    v
}

/// A record deeper than [`MAX_DEPTH`] or longer than [`MAX_LINE_BYTES`] is refused, alone or
/// in a batch with good ones, log or decision, with nothing written; one at the limit is
/// written.
pub fn check_limits_refused(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "limits";
    let base = entries(t, 0..3);
    append_each(store, t, &base);
    store
        .append_decision(t, &decision(0), &Append::durable())
        .unwrap();
    let counts = store.counts(t).unwrap();
    // The entry is one level, its `data` a second.
    let deep = |depth: usize| entry(t, 9).with("v", nested(depth - 2));
    let long = LogEntry::new(START, Level::Info, t, "x".repeat(MAX_LINE_BYTES));
    let refused = [
        ("too deep", vec![deep(MAX_DEPTH + 1)]),
        ("far too deep", vec![deep(200)]),
        ("too long", vec![long.clone()]),
        (
            "a batch with one too deep",
            vec![entry(t, 3), deep(MAX_DEPTH + 1), entry(t, 4)],
        ),
        ("a batch with one too long", vec![entry(t, 3), long]),
    ];
    for (what, batch) in &refused {
        // A long line costs its 16 MiB each time: one way of appending for those.
        let hows = [
            Append::durable().key("limits-k"),
            Append::written(),
            Append::durable(),
        ];
        let ways = if what.contains("long") { 1 } else { 3 };
        for how in hows.into_iter().take(ways) {
            let e = store.append_logs(t, batch, &how).unwrap_err();
            assert!(e.is_invalid_input(), "{what}: {e}");
            assert_eq!(store.counts(t).unwrap(), counts, "{what}: nothing written");
        }
    }
    let deep_decision = |depth: usize| Decision {
        metadata: serde_json::from_value(json!({ "v": nested(depth - 2) })).unwrap(),
        ..decision(1)
    };
    let long_decision = Decision {
        reasoning: "r".repeat(MAX_LINE_BYTES),
        ..decision(2)
    };
    for (what, d) in [
        ("too deep", deep_decision(MAX_DEPTH + 1)),
        ("too long", long_decision),
    ] {
        let e = store
            .append_decision(t, &d, &Append::durable())
            .unwrap_err();
        assert!(e.is_invalid_input(), "decision {what}: {e}");
        assert_eq!(
            store.counts(t).unwrap(),
            counts,
            "decision {what}: nothing written"
        );
    }
    assert_log(store, t, &base, "after refusals");
    assert_decisions(store, t, &[decision(0)], "after refusals");
    // The key of a refused append was not used up.
    let a = store
        .append_logs(t, &[entry(t, 3)], &Append::durable().key("limits-k"))
        .unwrap();
    assert!(!a.duplicate, "a refused append's key is still free");
    let at_limit = deep(MAX_DEPTH);
    append_each(store, t, std::slice::from_ref(&at_limit));
    let d = deep_decision(MAX_DEPTH);
    store.append_decision(t, &d, &Append::durable()).unwrap();
    let mut want = base.clone();
    want.extend([entry(t, 3), at_limit]);
    assert_log(store, t, &want, "records at the limit are written");
    assert_decisions(store, t, &[decision(0), d], "a decision at the limit");
}

/// Ids that are not safe path segments, on every method: `InvalidInput`, nothing written;
/// checkpoint ids not of the generated form likewise.
pub fn check_invalid_ids(store: &dyn TaskFileStore, _: &Corrupter) {
    let bad = [
        "",
        "..",
        ".",
        ".hidden",
        "a/b",
        "../etc",
        "a\\b",
        "a b",
        "t\u{0}",
        "é",
        &"x".repeat(129),
    ];
    let e1 = entry("t", 1);
    let ok_cursor = store.log_end("ok").unwrap();
    for t in bad {
        let checks: Vec<(&str, crate::Result<()>)> = vec![
            ("counts", store.counts(t).map(drop)),
            (
                "append_logs",
                store
                    .append_logs(t, std::slice::from_ref(&e1), &Append::durable())
                    .map(drop),
            ),
            ("append_log", store.append_log(t, &e1).map(drop)),
            ("query", store.query(t, &Query::new()).map(drop)),
            ("log_tail", store.log_tail(t, 0, 5).map(drop)),
            ("log_entry", store.log_entry(t, EntryId(0)).map(drop)),
            ("analyze", store.analyze(t).map(drop)),
            ("log_end", store.log_end(t).map(drop)),
            ("read_after", store.read_after(t, None, 5).map(drop)),
            ("wait", store.wait(t, &ok_cursor, Duration::from_millis(1))),
            (
                "append_decision",
                store
                    .append_decision(t, &decision(0), &Append::durable())
                    .map(drop),
            ),
            ("decisions", store.decisions(t, None, 0, 5).map(drop)),
            ("decision", store.decision(t, EntryId(0)).map(drop)),
            ("save_state", store.save_state(t, &json!({"a": 1}))),
            ("load_state", store.load_state(t).map(drop)),
            (
                "create_checkpoint",
                store.create_checkpoint(t, "d", START).map(drop),
            ),
            ("checkpoint_page", store.checkpoint_page(t, 0, 5).map(drop)),
            ("checkpoints", store.checkpoints(t).map(drop)),
            (
                "restore_checkpoint",
                store.restore_checkpoint(t, "cp-0000000000001-0").map(drop),
            ),
            (
                "delete_checkpoints",
                store
                    .delete_checkpoints(t, &["cp-0000000000001-0".into()])
                    .map(drop),
            ),
            ("prune_checkpoints", store.prune_checkpoints(t, 0).map(drop)),
            (
                "retain",
                store
                    .retain(t, &Retention::new().max_entries(0), START)
                    .map(drop),
            ),
            ("ship_cursor", store.ship_cursor(t, "c").map(drop)),
            ("set_ship_cursor", store.set_ship_cursor(t, "c", &ok_cursor)),
            (
                "overview log",
                store
                    .overview(t, &OverviewRequest::new((0, 5), (0, 5), (0, 5)))
                    .log
                    .map(drop),
            ),
        ];
        for (method, r) in checks {
            match r {
                Err(e) => assert!(e.is_invalid_input(), "{method}({t:?}): {e}"),
                Ok(()) => panic!("{method}({t:?}) accepted an invalid task id"),
            }
        }
    }
    let t = "cpids";
    store.save_state(t, &json!(1)).unwrap();
    store.create_checkpoint(t, "one", START).unwrap();
    for id in [
        "",
        "x",
        "../cp-1-0",
        "cp-1-0/..",
        "cp-1",
        "cp--0",
        "cp-a-0",
        "cp-1-0 ",
        "cp-1-0/x",
    ] {
        let e = store.restore_checkpoint(t, id).unwrap_err();
        assert!(e.is_invalid_input(), "restore_checkpoint({id:?}): {e}");
        let e = store.delete_checkpoints(t, &[id.to_owned()]).unwrap_err();
        assert!(e.is_invalid_input(), "delete_checkpoints([{id:?}]): {e}");
    }
    for key in ["", "a\nb", &"k".repeat(201)] {
        let e = store
            .append_logs(t, &[entry(t, 0)], &Append::durable().key(key))
            .unwrap_err();
        assert!(e.is_invalid_input(), "key {key:?}: {e}");
    }
    assert_eq!(store.checkpoints(t).unwrap().len(), 1, "nothing deleted");
    assert_eq!(store.counts(t).unwrap().log_entries, 0, "nothing written");
    assert_eq!(
        store
            .tasks(None, 1000)
            .unwrap()
            .iter()
            .filter(|t| t.as_str() != "cpids")
            .count(),
        0,
        "no invalid task got anything stored"
    );
}

/// A retry with the same key (task and stream) writes nothing and answers the first
/// `Appended` with `duplicate`; the same key on another task or the other stream writes.
pub fn check_idempotency_keys(store: &dyn TaskFileStore, _: &Corrupter) {
    let (t, u) = ("keys", "keys-other");
    let batch = entries(t, 0..3);
    let first = store
        .append_logs(t, &batch, &Append::durable().key("k1"))
        .unwrap();
    assert_eq!((first.count, first.duplicate), (3, false));
    for how in [Append::durable().key("k1"), Append::written().key("k1")] {
        let again = store.append_logs(t, &batch, &how).unwrap();
        assert_eq!(
            (again.first, again.count, again.duplicate),
            (first.first, 3, true),
            "a retry answers the first append"
        );
    }
    // Even with other entries: the key names the append.
    let again = store
        .append_logs(t, &entries(t, 10..11), &Append::durable().key("k1"))
        .unwrap();
    assert!(again.duplicate && again.first == first.first, "{again:?}");
    assert_log(store, t, &batch, "retries wrote nothing");
    // Other keys, no key, other task, other stream: written.
    let single = store
        .append_logs(t, &entries(t, 3..4), &Append::durable().key("k2"))
        .unwrap();
    assert!(!single.duplicate);
    let plain = store
        .append_logs(t, &entries(t, 4..5), &Append::durable())
        .unwrap();
    assert!(!plain.duplicate);
    let retry = store
        .append_logs(t, &entries(t, 3..4), &Append::durable().key("k2"))
        .unwrap();
    assert_eq!((retry.first, retry.duplicate), (single.first, true));
    let other = store
        .append_logs(u, &batch, &Append::durable().key("k1"))
        .unwrap();
    assert!(!other.duplicate, "the same key on another task is written");
    assert_log(store, u, &batch, "the other task");
    let d = store
        .append_decision(t, &decision(0), &Append::durable().key("k1"))
        .unwrap();
    assert!(!d.duplicate, "the same key on the decisions is written");
    let d2 = store
        .append_decision(t, &decision(1), &Append::durable().key("k1"))
        .unwrap();
    assert_eq!(
        (d2.first, d2.duplicate),
        (d.first, true),
        "a decision's retry"
    );
    assert_decisions(store, t, &[decision(0)], "one decision");
    assert_log(store, t, &entries(t, 0..5), "keyed and plain appends");
    assert_eq!(store.counts(t).unwrap().log_entries, 5);
    // A key stays known while its first entry is among the stream's newest
    // KEY_WINDOW_ENTRIES: k1's is the 5th newest, then the 1,000th.
    let window = crate::KEY_WINDOW_ENTRIES as u64;
    let later = entries(t, 5..window);
    store.append_logs(t, &later, &Append::written()).unwrap();
    let old = store
        .append_logs(t, &batch, &Append::durable().key("k1"))
        .unwrap();
    assert_eq!(
        (old.first, old.duplicate),
        (first.first, true),
        "a key whose first entry is the {window}th newest is still known"
    );
    assert_eq!(store.counts(t).unwrap().log_entries, window);
}

/// `analyze` counts by level (every level present), errors, the error rate, first and last.
pub fn check_analyze(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "analyze";
    let a = store.analyze(t).unwrap();
    assert_eq!(
        (a.total_logs, a.error_count, a.first, a.last),
        (0, 0, None, None)
    );
    assert_eq!(a.error_rate, 0.0);
    assert_eq!(
        a.level_counts.len(),
        5,
        "every level present: {:?}",
        a.level_counts
    );
    let mut all = entries(t, 0..23);
    // Out of order in time: first and last are the oldest and newest timestamps.
    all.push(LogEntry::new(at_secs(1000), Level::Error, t, "late"));
    all.push(LogEntry::new(
        oc_time::Timestamp::from_millis(START.as_millis() - 5_000),
        Level::Debug,
        t,
        "early",
    ));
    store.append_logs(t, &all, &Append::durable()).unwrap();
    let a = store.analyze(t).unwrap();
    assert_eq!(a.total_logs, all.len() as u64);
    for l in Level::ALL {
        let n = all.iter().filter(|e| e.level == l).count() as u64;
        assert_eq!(a.level_counts.get(l.as_str()).copied(), Some(n), "{l}");
    }
    let errors = all.iter().filter(|e| e.level == Level::Error).count() as u64;
    assert_eq!(a.error_count, errors);
    let rate = errors as f64 * 100.0 / all.len() as f64;
    assert!(
        (a.error_rate - rate).abs() < 1e-9,
        "{} vs {rate}",
        a.error_rate
    );
    let first = all.iter().map(|e| e.timestamp).min();
    let last = all.iter().map(|e| e.timestamp).max();
    assert_eq!((a.first, a.last), (first, last));
    assert_eq!(a.span_ms, 1_005_000);
    assert_eq!(a.read.malformed, 0);
}
