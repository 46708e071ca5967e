//! `DirFileStore`: every method of `TaskFileStore` on the data directory, against lists kept
//! by the test.

use std::sync::Arc;
use std::time::Duration;

use oc_jsonl::{
    Append, Decision, DirFileStore, EntryId, Error, JsonlReader, Level, LogEntry,
    MAX_CHECKPOINT_FILE_BYTES, MAX_DEPTH, MAX_LINE_BYTES, Query, Retention, TaskFileStore,
    TaskFiles,
};
use oc_time::Timestamp;
use serde_json::json;

fn entry(i: i64) -> LogEntry {
    let level = Level::ALL[(i % 5) as usize];
    LogEntry::new(
        Timestamp::from_millis(1_000 + i),
        level,
        "t1",
        format!("m{i}"),
    )
    .with("i", i)
}

fn decision(i: i64, agent: &str) -> Decision {
    Decision {
        timestamp: Timestamp::from_millis(i),
        agent: agent.into(),
        decision: format!("d{i}"),
        reasoning: "because".into(),
        metadata: Default::default(),
    }
}

fn store() -> (tempfile::TempDir, DirFileStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = DirFileStore::new(dir.path());
    (dir, s)
}

fn records<T: Clone>(page: &[oc_jsonl::Stored<T>]) -> Vec<T> {
    page.iter().map(|s| s.record.clone()).collect()
}

/// Appends `0..n`, singly and in batches, and returns them.
fn fill(s: &DirFileStore, n: i64) -> Vec<LogEntry> {
    let all: Vec<LogEntry> = (0..n).map(entry).collect();
    for chunk in all.chunks(7) {
        if chunk.len() == 1 {
            s.append_log("t1", &chunk[0]).unwrap();
        } else {
            s.append_logs("t1", chunk, &Append::written()).unwrap();
        }
    }
    all
}

#[test]
fn appends_read_back_with_increasing_ids_and_ids_are_offsets() {
    let (dir, s) = store();
    let a = s
        .append_logs("t1", &[entry(0), entry(1)], &Append::durable())
        .unwrap();
    let b = s.append_log("t1", &entry(2)).unwrap();
    assert_eq!((a.first, a.count, a.duplicate), (EntryId(0), 2, false));
    assert!(b.first > a.first && b.count == 1);
    let page = s.log_tail("t1", 0, 10).unwrap();
    assert_eq!(records(&page.entries), [entry(0), entry(1), entry(2)]);
    assert!(!page.more);
    assert_eq!(page.next_skip, 3);
    // The live file's ids are its offsets, as `TaskFiles`' readers give them.
    let tail = TaskFiles::new(dir.path(), "t1")
        .unwrap()
        .logs()
        .tail_lines(0, 3)
        .unwrap();
    let offsets: Vec<u64> = tail.lines.iter().map(|l| l.at.offset).collect();
    let ids: Vec<u64> = page.entries.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, offsets);
    assert_eq!(page.entries[2].id, b.first);
    for e in &page.entries {
        assert_eq!(s.log_entry("t1", e.id).unwrap().as_ref(), Some(&e.record));
    }
    assert_eq!(
        s.log_entry("t1", EntryId(1)).unwrap(),
        None,
        "inside a line"
    );
    assert_eq!(
        s.log_entry("t1", EntryId(1 << 40)).unwrap(),
        None,
        "past the end"
    );
    assert_eq!(s.log_entry("t2", EntryId(0)).unwrap(), None, "no such task");
}

#[test]
fn refused_records_write_nothing() {
    let (_dir, s) = store();
    s.append_log("t1", &entry(0)).unwrap();
    let mut deep = json!(1);
    for _ in 0..MAX_DEPTH + 1 {
        deep = json!([deep]);
    }
    let e = s
        .append_logs(
            "t1",
            &[entry(1), entry(2).with("deep", deep)],
            &Append::durable(),
        )
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    let long = entry(3).with("big", "x".repeat(MAX_LINE_BYTES));
    let e = s
        .append_logs("t1", &[entry(1), long], &Append::durable())
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    // With its key the line would be too long: refused too.
    let near = entry(4).with("big", "x".repeat(MAX_LINE_BYTES - 150));
    let e = s
        .append_logs("t1", &[near], &Append::durable().key(&"k".repeat(200)))
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert!(
        s.append_logs("t1", &[entry(1)], &Append::durable().key(""))
            .is_err()
    );
    assert_eq!(
        records(&s.log_tail("t1", 0, 10).unwrap().entries),
        [entry(0)]
    );
    assert!(matches!(
        s.append_log("../x", &entry(0)).unwrap_err(),
        Error::InvalidTaskId { .. }
    ));
}

