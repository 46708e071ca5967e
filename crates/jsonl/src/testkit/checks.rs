//! The checks of one store at a time, on one thread.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    Corrupter, START, append_each, assert_ids_increase, at_secs, decision, entry, line_bytes,
    records, whole_decisions, whole_log,
};
use crate::{
    Append, Checkpoint, Decision, EntryId, Level, LogEntry, MAX_DEPTH, MAX_LINE_BYTES,
    MAX_STATE_BYTES, OverviewRequest, Query, Retention, TaskFileStore,
};

fn entries(task: &str, range: std::ops::Range<u64>) -> Vec<LogEntry> {
    range.map(|i| entry(task, i)).collect()
}

/// Asserts that `task`'s whole log reads back as `expected`, with increasing ids.
fn assert_log(store: &dyn TaskFileStore, task: &str, expected: &[LogEntry], what: &str) {
    let log = whole_log(store, task);
    assert_eq!(records(&log), expected, "{what}: {task}'s log");
    assert_ids_increase(what, &log);
}

fn assert_decisions(store: &dyn TaskFileStore, task: &str, expected: &[Decision], what: &str) {
    let all = whole_decisions(store, task, None, 5);
    assert_eq!(records(&all), expected, "{what}: {task}'s decisions");
    assert_ids_increase(what, &all);
}

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

/// Decisions by agent, page by page, are the agent's in order; every page holds at most `n`.
pub fn check_decisions_by_agent(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "agents";
    let all: Vec<Decision> = (0..31)
        .map(|i| Decision {
            // a0 often, a1 rarely, a2 only once at the start.
            agent: match i {
                0 => "a2".into(),
                i if i % 7 == 0 => "a1".into(),
                _ => "a0".into(),
            },
            ..decision(i)
        })
        .collect();
    for d in &all {
        store.append_decision(t, d, &Append::written()).unwrap();
    }
    for agent in [None, Some("a0"), Some("a1"), Some("a2"), Some("nobody")] {
        let want: Vec<Decision> = all
            .iter()
            .filter(|d| agent.is_none_or(|a| d.agent == a))
            .cloned()
            .collect();
        for n in [1, 2, 5, 100] {
            let got = whole_decisions(store, t, agent, n);
            assert_eq!(records(&got), want, "agent {agent:?}, pages of {n}");
            assert_ids_increase("decisions", &got);
        }
    }
    // Without an agent, pages are exact.
    for skip in [0, 3, 30, 31, 40] {
        for n in [0, 1, 4, 31] {
            let p = store.decisions(t, None, skip, n).unwrap();
            let end = all.len().saturating_sub(skip);
            let start = end.saturating_sub(n);
            assert_eq!(
                records(&p.entries),
                &all[start..end],
                "decisions(None, {skip}, {n})"
            );
            assert_eq!(p.more, start > 0, "decisions(None, {skip}, {n}): more");
            assert_eq!(p.next_skip, (skip + end - start) as u64);
        }
    }
    let p = store.decisions(t, Some("a2"), 0, 1).unwrap();
    assert_eq!(
        records(&p.entries),
        [all[0].clone()],
        "the only a2 decision, at the start"
    );
    assert!(!p.more, "nothing older than the first decision");
}

/// A state reads back as saved, replaced by the next; absent is `None`; past
/// [`MAX_STATE_BYTES`] refused with the saved one kept.
pub fn check_state(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "state";
    assert_eq!(store.load_state(t).unwrap(), None);
    assert!(!store.counts(t).unwrap().state);
    for v in [
        json!({"step": 1, "nested": {"a": [1, 2.5, null, "é"]}}),
        json!([]),
        json!("just a string"),
        json!(null),
        json!({"step": 2}),
    ] {
        store.save_state(t, &v).unwrap();
        assert_eq!(store.load_state(t).unwrap(), Some(v.clone()), "{v}");
        assert!(store.counts(t).unwrap().state);
    }
    let big = Value::String("s".repeat(MAX_STATE_BYTES as usize + 1));
    let e = store.save_state(t, &big).unwrap_err();
    assert!(e.is_invalid_input(), "an oversized state: {e}");
    assert_eq!(
        store.load_state(t).unwrap(),
        Some(json!({"step": 2})),
        "kept"
    );
    assert_eq!(store.load_state("state-other").unwrap(), None);
}

fn write_task(store: &dyn TaskFileStore, t: &str, from: u64, n: u64, state: Value) {
    store
        .append_logs(t, &entries(t, from..from + n), &Append::durable())
        .unwrap();
    for i in from..from + n.min(3) {
        store
            .append_decision(t, &decision(i), &Append::durable())
            .unwrap();
    }
    store.save_state(t, &state).unwrap();
}

