//! The model test of a [`TaskFileStore`] (feature `testkit`): random operations on three tasks
//! (appends keyed or not, batches, decisions, states, checkpoints, restores, prunes,
//! retentions, tails, queries, analyses, reads by id, follows) applied to the store and to a
//! [`ModelStore`], which must agree on every answer.
//!
//! Entry ids are never compared by value (each backend has its own scheme): an id a store
//! answered is read back from that store. Timestamps increase from operation to operation, so
//! retention by age cuts a prefix on every reading of its rule. A key is retried only while
//! the entries it wrote are live (not across a restore or a retention that deleted entries),
//! where backends may differ by design; and byte counts are compared only while no keyed entry
//! is live, since a keyed line may carry its key.
//!
//! ```
//! use oc_jsonl::testkit::{ModelStore, model};
//! use proptest::prelude::*;
//! proptest!(ProptestConfig::with_cases(4), |(ops in model::ops())| {
//!     model::run(&ModelStore::new(), &ops);
//! });
//! ```

use std::fmt::Debug;
use std::time::Duration;

use oc_time::Timestamp;
use proptest::prelude::*;
use serde_json::json;

use super::{ModelStore, START, records, whole_decisions};
use crate::{
    Append, Appended, Checkpoint, Decision, Error, Level, LogCursor, LogEntry, Page, Query, Result,
    Retention, TaskFileStore,
};

/// The tasks the operations touch.
pub const TASKS: [&str; 3] = ["m0", "m1", "m2"];

/// Which idempotency key an append carries.
#[derive(Debug, Clone, Copy)]
pub enum KeyPick {
    /// None.
    None,
    /// A key never used before.
    Fresh,
    /// One used before on this task and stream whose entries are live (a fresh one if none).
    Retry(u8),
}

/// One operation; `task` indexes [`TASKS`].
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    /// A batch of entries with these levels (`% 5`), field `f` = `field % 3`.
    Append {
        task: u8,
        levels: Vec<u8>,
        field: u8,
        key: KeyPick,
        durable: bool,
    },
    Decide {
        task: u8,
        agent: u8,
        key: KeyPick,
    },
    SaveState {
        task: u8,
        value: u16,
    },
    LoadState {
        task: u8,
    },
    Checkpoint {
        task: u8,
    },
    /// Restores the checkpoint at `pick` (modulo how many there are) or, for 255 or none, an
    /// unknown one.
    Restore {
        task: u8,
        pick: u8,
    },
    Prune {
        task: u8,
        keep: u8,
    },
    /// Prunes to the bytes of the newest `keep` (modulo one more than how many there are).
    PruneBytes {
        task: u8,
        keep: u8,
    },
    /// Retains by entries, by bytes (of the newest `bytes` entries' lines, minus `cut`), by
    /// age in seconds.
    Retain {
        task: u8,
        entries: Option<u8>,
        bytes: Option<(u8, u8)>,
        age: Option<u8>,
    },
    Tail {
        task: u8,
        skip: u8,
        n: u8,
    },
    Query {
        task: u8,
        level: Option<u8>,
        since: Option<u8>,
        until: Option<u8>,
        field: Option<u8>,
        offset: u8,
        limit: Option<u8>,
        newest: bool,
    },
    Analyze {
        task: u8,
    },
    /// Reads back by id the entry and the decision `back` from the newest end.
    ReadById {
        task: u8,
        back: u8,
    },
    Decisions {
        task: u8,
        agent: Option<u8>,
        skip: u8,
        n: u8,
    },
    Counts {
        task: u8,
    },
    /// Reads at most `n` entries after the task's follow cursor (from the start at first, and
    /// after a retention that deleted entries), and moves the cursor on.
    Follow {
        task: u8,
        n: u8,
    },
    /// The clock moves on this many seconds (besides the one second every operation takes).
    Advance {
        secs: u8,
    },
}

