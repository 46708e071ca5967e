//! Writers: concurrency, durability modes, rotation, queries.

use std::collections::HashSet;

use oc_jsonl::{
    Durability, JsonlReader, JsonlWriter, Level, LogEntry, Query, Rotation, WriterOptions,
    rotated_path,
};
use std::time::Duration;

use oc_time::Timestamp;
use serde_json::{Value, json};

fn opts(durability: Durability) -> WriterOptions {
    WriterOptions {
        durability,
        ..Default::default()
    }
}

#[test]
fn threads_never_interleave_within_a_line() {
    for durability in [
        Durability::Buffered,
        Durability::Os,
        Durability::GroupCommit,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let w = JsonlWriter::open(&p, opts(durability)).unwrap();
        let pad = "x".repeat(3000);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (w, pad) = (&w, &pad);
                s.spawn(move || {
                    for i in 0..200 {
                        if i % 10 == 0 {
                            w.append_batch(&[
                                json!({"t": t, "i": i, "pad": pad}),
                                json!({"t": t, "i": -i}),
                            ])
                            .unwrap();
                        } else {
                            w.append(&json!({"t": t, "i": i, "pad": pad})).unwrap();
                        }
                    }
                });
            }
        });
        w.flush().unwrap();
        let (records, report) = JsonlReader::open(&p).records::<Value>().unwrap();
        assert_eq!(
            report.malformed, 0,
            "{durability:?}: no line was torn by another"
        );
        assert_eq!(records.len(), 8 * 220, "{durability:?}");
        let seen: HashSet<(i64, i64)> = records
            .iter()
            .map(|r| (r["t"].as_i64().unwrap(), r["i"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            seen.len(),
            8 * 220 - 8,
            "{durability:?}: every record once (i = 0 twice per thread)"
        );
    }
}

#[test]
fn buffered_records_reach_the_file_on_flush_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.jsonl");
    let w = JsonlWriter::open(&p, opts(Durability::Buffered)).unwrap();
    w.append(&1).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "", "still buffered");
    w.flush().unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n");
    w.append_batch::<i32>(&[]).unwrap();
    w.flush().unwrap();
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "1\n",
        "an empty batch writes nothing"
    );
    w.append(&2).unwrap();
    drop(w);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n2\n");
}

