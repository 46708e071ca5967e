//! The checks of a store under concurrent callers: appends from many threads, and appends and
//! tails checked for linearizability with `oc-lincheck`.

use std::collections::BTreeMap;

use oc_lincheck::{Model, Recorder, SplitMix};
use serde::Serialize;

use super::{Corrupter, at_secs};
use crate::{Append, EntryId, Level, LogEntry, Query, Retention, TaskFileStore};

/// Threads of [`check_concurrent_appends`].
pub const APPEND_THREADS: u64 = 8;
/// Durable appends of each of those threads.
pub const APPENDS_PER_THREAD: u64 = 500;

fn marked(task: &str, mark: u64) -> LogEntry {
    LogEntry::new(
        at_secs(mark % 1000),
        Level::Info,
        task,
        format!("mark {mark}"),
    )
    .with("m", mark)
}

fn mark_of(e: &LogEntry) -> u64 {
    e.data
        .get("m")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("an entry without its mark: {e:?}"))
}

/// 8 threads × 500 durable appends of one entry to one task: each is in the log exactly once,
/// none torn or malformed, each thread's in the order it appended them, each readable by the
/// id its append answered.
pub fn check_concurrent_appends(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "concurrent";
    let acked: Vec<Vec<(u64, EntryId)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..APPEND_THREADS)
            .map(|thread| {
                s.spawn(move || {
                    (0..APPENDS_PER_THREAD)
                        .map(|i| {
                            let mark = thread * 10_000 + i;
                            let a = store
                                .append_logs(t, &[marked(t, mark)], &Append::durable())
                                .unwrap_or_else(|e| panic!("thread {thread}, append {i}: {e}"));
                            assert_eq!((a.count, a.duplicate), (1, false));
                            (mark, a.first)
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| panic!("an appending thread panicked"))
            })
            .collect()
    });
    let page = store.query(t, &Query::new()).unwrap();
    assert_eq!(page.read.malformed, 0, "no malformed line: {:?}", page.read);
    assert_eq!(page.read.torn_tail_bytes, 0, "no torn line");
    let total = (APPEND_THREADS * APPENDS_PER_THREAD) as usize;
    assert_eq!(page.entries.len(), total, "every acknowledged append, once");
    assert_eq!(store.counts(t).unwrap().log_entries, total as u64);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last_of_thread: BTreeMap<u64, u64> = BTreeMap::new();
    for (pos, s) in page.entries.iter().enumerate() {
        let m = mark_of(&s.record);
        assert_eq!(s.record, marked(t, m), "entry {pos} read back whole");
        assert!(seen.insert(m, pos).is_none(), "mark {m} twice");
        let thread = m / 10_000;
        if let Some(prev) = last_of_thread.insert(thread, m) {
            assert!(prev < m, "thread {thread}'s {m} before its {prev}");
        }
    }
    super::assert_ids_increase("concurrent appends", &page.entries);
    for (thread, acks) in acked.iter().enumerate() {
        for (mark, id) in acks {
            assert_eq!(
                store.log_entry(t, *id).unwrap(),
                Some(marked(t, *mark)),
                "thread {thread}: the id its append answered"
            );
        }
    }
}

/// One call of the linearizability workload.
#[derive(Debug, Clone, Serialize)]
pub enum LinOp {
    /// Appends entries with these marks, in one batch.
    Append(Vec<u32>),
    /// `log_tail(0, n)`.
    Tail(usize),
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LinRet {
    /// Acknowledged.
    Appended,
    /// The marks of the tail, oldest first.
    Tail(Vec<u32>),
}

/// The sequential log: appends add their marks at the end; a tail is the last `n`.
#[derive(Debug)]
pub struct LogModel;

impl Model for LogModel {
    type Op = LinOp;
    type Ret = LinRet;
    type State = Vec<u32>;

    fn init(&self) -> Vec<u32> {
        Vec::new()
    }

