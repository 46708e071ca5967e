//! `PgFileStore`: a task's files in PostgreSQL, read back from any host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_jsonl::{Append, Decision, EntryId, Level, LogEntry, Query, Retention, TaskFileStore};
use oc_postgres::PgFileStore;
use oc_postgres::testkit::PgServer;
use oc_time::Timestamp;
use serde_json::json;

use crate::server::{fresh_options, server};

fn store(pg: &PgServer) -> PgFileStore {
    PgFileStore::connect(fresh_options(pg)).unwrap()
}

fn entry(i: i64, level: Level) -> LogEntry {
    LogEntry::new(
        Timestamp::from_millis(1_000 + i),
        level,
        "t1",
        format!("step {i}"),
    )
    .with("i", i)
    .with("even", i % 2 == 0)
}

fn messages(entries: &[oc_jsonl::Stored<LogEntry>]) -> Vec<String> {
    entries.iter().map(|e| e.record.message.clone()).collect()
}

#[test]
fn appends_read_back_singly_and_batched_with_increasing_ids() {
    let Some(pg) = server() else { return };
    let s = store(pg);
    let a = s.append_log("t1", &entry(0, Level::Info)).unwrap();
    assert_eq!((a.first, a.count, a.duplicate), (EntryId(1), 1, false));
    let batch: Vec<LogEntry> = (1..5).map(|i| entry(i, Level::Warn)).collect();
    let b = s.append_logs("t1", &batch, &Append::written()).unwrap();
    assert_eq!((b.first, b.count), (EntryId(2), 4));
    let page = s.log_tail("t1", 0, 100).unwrap();
    assert!(!page.more);
    assert_eq!(page.entries.len(), 5);
    assert_eq!(page.entries[0].record, entry(0, Level::Info));
    assert_eq!(page.entries[4].record, batch[3]);
    let ids: Vec<u64> = page.entries.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(
        s.log_entry("t1", EntryId(3)).unwrap(),
        Some(batch[1].clone())
    );
    assert_eq!(s.log_entry("t1", EntryId(99)).unwrap(), None);
    let page = s.log_tail("t1", 1, 2).unwrap();
    assert_eq!(messages(&page.entries), ["step 2", "step 3"]);
    assert!(page.more);
    assert_eq!(page.next_skip, 3);
    let c = s.counts("t1").unwrap();
    assert_eq!(c.log_entries, 5);
    let lines: u64 = page_lines(&s, "t1");
    assert_eq!(c.log_bytes, lines);
    assert_eq!(s.tasks(None, 10).unwrap(), ["t1"]);
    s.append_log("t0", &entry(0, Level::Info)).unwrap();
    s.save_state("t2", &json!(1)).unwrap();
    assert_eq!(s.tasks(None, 2).unwrap(), ["t0", "t1"]);
    assert_eq!(s.tasks(Some("t1"), 2).unwrap(), ["t2"]);
    assert!(s.tasks(Some("../"), 2).unwrap_err().is_invalid_input());
    let v = s.volume().unwrap();
    assert_eq!((v.tasks, v.entries), (2, 6));
    // Nothing to append: nothing written, the next id answered.
    let none = s.append_logs("t1", &[], &Append::durable()).unwrap();
    assert_eq!((none.first, none.count), (EntryId(6), 0));
    // Decisions, by agent.
    for (i, agent) in ["a", "b", "a"].into_iter().enumerate() {
        let d = Decision {
            timestamp: Timestamp::from_millis(i as i64),
            agent: agent.into(),
            decision: format!("d{i}"),
            reasoning: "because".into(),
            metadata: Default::default(),
        };
        let got = s.append_decision("t1", &d, &Append::durable()).unwrap();
        assert_eq!(got.first, EntryId(i as u64 + 1));
    }
    let nul = Decision {
        agent: "a\0b".into(),
        ..s.decision("t1", EntryId(1)).unwrap().unwrap()
    };
    assert!(
        s.append_decision("t1", &nul, &Append::durable())
            .unwrap_err()
            .is_invalid_input()
    );
    let by_a = s.decisions("t1", Some("a"), 0, 10).unwrap();
    let names: Vec<&str> = by_a
        .entries
        .iter()
        .map(|d| d.record.decision.as_str())
        .collect();
    assert_eq!(names, ["d0", "d2"]);
    assert_eq!(
        s.decisions("t1", None, 1, 1).unwrap().entries[0]
            .record
            .decision,
        "d1"
    );
    assert_eq!(s.decision("t1", EntryId(2)).unwrap().unwrap().agent, "b");
    // Too deep or too long: refused, nothing written.
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!([deep]);
    }
    let e = s
        .append_log("t1", &entry(9, Level::Info).with("deep", deep))
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert_eq!(s.counts("t1").unwrap().log_entries, 5);
    assert!(
        s.append_log("../x", &entry(9, Level::Info))
            .unwrap_err()
            .is_invalid_input()
    );
}

/// The bytes of a task's log as lines, summed from the rows read back.
fn page_lines(s: &PgFileStore, task: &str) -> u64 {
    s.log_tail(task, 0, 1_000_000)
        .unwrap()
        .entries
        .iter()
        .map(|e| serde_json::to_string(&e.record).unwrap().len() as u64 + 1)
        .sum()
}

