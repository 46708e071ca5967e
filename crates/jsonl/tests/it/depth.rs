//! Records nested too deep to read back are refused when appended, with nothing written.

use std::collections::BTreeMap;

use oc_jsonl::{
    Decision, JsonlReader, JsonlWriter, Level, LogEntry, MAX_DEPTH, TaskFiles, WriterOptions,
};
use oc_time::Timestamp;
use serde_json::{Value, json};

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

fn entry(data_depth: usize) -> LogEntry {
    // The entry is one level and its `data` map a second: `v` adds the rest.
    LogEntry::new(Timestamp::from_millis(1), Level::Info, "t", "deep")
        .with("v", nested(data_depth - 2))
}

#[test]
fn the_limit_is_written_and_read_back_and_one_more_is_refused_with_nothing_written() {
    assert_eq!(MAX_DEPTH, 64);
    let dir = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(dir.path(), "t").unwrap();
    let deepest = entry(MAX_DEPTH);
    files.append_log(&deepest).unwrap();
    let before = std::fs::read(files.log_path()).unwrap();
    for depth in [MAX_DEPTH + 1, 127, 126] {
        let e = files.append_log(&entry(depth)).unwrap_err();
        assert!(e.is_invalid_input(), "{depth}: {e}");
        let text = e.to_string();
        assert!(text.contains("64"), "names the limit: {text}");
        assert_eq!(
            std::fs::read(files.log_path()).unwrap(),
            before,
            "nothing written at depth {depth}"
        );
    }
    let (read, report) = files.logs().records::<LogEntry>().unwrap();
    assert_eq!(read, [deepest]);
    assert_eq!(report.malformed, 0);

    let decision = |depth: usize| Decision {
        timestamp: Timestamp::from_millis(2),
        agent: "a".into(),
        decision: "d".into(),
        reasoning: "r".into(),
        metadata: serde_json::from_value(json!({ "v": nested(depth - 2) })).unwrap(),
    };
    files.append_decision(&decision(MAX_DEPTH)).unwrap();
    assert!(
        files
            .append_decision(&decision(MAX_DEPTH + 1))
            .unwrap_err()
            .is_invalid_input()
    );
    let (decisions, report) = files.decisions().unwrap();
    assert_eq!(decisions, [decision(MAX_DEPTH)]);
    assert_eq!(report.malformed, 0);
}

#[test]
fn any_record_is_held_to_the_limit_also_when_serde_json_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("any.jsonl");
    let w = JsonlWriter::open(&path, WriterOptions::default()).unwrap();
    w.append(&nested(MAX_DEPTH)).unwrap();
    assert!(
        w.append(&nested(MAX_DEPTH + 1))
            .unwrap_err()
            .is_invalid_input()
    );
    // Integer map keys are left to serde_json, which writes any depth.
    let mut by_number = BTreeMap::new();
    by_number.insert(1u8, nested(MAX_DEPTH - 1));
    w.append(&by_number).unwrap();
    by_number.insert(2u8, nested(MAX_DEPTH));
    assert!(w.append(&by_number).unwrap_err().is_invalid_input());
    // In a batch, one record too deep refuses the batch.
    let batch = [nested(3), nested(MAX_DEPTH + 1)];
    assert!(w.append_batch(&batch).unwrap_err().is_invalid_input());
    drop(w);
    let (read, report) = JsonlReader::open(&path).records::<Value>().unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(report.malformed, 0);
}
