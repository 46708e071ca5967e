//! Property tests: records round-trip; any cut of a file reads back exactly its complete lines.

use oc_jsonl::{JsonlReader, JsonlWriter, WriterOptions};
use proptest::prelude::*;
use serde_json::Value;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip(records in proptest::collection::vec(value(), 0..20)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        let w = JsonlWriter::open(&p, WriterOptions::default()).unwrap();
        for r in &records {
            w.append(r).unwrap();
        }
        let (back, report) = JsonlReader::open(&p).records::<Value>().unwrap();
        prop_assert_eq!(back, records);
        prop_assert_eq!(report.malformed, 0);
    }

    #[test]
    fn any_cut_reads_back_the_complete_lines(records in proptest::collection::vec(value(), 1..12), cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        let w = JsonlWriter::open(&p, WriterOptions::default()).unwrap();
        w.append_batch(&records).unwrap();
        drop(w);
        let full = std::fs::read(&p).unwrap();
        let at = cut.index(full.len() + 1);
        std::fs::write(&p, &full[..at]).unwrap();
        let complete = full[..at].iter().filter(|&&b| b == b'\n').count();
        let (back, report) = JsonlReader::open(&p).records::<Value>().unwrap();
        prop_assert_eq!(&back[..], &records[..complete]);
        let torn = at - full[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        prop_assert_eq!(report.torn_tail_bytes, torn as u64);
        // Reopening repairs the tail, and the next record starts on a line of its own.
        let w = JsonlWriter::open(&p, WriterOptions::default()).unwrap();
        prop_assert_eq!(w.repaired_bytes(), torn as u64);
        w.append(&Value::from("after")).unwrap();
        let (back, report) = JsonlReader::open(&p).records::<Value>().unwrap();
        prop_assert_eq!(back.len(), complete + 1);
        prop_assert_eq!(report.torn_tail_bytes, 0);
    }

    #[test]
    fn garbage_lines_are_skipped_and_counted(good in 0..20usize, bad in proptest::collection::vec(0..25usize, 0..6)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.jsonl");
        let mut text = String::new();
        let mut bad_lines = Vec::new();
        let mut line = 0u64;
        for i in 0..good.max(1) {
            for b in bad.iter().filter(|&&b| b == i) {
                line += 1;
                bad_lines.push(line);
                text.push_str(&format!("{{not json {b}\n"));
            }
            line += 1;
            text.push_str(&format!("{{\"i\":{i}}}\n"));
        }
        std::fs::write(&p, text).unwrap();
        let (back, report) = JsonlReader::open(&p).records::<Value>().unwrap();
        prop_assert_eq!(back.len(), good.max(1));
        prop_assert_eq!(report.malformed, bad_lines.len() as u64);
        prop_assert_eq!(report.malformed_lines, bad_lines);
    }
}