fn key() -> impl Strategy<Value = KeyPick> {
    prop_oneof![
        4 => Just(KeyPick::None),
        2 => Just(KeyPick::Fresh),
        2 => any::<u8>().prop_map(KeyPick::Retry),
    ]
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    let t = 0..TASKS.len() as u8;
    prop_oneof![
        10 => (t.clone(), proptest::collection::vec(0..5u8, 1..5), any::<u8>(), key(), any::<bool>())
            .prop_map(|(task, levels, field, key, durable)| Op::Append { task, levels, field, key, durable }),
        3 => (t.clone(), 0..3u8, key()).prop_map(|(task, agent, key)| Op::Decide { task, agent, key }),
        2 => (t.clone(), any::<u16>()).prop_map(|(task, value)| Op::SaveState { task, value }),
        1 => t.clone().prop_map(|task| Op::LoadState { task }),
        2 => t.clone().prop_map(|task| Op::Checkpoint { task }),
        2 => (t.clone(), prop_oneof![4 => any::<u8>(), 1 => Just(255u8)])
            .prop_map(|(task, pick)| Op::Restore { task, pick }),
        1 => (t.clone(), 0..4u8).prop_map(|(task, keep)| Op::Prune { task, keep }),
        1 => (t.clone(), any::<u8>()).prop_map(|(task, keep)| Op::PruneBytes { task, keep }),
        2 => (
            t.clone(),
            proptest::option::weighted(0.5, 0..12u8),
            proptest::option::weighted(0.4, (0..12u8, 0..3u8)),
            proptest::option::weighted(0.4, 0..40u8),
        )
            .prop_map(|(task, entries, bytes, age)| Op::Retain { task, entries, bytes, age }),
        3 => (t.clone(), 0..12u8, 0..12u8).prop_map(|(task, skip, n)| Op::Tail { task, skip, n }),
        3 => (
            t.clone(),
            proptest::option::of(0..5u8),
            proptest::option::of(0..40u8),
            proptest::option::of(0..40u8),
            proptest::option::of(0..3u8),
            0..6u8,
            proptest::option::of(0..8u8),
            any::<bool>(),
        )
            .prop_map(|(task, level, since, until, field, offset, limit, newest)| Op::Query {
                task, level, since, until, field, offset, limit, newest,
            }),
        1 => t.clone().prop_map(|task| Op::Analyze { task }),
        2 => (t.clone(), 0..10u8).prop_map(|(task, back)| Op::ReadById { task, back }),
        2 => (t.clone(), proptest::option::of(0..3u8), 0..8u8, 0..6u8)
            .prop_map(|(task, agent, skip, n)| Op::Decisions { task, agent, skip, n }),
        1 => t.clone().prop_map(|task| Op::Counts { task }),
        2 => (t.clone(), 1..8u8).prop_map(|(task, n)| Op::Follow { task, n }),
        1 => (0..30u8).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// A random sequence of 1 to 80 operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

/// The class of an error, as both stores must agree on it.
fn class(e: &Error) -> &'static str {
    if e.is_invalid_input() {
        "invalid input"
    } else if e.is_not_found() {
        "not found"
    } else if e.is_corrupt() {
        "corrupt"
    } else {
        "other"
    }
}

/// Both answered alike (values by `view`, errors by class); the store's value, if any.
fn agree<T, V: PartialEq + Debug>(
    ctx: &str,
    store: Result<T>,
    model: Result<T>,
    view: impl Fn(&T) -> V,
) -> Option<(T, T)> {
    match (store, model) {
        (Ok(s), Ok(m)) => {
            assert_eq!(
                view(&s),
                view(&m),
                "{ctx}: the store (left) and the model (right)"
            );
            Some((s, m))
        }
        (Err(s), Err(m)) => {
            assert_eq!(class(&s), class(&m), "{ctx}: errors {s} and {m}");
            None
        }
        (Ok(s), Err(m)) => panic!("{ctx}: the store answered {:?}, the model {m}", view(&s)),
        (Err(s), Ok(m)) => panic!(
            "{ctx}: the store failed ({s}), the model answered {:?}",
            view(&m)
        ),
    }
}

fn page_view<T: Clone>(p: &Page<T>) -> (Vec<T>, bool, u64) {
    (records(&p.entries), p.more, p.next_skip)
}

fn cp_view(cs: &[Checkpoint]) -> Vec<(String, Timestamp, String)> {
    cs.iter()
        .map(|c| (c.description.clone(), c.created_at, c.task_id.clone()))
        .collect()
}

/// Keys used on one task and stream, with both stores' first answers.
type Keys = Vec<(String, Appended, Appended)>;

/// Applies `ops` to `store` (empty) and to a fresh [`ModelStore`], asserting that every answer
/// agrees, then that every task's log, decisions, state and checkpoints agree.
pub fn run(store: &dyn TaskFileStore, ops: &[Op]) {
    let model = ModelStore::new();
    let mut now = START;
    let mut serial = 0u64;
    let mut log_keys: [Keys; 3] = Default::default();
    let mut decision_keys: [Keys; 3] = Default::default();
    let mut fresh = 0u64;
    // The store's and the model's follow cursors.
    let mut cursors: [Option<(LogCursor, LogCursor)>; 3] = Default::default();
    for (step, op) in ops.iter().enumerate() {
        now = now.saturating_add(Duration::from_secs(1));
        let ctx = format!("op {step}: {op:?}");
        match op {
            Op::Append {
                task,
                levels,
                field,
                key,
                durable,
            } => {
                let ti = usize::from(*task);
                let t = TASKS[ti];
                let batch: Vec<LogEntry> = levels
                    .iter()
                    .map(|l| {
                        serial += 1;
                        LogEntry::new(now, Level::ALL[usize::from(l % 5)], t, format!("e{serial}"))
                            .with("f", field % 3)
                            .with("n", serial)
                    })
                    .collect();
                let how = if *durable {
                    Append::durable()
                } else {
                    Append::written()
                };
                let wrote = append(
                    store,
                    &model,
                    t,
                    &ctx,
                    &mut log_keys[ti],
                    *key,
                    &mut fresh,
                    how,
                    |s, how| s.append_logs(t, &batch, how),
                );
                if let Some(a) = wrote {
                    assert_eq!(
                        store.log_entry(t, a.first).ok().flatten().as_ref(),
                        batch.first(),
                        "{ctx}: Appended::first"
                    );
                }
            }
            Op::Decide { task, agent, key } => {
                let ti = usize::from(*task);
                let t = TASKS[ti];
                serial += 1;
                let d = Decision {
                    timestamp: now,
                    agent: format!("a{agent}"),
                    decision: format!("d{serial}"),
                    reasoning: "r".into(),
                    metadata: serde_json::Map::new(),
                };
                let wrote = append(
                    store,
                    &model,
                    t,
                    &ctx,
                    &mut decision_keys[ti],
                    *key,
                    &mut fresh,
                    Append::durable(),
                    |s, how| s.append_decision(t, &d, how),
                );
                if let Some(a) = wrote {
                    assert_eq!(
                        store.decision(t, a.first).ok().flatten(),
                        Some(d),
                        "{ctx}: Appended::first"
                    );
                }
            }
            Op::SaveState { task, value } => {
                let t = TASKS[usize::from(*task)];
                let v = json!({"v": value, "at": step});
                agree(
                    &ctx,
                    store.save_state(t, &v),
                    model.save_state(t, &v),
                    |_| (),
                );
            }
            Op::LoadState { task } => {
                let t = TASKS[usize::from(*task)];
                agree(&ctx, store.load_state(t), model.load_state(t), Clone::clone);
            }
            Op::Checkpoint { task } => {
                let t = TASKS[usize::from(*task)];
                let d = format!("cp at op {step}");
                agree(
                    &ctx,
                    store.create_checkpoint(t, &d, now),
                    model.create_checkpoint(t, &d, now),
                    |c| cp_view(std::slice::from_ref(c)),
                );
            }
            Op::Restore { task, pick } => {
                let ti = usize::from(*task);
                let t = TASKS[ti];
                let Some((s, m)) = agree(&ctx, store.checkpoints(t), model.checkpoints(t), |c| {
                    cp_view(c)
                }) else {
                    continue;
                };
                let (sid, mid) = if s.is_empty() || *pick == 255 {
                    (
                        "cp-0000000000001-0".to_owned(),
                        "cp-0000000000001-0".to_owned(),
                    )
                } else {
                    let i = usize::from(*pick) % s.len();
                    (s[i].id.clone(), m[i].id.clone())
                };
                let r = agree(
                    &ctx,
                    store.restore_checkpoint(t, &sid),
                    model.restore_checkpoint(t, &mid),
                    |c| cp_view(std::slice::from_ref(c)),
                );
                if r.is_some() {
                    log_keys[ti].clear();
                    decision_keys[ti].clear();
                }
            }
            Op::Prune { task, keep } => {
                let t = TASKS[usize::from(*task)];
                let keep = usize::from(*keep);
                agree(
                    &ctx,
                    store.prune_checkpoints(t, keep),
                    model.prune_checkpoints(t, keep),
                    Vec::len,
                );
                agree(&ctx, store.checkpoints(t), model.checkpoints(t), |c| {
                    cp_view(c)
                });
            }
            Op::PruneBytes { task, keep } => {
                let t = TASKS[usize::from(*task)];
                let listed = store
                    .checkpoints(t)
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let k = usize::from(*keep) % (listed.len() + 1);
                let max: u64 = listed[..k].iter().map(Checkpoint::bytes).sum();
                // What the rule keeps, by the store's own sizes: the newest, and the newest
                // that fit with it.
                let mut total = 0u64;
                let kept = listed
                    .iter()
                    .enumerate()
                    .take_while(|(i, c)| {
                        total = total.saturating_add(c.bytes());
                        *i == 0 || total <= max
                    })
                    .count();
                agree(
                    &ctx,
                    store.prune_checkpoints_to_bytes(t, max),
                    model.prune_checkpoints(t, kept),
                    Vec::len,
                );
                agree(&ctx, store.checkpoints(t), model.checkpoints(t), |c| {
                    cp_view(c)
                });
            }
            Op::Retain {
                task,
                entries,
                bytes,
                age,
            } => {
                let ti = usize::from(*task);
                let t = TASKS[ti];
                let mut r = Retention::new();
                if let Some(n) = entries {
                    r = r.max_entries(u64::from(*n));
                }
                if let Some(a) = age {
                    r = r.max_age(Duration::from_secs(u64::from(*a)));
                }
                if let Some((newest, cut)) = bytes
                    && !model.keyed_entries(t)
                {
                    let tail = model
                        .log_tail(t, 0, usize::from(*newest))
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let fit: u64 = tail
                        .entries
                        .iter()
                        .map(|s| super::line_bytes(&s.record))
                        .sum();
                    r = r.max_bytes(fit.saturating_sub(u64::from(*cut)));
                }
                if let Some((s, _)) = agree(
                    &ctx,
                    store.retain(t, &r, now),
                    model.retain(t, &r, now),
                    |n| *n,
                ) && s > 0
                {
                    log_keys[ti].clear();
                    // Whether a cursor from before restarts is the backend's (a rewritten file
                    // does, rows deleted from the front need not): follow from the start.
                    cursors[ti] = None;
                }
            }
            Op::Tail { task, skip, n } => {
                let t = TASKS[usize::from(*task)];
                let (skip, n) = (usize::from(*skip), usize::from(*n));
                if let Some((s, _)) = agree(
                    &ctx,
                    store.log_tail(t, skip, n),
                    model.log_tail(t, skip, n),
                    page_view,
                ) {
                    super::assert_ids_increase(&ctx, &s.entries);
                }
            }
            Op::Query {
                task,
                level,
                since,
                until,
                field,
                offset,
                limit,
                newest,
            } => {
                let t = TASKS[usize::from(*task)];
                let back = |s: &u8| Timestamp::from_millis(now.as_millis() - i64::from(*s) * 1000);
                let mut q = Query::new()
                    .between(since.as_ref().map(back), until.as_ref().map(back))
                    .page(usize::from(*offset), limit.map(usize::from));
                if let Some(l) = level {
                    q = q.min_level(Level::ALL[usize::from(*l)]);
                }
                if let Some(f) = field {
                    q = q.field("f", *f);
                }
                if *newest {
                    q = q.newest();
                }
                agree(&ctx, store.query(t, &q), model.query(t, &q), page_view);
            }
            Op::Analyze { task } => {
                let t = TASKS[usize::from(*task)];
                if let Some((s, m)) = agree(&ctx, store.analyze(t), model.analyze(t), |a| {
                    (
                        a.total_logs,
                        a.level_counts.clone(),
                        a.error_count,
                        a.first,
                        a.last,
                        a.span_ms,
                    )
                }) {
                    assert!(
                        (s.error_rate - m.error_rate).abs() < 1e-9,
                        "{ctx}: error rate"
                    );
                }
            }
            Op::ReadById { task, back } => {
                let t = TASKS[usize::from(*task)];
                let back = usize::from(*back);
                if let Some((s, m)) = agree(
                    &ctx,
                    store.log_tail(t, back, 1),
                    model.log_tail(t, back, 1),
                    page_view,
                ) && let (Some(s), Some(m)) = (s.entries.first(), m.entries.first())
                {
                    agree(
                        &ctx,
                        store.log_entry(t, s.id),
                        model.log_entry(t, m.id),
                        Clone::clone,
                    );
                    assert_eq!(
                        store.log_entry(t, s.id).ok().flatten().as_ref(),
                        Some(&s.record),
                        "{ctx}"
                    );
                }
                if let Some((s, m)) = agree(
                    &ctx,
                    store.decisions(t, None, back, 1),
                    model.decisions(t, None, back, 1),
                    page_view,
                ) && let (Some(s), Some(m)) = (s.entries.first(), m.entries.first())
                {
                    agree(
                        &ctx,
                        store.decision(t, s.id),
                        model.decision(t, m.id),
                        Clone::clone,
                    );
                    assert_eq!(
                        store.decision(t, s.id).ok().flatten().as_ref(),
                        Some(&s.record),
                        "{ctx}"
                    );
                }
            }
            Op::Decisions {
                task,
                agent,
                skip,
                n,
            } => {
                let t = TASKS[usize::from(*task)];
                match agent {
                    None => {
                        let (skip, n) = (usize::from(*skip), usize::from(*n));
                        agree(
                            &ctx,
                            store.decisions(t, None, skip, n),
                            model.decisions(t, None, skip, n),
                            page_view,
                        );
                    }
                    Some(a) => {
                        // With an agent, a page may hold fewer with `more` set: compare what
                        // following the pages gives.
                        let a = format!("a{a}");
                        let n = 1 + usize::from(*n);
                        assert_eq!(
                            records(&whole_decisions(store, t, Some(&a), n)),
                            records(&whole_decisions(&model, t, Some(&a), n)),
                            "{ctx}"
                        );
                    }
                }
            }
            Op::Counts { task } => {
                let t = TASKS[usize::from(*task)];
                let bytes = !model.keyed_entries(t);
                agree(&ctx, store.counts(t), model.counts(t), |c| {
                    (
                        c.log_entries,
                        bytes.then_some(c.log_bytes),
                        c.decisions,
                        c.checkpoints,
                        c.state,
                    )
                });
            }
            Op::Follow { task, n } => {
                let ti = usize::from(*task);
                let t = TASKS[ti];
                let n = usize::from(*n);
                let (sc, mc) = match &cursors[ti] {
                    Some((s, m)) => (Some(s), Some(m)),
                    None => (None, None),
                };
                // A restore replaces the log even when it was empty and stays so: restarted.
                if let Some((s, m)) = agree(
                    &ctx,
                    store.read_after(t, sc, n),
                    model.read_after(t, mc, n),
                    |a| (records(&a.entries), a.restarted),
                ) {
                    super::assert_ids_increase(&ctx, &s.entries);
                    cursors[ti] = Some((s.cursor, m.cursor));
                }
            }
            Op::Advance { secs } => {
                now = now.saturating_add(Duration::from_secs(u64::from(*secs)));
            }
        }
    }
    for t in TASKS {
        let ctx = format!("at the end, {t}");
        assert_eq!(
            records(&super::whole_log(store, t)),
            records(&super::whole_log(&model, t)),
            "{ctx}: log"
        );
        assert_eq!(
            records(&whole_decisions(store, t, None, 16)),
            records(&whole_decisions(&model, t, None, 16)),
            "{ctx}: decisions"
        );
        agree(&ctx, store.load_state(t), model.load_state(t), Clone::clone);
        agree(&ctx, store.checkpoints(t), model.checkpoints(t), |c| {
            cp_view(c)
        });
    }
}

/// An append (log batch or decision) with the key `pick` asks for, on both stores; the store's
/// answer when it wrote.
#[allow(clippy::too_many_arguments)]
fn append(
    store: &dyn TaskFileStore,
    model: &ModelStore,
    task: &str,
    ctx: &str,
    keys: &mut Keys,
    pick: KeyPick,
    fresh: &mut u64,
    how: Append<'_>,
    call: impl Fn(&dyn TaskFileStore, &Append<'_>) -> Result<Appended>,
) -> Option<Appended> {
    let retry = match pick {
        KeyPick::Retry(i) if !keys.is_empty() => Some(usize::from(i) % keys.len()),
        _ => None,
    };
    let key = match (pick, retry) {
        (_, Some(i)) => Some(keys[i].0.clone()),
        (KeyPick::None, _) => None,
        _ => {
            *fresh += 1;
            Some(format!("key-{task}-{fresh}"))
        }
    };
    let how = match &key {
        Some(k) => Append {
            key: Some(k),
            ..how
        },
        None => how,
    };
    let (s, m) = agree(ctx, call(store, &how), call(model, &how), |a| {
        (a.count, a.duplicate)
    })?;
    match retry {
        Some(i) => {
            let (_, first_s, first_m) = &keys[i];
            assert!(s.duplicate, "{ctx}: a retry is a duplicate");
            assert_eq!(
                (s.first, s.count),
                (first_s.first, first_s.count),
                "{ctx}: the store answers its first append"
            );
            assert_eq!(
                (m.first, m.count),
                (first_m.first, first_m.count),
                "{ctx}: the model answers its first append"
            );
            None
        }
        None => {
            assert!(!s.duplicate, "{ctx}: a fresh append");
            if let Some(k) = key {
                keys.push((k, s, m));
            }
            Some(s)
        }
    }
}