#[test]
fn tails_page_from_the_newest_end() {
    let (_dir, s) = store();
    let all = fill(&s, 50);
    let mut skip = 0usize;
    let mut seen = Vec::new();
    loop {
        let page = s.log_tail("t1", skip, 8).unwrap();
        let got = records(&page.entries);
        let want: Vec<LogEntry> =
            all[all.len().saturating_sub(skip + 8)..all.len() - skip].to_vec();
        assert_eq!(got, want, "skip {skip}");
        seen.splice(0..0, got);
        assert_eq!(page.more, skip + 8 < all.len());
        skip = page.next_skip as usize;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, all);
    assert!(s.log_tail("t1", 100, 5).unwrap().entries.is_empty());
    assert!(s.log_tail("none", 0, 5).unwrap().entries.is_empty());
}

#[test]
fn queries_agree_with_query_matches() {
    let (_dir, s) = store();
    let all = fill(&s, 60);
    let queries = [
        Query::new(),
        Query::new().min_level(Level::Warn),
        Query::new().min_level(Level::Info).page(3, Some(5)),
        Query::new()
            .min_level(Level::Info)
            .page(3, Some(5))
            .newest(),
        Query::new().field("i", 7),
        Query::new()
            .between(
                Some(Timestamp::from_millis(1_010)),
                Some(Timestamp::from_millis(1_020)),
            )
            .newest(),
        Query::new().page(55, Some(10)),
        Query::new().page(0, Some(60)),
    ];
    for q in queries {
        let matching: Vec<LogEntry> = all.iter().filter(|e| q.matches(e)).cloned().collect();
        let ordered: Vec<LogEntry> = if q.newest_first {
            matching.iter().rev().cloned().collect()
        } else {
            matching.clone()
        };
        let want: Vec<LogEntry> = ordered
            .iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        let page = s.query("t1", &q).unwrap();
        assert_eq!(records(&page.entries), want, "{q:?}");
        assert_eq!(page.more, ordered.len() > q.offset + want.len(), "{q:?}");
        assert_eq!(page.next_skip as usize, q.offset + want.len());
        for e in &page.entries {
            assert_eq!(s.log_entry("t1", e.id).unwrap().as_ref(), Some(&e.record));
        }
    }
}

#[test]
fn analysis_counts_and_volume() {
    let (dir, s) = store();
    let all = fill(&s, 25);
    let a = s.analyze("t1").unwrap();
    assert_eq!(a.total_logs, 25);
    assert_eq!(
        a.error_count,
        all.iter().filter(|e| e.level == Level::Error).count() as u64
    );
    s.append_decision("t1", &decision(1, "a"), &Append::durable())
        .unwrap();
    s.save_state("t1", &json!({"k": 1})).unwrap();
    s.create_checkpoint("t1", "c", Timestamp::from_millis(5))
        .unwrap();
    s.append_log("t2", &entry(0)).unwrap();
    let c = s.counts("t1").unwrap();
    let bytes = std::fs::metadata(dir.path().join("tasks/t1/logs.jsonl"))
        .unwrap()
        .len();
    assert_eq!(
        (
            c.log_entries,
            c.log_bytes,
            c.decisions,
            c.checkpoints,
            c.state
        ),
        (25, bytes, 1, 1, true)
    );
    assert_eq!(s.counts("none").unwrap(), Default::default());
    let v = s.volume().unwrap();
    assert_eq!((v.tasks, v.files, v.entries), (2, 2, 26));
    s.append_log("t2", &entry(1)).unwrap();
    assert_eq!(s.volume().unwrap().entries, 27, "growth counted");
    assert_eq!(s.tasks(None, 10).unwrap(), ["t1", "t2"]);
    assert_eq!(s.tasks(Some("t1"), 10).unwrap(), ["t2"]);
    assert_eq!(s.tasks(None, 1).unwrap(), ["t1"]);
    assert_eq!(s.location(), dir.path().display().to_string());
}