#[test]
fn a_retry_with_the_same_key_writes_nothing_and_answers_the_first() {
    let Some(pg) = server() else { return };
    let s = store(pg);
    let batch: Vec<LogEntry> = (0..3).map(|i| entry(i, Level::Info)).collect();
    s.append_log("t1", &entry(100, Level::Info)).unwrap();
    let first = s
        .append_logs("t1", &batch, &Append::durable().key("k1"))
        .unwrap();
    assert_eq!(
        (first.first, first.count, first.duplicate),
        (EntryId(2), 3, false)
    );
    let again = s
        .append_logs("t1", &batch, &Append::durable().key("k1"))
        .unwrap();
    assert_eq!(
        (again.first, again.count, again.duplicate),
        (EntryId(2), 3, true)
    );
    assert_eq!(s.counts("t1").unwrap().log_entries, 4);
    // Another task, or the other stream, with the same key: written.
    let other = s
        .append_logs("t2", &batch, &Append::durable().key("k1"))
        .unwrap();
    assert!(!other.duplicate);
    let d = Decision {
        timestamp: Timestamp::from_millis(1),
        agent: "a".into(),
        decision: "d".into(),
        reasoning: "r".into(),
        metadata: Default::default(),
    };
    assert!(
        !s.append_decision("t1", &d, &Append::durable().key("k1"))
            .unwrap()
            .duplicate
    );
    assert!(
        s.append_decision("t1", &d, &Append::durable().key("k1"))
            .unwrap()
            .duplicate
    );
    assert!(s.append_log("t1", &entry(1, Level::Info)).is_ok());
    assert!(
        s.append_logs("t1", &batch, &Append::durable().key(&"k".repeat(201)))
            .unwrap_err()
            .is_invalid_input()
    );
    // Many threads retrying one key at once: one writes, the rest are duplicates of it.
    let s = Arc::new(s);
    let answers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let batch = batch.clone();
            std::thread::spawn(move || {
                s.append_logs("t3", &batch, &Append::durable().key("same"))
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
    assert!(
        answers
            .iter()
            .all(|a| a.first == EntryId(1) && a.count == 3)
    );
    assert_eq!(s.counts("t3").unwrap().log_entries, 3);
}

#[test]
fn sixteen_threads_of_durable_appends_are_all_there_once_in_order() {
    let Some(pg) = server() else { return };
    let s = Arc::new(store(pg));
    const THREADS: usize = 16;
    const EACH: usize = 300;
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let task = format!("task-{}", t % 4);
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let e =
                        LogEntry::new(Timestamp::from_millis(i as i64), Level::Info, &task, "m")
                            .with("thread", t)
                            .with("i", i)
                            .with("pad", "x".repeat(t * 7));
                    let a = s.append_logs(&task, &[e], &Append::durable()).unwrap();
                    ids.push(a.first.0);
                }
                ids
            })
        })
        .collect();
    for h in handles {
        let ids = h.join().unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "a thread's ids increase"
        );
    }
    let took = started.elapsed();
    eprintln!(
        "{} durable appends from {THREADS} threads in {took:?}: {:.0}/s",
        THREADS * EACH,
        (THREADS * EACH) as f64 / took.as_secs_f64()
    );
    for task in 0..4 {
        let task = format!("task-{task}");
        let page = s.log_tail(&task, 0, 100_000).unwrap();
        assert_eq!(page.read.malformed, 0, "none torn");
        assert_eq!(page.entries.len(), EACH * THREADS / 4);
        let ids: Vec<u64> = page.entries.iter().map(|e| e.id.0).collect();
        assert_eq!(
            ids,
            (1..=ids.len() as u64).collect::<Vec<_>>(),
            "seq without gaps"
        );
        let mut seen = std::collections::HashSet::new();
        let mut last = std::collections::HashMap::new();
        for e in &page.entries {
            let t = e.record.data["thread"].as_u64().unwrap();
            let i = e.record.data["i"].as_u64().unwrap();
            assert_eq!(e.record.data["pad"].as_str().unwrap().len() as u64, t * 7);
            assert!(seen.insert((t, i)), "once");
            let prev = last.insert(t, i);
            assert!(prev.is_none_or(|p| p < i), "in each thread's order");
        }
        assert_eq!(s.counts(&task).unwrap().log_entries, ids.len() as u64);
    }
}

/// The plan of `sql` as the server ran it, in text.
fn explain(pg: &PgServer, sql: &str) -> String {
    pg.psql(
        "postgres",
        &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"),
    )
    .unwrap()
}

#[test]
fn a_tail_reads_the_rows_it_returns_and_the_analysis_reads_no_bodies() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    let levels = [
        Level::Info,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Debug,
    ];
    let all: Vec<LogEntry> = (0..20_000)
        .map(|i| entry(i, levels[i as usize % levels.len()]))
        .collect();
    for chunk in all.chunks(5_000) {
        s.append_logs("t1", chunk, &Append::written()).unwrap();
        // Other tasks share the table, as they do in a fleet.
        for other in ["t0", "t2", "t3", "t4", "t5", "t6", "t7", "t8"] {
            s.append_logs(other, chunk, &Append::written()).unwrap();
        }
    }
    // The WAL flushed first, so that vacuum can mark the (asynchronously committed) rows
    // visible to all, as it would in a while.
    pg.psql("postgres", "CHECKPOINT").unwrap();
    pg.psql(
        "postgres",
        &format!("VACUUM ANALYZE \"{schema}\".log_entries"),
    )
    .unwrap();
    let plan = explain(
        pg,
        &format!(
            "SELECT seq, level, body FROM \"{schema}\".log_entries WHERE task = 't1' \
             ORDER BY seq DESC OFFSET 0 LIMIT 21"
        ),
    );
    assert!(plan.contains("Index Scan Backward"), "{plan}");
    assert!(plan.contains("rows=21 loops=1"), "{plan}");
    let page = s.log_tail("t1", 0, 20).unwrap();
    assert_eq!(page.entries.len(), 20);
    assert_eq!(page.entries[19].record, all[19_999]);
    assert!(page.more);

    let analyze = include_str!("../../src/files/sql/analyze.sql")
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{s}", &format!("\"{schema}\""))
        .replace("$1", "'t1'");
    let plan = explain(pg, &analyze);
    assert!(
        !plan.contains("Seq Scan") && !plan.contains("Heap Scan"),
        "{plan}"
    );
    assert!(plan.contains("Index Only Scan"), "{plan}");
    let a = s.analyze("t1").unwrap();
    assert_eq!(a.total_logs, 20_000);
    assert_eq!(a.level_counts["info"], 8_000);
    assert_eq!(a.level_counts["error"], 4_000);
    assert_eq!(a.level_counts["trace"], 0);
    assert_eq!(a.error_count, 4_000);
    assert!((a.error_rate - 20.0).abs() < 1e-9);
    assert_eq!(a.first, Some(Timestamp::from_millis(1_000)));
    assert_eq!(a.last, Some(Timestamp::from_millis(1_000 + 19_999)));
    assert_eq!(a.span_ms, 19_999);
}