/// What a task holds, for comparing before and after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    log: Vec<LogEntry>,
    decisions: Vec<Decision>,
    state: Option<Value>,
    checkpoints: Vec<Checkpoint>,
}

fn snapshot(store: &dyn TaskFileStore, t: &str) -> Snapshot {
    Snapshot {
        log: records(&whole_log(store, t)),
        decisions: records(&whole_decisions(store, t, None, 50)),
        state: store.load_state(t).unwrap(),
        checkpoints: store.checkpoints(t).unwrap(),
    }
}

/// Checkpoints are listed newest first with their description and time, restored exactly
/// (state, log and decisions back to the checkpoint's, later ones gone), and appends after a
/// restore go after the restored entries.
pub fn check_checkpoints_listed_and_restored(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "cps";
    assert!(store.checkpoints(t).unwrap().is_empty());
    let empty = store.create_checkpoint(t, "empty", at_secs(1)).unwrap();
    write_task(store, t, 0, 5, json!({"v": 1}));
    let first = snapshot(store, t);
    let c1 = store.create_checkpoint(t, "first", at_secs(2)).unwrap();
    write_task(store, t, 5, 4, json!({"v": 2}));
    let second = snapshot(store, t);
    let c2 = store.create_checkpoint(t, "second", at_secs(3)).unwrap();
    // Two in the same millisecond are two checkpoints, the later listed first.
    let c3 = store.create_checkpoint(t, "third", at_secs(3)).unwrap();
    write_task(store, t, 9, 2, json!({"v": 3}));
    for (c, d, at) in [
        (&empty, "empty", 1),
        (&c1, "first", 2),
        (&c2, "second", 3),
        (&c3, "third", 3),
    ] {
        assert_eq!(
            (c.description.as_str(), c.created_at, c.task_id.as_str()),
            (d, at_secs(at), t)
        );
        crate::check_checkpoint_id(&c.id).unwrap();
    }
    let listed = store.checkpoints(t).unwrap();
    assert_eq!(
        listed,
        vec![c3.clone(), c2.clone(), c1.clone(), empty.clone()],
        "newest first, as created"
    );
    assert_eq!(store.counts(t).unwrap().checkpoints, 4);
    for (skip, n) in [(0, 1), (1, 2), (3, 5), (4, 1), (0, 10)] {
        let (page, more) = store.checkpoint_page(t, skip, n).unwrap();
        let want: Vec<_> = listed.iter().skip(skip).take(n).cloned().collect();
        assert_eq!(page, want, "checkpoint_page({skip}, {n})");
        assert_eq!(
            more,
            skip + n < listed.len(),
            "checkpoint_page({skip}, {n}): more"
        );
    }
    assert_eq!(store.restore_checkpoint(t, &c1.id).unwrap(), c1);
    let restored = snapshot(store, t);
    assert_eq!(
        (&restored.log, &restored.decisions, &restored.state),
        (&first.log, &first.decisions, &first.state),
        "restored to the first checkpoint"
    );
    assert_eq!(
        restored.checkpoints.len(),
        4,
        "restoring keeps every checkpoint"
    );
    let log = whole_log(store, t);
    for s in &log {
        assert_eq!(
            store.log_entry(t, s.id).unwrap().as_ref(),
            Some(&s.record),
            "ids after a restore"
        );
    }
    let c = store.counts(t).unwrap();
    assert_eq!((c.log_entries, c.decisions, c.state), (5, 3, true));
    store.restore_checkpoint(t, &c3.id).unwrap();
    let s = snapshot(store, t);
    assert_eq!(
        (&s.log, &s.decisions, &s.state),
        (&second.log, &second.decisions, &second.state)
    );
    append_each(store, t, &entries(t, 20..22));
    let mut want = second.log.clone();
    want.extend(entries(t, 20..22));
    assert_log(store, t, &want, "appends after a restore");
    store.restore_checkpoint(t, &empty.id).unwrap();
    let s = snapshot(store, t);
    assert_eq!(
        (s.log, s.decisions, s.state),
        (vec![], vec![], None),
        "restored to nothing"
    );
    assert_eq!(store.counts(t).unwrap().log_entries, 0);
}