#[test]
fn decisions_by_agent_page_within_a_scan_budget() {
    let (_dir, s) = store();
    let mut all = Vec::new();
    for i in 0..30 {
        let d = decision(i, if i % 3 == 0 { "a" } else { "b" });
        let ap = s.append_decision("t1", &d, &Append::written()).unwrap();
        all.push((ap.first, d));
    }
    let page = s.decisions("t1", None, 5, 10).unwrap();
    let want: Vec<Decision> = all[15..25].iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(records(&page.entries), want);
    assert!(page.more);
    assert_eq!(page.next_skip, 15);
    let by_a = s.decisions("t1", Some("a"), 0, 4).unwrap();
    let of_a: Vec<Decision> = all
        .iter()
        .filter(|(_, d)| d.agent == "a")
        .map(|(_, d)| d.clone())
        .collect();
    let want = of_a[of_a.len() - 4..].to_vec();
    assert_eq!(records(&by_a.entries), want);
    assert!(by_a.more);
    let rest = s
        .decisions("t1", Some("a"), by_a.next_skip as usize, 100)
        .unwrap();
    assert_eq!(rest.entries.len(), 6);
    assert!(!rest.more);
    for (id, d) in &all {
        assert_eq!(s.decision("t1", *id).unwrap().as_ref(), Some(d));
    }
}

#[test]
fn an_agent_filter_scans_at_most_ten_thousand_lines_a_call() {
    let (_dir, s) = store();
    let mut batch: Vec<Decision> = (0..12_000).map(|i| decision(i, "b")).collect();
    batch[10].agent = "a".into();
    // One write of 12,000 lines, through the writer the store uses.
    let files = TaskFiles::new(s.data_dir(), "t1").unwrap();
    for d in &batch {
        files.append_decision(d).unwrap();
    }
    let page = s.decisions("t1", Some("a"), 0, 5).unwrap();
    assert!(page.entries.is_empty());
    assert!(page.more);
    assert_eq!(page.next_skip, 10_000);
    let page = s.decisions("t1", Some("a"), 10_000, 5).unwrap();
    assert_eq!(records(&page.entries), [batch[10].clone()]);
    assert!(!page.more);
}

#[test]
fn state_round_trips() {
    let (_dir, s) = store();
    assert_eq!(s.load_state("t1").unwrap(), None);
    s.save_state("t1", &json!({"step": [1, 2]})).unwrap();
    assert_eq!(s.load_state("t1").unwrap(), Some(json!({"step": [1, 2]})));
}

#[test]
fn checkpoints_create_page_restore_and_delete() {
    let (dir, s) = store();
    s.save_state("t1", &json!({"v": 1})).unwrap();
    let before = fill(&s, 5);
    let d = decision(1, "a");
    s.append_decision("t1", &d, &Append::durable()).unwrap();
    let cp1 = s
        .create_checkpoint("t1", "one", Timestamp::from_millis(10))
        .unwrap();
    s.save_state("t1", &json!({"v": 2})).unwrap();
    s.append_log("t1", &entry(99)).unwrap();
    let cp2 = s
        .create_checkpoint("t1", "two", Timestamp::from_millis(20))
        .unwrap();
    let cp3 = s
        .create_checkpoint("t1", "three", Timestamp::from_millis(30))
        .unwrap();
    let (page, more) = s.checkpoint_page("t1", 0, 2).unwrap();
    assert_eq!(page, [cp3.clone(), cp2.clone()]);
    assert!(more);
    assert_eq!(
        s.checkpoint_page("t1", 2, 2).unwrap(),
        (vec![cp1.clone()], false)
    );
    assert_eq!(s.restore_checkpoint("t1", &cp1.id).unwrap(), cp1);
    assert_eq!(s.load_state("t1").unwrap(), Some(json!({"v": 1})));
    assert_eq!(records(&s.log_tail("t1", 0, 100).unwrap().entries), before);
    assert_eq!(
        records(&s.decisions("t1", None, 0, 10).unwrap().entries),
        [d]
    );
    // The writer kept open appends to the restored log.
    s.append_log("t1", &entry(5)).unwrap();
    assert_eq!(s.log_tail("t1", 0, 100).unwrap().entries.len(), 6);
    assert!(
        s.restore_checkpoint("t1", "cp-1-1")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.restore_checkpoint("t1", "../x")
            .unwrap_err()
            .is_invalid_input()
    );
    // A corrupt checkpoint is refused, nothing changed.
    let f = dir
        .path()
        .join(format!("tasks/t1/checkpoints/{}/logs.jsonl", cp2.id));
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[3] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    let live = std::fs::read(dir.path().join("tasks/t1/logs.jsonl")).unwrap();
    assert!(
        s.restore_checkpoint("t1", &cp2.id)
            .unwrap_err()
            .is_corrupt()
    );
    assert_eq!(
        std::fs::read(dir.path().join("tasks/t1/logs.jsonl")).unwrap(),
        live
    );
    let gone = s
        .delete_checkpoints("t1", &[cp2.id.clone(), "cp-5-5".into(), cp2.id.clone()])
        .unwrap();
    assert_eq!(gone, [cp2.id.as_str()]);
    assert!(
        s.delete_checkpoints("t1", &["nope".into()])
            .unwrap_err()
            .is_invalid_input()
    );
    assert_eq!(s.prune_checkpoints("t1", 1).unwrap(), [cp1.id.as_str()]);
    assert_eq!(s.checkpoints("t1").unwrap(), [cp3]);
}