#[test]
fn queries_agree_with_query_matches() {
    let Some(pg) = server() else { return };
    let s = store(pg);
    let levels = [
        Level::Trace,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Debug,
        Level::Warn,
    ];
    let all: Vec<LogEntry> = (0..300)
        .map(|i| {
            entry(i, levels[i as usize % levels.len()])
                .with("f", if i % 3 == 0 { json!(1.0) } else { json!(1) })
                .with("s", format!("v{}", i % 4))
                .with("o", json!({"k": i % 2}))
        })
        .collect();
    s.append_logs("t1", &all, &Append::durable()).unwrap();
    let queries = vec![
        Query::new(),
        Query::new().min_level(Level::Warn),
        Query::new().min_level(Level::Error).newest(),
        Query::new().between(
            Some(Timestamp::from_millis(1_050)),
            Some(Timestamp::from_millis(1_100)),
        ),
        Query::new().field("s", "v1"),
        Query::new().field("f", 1),
        Query::new().field("f", 1.0),
        Query::new()
            .field("o", json!({"k": 1}))
            .min_level(Level::Info),
        Query::new().field("even", true).page(5, Some(7)),
        Query::new().field("s", "v2").page(3, Some(4)).newest(),
        Query::new()
            .min_level(Level::Warn)
            .page(10, Some(10))
            .newest(),
        Query::new().page(290, Some(20)),
        Query::new().field("missing", json!(null)),
    ];
    for q in queries {
        let matching: Vec<&LogEntry> = all.iter().filter(|e| q.matches(e)).collect();
        let ordered: Vec<&LogEntry> = if q.newest_first {
            matching.iter().rev().copied().collect()
        } else {
            matching.clone()
        };
        let want: Vec<&LogEntry> = ordered
            .iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .copied()
            .collect();
        let page = s.query("t1", &q).unwrap();
        let got: Vec<&LogEntry> = page.entries.iter().map(|e| &e.record).collect();
        assert_eq!(got, want, "{q:?}");
        assert_eq!(
            page.more,
            q.limit.is_some_and(|l| ordered.len() > q.offset + l),
            "{q:?}"
        );
    }
}

#[test]
fn a_checkpoint_restores_exactly_and_a_corrupt_one_changes_nothing() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    let before: Vec<LogEntry> = (0..50).map(|i| entry(i, Level::Info)).collect();
    s.append_logs("t1", &before, &Append::durable()).unwrap();
    s.save_state("t1", &json!({"step": 3})).unwrap();
    let d = Decision {
        timestamp: Timestamp::from_millis(5),
        agent: "a".into(),
        decision: "go".into(),
        reasoning: "r".into(),
        metadata: Default::default(),
    };
    s.append_decision("t1", &d, &Append::durable()).unwrap();
    let cp = s
        .create_checkpoint("t1", "before", Timestamp::from_millis(1_700_000_000_000))
        .unwrap();
    assert_eq!(cp.id, "cp-1700000000000-0");
    let names: Vec<&str> = cp.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["state.json", "logs.jsonl", "decisions.jsonl"]);
    assert_eq!(cp.files[1].bytes, s.counts("t1").unwrap().log_bytes);
    let listed = s.checkpoint_page("t1", 0, 10).unwrap();
    assert_eq!(listed, (vec![cp.clone()], false));

    s.append_log("t1", &entry(77, Level::Error)).unwrap();
    s.save_state("t1", &json!({"step": 4})).unwrap();
    let end = s.log_end("t1").unwrap();
    let restored = s.restore_checkpoint("t1", &cp.id).unwrap();
    assert_eq!(restored, cp);
    let page = s.log_tail("t1", 0, 1_000).unwrap();
    let got: Vec<LogEntry> = page.entries.iter().map(|e| e.record.clone()).collect();
    assert_eq!(got, before);
    assert_eq!(page.entries[0].id, EntryId(1));
    assert_eq!(s.load_state("t1").unwrap(), Some(json!({"step": 3})));
    assert_eq!(s.decisions("t1", None, 0, 10).unwrap().entries[0].record, d);
    let c = s.counts("t1").unwrap();
    assert_eq!(
        (c.log_entries, c.decisions, c.checkpoints, c.state),
        (50, 1, 1, true)
    );
    assert_eq!(c.log_bytes, cp.files[1].bytes);
    let a = s.analyze("t1").unwrap();
    assert_eq!(a.total_logs, 50);
    assert_eq!(a.first, Some(Timestamp::from_millis(1_000)));
    // A follower from before the restore starts again.
    let after = s.read_after("t1", Some(&end), 10).unwrap();
    assert!(after.restarted);
    assert_eq!(after.entries[0].record, before[0]);
    // Appends go on after the restored log.
    assert_eq!(
        s.append_log("t1", &entry(51, Level::Info)).unwrap().first,
        EntryId(51)
    );

    // A byte of the checkpoint's log flipped: refused, nothing changed.
    let cp2 = s
        .create_checkpoint("t1", "second", Timestamp::from_millis(1_700_000_000_000))
        .unwrap();
    assert_eq!(cp2.id, "cp-1700000000000-1");
    pg.psql(
        "postgres",
        &format!(
            "UPDATE \"{schema}\".checkpoint_files SET body = set_byte(body, 10, get_byte(body, 10) # 1) \
             WHERE task = 't1' AND id = '{}' AND name = 'logs.jsonl'",
            cp.id
        ),
    )
    .unwrap();
    s.save_state("t1", &json!({"step": 9})).unwrap();
    let state_before = s.load_state("t1").unwrap();
    let tail_before = s.log_tail("t1", 0, 1_000).unwrap();
    let end_before = s.log_end("t1").unwrap();
    let e = s.restore_checkpoint("t1", &cp.id).unwrap_err();
    assert!(e.is_corrupt(), "{e}");
    assert!(
        e.to_string().contains(&format!(
            "postgres:{schema}/tasks/t1/checkpoints/{}/logs.jsonl",
            cp.id
        )),
        "{e}"
    );
    assert_eq!(s.load_state("t1").unwrap(), state_before);
    assert_eq!(s.log_tail("t1", 0, 1_000).unwrap(), tail_before);
    assert_eq!(s.log_end("t1").unwrap(), end_before);
    // Not there, or not an id.
    assert!(
        s.restore_checkpoint("t1", "cp-1-0")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.restore_checkpoint("t1", "../x")
            .unwrap_err()
            .is_invalid_input()
    );
    // Pruned: newest first.
    assert_eq!(s.checkpoints("t1").unwrap().len(), 2);
    assert_eq!(s.prune_checkpoints("t1", 1).unwrap(), vec![cp.id]);
    assert_eq!(s.checkpoints("t1").unwrap()[0].id, cp2.id);
}