    fn step(&self, s: &Vec<u32>, op: &LinOp, ret: Option<&LinRet>) -> Vec<Vec<u32>> {
        match (op, ret) {
            (LinOp::Append(ms), Some(LinRet::Appended)) => {
                let mut next = s.clone();
                next.extend(ms);
                vec![next]
            }
            (LinOp::Append(ms), None) => {
                let mut next = s.clone();
                next.extend(ms);
                vec![s.clone(), next]
            }
            (LinOp::Tail(n), Some(LinRet::Tail(got))) => {
                if got[..] == s[s.len().saturating_sub(*n)..] {
                    vec![s.clone()]
                } else {
                    vec![]
                }
            }
            (LinOp::Tail(_), None) => vec![s.clone()],
            _ => vec![],
        }
    }
}

/// Threads of [`check_linearizable`].
pub const LIN_THREADS: u64 = 4;
/// Calls of each.
pub const LIN_CALLS: u64 = 30;

/// What the linearizability workload appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// The most entries of one append (at least 1).
    pub max_batch: u64,
    /// Bytes of padding in each entry, so that lines (and batches) cross the file system's
    /// 4 KiB pages often.
    pub pad: usize,
}

/// Batches of 1 to 3 entries of about 1.3 KiB: a batch often spans two pages.
pub const BATCHES: Workload = Workload {
    max_batch: 3,
    pad: 1_200,
};

/// Single entries of about 1.3 KiB.
pub const SINGLES: Workload = Workload {
    max_batch: 1,
    pad: 1_200,
};

/// Records a history of `LIN_THREADS` threads appending (`w`'s batches, durable or written)
/// and tailing (`log_tail(0, n)`, n from 1 to 6) on `task`, drawn from `seed`.
pub fn record(
    store: &dyn TaskFileStore,
    task: &str,
    seed: u64,
    w: Workload,
) -> oc_lincheck::History<LinOp, LinRet> {
    let pad = "p".repeat(w.pad);
    let rec: Recorder<LinOp, LinRet> = Recorder::new();
    std::thread::scope(|s| {
        for p in 0..LIN_THREADS {
            let (rec, pad) = (&rec, &pad);
            s.spawn(move || {
                let mut rng = SplitMix::new(seed.wrapping_mul(1_000).wrapping_add(p));
                for j in 0..LIN_CALLS {
                    if rng.chance(55) {
                        let size = 1 + rng.below(w.max_batch.max(1));
                        let marks: Vec<u32> = (0..size)
                            .map(|k| (p * 10_000 + j * 10 + k) as u32)
                            .collect();
                        let batch: Vec<LogEntry> = marks
                            .iter()
                            .map(|m| marked(task, u64::from(*m)).with("pad", pad.as_str()))
                            .collect();
                        let how = if rng.chance(50) {
                            Append::durable()
                        } else {
                            Append::written()
                        };
                        let call = rec.invoke(p, LinOp::Append(marks));
                        match store.append_logs(task, &batch, &how) {
                            Ok(_) => call.returned(LinRet::Appended),
                            Err(e) => panic!("thread {p}: append: {e}"),
                        }
                    } else {
                        let n = 1 + rng.below(6) as usize;
                        let call = rec.invoke(p, LinOp::Tail(n));
                        match store.log_tail(task, 0, n) {
                            Ok(page) => call.returned(LinRet::Tail(
                                page.entries
                                    .iter()
                                    .map(|s| mark_of(&s.record) as u32)
                                    .collect(),
                            )),
                            Err(e) => panic!("thread {p}: tail: {e}"),
                        }
                    }
                }
            });
        }
    });
    rec.into_history()
}

/// Appends of batches and tails are linearizable: each tail is the last `n` of a prefix of the
/// acknowledged appends (a batch is seen whole or not at all), consistent with real time
/// ([`LogModel`], `oc_lincheck::check`); and the log ends holding every acknowledged batch
/// once, whole. 8 histories of [`BATCHES`], 80 with `OC_SOAK=1`, each on its own task.
pub fn check_linearizable(store: &dyn TaskFileStore, _: &Corrupter) {
    linearizable(store, "lin", BATCHES);
}