#[test]
fn a_checkpoint_file_past_its_bound_is_refused_with_nothing_written() {
    let (dir, s) = store();
    s.append_log("t1", &entry(0)).unwrap();
    let log = dir.path().join("tasks/t1/logs.jsonl");
    // Sparse: past the bound without writing 256 MiB.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(MAX_CHECKPOINT_FILE_BYTES + 1)
        .unwrap();
    let e = s
        .create_checkpoint("t1", "big", Timestamp::from_millis(1))
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert!(!dir.path().join("tasks/t1/checkpoints").exists());
}

#[test]
fn retention_keeps_the_newest_within_every_bound() {
    let check = |r: Retention, n: i64, kept: usize| {
        let (_dir, s) = store();
        let all = fill(&s, n);
        let gone = s
            .retain("t1", &r, Timestamp::from_millis(1_000 + n))
            .unwrap();
        let left = records(&s.log_tail("t1", 0, 1000).unwrap().entries);
        assert_eq!(left, all[all.len() - kept..], "{r:?}");
        assert_eq!(gone as usize, all.len() - kept, "{r:?}");
        assert_eq!(s.counts("t1").unwrap().log_entries as usize, kept);
        // Appends go on after it.
        s.append_log("t1", &entry(n)).unwrap();
        assert_eq!(s.log_tail("t1", 0, 1).unwrap().entries[0].record, entry(n));
    };
    check(Retention::new(), 20, 20);
    check(Retention::new().max_entries(5), 20, 5);
    check(Retention::new().max_entries(50), 20, 20);
    // Entries 0..20 at 1000..=1019, now 1020: older than 5 ms are 0..=14 (1015 is 5 ms old).
    check(Retention::new().max_age(Duration::from_millis(5)), 20, 5);
    let line = {
        let (_dir, s) = store();
        s.append_log("t1", &entry(10)).unwrap();
        s.counts("t1").unwrap().log_bytes
    };
    check(Retention::new().max_bytes(line * 3), 20, 3);
    check(Retention::new().max_bytes(line * 3).max_entries(2), 20, 2);
}

#[test]
fn following_reads_in_order_and_restarts_after_a_restore() {
    let (_dir, s) = store();
    let empty = s.log_end("t1").unwrap();
    let all = fill(&s, 10);
    let a = s.read_after("t1", Some(&empty), 4).unwrap();
    assert_eq!(records(&a.entries), all[..4]);
    assert!(!a.restarted);
    let b = s.read_after("t1", Some(&a.cursor), 100).unwrap();
    assert_eq!(records(&b.entries), all[4..]);
    let end = s.log_end("t1").unwrap();
    assert_eq!(end, b.cursor);
    assert!(
        s.read_after("t1", Some(&end), 10)
            .unwrap()
            .entries
            .is_empty()
    );
    // Woken by an append.
    let start = std::time::Instant::now();
    s.wait("t1", &end, Duration::from_millis(50)).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(40));
    s.append_log("t1", &entry(10)).unwrap();
    let start = std::time::Instant::now();
    s.wait("t1", &end, Duration::from_secs(5)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    let cp = s
        .create_checkpoint("t1", "c", Timestamp::from_millis(1))
        .unwrap();
    s.append_log("t1", &entry(11)).unwrap();
    let at = s.log_end("t1").unwrap();
    s.restore_checkpoint("t1", &cp.id).unwrap();
    let r = s.read_after("t1", Some(&at), 100).unwrap();
    assert!(r.restarted);
    assert_eq!(records(&r.entries).len(), 11);
    assert!(
        s.read_after("t1", Some(&oc_jsonl::LogCursor::new("3:17").unwrap()), 1)
            .unwrap_err()
            .is_invalid_input()
    );
    // A retention replaces the log too.
    let at = s.log_end("t1").unwrap();
    s.retain(
        "t1",
        &Retention::new().max_entries(2),
        Timestamp::from_millis(0),
    )
    .unwrap();
    assert!(s.read_after("t1", Some(&at), 100).unwrap().restarted);
}