/// Log lines a restore must read as `files_line` does: every level, time and shape `oc_jsonl`
/// knows, and the near misses of each. Levels as `files_line` answers them (`-1` for NULL).
const EDGE_LOG: &[(&str, i16)] = &[
    (
        r#"{"timestamp":"2026-01-02T03:04:05.123Z","level":"info","message":"m","taskId":"t"}"#,
        2,
    ),
    (
        r#"{"timestamp":"2026-01-02t03:04:05.123456789","level":"WARNING","message":"m","taskId":"t","data":{}}"#,
        3,
    ),
    (
        r#"{"timestamp":"2026-01-02 03:04:05","level":"Error","message":"m","taskId":"t"}"#,
        4,
    ),
    (
        r#"{"timestamp":"1969-12-31T23:59:59.999Z","level":"trace","message":"m","taskId":"t"}"#,
        0,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","level":"debug","message":"m","taskId":"t"}"#,
        1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","level":"fatal","message":"m","taskId":"t"}"#,
        -1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","level":"info","message":"m","taskId":"t","data":null}"#,
        -1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","level":"info","message":"m","taskId":"t","data":[]}"#,
        -1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","level":"info","message":"m"}"#,
        -1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","level":2,"message":"m","taskId":"t"}"#,
        -1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05.1234567890Z","level":"info","message":"m","taskId":"t"}"#,
        -1,
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05ZZ","level":"info","message":"m","taskId":"t"}"#,
        -1,
    ),
    (
        r#"{"timestamp":1767323045123,"level":"info","message":"m","taskId":"t"}"#,
        -1,
    ),
    (r#"[1,2]"#, -1),
    (r#""x""#, -1),
    (r#"{}"#, -1),
];

/// Decision lines, with the agent `files_line` answers (`""` for NULL).
const EDGE_DECISIONS: &[(&str, &str)] = &[
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","agentId":"a1","decision":"d","reasoning":"r"}"#,
        "a1",
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","agentId":"a2","decision":"d","reasoning":"r","metadata":{}}"#,
        "a2",
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","agentId":"a3","decision":"d","reasoning":"r","metadata":null}"#,
        "",
    ),
    (
        r#"{"timestamp":"2026-01-02T03:04:05Z","agentId":4,"decision":"d","reasoning":"r"}"#,
        "",
    ),
    (
        r#"{"timestamp":"nope","agentId":"a5","decision":"d","reasoning":"r"}"#,
        "",
    ),
];

/// Puts `logs` and `decisions` (lines, each ended by a newline) in checkpoint `id` of `task`
/// with a matching manifest, restores it and answers each restored row's `(seq, ts, level or
/// agent)` with what `files_line` answers for its body, which must agree.
fn restore_lines(
    pg: &PgServer,
    s: &PgFileStore,
    schema: &str,
    id: &str,
    logs: &[&str],
    decisions: &[&str],
) -> (Vec<String>, Vec<String>) {
    for (name, lines) in [("logs.jsonl", logs), ("decisions.jsonl", decisions)] {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        pg.psql(
            "postgres",
            &format!(
                "UPDATE \"{schema}\".checkpoint_files SET body = b, bytes = octet_length(b), \
                 sha256 = sha256(b) FROM (SELECT convert_to($edge${text}$edge$, 'UTF8') AS b) x \
                 WHERE task = 't1' AND id = '{id}' AND name = '{name}'"
            ),
        )
        .unwrap();
    }
    s.restore_checkpoint("t1", id).unwrap();
    let c = s.counts("t1").unwrap();
    let bytes: usize = logs.iter().map(|l| l.len() + 1).sum();
    assert_eq!(
        (c.log_entries, c.log_bytes, c.decisions),
        (logs.len() as u64, bytes as u64, decisions.len() as u64)
    );
    let rows = |sql: String| -> Vec<String> {
        let out = pg.psql("postgres", &sql).unwrap();
        out.lines().map(str::to_owned).collect()
    };
    let log = rows(format!(
        "SELECT e.seq, e.ts, coalesce(e.level, -1), e.ts = coalesce(m.ts, 0) \
         AND e.level IS NOT DISTINCT FROM m.level FROM \"{schema}\".log_entries e, \
         LATERAL \"{schema}\".files_line(e.body) m WHERE e.task = 't1' ORDER BY e.seq"
    ));
    let dec = rows(format!(
        "SELECT d.seq, d.ts, coalesce(d.agent, ''), d.ts = coalesce(m.ts, 0) \
         AND d.agent IS NOT DISTINCT FROM m.agent FROM \"{schema}\".decisions d, \
         LATERAL \"{schema}\".files_line(d.body) m WHERE d.task = 't1' ORDER BY d.seq"
    ));
    for row in log.iter().chain(&dec) {
        assert!(
            row.ends_with("|t"),
            "a row read otherwise than files_line reads it: {row}"
        );
    }
    // Appends go on after the restored lines.
    assert_eq!(
        s.append_log("t1", &entry(1, Level::Info)).unwrap().first,
        EntryId(logs.len() as u64 + 1)
    );
    (log, dec)
}

#[test]
fn a_restore_reads_every_line_as_files_line_does_with_or_without_a_line_that_is_not_json() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    s.append_log("t1", &entry(0, Level::Info)).unwrap();
    s.append_decision(
        "t1",
        &Decision {
            timestamp: Timestamp::from_millis(5),
            agent: "a".into(),
            decision: "go".into(),
            reasoning: "r".into(),
            metadata: Default::default(),
        },
        &Append::durable(),
    )
    .unwrap();
    let cp = s
        .create_checkpoint("t1", "edges", Timestamp::from_millis(1_700_000_000_000))
        .unwrap();
    let logs: Vec<&str> = EDGE_LOG.iter().map(|(l, _)| *l).collect();
    let decisions: Vec<&str> = EDGE_DECISIONS.iter().map(|(l, _)| *l).collect();
    let (log, dec) = restore_lines(pg, &s, &schema, &cp.id, &logs, &decisions);
    let levels: Vec<i16> = log
        .iter()
        .map(|r| r.split('|').nth(2).unwrap().parse().unwrap())
        .collect();
    let want: Vec<i16> = EDGE_LOG.iter().map(|(_, l)| *l).collect();
    assert_eq!(levels, want);
    assert!(log[0].starts_with("1|1767323045123|"), "{}", log[0]);
    assert!(log[1].starts_with("2|1767323045123|"), "{}", log[1]);
    assert!(log[3].starts_with("4|-1|"), "{}", log[3]);
    let agents: Vec<&str> = dec.iter().map(|r| r.split('|').nth(2).unwrap()).collect();
    let want: Vec<&str> = EDGE_DECISIONS.iter().map(|(_, a)| *a).collect();
    assert_eq!(agents, want);

    // A line that is not JSON, and one whose time is no date: read line by line, each of
    // them as nothing, the others as before.
    let mut logs = logs;
    logs.insert(1, "not json");
    logs.push(r#"{"timestamp":"2026-13-02T03:04:05Z","level":"info","message":"m","taskId":"t"}"#);
    let mut decisions = decisions;
    decisions.push("{");
    let (log, dec) = restore_lines(pg, &s, &schema, &cp.id, &logs, &decisions);
    let levels: Vec<i16> = log
        .iter()
        .map(|r| r.split('|').nth(2).unwrap().parse().unwrap())
        .collect();
    let mut want: Vec<i16> = EDGE_LOG.iter().map(|(_, l)| *l).collect();
    want.insert(1, -1);
    want.push(-1);
    assert_eq!(levels, want);
    assert!(log[1].starts_with("2|0|"), "{}", log[1]);
    assert!(log.last().unwrap().contains("|0|-1|"), "{:?}", log.last());
    assert_eq!(dec.len(), EDGE_DECISIONS.len() + 1);
}

/// Each row of task `t1`'s log as `seq|ts|level` (`-1` for none), oldest first.
fn log_rows(pg: &PgServer, schema: &str) -> Vec<String> {
    let out = pg
        .psql(
            "postgres",
            &format!(
                "SELECT seq, ts, coalesce(level, -1) FROM \"{schema}\".log_entries \
                 WHERE task = 't1' ORDER BY seq"
            ),
        )
        .unwrap();
    out.lines().map(str::to_owned).collect()
}

/// Restores `id` and checks that task `t1` then holds `want` (its entries, oldest first),
/// counted, sized and numbered from 1 as a fresh log of them.
fn restored_as(s: &PgFileStore, id: &str, want: &[LogEntry]) {
    s.restore_checkpoint("t1", id).unwrap();
    let page = s.log_tail("t1", 0, 1_000_000).unwrap();
    let got: Vec<LogEntry> = page.entries.iter().map(|e| e.record.clone()).collect();
    assert_eq!(got, want);
    let ids: Vec<u64> = page.entries.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, (1..=want.len() as u64).collect::<Vec<_>>());
    let c = s.counts("t1").unwrap();
    assert_eq!(c.log_entries, want.len() as u64);
    assert_eq!(c.log_bytes, page_lines(s, "t1"));
    assert_eq!(c.decisions, 1);
    assert_eq!(s.analyze("t1").unwrap().total_logs, want.len() as u64);
}

/// A task of 50 entries and a decision, its 11th entry's row altered to a time and level its
/// line does not hold (so that what a restore reads from a line shows), checkpointed.
fn altered_and_checkpointed(
    pg: &PgServer,
    s: &PgFileStore,
    schema: &str,
) -> (Vec<LogEntry>, String) {
    let all: Vec<LogEntry> = (0..50).map(|i| entry(i, Level::Error)).collect();
    s.append_logs("t1", &all, &Append::written()).unwrap();
    s.append_decision(
        "t1",
        &Decision {
            timestamp: Timestamp::from_millis(5),
            agent: "a".into(),
            decision: "go".into(),
            reasoning: "r".into(),
            metadata: Default::default(),
        },
        &Append::durable(),
    )
    .unwrap();
    pg.psql(
        "postgres",
        &format!(
            "UPDATE \"{schema}\".log_entries SET ts = 7, level = 0 WHERE task = 't1' AND seq = 11"
        ),
    )
    .unwrap();
    let cp = s
        .create_checkpoint("t1", "before", Timestamp::from_millis(1_700_000_000_000))
        .unwrap();
    (all, cp.id)
}

/// Where the row of task `t1`'s first entry is: the same after a restore that kept it.
fn first_row(pg: &PgServer, schema: &str) -> String {
    pg.psql(
        "postgres",
        &format!("SELECT ctid FROM \"{schema}\".log_entries WHERE task = 't1' AND seq = 1"),
    )
    .unwrap()
    .trim()
    .to_owned()
}

#[test]
fn a_restore_gives_back_each_entrys_time_and_level_as_the_checkpoint_kept_them() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    let (all, id) = altered_and_checkpointed(pg, &s, &schema);
    let before = log_rows(pg, &schema);
    assert_eq!(before[10], "11|7|0");
    let more: Vec<LogEntry> = (50..60).map(|i| entry(i, Level::Info)).collect();
    let kept = |s: &PgFileStore, id: &str, yes: bool| {
        s.append_logs("t1", &more, &Append::written()).unwrap();
        let first = first_row(pg, &schema);
        restored_as(s, id, &all);
        assert_eq!(log_rows(pg, &schema), before);
        assert_eq!(first_row(pg, &schema) == first, yes, "entries kept: {yes}");
    };
    // In the generation it was made in: the entries after the checkpoint's go, the others
    // stay.
    kept(&s, &id, true);
    // Again: the restore began a generation whose entries are the checkpoint's.
    kept(&s, &id, true);
    // Another checkpoint restored since: every line again, each with its kept time and level.
    let other = s
        .create_checkpoint("t1", "other", Timestamp::from_millis(1_700_000_000_001))
        .unwrap();
    kept(&s, &other.id, true);
    kept(&s, &id, false);
    kept(&s, &id, true);
    // Retention took the oldest entries since: every line again.
    s.append_logs("t1", &more, &Append::written()).unwrap();
    let gone = s
        .retain(
            "t1",
            &Retention::new().max_entries(5),
            Timestamp::from_millis(1_000_000),
        )
        .unwrap();
    assert_eq!(gone, 55);
    kept(&s, &id, false);
    kept(&s, &id, true);
    // Appends go on after the restored entries.
    assert_eq!(
        s.append_log("t1", &entry(99, Level::Info)).unwrap().first,
        EntryId(all.len() as u64 + 1)
    );
}