/// [`check_linearizable`] with appends of one entry each ([`SINGLES`]): what holds even for a
/// store whose batches may be seen in part.
pub fn check_linearizable_singles(store: &dyn TaskFileStore, _: &Corrupter) {
    linearizable(store, "lin1", SINGLES);
}

fn linearizable(store: &dyn TaskFileStore, prefix: &str, w: Workload) {
    for seed in 0..oc_lincheck::runs(8, 80) as u64 {
        let task = format!("{prefix}-{seed}");
        let h = record(store, &task, seed, w);
        let report = oc_lincheck::check(&LogModel, &h);
        assert!(
            report.is_linearizable(),
            "seed {seed} (testkit::record(store, {task:?}, {seed}, {w:?}) makes the same calls): {report}"
        );
        let log: Vec<u32> = store
            .query(&task, &Query::new())
            .unwrap()
            .entries
            .iter()
            .map(|s| mark_of(&s.record) as u32)
            .collect();
        let mut appended: Vec<Vec<u32>> = h
            .events
            .iter()
            .filter_map(|e| match &e.op {
                LinOp::Append(ms) => Some(ms.clone()),
                LinOp::Tail(_) => None,
            })
            .collect();
        assert_eq!(
            log.len(),
            appended.iter().map(Vec::len).sum::<usize>(),
            "seed {seed}: every acknowledged entry once"
        );
        // Each batch is contiguous in the log.
        appended.sort();
        let mut at = 0;
        let mut batches = Vec::new();
        while at < log.len() {
            let b = appended
                .iter()
                .find(|b| b.first() == Some(&log[at]))
                .unwrap_or_else(|| panic!("seed {seed}: mark {} begins no batch", log[at]));
            assert_eq!(
                log.get(at..at + b.len()),
                Some(&b[..]),
                "seed {seed}: a batch torn apart"
            );
            at += b.len();
            batches.push(b.clone());
        }
        batches.sort();
        assert_eq!(batches, appended, "seed {seed}: each batch once");
    }
}

/// When one call ran, by the monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Span {
    invoked: std::time::Instant,
    returned: std::time::Instant,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Span) {
    let invoked = std::time::Instant::now();
    let out = f();
    (
        out,
        Span {
            invoked,
            returned: std::time::Instant::now(),
        },
    )
}