#[test]
fn ship_cursors_are_per_collector_and_read_the_shippers_own() {
    let (dir, s) = store();
    fill(&s, 5);
    assert_eq!(s.ship_cursor("t1", "http://a").unwrap(), None);
    let mid = s.read_after("t1", None, 2).unwrap().cursor;
    let end = s.log_end("t1").unwrap();
    s.set_ship_cursor("t1", "http://a", &mid).unwrap();
    s.set_ship_cursor("t1", "http://b", &end).unwrap();
    assert_eq!(s.ship_cursor("t1", "http://a").unwrap(), Some(mid.clone()));
    assert_eq!(s.ship_cursor("t1", "http://b").unwrap(), Some(end));
    assert!(s.ship_cursor("t1", "").is_err());
    // The Shipper's format (lines shipped and the hash of the last): read as a cursor.
    let lines = JsonlReader::open(dir.path().join("tasks/t1/logs.jsonl"))
        .tail(5)
        .unwrap();
    let hash = {
        use sha2_hex::hex_sha256;
        hex_sha256(&lines[1])
    };
    let file = dir.path().join("tasks/t1/ship-cursor.json");
    let mut all: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    all["http://c"] = json!({"line": 2, "hash": hash});
    std::fs::write(&file, serde_json::to_vec(&all).unwrap()).unwrap();
    let c = s.ship_cursor("t1", "http://c").unwrap().unwrap();
    assert_eq!(
        records(&s.read_after("t1", Some(&c), 10).unwrap().entries).len(),
        3
    );
    assert_eq!(c, mid);
}