#[test]
fn rotation_by_lines_and_bytes_keeps_n_files_and_reads_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.jsonl");
    let rotation = Rotation {
        max_lines: Some(10),
        keep: 3,
        ..Default::default()
    };
    let w = JsonlWriter::open(
        &p,
        WriterOptions {
            rotation,
            durability: Durability::Fsync,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..55 {
        w.append(&i).unwrap();
    }
    assert!(
        rotated_path(&p, 3).exists() && !rotated_path(&p, 4).exists(),
        "three rotated files kept"
    );
    let r = JsonlReader::open(&p);
    assert_eq!(r.files().len(), 4);
    let (all, _) = r.records::<i64>().unwrap();
    assert_eq!(
        all,
        (20..55).collect::<Vec<_>>(),
        "oldest kept first, in order"
    );
    let tail: Vec<String> = r
        .tail(12)
        .unwrap()
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect();
    assert_eq!(
        tail,
        (43..55).map(|i| i.to_string()).collect::<Vec<_>>(),
        "tail spans files"
    );

    let p2 = dir.path().join("s.jsonl");
    let rotation = Rotation {
        max_bytes: Some(100),
        keep: 1,
        ..Default::default()
    };
    let w = JsonlWriter::open(
        &p2,
        WriterOptions {
            rotation,
            durability: Durability::Os,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        w.append(&json!({ "i": i })).unwrap();
    }
    assert!(std::fs::metadata(&p2).unwrap().len() < 100);
    assert!(!rotated_path(&p2, 2).exists());
}

#[test]
fn queries_filter_and_page_from_either_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.jsonl");
    let w = JsonlWriter::open(&p, WriterOptions::default()).unwrap();
    for i in 0..50i64 {
        let level = [Level::Debug, Level::Info, Level::Warn, Level::Error][(i % 4) as usize];
        w.append(
            &LogEntry::new(
                Timestamp::from_millis(i * 1000),
                level,
                "t",
                format!("m{i}"),
            )
            .with("even", i % 2 == 0),
        )
        .unwrap();
    }
    // The original wrote "warning"; it reads as warn.
    std::fs::OpenOptions::new().append(true).open(&p).map(|mut f| {
        use std::io::Write;
        f.write_all(b"{\"timestamp\":\"1970-01-01T00:01:00Z\",\"level\":\"warning\",\"message\":\"old\",\"taskId\":\"t\"}\n").unwrap()
    }).unwrap();
    let r = JsonlReader::open(&p);
    let q = |q: Query| {
        r.query(&q)
            .unwrap()
            .0
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    assert_eq!(q(Query::new().min_level(Level::Error)).len(), 12);
    assert_eq!(
        q(Query::new().min_level(Level::Warn)).len(),
        25,
        "warn, warning and error"
    );
    assert_eq!(q(Query::new().page(0, Some(3))), ["m0", "m1", "m2"]);
    assert_eq!(q(Query::new().page(2, Some(2))), ["m2", "m3"]);
    assert_eq!(
        q(Query::new().newest().page(0, Some(3))),
        ["old", "m49", "m48"]
    );
    assert_eq!(q(Query::new().newest().page(1, Some(2))), ["m49", "m48"]);
    let since = Some(Timestamp::from_millis(10_000));
    let until = Some(Timestamp::from_millis(14_000));
    assert_eq!(
        q(Query::new().between(since, until)),
        ["m10", "m11", "m12", "m13"]
    );
    assert_eq!(
        q(Query::new().between(since, until).field("even", true)),
        ["m10", "m12"]
    );
    let a = r.analyze().unwrap();
    assert_eq!((a.total_logs, a.error_count), (51, 12));
    assert_eq!(a.level_counts["warn"], 13);
    assert!((a.error_rate - 12.0 * 100.0 / 51.0).abs() < 1e-9);
    assert_eq!(a.span_ms, 60_000);
}

#[test]
fn compressed_rotation_is_read_transparently() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("z.jsonl");
    let rotation = Rotation {
        max_lines: Some(100),
        keep: 2,
        compress: true,
        ..Default::default()
    };
    let w = JsonlWriter::open(
        &p,
        WriterOptions {
            rotation,
            ..Default::default()
        },
    )
    .unwrap();
    let pad = "y".repeat(200);
    for i in 0..250 {
        w.append(&json!({ "i": i, "pad": pad })).unwrap();
    }
    let gz1 = dir.path().join("z.jsonl.1.gz");
    let gz2 = dir.path().join("z.jsonl.2.gz");
    assert!(gz1.exists() && gz2.exists() && !dir.path().join("z.jsonl.1").exists());
    assert!(
        std::fs::metadata(&gz1).unwrap().len() < 100 * 200 / 4,
        "compressed"
    );
    let r = JsonlReader::open(&p);
    let (all, report) = r.records::<Value>().unwrap();
    assert_eq!(report.malformed, 0);
    let idx: Vec<i64> = all.iter().map(|v| v["i"].as_i64().unwrap()).collect();
    assert_eq!(idx, (0..250).collect::<Vec<_>>());
    let tail: Vec<Value> = r
        .tail(60)
        .unwrap()
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        tail.first().unwrap()["i"],
        190,
        "tail spans into a gzipped file"
    );
    for i in 250..350 {
        w.append(&json!({ "i": i })).unwrap();
    }
    assert!(
        !dir.path().join("z.jsonl.3.gz").exists(),
        "retention applies to compressed files"
    );
    assert_eq!(
        JsonlReader::open(&p).records::<Value>().unwrap().0.len(),
        250
    );
}