/// Restores and retentions while 4 threads append lose no append they did not replace: every
/// append invoked after the last restore returned is in the log (the retentions delete only
/// the checkpoint's entries, older than any appended), none is there twice, each thread's in
/// order, and the retentions together delete exactly the checkpoint's entries each restore
/// brought back.
pub fn check_replacements_under_appends(store: &dyn TaskFileStore, _: &Corrupter) {
    use std::sync::atomic::{AtomicBool, Ordering};

    let t = "replaced";
    let old = |i: u64| marked(t, 900_000 + i);
    let base: Vec<LogEntry> = (0..5).map(old).collect();
    store.append_logs(t, &base, &Append::durable()).unwrap();
    let c = store.create_checkpoint(t, "base", at_secs(1)).unwrap();
    // New entries are at `now`, the checkpoint's at most 1,000 s after START: a retention by an
    // hour at `now` deletes just those.
    let now = at_secs(10_000);
    let fresh = |mark: u64| {
        let mut e = marked(t, mark);
        e.timestamp = now;
        e
    };
    let done = AtomicBool::new(false);
    const ROUNDS: u64 = 5;

    let (appends, (restores, deleted)) = std::thread::scope(|s| {
        let appenders: Vec<_> = (0..4u64)
            .map(|p| {
                let (done, fresh) = (&done, &fresh);
                s.spawn(move || {
                    let mut spans = Vec::new();
                    let mut after_done = 0;
                    for i in 0..100_000u64 {
                        if done.load(Ordering::SeqCst) {
                            after_done += 1;
                            if after_done > 20 {
                                break;
                            }
                        }
                        let mark = p * 100_000 + i;
                        let how = if i.is_multiple_of(2) {
                            Append::durable()
                        } else {
                            Append::written()
                        };
                        let (r, span) = timed(|| store.append_logs(t, &[fresh(mark)], &how));
                        r.unwrap_or_else(|e| panic!("thread {p}, append {i}: {e}"));
                        spans.push((mark, span));
                    }
                    spans
                })
            })
            .collect();
        let replacer = s.spawn(|| {
            let mut restores = Vec::new();
            let mut deleted = 0u64;
            for round in 0..ROUNDS {
                std::thread::sleep(std::time::Duration::from_millis(5));
                let (r, span) = timed(|| store.restore_checkpoint(t, &c.id));
                r.unwrap_or_else(|e| panic!("round {round}: restore: {e}"));
                restores.push(span);
                std::thread::sleep(std::time::Duration::from_millis(5));
                let r = Retention::new().max_age(std::time::Duration::from_secs(3600));
                deleted += store
                    .retain(t, &r, now)
                    .unwrap_or_else(|e| panic!("round {round}: retain: {e}"));
            }
            done.store(true, Ordering::SeqCst);
            (restores, deleted)
        });
        let appends: Vec<Vec<(u64, Span)>> = appenders
            .into_iter()
            .map(|a| a.join().unwrap_or_else(|_| panic!("an appender panicked")))
            .collect();
        let replaced = replacer
            .join()
            .unwrap_or_else(|_| panic!("the replacing thread panicked"));
        (appends, replaced)
    });
    let page = store.query(t, &Query::new()).unwrap();
    assert_eq!(page.read.malformed, 0, "no malformed line: {:?}", page.read);
    let log: Vec<u64> = page.entries.iter().map(|s| mark_of(&s.record)).collect();
    let mut seen = BTreeMap::new();
    for (pos, m) in log.iter().enumerate() {
        assert!(seen.insert(*m, pos).is_none(), "mark {m} twice in the log");
    }
    // Each restore brings the 5 base entries back, the oldest; each retention deletes them.
    let old_left = log.iter().filter(|m| **m >= 900_000).count() as u64;
    assert_eq!(
        deleted + old_left,
        ROUNDS * 5,
        "the retentions deleted the old entries and nothing else ({old_left} old left)"
    );
    assert_eq!(old_left, 0, "the last retention left no old entry");
    let last_restore = restores
        .iter()
        .map(|s| s.returned)
        .max()
        .unwrap_or_else(std::time::Instant::now);
    let mut after = 0;
    for (p, spans) in appends.iter().enumerate() {
        let mut prev = None;
        for (mark, span) in spans {
            let at = seen.get(mark);
            if span.invoked > last_restore {
                after += 1;
                assert!(
                    at.is_some(),
                    "thread {p}'s mark {mark}, appended after the last restore, is lost"
                );
            }
            if let Some(at) = at {
                if let Some(prev) = prev {
                    assert!(
                        prev < *at,
                        "thread {p}'s mark {mark} before its predecessor"
                    );
                }
                prev = Some(*at);
            }
        }
    }
    assert!(after >= 4 * 20, "appends after the last restore: {after}");
}

