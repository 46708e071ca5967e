//! Lines, gzipped files and followed logs are read in bounded memory: a line longer than
//! [`MAX_LINE_BYTES`] is skipped as malformed without being held, and the writer never writes
//! one.

use oc_jsonl::{Follower, JsonlReader, JsonlWriter, MAX_LINE_BYTES, WriterOptions};
use serde_json::{Value, json};

/// A valid JSON string longer than [`MAX_LINE_BYTES`], as one line.
fn over_long() -> Vec<u8> {
    let mut l = Vec::with_capacity(MAX_LINE_BYTES + 3);
    l.push(b'"');
    l.resize(MAX_LINE_BYTES + 1, b'a');
    l.extend_from_slice(b"\"\n");
    l
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_line_longer_than_the_limit_is_skipped_as_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("logs.jsonl");
    let mut body = over_long();
    body.extend_from_slice(b"{\"i\":1}\n");
    std::fs::write(&p, &body).unwrap();
    // The same, gzipped, as a rotated file.
    let q = dir.path().join("other.jsonl");
    std::fs::write(dir.path().join("other.jsonl.1.gz"), gzip(&body)).unwrap();
    std::fs::write(&q, b"").unwrap();
    for r in [JsonlReader::open(&p), JsonlReader::open(&q)] {
        let (records, report) = r.records::<Value>().unwrap();
        assert_eq!(records, [json!({"i": 1})], "{:?}", r.files());
        assert_eq!((report.lines, report.malformed), (2, 1));
        assert_eq!(report.malformed_lines, [1]);
        // The tail gives it empty (malformed where shown), and no line is read at its start.
        let t = r.tail_lines(0, 2).unwrap();
        let texts: Vec<&[u8]> = t.lines.iter().map(|l| &l.text[..]).collect();
        assert_eq!(texts, [&b""[..], &b"{\"i\":1}"[..]]);
        assert_eq!(r.line_at(t.lines[0].at).unwrap(), None);
        assert_eq!(
            r.line_at(t.lines[1].at).unwrap(),
            Some(b"{\"i\":1}".to_vec())
        );
        // Skipped, it costs nothing kept either.
        let t = r.tail_lines(1, 1).unwrap();
        assert_eq!(t.lines.len(), 1);
        assert!(t.lines[0].text.is_empty());
    }
}

#[test]
fn the_writer_refuses_a_record_longer_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("logs.jsonl");
    let w = JsonlWriter::open(&p, WriterOptions::default()).unwrap();
    let e = w.append(&json!("a".repeat(MAX_LINE_BYTES))).unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    w.append(&json!({"i": 1})).unwrap();
    drop(w);
    assert_eq!(std::fs::read(&p).unwrap(), b"{\"i\":1}\n");
}

#[test]
fn a_follower_skips_an_over_long_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("logs.jsonl");
    std::fs::write(&p, b"").unwrap();
    let mut f = Follower::from_end(&p);
    let mut body = over_long();
    body.extend_from_slice(b"{\"i\":1}\n");
    std::fs::write(&p, &body).unwrap();
    let mut lines = Vec::new();
    // Each poll reads a bounded chunk: a few polls read it all.
    for _ in 0..64 {
        lines.extend(f.poll().unwrap());
    }
    assert_eq!(lines, [b"{\"i\":1}".to_vec()]);
}

#[test]
fn line_counts_read_only_what_was_appended() {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("logs.jsonl");
    // A first line longer than the bytes compared at a file's start.
    let first = format!("{{\"pad\":\"{}\"}}\n", "a".repeat(70));
    std::fs::write(&p, format!("{first}{{}}\n{{}}\n")).unwrap();
    let mut cache = oc_jsonl::LineCounts::new();
    let count = |cache: &mut oc_jsonl::LineCounts| {
        let c = JsonlReader::open(&p).count_lines(cache).unwrap();
        cache.sweep();
        (c.files, c.lines)
    };
    assert_eq!(count(&mut cache), (1, 3));
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"{}\n{}\n{").unwrap();
    assert_eq!(count(&mut cache), (1, 5));
    f.write_all(b"}\n").unwrap();
    assert_eq!(count(&mut cache), (1, 6));
    // What was counted is not read again: bytes rewritten in place (as no log is) go unseen,
    // but for the file's first bytes (an inode reused for another file is counted anew).
    let g = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    g.write_all_at(b"xxx", first.len() as u64 + 3).unwrap();
    assert_eq!(count(&mut cache), (1, 6));
    let mut other = oc_jsonl::LineCounts::new();
    assert_eq!(count(&mut other), (1, 5));
    g.write_all_at(b"x", 0).unwrap();
    assert_eq!(count(&mut other), (1, 5));
    g.write_all_at(b"{", 0).unwrap();
    // A rotated file keeps its count; the new one is counted.
    std::fs::rename(&p, dir.path().join("logs.jsonl.1")).unwrap();
    std::fs::write(&p, b"{}\n").unwrap();
    assert_eq!(count(&mut cache), (2, 7));
    // A fresh cache counts everything.
    assert_eq!(count(&mut oc_jsonl::LineCounts::new()), (2, 6));
    // Within a budget of bytes per round: the rest in later rounds.
    let mut small = oc_jsonl::LineCounts::with_budget(48);
    let rounds: Vec<(u64, u64)> = (0..3).map(|_| count(&mut small)).collect();
    assert_eq!(rounds, [(2, 0), (2, 5), (2, 6)]);
}

#[test]
fn checkpoints_are_paged_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let t = oc_jsonl::TaskFiles::new(dir.path(), "t").unwrap();
    t.save_state(&json!(1)).unwrap();
    for i in 0..25 {
        t.create_checkpoint("c", oc_time::Timestamp::from_millis(1000 + i))
            .unwrap();
    }
    let all = t.checkpoints().unwrap();
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let (first, more) = t.checkpoint_page(0, 20).unwrap();
    assert_eq!((&first[..], more), (&all[..20], true));
    let (rest, more) = t.checkpoint_page(20, 20).unwrap();
    assert_eq!((&rest[..], more), (&all[20..], false));
    assert_eq!(t.checkpoint_page(30, 20).unwrap(), (Vec::new(), false));
}