#[test]
fn a_checkpoint_made_before_version_2_is_restored_by_reading_its_lines() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    let (all, id) = altered_and_checkpointed(pg, &s, &schema);
    // As version 1 wrote a checkpoint's files: without what version 2 keeps beside them.
    pg.psql(
        "postgres",
        &format!(
            "UPDATE \"{schema}\".checkpoint_files SET lines_sha256 = NULL, ts = NULL, \
             levels = NULL, agents = NULL, generation = NULL, next_seq = NULL \
             WHERE task = 't1' AND id = '{id}'"
        ),
    )
    .unwrap();
    let more: Vec<LogEntry> = (50..60).map(|i| entry(i, Level::Info)).collect();
    s.append_logs("t1", &more, &Append::written()).unwrap();
    restored_as(&s, &id, &all);
    // Every line read: the 11th entry's time and level are its line's.
    let rows = log_rows(pg, &schema);
    assert_eq!(rows[10], "11|1010|4");
    assert_eq!(rows.len(), 50);
    // Arrays that do not fit the file (one time short) are not used either.
    pg.psql(
        "postgres",
        &format!(
            "UPDATE \"{schema}\".checkpoint_files SET lines_sha256 = sha256, \
             ts = (SELECT array_agg(x) FROM generate_series(1, 49) x), \
             levels = array_fill(0::smallint, ARRAY[49]) \
             WHERE task = 't1' AND id = '{id}' AND name = 'logs.jsonl'"
        ),
    )
    .unwrap();
    restored_as(&s, &id, &all);
    assert_eq!(log_rows(pg, &schema)[10], "11|1010|4");
}