/// Child part of the next test: runs under `ulimit -f`, so writes past a few KiB fail.
#[test]
fn helper_append_until_the_disk_is_full() {
    let Some(path) = std::env::var_os("OC_CHILD_FULL") else {
        return;
    };
    let w = JsonlWriter::open(&path, opts(Durability::GroupCommit)).unwrap();
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (w, out) = (&w, &out);
            s.spawn(move || {
                for i in 0..100 {
                    let line = match w
                        .append(&json!({"id": format!("{t}-{i}"), "pad": "x".repeat(100)}))
                    {
                        Ok(()) => format!("ok {t}-{i}"),
                        Err(oc_jsonl::Error::WriterBroken { .. }) => format!("broken {t}-{i}"),
                        Err(e) => {
                            let cause = std::error::Error::source(&e).map(ToString::to_string);
                            format!("failed {t}-{i} {e}: {}", cause.unwrap_or_default())
                        }
                    };
                    out.lock().unwrap().push(line);
                }
            });
        }
    });
    for line in out.into_inner().unwrap() {
        println!("result {line}");
    }
}

#[test]
fn a_failed_group_write_fails_its_appenders_and_nothing_after_is_called_durable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("full.jsonl");
    // The shell ignores SIGXFSZ (inherited across exec), so a write past the limit fails with
    // EFBIG instead of killing the process: a disk that fills up mid-run.
    let out = std::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writer::helper_append_until_the_disk_is_full",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OC_CHILD_FULL", &p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let results: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| l.find("result ").map(|i| &l[i + 7..]))
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    assert_eq!(results.len(), 400, "{stdout}");
    let count = |what| results.iter().filter(|(k, _)| *k == what).count();
    assert!(count("ok") > 0, "some appends fit: {stdout}");
    assert!(count("failed") > 0, "the failing group is told: {stdout}");
    assert!(count("broken") > 0, "later appends are refused: {stdout}");
    assert!(
        stdout.contains("File too large"),
        "the cause is named: {stdout}"
    );
    // Each thread: nothing succeeds after its first failure.
    for t in 0..4 {
        let mine: Vec<&str> = results
            .iter()
            .filter(|(_, id)| id.starts_with(&format!("{t}-")))
            .map(|(k, _)| *k)
            .collect();
        if let Some(first) = mine.iter().position(|k| *k != "ok") {
            assert!(
                mine[first..].iter().all(|k| *k != "ok"),
                "thread {t}: {mine:?}"
            );
        }
    }
    // Every append reported durable is in the file.
    let (records, _) = JsonlReader::open(&p).records::<Value>().unwrap();
    let have: HashSet<String> = records
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    for (k, id) in &results {
        if *k == "ok" {
            assert!(have.contains(*id), "{id} was reported durable");
        }
    }
}

#[test]
fn only_regular_files_are_opened() {
    let e = JsonlWriter::open("/dev/null", opts(Durability::Os)).unwrap_err();
    assert!(e.is_unsafe(), "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn group_commit_shares_fdatasyncs_between_appenders() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    for spin in [Duration::ZERO, Duration::from_micros(100)] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.jsonl");
        let syncs = Arc::new(AtomicUsize::new(0));
        let counted = syncs.clone();
        let options = WriterOptions {
            spin,
            ..opts(Durability::GroupCommit)
        };
        let w = JsonlWriter::open(&p, options)
            .unwrap()
            .observe_fsync(move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            });
        let (threads, each) = (8, 100);
        let start = Barrier::new(threads);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (w, start) = (&w, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..each {
                        w.append(&json!({"t": t, "i": i})).unwrap();
                    }
                });
            }
        });
        let appends = threads * each;
        let syncs = syncs.load(Ordering::Relaxed);
        // Each append returned only once durable; while one fdatasync runs, the other seven
        // threads' records wait for the next, so a sync covers several of them.
        assert!(
            syncs * 2 <= appends,
            "{spin:?}: {syncs} fdatasyncs for {appends} appends"
        );
        let (records, report) = JsonlReader::open(&p).records::<Value>().unwrap();
        assert_eq!((records.len(), report.malformed), (appends, 0), "{spin:?}");
    }
}

#[test]
fn absurd_spins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.jsonl");
    let options = WriterOptions {
        spin: oc_jsonl::MAX_SPIN + Duration::from_millis(1),
        ..opts(Durability::GroupCommit)
    };
    let e = JsonlWriter::open(&p, options).unwrap_err();
    assert!(
        e.is_invalid_input() && e.to_string().contains("spin"),
        "{e}"
    );
    assert!(!p.exists(), "nothing created");
}