/// 8 threads append with the same key at once, 20 keys in turn: for each key exactly one
/// append writes, every other answers its `Appended` as a duplicate; logs and decisions alike.
pub fn check_key_race(store: &dyn TaskFileStore, _: &Corrupter) {
    let t = "key-race";
    for round in 0..20u64 {
        let key = format!("race-{round}");
        let barrier = std::sync::Barrier::new(8);
        let answers: Vec<(crate::Appended, crate::Appended)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8u64)
                .map(|p| {
                    let (key, barrier) = (&key, &barrier);
                    s.spawn(move || {
                        let batch = [marked(t, round * 100 + p), marked(t, round * 100 + 50 + p)];
                        barrier.wait();
                        let l = store
                            .append_logs(t, &batch, &Append::durable().key(key))
                            .unwrap_or_else(|e| panic!("round {round}, thread {p}: {e}"));
                        let d = store
                            .append_decision(
                                t,
                                &super::decision(round),
                                &Append::written().key(key),
                            )
                            .unwrap_or_else(|e| panic!("round {round}, thread {p}: {e}"));
                        (l, d)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| panic!("a thread panicked")))
                .collect()
        });
        for (what, all) in [
            ("log", answers.iter().map(|a| a.0).collect::<Vec<_>>()),
            ("decisions", answers.iter().map(|a| a.1).collect()),
        ] {
            let written: Vec<_> = all.iter().filter(|a| !a.duplicate).collect();
            assert_eq!(
                written.len(),
                1,
                "round {round}, {what}: one append wrote: {all:?}"
            );
            assert!(
                all.iter()
                    .all(|a| a.first == written[0].first && a.count == written[0].count),
                "round {round}, {what}: every answer names the one written: {all:?}"
            );
        }
        let c = store.counts(t).unwrap();
        assert_eq!(
            (c.log_entries, c.decisions),
            (2 * (round + 1), round + 1),
            "round {round}: one append of each"
        );
    }
}

/// Checkpoints taken while 4 threads append batches hold whole appends: restored, each log is
/// whole lines only, each thread's batches a prefix of what it appended, each batch whole.
pub fn check_checkpoints_under_appends(store: &dyn TaskFileStore, _: &Corrupter) {
    use std::sync::atomic::{AtomicBool, Ordering};

    let t = "cp-under";
    let done = AtomicBool::new(false);
    let pad = "p".repeat(1_200);
    let cps = std::thread::scope(|s| {
        for p in 0..4u64 {
            let (done, pad) = (&done, &pad);
            s.spawn(move || {
                let mut i = 0u64;
                while !done.load(Ordering::SeqCst) && i < 100_000 {
                    let batch: Vec<LogEntry> = (0..3)
                        .map(|k| marked(t, p * 1_000_000 + i * 10 + k).with("pad", pad.as_str()))
                        .collect();
                    let how = if i.is_multiple_of(2) {
                        Append::durable()
                    } else {
                        Append::written()
                    };
                    store
                        .append_logs(t, &batch, &how)
                        .unwrap_or_else(|e| panic!("thread {p}: {e}"));
                    i += 1;
                }
            });
        }
        let mut cps = Vec::new();
        for i in 0..10u64 {
            std::thread::sleep(std::time::Duration::from_millis(3));
            cps.push(
                store
                    .create_checkpoint(t, &format!("under {i}"), at_secs(i))
                    .unwrap_or_else(|e| panic!("checkpoint {i}: {e}")),
            );
        }
        done.store(true, Ordering::SeqCst);
        cps
    });
    let mut sizes = Vec::new();
    for c in &cps {
        store
            .restore_checkpoint(t, &c.id)
            .unwrap_or_else(|e| panic!("restoring {}: {e}", c.id));
        let page = store.query(t, &Query::new()).unwrap();
        assert_eq!(
            (page.read.malformed, page.read.torn_tail_bytes),
            (0, 0),
            "{}: whole lines only",
            c.id
        );
        let marks: Vec<u64> = page.entries.iter().map(|s| mark_of(&s.record)).collect();
        for p in 0..4u64 {
            let mine: Vec<u64> = marks
                .iter()
                .copied()
                .filter(|m| m / 1_000_000 == p)
                .collect();
            let want: Vec<u64> = (0..mine.len() as u64)
                .map(|j| p * 1_000_000 + (j / 3) * 10 + j % 3)
                .collect();
            assert_eq!(mine, want, "{}: thread {p}'s batches, in order", c.id);
            assert_eq!(
                mine.len() % 3,
                0,
                "{}: thread {p}'s batches whole: {mine:?}",
                c.id
            );
        }
        sizes.push(marks.len());
    }
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "later checkpoints hold no less: {sizes:?}"
    );
    assert!(
        sizes.last().is_some_and(|n| *n > 0),
        "the appends ran while checkpoints were taken: {sizes:?}"
    );
}
