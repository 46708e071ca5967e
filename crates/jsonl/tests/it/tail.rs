//! Tails of large logs: what a tail costs is what it returns, and each line can be read back
//! whole from where the tail says it starts.

use oc_jsonl::{Level, LogEntry, TaskFiles};
use oc_time::Timestamp;

/// The block a tail reads backwards by.
const BLOCK: u64 = 64 * 1024;

/// The case: 21 entries of 800 KB (as an agent writes them over MCP). Reading the last
/// 20 used to search and copy its growing buffer once per 64 KiB block, 2 GB for a 16 MB tail;
/// now each byte is searched once and copied once.
#[test]
fn a_tail_costs_the_bytes_of_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(dir.path(), "big").unwrap();
    for i in 0..21 {
        let e = LogEntry::new(
            Timestamp::from_millis(i),
            Level::Info,
            "big",
            "x".repeat(800_000),
        )
        .with("i", i);
        files.append_log(&e).unwrap();
    }
    let log_len = std::fs::metadata(files.log_path()).unwrap().len();
    for n in [20, 5, 1] {
        let tail = files.logs().tail_lines(0, n).unwrap();
        assert_eq!(tail.lines.len(), n);
        let returned: u64 = tail.lines.iter().map(|l| l.text.len() as u64 + 1).sum();
        assert!(
            tail.scanned <= returned + BLOCK,
            "last {n}: searched {} bytes for {returned} bytes of entries ({log_len} in the log)",
            tail.scanned
        );
        assert!(
            tail.copied <= returned,
            "last {n}: copied {} bytes for {returned} bytes of entries",
            tail.copied
        );
        assert!(tail.more, "older entries remain");
        let last: LogEntry = serde_json::from_slice(&tail.lines[n - 1].text).unwrap();
        assert_eq!(last.data["i"], 20);
    }
    // Skipped entries are searched, never copied.
    let page = files.logs().tail_lines(15, 5).unwrap();
    let firsts: Vec<i64> = page
        .lines
        .iter()
        .map(|l| {
            serde_json::from_slice::<LogEntry>(&l.text).unwrap().data["i"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(firsts, [1, 2, 3, 4, 5]);
    let returned: u64 = page.lines.iter().map(|l| l.text.len() as u64 + 1).sum();
    assert!(page.copied <= returned, "copied {}", page.copied);
    assert!(page.more);
    let all = files.logs().tail_lines(0, 100).unwrap();
    assert_eq!(all.lines.len(), 21);
    assert!(!all.more);
    assert!(all.scanned <= log_len, "{} > {log_len}", all.scanned);
}

#[test]
fn each_line_of_a_tail_reads_back_whole_from_where_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(dir.path(), "t").unwrap();
    for i in 0..50 {
        let e = LogEntry::new(
            Timestamp::from_millis(i),
            Level::Info,
            "t",
            "y".repeat(i as usize * 4_000),
        );
        files.append_log(&e).unwrap();
    }
    let reader = files.logs();
    let tail = reader.tail_lines(3, 10).unwrap();
    assert_eq!(tail.lines.len(), 10);
    for l in &tail.lines {
        assert_eq!(reader.line_at(l.at).unwrap().as_deref(), Some(&l.text[..]));
    }
    // An offset inside a line, past the end, or in a file that does not exist: nothing.
    let mut inside = tail.lines[0].at;
    inside.offset += 1;
    assert_eq!(reader.line_at(inside).unwrap(), None);
    let mut past = inside;
    past.offset = u64::MAX;
    assert_eq!(reader.line_at(past).unwrap(), None);
    let mut older = tail.lines[0].at;
    older.file = 7;
    assert_eq!(reader.line_at(older).unwrap(), None);
}