#[test]
fn retention_keeps_the_newest_within_every_bound_exactly() {
    let Some(pg) = server() else { return };
    let s = store(pg);
    let all: Vec<LogEntry> = (0..25_000).map(|i| entry(i, Level::Info)).collect();
    for chunk in all.chunks(5_000) {
        s.append_logs("t1", chunk, &Append::written()).unwrap();
    }
    let now = Timestamp::from_millis(1_000 + 30_000);
    // By count: more than one step of 10,000.
    let gone = s
        .retain("t1", &Retention::new().max_entries(4_000), now)
        .unwrap();
    assert_eq!(gone, 21_000);
    let c = s.counts("t1").unwrap();
    assert_eq!(c.log_entries, 4_000);
    let page = s.log_tail("t1", 0, 10_000).unwrap();
    assert_eq!(page.entries[0].record, all[21_000]);
    assert_eq!(c.log_bytes, page_lines(&s, "t1"));
    // By age: entries logged more than 3,000 ms before now go (their time < now - 3 s).
    let gone = s
        .retain(
            "t1",
            &Retention::new().max_age(Duration::from_millis(6_000)),
            now,
        )
        .unwrap();
    assert_eq!(gone, 24_000 - 21_000);
    assert_eq!(
        s.log_tail("t1", 0, 1).unwrap().entries[0].record,
        all[24_999]
    );
    assert_eq!(s.counts("t1").unwrap().log_entries, 1_000);
    // By bytes: the newest whose lines fit.
    let sizes: Vec<u64> = all[24_000..]
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len() as u64 + 1)
        .collect();
    let budget: u64 = sizes[sizes.len() - 300..].iter().sum::<u64>() + 5;
    let gone = s
        .retain("t1", &Retention::new().max_bytes(budget), now)
        .unwrap();
    assert_eq!(gone, 700);
    let c = s.counts("t1").unwrap();
    assert_eq!(c.log_entries, 300);
    assert!(c.log_bytes <= budget);
    assert_eq!(
        s.retain("t1", &Retention::new().max_bytes(budget), now)
            .unwrap(),
        0
    );
    assert_eq!(s.analyze("t1").unwrap().total_logs, 300);
    // By age, the leading run of old entries only, as on disk: an old entry after a young
    // one stays.
    let at = |ms: i64, m: &str| LogEntry::new(Timestamp::from_millis(ms), Level::Info, "t2", m);
    let now = Timestamp::from_millis(100_000);
    let mixed = [
        at(1, "old"),
        at(2, "old"),
        at(99_000, "young"),
        at(3, "late old"),
    ];
    s.append_logs("t2", &mixed, &Append::durable()).unwrap();
    let gone = s
        .retain(
            "t2",
            &Retention::new().max_age(Duration::from_secs(10)),
            now,
        )
        .unwrap();
    assert_eq!(gone, 2);
    assert_eq!(
        messages(&s.log_tail("t2", 0, 10).unwrap().entries),
        ["young", "late old"]
    );
}