/// A checkpoint with any of its files damaged is refused (`Corrupt`) with nothing changed;
/// the others still restore.
pub fn check_corrupt_checkpoint_refused(store: &dyn TaskFileStore, corrupt: &Corrupter) {
    let t = "corrupt";
    write_task(store, t, 0, 4, json!({"v": 1}));
    let good = store.create_checkpoint(t, "good", at_secs(1)).unwrap();
    let mut damaged = Vec::new();
    for (i, file) in ["logs.jsonl", "decisions.jsonl", "state.json"]
        .into_iter()
        .enumerate()
    {
        let c = store
            .create_checkpoint(t, file, at_secs(2 + i as u64))
            .unwrap();
        assert!(
            c.files.iter().any(|f| f.name == file),
            "a checkpoint of a task with a log, decisions and a state holds {file}: {c:?}"
        );
        corrupt(t, &c.id, file);
        damaged.push((c, file));
    }
    write_task(store, t, 4, 3, json!({"v": 2}));
    let before = snapshot(store, t);
    for (c, file) in &damaged {
        let e = store.restore_checkpoint(t, &c.id).unwrap_err();
        assert!(
            e.is_corrupt(),
            "restoring {} with {file} damaged: {e}",
            c.id
        );
        assert_eq!(
            snapshot(store, t),
            before,
            "{file} damaged: nothing changed"
        );
    }
    assert_eq!(store.restore_checkpoint(t, &good.id).unwrap(), good);
    assert_eq!(
        records(&whole_log(store, t)),
        entries(t, 0..4),
        "the good checkpoint restores"
    );
}

/// An unknown checkpoint is `NotFound`, on a task with checkpoints and on one without.
pub fn check_checkpoint_not_found(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "notfound";
    write_task(store, t, 0, 2, json!(1));
    let c = store.create_checkpoint(t, "one", at_secs(1)).unwrap();
    let before = snapshot(store, t);
    for (task, id) in [
        (t, "cp-0000000000001-0"),
        ("notfound-none", "cp-0000000000001-0"),
        ("notfound-none", c.id.as_str()),
    ] {
        let e = store.restore_checkpoint(task, id).unwrap_err();
        assert!(e.is_not_found(), "restore_checkpoint({task}, {id}): {e}");
    }
    assert_eq!(snapshot(store, t), before);
    assert_eq!(
        store
            .delete_checkpoints(t, &["cp-0000000000001-0".into()])
            .unwrap(),
        Vec::<String>::new(),
        "deleting an unknown checkpoint deletes nothing"
    );
    store
        .delete_checkpoints(t, std::slice::from_ref(&c.id))
        .unwrap();
    let e = store.restore_checkpoint(t, &c.id).unwrap_err();
    assert!(e.is_not_found(), "a deleted checkpoint: {e}");
}

/// Checkpoints pruned by count keep the newest `keep`; by bytes, the newest that fit (and
/// always the newest); deleting by id deletes those.
pub fn check_checkpoints_pruned(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "prune";
    let mut made = Vec::new();
    for i in 0..7u64 {
        write_task(store, t, i * 3, 3, json!({"i": i}));
        made.push(
            store
                .create_checkpoint(t, &format!("c{i}"), at_secs(i))
                .unwrap(),
        );
    }
    made.reverse(); // newest first
    assert_eq!(store.checkpoints(t).unwrap(), made);
    let ids = |cs: &[Checkpoint]| cs.iter().map(|c| c.id.clone()).collect::<BTreeSet<_>>();
    let gone = store.prune_checkpoints(t, 5).unwrap();
    assert_eq!(gone.into_iter().collect::<BTreeSet<_>>(), ids(&made[5..]));
    assert_eq!(store.checkpoints(t).unwrap(), made[..5]);
    assert_eq!(store.prune_checkpoints(t, 5).unwrap(), Vec::<String>::new());
    // The newest three fit exactly; one byte less keeps two.
    let three: u64 = made[..3].iter().map(Checkpoint::bytes).sum();
    assert!(
        made.iter().all(|c| c.bytes() > 0),
        "checkpoints of written tasks have bytes"
    );
    let gone = store.prune_checkpoints_to_bytes(t, three).unwrap();
    assert_eq!(gone.into_iter().collect::<BTreeSet<_>>(), ids(&made[3..5]));
    assert_eq!(store.checkpoints(t).unwrap(), made[..3]);
    let gone = store.prune_checkpoints_to_bytes(t, three - 1).unwrap();
    assert_eq!(gone, vec![made[2].id.clone()]);
    let gone = store.prune_checkpoints_to_bytes(t, 0).unwrap();
    assert_eq!(gone, vec![made[1].id.clone()], "the newest is always kept");
    assert_eq!(store.checkpoints(t).unwrap(), made[..1]);
    let gone = store
        .delete_checkpoints(t, &[made[0].id.clone(), made[3].id.clone()])
        .unwrap();
    assert_eq!(gone, vec![made[0].id.clone()], "only those that exist");
    assert!(store.checkpoints(t).unwrap().is_empty());
    assert_eq!(store.counts(t).unwrap().checkpoints, 0);
}

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
