//! Checks of decisions, state and checkpoints.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::super::{
    Corrupter, append_each, assert_ids_increase, at_secs, decision, records, whole_decisions,
    whole_log,
};
use super::*;
use crate::{Append, Checkpoint, Decision, LogEntry, MAX_STATE_BYTES, TaskFileStore};

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

/// A keyed checkpoint retried (same task, key and description) creates nothing and answers the
/// first with `replayed`, even after the task changed; the same key with another description
/// is `IdempotencyConflict` and creates nothing; the same key on another task, or another key,
/// creates; a bad key is refused; a deleted checkpoint takes its key with it.
pub fn check_keyed_checkpoints(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "cpkeyed";
    write_task(store, t, 0, 3, json!({"n": 1}));
    let first = store
        .create_checkpoint_keyed(t, "before", "k-1", at_secs(1))
        .unwrap();
    assert!(!first.replayed, "a new key creates");
    assert_eq!(first.checkpoint.description, "before");
    write_task(store, t, 3, 2, json!({"n": 2}));
    let again = store
        .create_checkpoint_keyed(t, "before", "k-1", at_secs(2))
        .unwrap();
    assert!(again.replayed, "a retry replays");
    assert_eq!(
        again.checkpoint, first.checkpoint,
        "the first checkpoint, as it was"
    );
    assert_eq!(store.checkpoints(t).unwrap().len(), 1, "one checkpoint");
    let e = store
        .create_checkpoint_keyed(t, "other", "k-1", at_secs(3))
        .unwrap_err();
    assert!(e.is_conflict(), "another description under the key: {e}");
    assert_eq!(
        store.checkpoints(t).unwrap().len(),
        1,
        "a conflict creates nothing"
    );
    let other = store
        .create_checkpoint_keyed(t, "before", "k-2", at_secs(4))
        .unwrap();
    assert!(!other.replayed && other.checkpoint.id != first.checkpoint.id);
    let elsewhere = store
        .create_checkpoint_keyed("cpkeyed-2", "before", "k-1", at_secs(5))
        .unwrap();
    assert!(!elsewhere.replayed, "keys are per task");
    for bad in ["", "a\nb", &"k".repeat(201)] {
        let e = store
            .create_checkpoint_keyed(t, "before", bad, at_secs(6))
            .unwrap_err();
        assert!(e.is_invalid_input(), "key {bad:?}: {e}");
    }
    assert_eq!(store.checkpoints(t).unwrap().len(), 2);
    store
        .delete_checkpoints(t, std::slice::from_ref(&first.checkpoint.id))
        .unwrap();
    let anew = store
        .create_checkpoint_keyed(t, "before", "k-1", at_secs(7))
        .unwrap();
    assert!(!anew.replayed, "a deleted checkpoint's key is free again");
    assert_ne!(anew.checkpoint.id, first.checkpoint.id);
    assert_eq!(anew.checkpoint.created_at, at_secs(7));
    assert!(store.restore_checkpoint(t, &anew.checkpoint.id).is_ok());
}