#[test]
fn a_follower_sees_an_append_from_another_host_within_two_seconds() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let a = PgFileStore::connect(opts.clone()).unwrap();
    let b = Arc::new(PgFileStore::connect(opts).unwrap());
    a.append_log("t1", &entry(0, Level::Info)).unwrap();
    let end = b.log_end("t1").unwrap();
    let waiter = {
        let b = b.clone();
        let end = end.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            b.wait("t1", &end, Duration::from_secs(10)).unwrap();
            let after = b.read_after("t1", Some(&end), 10).unwrap();
            (started.elapsed(), after)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    a.append_log("t1", &entry(1, Level::Warn)).unwrap();
    let (_, after) = waiter.join().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(messages(&after.entries), ["step 1"]);
    assert!(!after.restarted);
    // Nothing new: wait returns at its timeout, and the cursor stays.
    let started = Instant::now();
    b.wait("t1", &after.cursor, Duration::from_millis(300))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        b.read_after("t1", Some(&after.cursor), 10)
            .unwrap()
            .entries
            .is_empty()
    );
    // Ship cursors, per collector.
    b.set_ship_cursor("t1", "c1", &after.cursor).unwrap();
    assert_eq!(
        a.ship_cursor("t1", "c1").unwrap(),
        Some(after.cursor.clone())
    );
    assert_eq!(a.ship_cursor("t1", "c2").unwrap(), None);
    let bad = oc_jsonl::LogCursor::new("nonsense").unwrap();
    assert!(
        a.read_after("t1", Some(&bad), 1)
            .unwrap_err()
            .is_invalid_input()
    );
}

#[test]
fn state_round_trips_and_is_bounded() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    assert_eq!(s.load_state("t1").unwrap(), None);
    s.save_state("t1", &json!({"a": [1, 2, {"b": null}]}))
        .unwrap();
    assert_eq!(
        s.load_state("t1").unwrap(),
        Some(json!({"a": [1, 2, {"b": null}]}))
    );
    assert!(s.counts("t1").unwrap().state);
    let big = json!("x".repeat(oc_jsonl::MAX_STATE_BYTES as usize));
    assert!(s.save_state("t1", &big).unwrap_err().is_invalid_input());
    pg.psql(
        "postgres",
        &format!(
            "UPDATE \"{schema}\".file_tasks SET state = set_byte(state, 30, 65) WHERE task = 't1'"
        ),
    )
    .unwrap();
    assert!(s.load_state("t1").unwrap_err().is_corrupt());
}

#[test]
fn failures_keep_the_servers_error_and_no_password() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    s.append_log("t1", &entry(0, Level::Info)).unwrap();
    pg.psql("postgres", &format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
    for e in [
        s.log_tail("t1", 0, 1).unwrap_err(),
        s.append_log("t1", &entry(1, Level::Info)).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                oc_jsonl::Error::Backend {
                    backend: "postgres",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!e.is_retryable(), "{e}");
        let source = std::error::Error::source(&e).expect("a source");
        let pg_error = source
            .downcast_ref::<tokio_postgres::Error>()
            .or_else(|| {
                source
                    .source()
                    .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
            })
            .expect("the server's error");
        assert!(pg_error.code().is_some(), "{pg_error:?}");
    }
    let opts = oc_postgres::PgOptions::new(
        "host=/nonexistent/oc-test user=agent password=hunter2 connect_timeout=2",
    )
    .unwrap();
    let e = PgFileStore::connect(opts).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let chain: Vec<String> =
        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
    assert!(chain.len() > 1, "{chain:?}");
    assert!(!chain.iter().any(|t| t.contains("hunter2")), "{chain:?}");
    assert!(!format!("{e:?}").contains("hunter2"));
}

