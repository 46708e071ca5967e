//! Per-task layers: safe paths, verified state and checkpoints, decisions.

use oc_jsonl::{Decision, Error, Level, LogEntry, TaskFiles};
use oc_time::Timestamp;
use serde_json::json;

#[test]
fn path_like_task_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "..", "../x", "a/b", ".hidden", "a\0b", &"x".repeat(129)] {
        let e = TaskFiles::new(dir.path(), bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidTaskId { .. }) && e.is_invalid_input(),
            "{bad:?}: {e}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn corrupt_state_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let t = TaskFiles::new(dir.path(), "t1").unwrap();
    assert_eq!(t.load_state().unwrap(), None);
    t.save_state(&json!({"step": 1, "nested": {"k": [1, 2]}}))
        .unwrap();
    assert_eq!(
        t.load_state().unwrap(),
        Some(json!({"step": 1, "nested": {"k": [1, 2]}}))
    );
    let path = t.dir().join("state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"step\": 1", "\"step\": 2");
    std::fs::write(&path, &text).unwrap();
    let e = t.load_state().unwrap_err();
    assert!(e.is_corrupt() && e.to_string().contains("checksum"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "left for inspection"
    );
    std::fs::write(&path, "garbage").unwrap();
    assert!(t.load_state().unwrap_err().is_corrupt());
}

#[test]
fn checkpoints_restore_exactly_and_refuse_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let t = TaskFiles::new(dir.path(), "t1").unwrap();
    let log = |m: &str| {
        t.append_log(&LogEntry::new(Timestamp::now(), Level::Info, "t1", m))
            .unwrap()
    };
    t.save_state(&json!({"step": 1})).unwrap();
    log("one");
    let cp1 = t
        .create_checkpoint("first", Timestamp::from_millis(1000))
        .unwrap();
    log("two");
    t.save_state(&json!({"step": 2})).unwrap();
    t.append_decision(&Decision {
        timestamp: Timestamp::now(),
        agent: "a".into(),
        decision: "go".into(),
        reasoning: "why not".into(),
        metadata: Default::default(),
    })
    .unwrap();
    let cp2 = t
        .create_checkpoint("second", Timestamp::from_millis(1000))
        .unwrap();
    assert_ne!(cp1.id, cp2.id, "same millisecond, distinct ids");
    let listed: Vec<String> = t.checkpoints().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(listed, [cp2.id.clone(), cp1.id.clone()], "newest first");

    t.restore_checkpoint(&cp1.id).unwrap();
    assert_eq!(t.load_state().unwrap(), Some(json!({"step": 1})));
    let msgs: Vec<String> = t
        .logs()
        .records::<LogEntry>()
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        msgs,
        ["one"],
        "restore replaces the log, never appends to it"
    );
    assert!(
        !t.dir().join("decisions.jsonl").exists(),
        "files the checkpoint lacks are removed"
    );

    // Tamper with the second checkpoint's log: restore refuses and leaves the live files alone.
    let cp_log = t.dir().join("checkpoints").join(&cp2.id).join("logs.jsonl");
    std::fs::write(&cp_log, "{}\n").unwrap();
    let before = std::fs::read(t.dir().join("state.json")).unwrap();
    let e = t.restore_checkpoint(&cp2.id).unwrap_err();
    assert!(e.is_corrupt(), "{e}");
    assert_eq!(std::fs::read(t.dir().join("state.json")).unwrap(), before);
    assert!(
        t.restore_checkpoint("cp-0000000000000-99")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        t.restore_checkpoint("../../x")
            .unwrap_err()
            .is_invalid_input()
    );

    // An interrupted checkpoint (no manifest) is not listed.
    std::fs::create_dir_all(t.dir().join("checkpoints").join("cp-9999999999999-0")).unwrap();
    assert_eq!(t.checkpoints().unwrap().len(), 2);
    let third = t
        .create_checkpoint("third", Timestamp::from_millis(2000))
        .unwrap();
    assert_eq!(
        t.prune_checkpoints(1).unwrap(),
        [cp2.id.clone(), cp1.id.clone()]
    );
    assert_eq!(t.checkpoints().unwrap()[0].id, third.id);
    // To bytes: the newest always stays, as the store's prune keeps it.
    let fourth = t
        .create_checkpoint("fourth", Timestamp::from_millis(3000))
        .unwrap();
    assert_eq!(t.prune_checkpoints_to_bytes(0).unwrap(), [third.id]);
    assert_eq!(t.checkpoints().unwrap()[0].id, fourth.id);
    assert_eq!(
        t.prune_checkpoints_to_bytes(0).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn decisions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let t = TaskFiles::new(dir.path(), "t2").unwrap();
    for (agent, d) in [("a", "use sqlite"), ("b", "add index")] {
        let mut meta = serde_json::Map::new();
        meta.insert("confidence".into(), json!(0.9));
        t.append_decision(&Decision {
            timestamp: Timestamp::from_millis(5),
            agent: agent.into(),
            decision: d.into(),
            reasoning: "line one\n\nline two".into(),
            metadata: meta,
        })
        .unwrap();
    }
    let (ds, report) = t.decisions().unwrap();
    assert_eq!(report.malformed, 0);
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[1].decision, "add index");
    assert_eq!(
        ds[0].reasoning, "line one\n\nline two",
        "blank lines inside reasoning survive"
    );
}
