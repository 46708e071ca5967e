//! `PgFileImports`: batches committed with their cursor, concurrent importers of the same lines
//! moving them once, states and checkpoints verified.

use std::sync::Arc;

use oc_jsonl::{Checkpoint, CheckpointFile, Level, LogEntry, TaskFileStore};
use oc_postgres::{Batch, Fate, ImportCursor, ImportStream, PgFileImports, PgFileStore, line_hash};
use oc_time::Timestamp;

use crate::server::{fresh_options, server};

fn line(i: u64) -> Vec<u8> {
    serde_json::to_vec(
        &LogEntry::new(Timestamp::from_millis(i as i64), Level::Info, "t", "m").with("i", i),
    )
    .unwrap()
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn two_importers_of_the_same_lines_move_them_once() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let files = PgFileStore::connect(opts.clone()).unwrap();
    let imports = Arc::new(PgFileImports::connect(opts).unwrap());
    let batch: Vec<(u64, Vec<u8>)> = (1..=500).map(|i| (i, line(i))).collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (imports, batch) = (imports.clone(), batch.clone());
            std::thread::spawn(move || {
                imports
                    .import_batch(
                        "src-1",
                        "t",
                        ImportStream::Log,
                        &ImportCursor::default(),
                        &batch,
                    )
                    .unwrap()
            })
        })
        .collect();
    let outs: Vec<Batch> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let moved = outs.iter().filter(|o| matches!(o, Batch::Moved(_))).count();
    assert_eq!(moved, 1, "{outs:?}");
    let want = ImportCursor {
        lines: 500,
        last_hash: Some(line_hash(&line(500))),
        bytes: batch.iter().map(|(_, l)| l.len() as u64 + 1).sum(),
    };
    for o in &outs {
        match o {
            Batch::Moved(c) | Batch::Stale(c) => assert_eq!(*c, want),
        }
    }
    assert_eq!(files.counts("t").unwrap().log_entries, 500);
    assert_eq!(
        imports.cursor("src-1", "t", ImportStream::Log).unwrap(),
        Some(want.clone())
    );
    assert!(want.ends_with(&line(500)) && !want.ends_with(&line(499)));
    // Another data directory's cursor is its own; malformed lines are rows readers count.
    let other = imports
        .import_batch(
            "src-2",
            "t",
            ImportStream::Log,
            &ImportCursor::default(),
            &[(1, b"not json".to_vec()), (2, vec![0xff, 0, b'x'])],
        )
        .unwrap();
    assert!(matches!(other, Batch::Moved(c) if c.lines == 2));
    let tail = files.log_tail("t", 0, 10).unwrap();
    assert_eq!(tail.read.malformed, 2, "{:?}", tail.read);
    assert_eq!(files.counts("t").unwrap().log_entries, 502);
    // Out-of-order numbers and oversized batches are refused, nothing written.
    let refused = imports.import_batch("src-3", "t", ImportStream::Log, &want, &[(3, line(3))]);
    assert!(refused.is_err());
    assert_eq!(files.counts("t").unwrap().log_entries, 502);
}

#[test]
fn states_and_checkpoints_move_once_verified() {
    let Some(pg) = server() else { return };
    let opts = fresh_options(pg);
    let files = PgFileStore::connect(opts.clone()).unwrap();
    let imports = PgFileImports::connect(opts).unwrap();
    let s = serde_json::json!({"step": 1});
    assert_eq!(imports.import_state("t", &s).unwrap(), Fate::Moved);
    assert_eq!(files.load_state("t").unwrap(), Some(s.clone()));
    assert_eq!(imports.import_state("t", &s).unwrap(), Fate::Present);
    let other = serde_json::json!({"step": 2});
    assert_eq!(imports.import_state("t", &other).unwrap(), Fate::Conflict);
    assert_eq!(files.load_state("t").unwrap(), Some(s), "kept");

    let body = b"{\"a\":1}\n".to_vec();
    let cp = Checkpoint {
        id: "cp-0000000000001-0".to_owned(),
        task_id: "t".to_owned(),
        created_at: Timestamp::from_millis(1),
        description: "d".to_owned(),
        files: vec![CheckpointFile {
            name: "logs.jsonl".to_owned(),
            bytes: body.len() as u64,
            sha256: sha(&body),
        }],
    };
    let given = vec![("logs.jsonl".to_owned(), body.clone())];
    assert_eq!(
        imports.import_checkpoint("t", &cp, &given).unwrap(),
        Fate::Moved
    );
    assert_eq!(files.checkpoints("t").unwrap(), vec![cp.clone()]);
    assert_eq!(
        imports.import_checkpoint("t", &cp, &given).unwrap(),
        Fate::Present
    );
    let mut changed = cp.clone();
    let other = b"{\"a\":2}\n".to_vec();
    changed.files[0].sha256 = sha(&other);
    let given2 = vec![("logs.jsonl".to_owned(), other)];
    assert_eq!(
        imports.import_checkpoint("t", &changed, &given2).unwrap(),
        Fate::Conflict
    );
    // A file that does not match its manifest is corrupt, and nothing is stored.
    let mut corrupt = cp.clone();
    corrupt.id = "cp-0000000000002-0".to_owned();
    let flipped = vec![("logs.jsonl".to_owned(), b"{\"a\":3}\n".to_vec())];
    let e = imports
        .import_checkpoint("t", &corrupt, &flipped)
        .unwrap_err();
    assert!(matches!(e, oc_jsonl::Error::Corrupt { .. }), "{e}");
    assert_eq!(files.checkpoints("t").unwrap().len(), 1);
    files.restore_checkpoint("t", &cp.id).unwrap();
}