/// A server that crashes under keyed durable appends: each caller retries a failed append
/// with its key until it is acknowledged, and finds every entry there exactly once.
#[test]
fn keyed_appends_retried_across_a_crash_are_there_once() {
    use oc_postgres::testkit::{ServerOptions, server_binaries};
    if server_binaries().is_none() && std::env::var_os("OC_REQUIRE_POSTGRES").is_none() {
        return;
    }
    let pg = PgServer::start_with(&ServerOptions {
        durable_commits: true,
        ..ServerOptions::default()
    })
    .unwrap();
    let opts = oc_postgres::PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema("crash")
        .unwrap();
    let s = Arc::new(PgFileStore::connect(opts).unwrap());
    const THREADS: u64 = 4;
    const EACH: u64 = 300;
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let retried = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (s, acked, retried) = (s.clone(), acked.clone(), retried.clone());
            scope.spawn(move || {
                for i in 0..EACH {
                    let e = LogEntry::new(Timestamp::from_millis(i as i64), Level::Info, "t1", "m")
                        .with("thread", t)
                        .with("i", i);
                    let key = format!("w{t}-{i}");
                    let until = Instant::now() + Duration::from_secs(60);
                    loop {
                        match s.append_logs(
                            "t1",
                            std::slice::from_ref(&e),
                            &Append::durable().key(&key),
                        ) {
                            Ok(a) => {
                                assert_eq!(a.count, 1);
                                break;
                            }
                            Err(err) => {
                                assert!(err.is_retryable(), "a failure during the crash: {err}");
                                assert!(Instant::now() < until, "still failing: {err}");
                                retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        while acked.load(std::sync::atomic::Ordering::Relaxed) < 300 {
            std::thread::sleep(Duration::from_millis(5));
        }
        pg.restart_immediately().unwrap();
    });
    assert!(
        retried.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "callers saw the crash"
    );
    let page = s.log_tail("t1", 0, 100_000).unwrap();
    let mut seen = std::collections::HashMap::new();
    for e in &page.entries {
        let t = e.record.data["thread"].as_u64().unwrap();
        let i = e.record.data["i"].as_u64().unwrap();
        *seen.entry((t, i)).or_insert(0) += 1;
    }
    for t in 0..THREADS {
        for i in 0..EACH {
            assert_eq!(seen.get(&(t, i)), Some(&1), "thread {t} entry {i}");
        }
    }
    assert_eq!(page.entries.len() as u64, THREADS * EACH);
    assert_eq!(s.counts("t1").unwrap().log_entries, THREADS * EACH);
}

/// `Ack::Written` batches of 100 from four threads (committed without waiting for the WAL's
/// flush): all there, in each thread's order.
#[test]
fn written_batches_from_four_threads_are_all_there() {
    let Some(pg) = server() else { return };
    let s = Arc::new(store(pg));
    const THREADS: u64 = 4;
    const BATCHES: u64 = 50;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let s = s.clone();
            scope.spawn(move || {
                for b in 0..BATCHES {
                    let batch: Vec<LogEntry> = (0..100)
                        .map(|i| {
                            LogEntry::new(Timestamp::from_millis(0), Level::Debug, "t1", "m")
                                .with("thread", t)
                                .with("i", b * 100 + i)
                        })
                        .collect();
                    let a = s.append_logs("t1", &batch, &Append::written()).unwrap();
                    assert_eq!(a.count, 100);
                }
            });
        }
    });
    let took = started.elapsed();
    let total = THREADS * BATCHES * 100;
    eprintln!(
        "{total} entries in written batches of 100 from {THREADS} threads in {took:?}: {:.0}/s",
        total as f64 / took.as_secs_f64()
    );
    let page = s.log_tail("t1", 0, 100_000).unwrap();
    assert_eq!(page.entries.len() as u64, total);
    let mut last = std::collections::HashMap::new();
    for e in &page.entries {
        let t = e.record.data["thread"].as_u64().unwrap();
        let i = e.record.data["i"].as_u64().unwrap();
        let prev = last.insert(t, i);
        assert_eq!(
            prev.map_or(0, |p| p + 1),
            i,
            "thread {t}: in order, none missing"
        );
    }
}

/// The attacker calls the restore function with a task and a checkpoint id that do not exist
/// (through any connection that may call it, or racing a deletion past the store's own lookup):
/// nothing is written, and the task does not become listed.
#[test]
fn a_restore_of_an_unknown_checkpoint_writes_no_row() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let schema = opts.schema_name().to_owned();
    let s = PgFileStore::connect(opts).unwrap();
    let out = pg
        .psql(
            "postgres",
            &format!(
                "SELECT outcome FROM \"{schema}\".files_restore('ghost', 'cp-0000000000001-0')"
            ),
        )
        .unwrap();
    assert!(out.contains("not_found"), "{out}");
    assert_eq!(s.tasks(None, 10).unwrap(), Vec::<String>::new(), "no row");
    let rows = pg
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM \"{schema}\".file_tasks"),
        )
        .unwrap();
    assert_eq!(rows.trim(), "0", "{rows}");
}