/// SHA-256 in hex, as the shipper writes it.
mod sha2_hex {
    use sha2::Digest;
    pub(super) fn hex_sha256(bytes: &[u8]) -> String {
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[test]
fn the_overview_is_the_three_parts() {
    let (_dir, s) = store();
    let all = fill(&s, 12);
    for i in 0..4 {
        s.append_decision("t1", &decision(i, "a"), &Append::written())
            .unwrap();
    }
    let cp = s
        .create_checkpoint("t1", "c", Timestamp::from_millis(1))
        .unwrap();
    let r = oc_jsonl::OverviewRequest::new((2, 5), (1, 2), (0, 3));
    let o = s.overview("t1", &r);
    let log = o.log.unwrap();
    assert_eq!(records(&log.entries), all[5..10]);
    assert_eq!(log, s.log_tail("t1", 2, 5).unwrap());
    assert_eq!(o.decisions.unwrap(), s.decisions("t1", None, 1, 2).unwrap());
    assert_eq!(o.checkpoints.unwrap(), (vec![cp], false));
    let none = s.overview("none", &r);
    assert!(none.log.unwrap().entries.is_empty());
    assert!(none.checkpoints.unwrap().0.is_empty());
    assert!(s.overview("../x", &r).log.is_err());
}

#[test]
fn one_store_serves_threads_on_many_tasks() {
    let (_dir, s) = store();
    let s = Arc::new(s);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                // More tasks than writers kept open: the least recently used are closed.
                for i in 0..100 {
                    let task = format!("task{}", (i * 7 + t) % 80);
                    s.append_log(&task, &entry(i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total: u64 = s
        .tasks(None, 1000)
        .unwrap()
        .iter()
        .map(|t| s.counts(t).unwrap().log_entries)
        .sum();
    assert_eq!(total, 400);
}

/// Run by [`the_overview_walks_to_the_task_once`] under `strace`: one overview of the store in
/// `$OC_OVERVIEW_CHILD`, between two marker opens. Does nothing otherwise.
#[test]
fn overview_child() {
    let Ok(dir) = std::env::var("OC_OVERVIEW_CHILD") else {
        return;
    };
    let s = DirFileStore::new(dir);
    let r = oc_jsonl::OverviewRequest::new((0, 20), (0, 20), (0, 10));
    let _ = std::fs::File::open("/oc-overview-start");
    let o = if std::env::var_os("OC_OVERVIEW_THREE").is_some() {
        // What the trait's default does: three calls, three walks.
        oc_jsonl::Overview::new(
            s.log_tail("t1", 0, 20),
            s.decisions("t1", None, 0, 20),
            s.checkpoint_page("t1", 0, 10),
        )
    } else {
        s.overview("t1", &r)
    };
    let _ = std::fs::File::open("/oc-overview-end");
    assert_eq!(o.log.unwrap().entries.len(), 20);
    assert_eq!(o.decisions.unwrap().entries.len(), 3);
    assert_eq!(o.checkpoints.unwrap().0.len(), 1);
}

/// The task page's overview opens `<data>`, `tasks/` and `tasks/<id>/` once for its three
/// parts (the trait's default walks there three times), as `strace` sees it.
#[test]
fn the_overview_walks_to_the_task_once() {
    let (dir, s) = store();
    fill(&s, 30);
    for i in 0..3 {
        s.append_decision("t1", &decision(i, "a"), &Append::written())
            .unwrap();
    }
    s.create_checkpoint("t1", "c", Timestamp::from_millis(1))
        .unwrap();
    let trace = |three: bool| {
        let out_file = dir.path().join("strace.out");
        let mut cmd = std::process::Command::new("strace");
        cmd.args(["-f", "-e", "trace=openat,statx,close", "-o"])
            .arg(&out_file)
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "store::overview_child", "--nocapture"])
            .env("OC_OVERVIEW_CHILD", dir.path());
        if three {
            cmd.env("OC_OVERVIEW_THREE", "1");
        }
        let out = cmd.output().ok()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&out_file).unwrap();
        let start = text.find("/oc-overview-start").expect("the start marker");
        let end = text.find("/oc-overview-end").expect("the end marker");
        let end = text[..end].rfind('\n').unwrap_or(end);
        let calls = text[start..end]
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>();
        Some(calls)
    };
    let Some(one) = trace(false) else {
        eprintln!("strace is not installed: the walk is not counted");
        return;
    };
    let three = trace(true).unwrap();
    let count = |calls: &[String], what: &str| calls.iter().filter(|l| l.contains(what)).count();
    let data = format!("openat(AT_FDCWD, \"{}\"", dir.path().display());
    for (calls, walks) in [(&one, 1), (&three, 3)] {
        assert_eq!(count(calls, &data), walks, "{calls:#?}");
        assert_eq!(count(calls, "\"tasks\""), walks, "{calls:#?}");
        assert_eq!(count(calls, "\"t1\""), walks, "{calls:#?}");
    }
    for (name, calls) in [("overview", &one), ("three calls", &three)] {
        eprintln!(
            "{name}: {} openat, {} statx, {} close",
            count(calls, "openat("),
            count(calls, "statx("),
            count(calls, "close(")
        );
    }
}

#[test]
fn a_retried_key_writes_nothing_and_answers_the_first_append() {
    let (dir, s) = store();
    let first = s
        .append_logs(
            "t1",
            &[entry(0), entry(1), entry(2)],
            &Append::durable().key("k-1"),
        )
        .unwrap();
    s.append_log("t1", &entry(3)).unwrap();
    let again = s
        .append_logs(
            "t1",
            &[entry(0), entry(1), entry(2)],
            &Append::written().key("k-1"),
        )
        .unwrap();
    assert_eq!(
        (again.first, again.count, again.duplicate),
        (first.first, 3, true)
    );
    assert!(!first.duplicate);
    // Other keys, other tasks and the other stream are not duplicates.
    let other = s.append_log("t1", &entry(4)).unwrap();
    assert!(
        !s.append_logs("t1", &[entry(5)], &Append::durable().key("k-2"))
            .unwrap()
            .duplicate
    );
    assert!(
        !s.append_logs("t2", &[entry(0)], &Append::durable().key("k-1"))
            .unwrap()
            .duplicate
    );
    let d = decision(1, "a");
    let da = s
        .append_decision("t1", &d, &Append::durable().key("k-1"))
        .unwrap();
    assert!(!da.duplicate);
    let db = s
        .append_decision("t1", &d, &Append::durable().key("k-1"))
        .unwrap();
    assert_eq!((db.first, db.duplicate), (da.first, true));
    // A key holding quotes and non-ASCII is a key like any other.
    let odd = "k \"quoted\" é \\ end";
    let o1 = s
        .append_logs("t1", &[entry(6)], &Append::durable().key(odd))
        .unwrap();
    let o2 = s
        .append_logs("t1", &[entry(6)], &Append::durable().key(odd))
        .unwrap();
    assert_eq!((o2.first, o2.duplicate), (o1.first, true));
    // Nothing written twice, and every reader gives the records as appended: `idem` is ignored.
    let want = [0, 1, 2, 3, 4, 5, 6].map(entry);
    assert_eq!(records(&s.log_tail("t1", 0, 100).unwrap().entries), want);
    assert_eq!(
        records(&s.query("t1", &Query::new()).unwrap().entries),
        want
    );
    assert_eq!(
        records(&s.read_after("t1", None, 100).unwrap().entries),
        want
    );
    let files = TaskFiles::new(dir.path(), "t1").unwrap();
    let (read, report) = files.logs().records::<LogEntry>().unwrap();
    assert_eq!((read, report.malformed), (want.to_vec(), 0));
    assert_eq!(files.decisions().unwrap().0, std::slice::from_ref(&d));
    assert_eq!(s.log_entry("t1", first.first).unwrap(), Some(entry(0)));
    assert_eq!(s.log_entry("t1", other.first).unwrap(), Some(entry(4)));
    assert_eq!(s.analyze("t1").unwrap().total_logs, 7);
    assert_eq!(
        records(&s.decisions("t1", Some("a"), 0, 5).unwrap().entries),
        [d]
    );
    let text = std::fs::read_to_string(dir.path().join("tasks/t1/logs.jsonl")).unwrap();
    assert_eq!(text.matches("\"idem\"").count(), 3, "{text}");
}

#[test]
fn keys_are_remembered_for_the_last_thousand_entries() {
    let (_dir, s) = store();
    let keyed = s
        .append_logs("t1", &[entry(0), entry(1)], &Append::written().key("old"))
        .unwrap();
    let batch: Vec<LogEntry> = (0..oc_jsonl::KEY_WINDOW_ENTRIES as i64 - 2)
        .map(entry)
        .collect();
    s.append_logs("t1", &batch, &Append::written()).unwrap();
    // The keyed append's last line is the 1,000th newest: still known.
    let again = s
        .append_logs("t1", &[entry(0)], &Append::written().key("old"))
        .unwrap();
    assert_eq!(
        (again.first, again.count, again.duplicate),
        (keyed.first, 2, true)
    );
    assert_eq!(
        s.counts("t1").unwrap().log_entries,
        oc_jsonl::KEY_WINDOW_ENTRIES as u64
    );
}

#[test]
fn durable_appends_from_eight_threads_land_once_each_whole() {
    let (dir, s) = store();
    let s = Arc::new(s);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let e = entry(i).with("thread", t);
                    let key = format!("t{t}-{i}");
                    let a = s
                        .append_logs("t1", &[e], &Append::durable().key(&key))
                        .unwrap();
                    assert!(!a.duplicate);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (all, report) = TaskFiles::new(dir.path(), "t1")
        .unwrap()
        .logs()
        .records::<LogEntry>()
        .unwrap();
    assert_eq!((report.malformed, report.torn_tail_bytes), (0, 0));
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        assert!(
            seen.insert((e.data["thread"].clone(), e.data["i"].clone())),
            "{e:?} twice"
        );
    }
    assert_eq!(seen.len(), 8 * 500);
}

#[test]
fn a_keyed_append_cuts_a_torn_tail_left_by_a_crash_first() {
    let (dir, s) = store();
    s.append_log("t1", &entry(0)).unwrap();
    // Another process died half-way through a line, while this store's writer is open.
    let log = dir.path().join("tasks/t1/logs.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"{\"timestamp\":\"20").unwrap();
    s.append_logs("t1", &[entry(1)], &Append::durable().key("k"))
        .unwrap();
    let page = s.log_tail("t1", 0, 10).unwrap();
    assert_eq!(records(&page.entries), [entry(0), entry(1)]);
    assert_eq!(page.read.malformed, 0);
}
