//! A simulated power loss at every crash point of a workload: the writer appends under
//! `strace`, which records every `write` and `fdatasync` of the log and every acknowledgement
//! (a line the workload appends to a marks file once an append returned). At each point, the
//! log is rebuilt as a power loss could leave it: the synced bytes, plus nothing, all, a torn
//! prefix, or a random choice of zeroed 4 KiB blocks of the unsynced tail, or garbage after
//! it. Reopening must repair the tail, idempotently, and every record acknowledged as durable
//! must be there, whole.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use oc_jsonl::{Durability, JsonlReader, JsonlWriter, WriterOptions};
use oc_lincheck::strace::{parse, strace_for_tests, traced};
use oc_lincheck::{SplitMix, publish};
use serde_json::{Value, json};

fn opts(durability: Durability) -> WriterOptions {
    WriterOptions {
        durability,
        ..Default::default()
    }
}

/// Child part: appends records (4 threads with group commit, 1 with an fsync each, 1 with
/// no sync in `os` mode), writing
/// each acknowledged id to the marks file with one `write`.
#[test]
fn helper_append_and_mark() {
    let (Some(log), Ok(mode)) = (
        std::env::var_os("OC_CHILD_POWER"),
        std::env::var("OC_CHILD_MODE"),
    ) else {
        return;
    };
    let log = std::path::PathBuf::from(log);
    let (durability, threads) = match mode.as_str() {
        "group" => (Durability::GroupCommit, 4),
        "os" => (Durability::Os, 1),
        _ => (Durability::Fsync, 1),
    };
    let w = JsonlWriter::open(&log, opts(durability)).unwrap();
    let marks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log.with_extension("marks"))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (w, marks) = (&w, &marks);
            s.spawn(move || {
                let mut rng = SplitMix::new(t);
                for i in 0..120 / threads {
                    let id = format!("{t}-{i}");
                    let pad = "x".repeat(100 + rng.below(1400) as usize);
                    w.append(&json!({ "id": id, "pad": pad })).unwrap();
                    std::io::Write::write_all(&mut &*marks, format!("{id}\n").as_bytes()).unwrap();
                }
            });
        }
    });
}

/// What a run explored.
struct Figures {
    crash_points: usize,
    states: usize,
    acknowledged_checked: usize,
    acknowledged_lost: usize,
}

/// Checks one crash state; returns how many acknowledged records it lost.
fn check_state(bytes: &[u8], acked: &[String], full: &HashMap<String, Value>, dir: &Path) -> usize {
    let path = dir.join("crashed.jsonl");
    std::fs::write(&path, bytes).unwrap();
    drop(JsonlWriter::open(&path, opts(Durability::Os)).unwrap());
    let repaired = std::fs::read(&path).unwrap();
    let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    assert_eq!(repaired, bytes[..cut], "repair keeps whole lines only");
    drop(JsonlWriter::open(&path, opts(Durability::Os)).unwrap());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        repaired,
        "repair is idempotent"
    );
    let (records, _) = JsonlReader::open(&path).records::<Value>().unwrap();
    let mut seen = HashMap::new();
    for r in records {
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            full.get(&id),
            Some(&r),
            "a record that was never written whole"
        );
        assert!(seen.insert(id, ()).is_none(), "a record twice");
    }
    acked.iter().filter(|id| !seen.contains_key(*id)).count()
}

fn run(mode: &str) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.jsonl");
    let trace = dir.path().join("trace");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "power_loss::helper_append_and_mark",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("OC_CHILD_POWER", &log)
    .env("OC_CHILD_MODE", mode)
    .stdout(Stdio::null());
    let status = traced(&cmd, "write,fdatasync,fsync", &trace)
        .status()
        .unwrap();
    assert!(status.success());
    let full_bytes = std::fs::read(&log).unwrap();
    let full: HashMap<String, Value> = JsonlReader::open(&log)
        .records::<Value>()
        .unwrap()
        .0
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect();
    let ids: Vec<String> = std::fs::read_to_string(log.with_extension("marks"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let (log_s, marks_s) = (
        log.to_string_lossy().into_owned(),
        log.with_extension("marks").to_string_lossy().into_owned(),
    );
    // The workload's story: bytes written, bytes synced, acknowledgements, in order.
    let mut points = vec![(0usize, 0usize, 0usize)];
    let (mut written, mut synced, mut acked) = (0, 0, 0);
    for c in parse(&std::fs::read_to_string(&trace).unwrap()).unwrap() {
        match (c.name.as_str(), c.path.as_str()) {
            ("write", p) if p == log_s => written += c.ret as usize,
            ("fdatasync" | "fsync", p) if p == log_s => synced = written,
            ("write", p) if p == marks_s => acked += 1,
            _ => continue,
        }
        points.push((written, synced, acked));
    }
    assert_eq!(
        written,
        full_bytes.len(),
        "every byte of the log was traced"
    );
    assert_eq!(acked, ids.len());
    let scratch = tempfile::tempdir().unwrap();
    let mut rng = SplitMix::new(7);
    let mut states = 0;
    let mut acknowledged_checked = 0;
    let mut acknowledged_lost = 0;
    for &(written, synced, acked) in &points {
        let acked = &ids[..acked];
        let mut variants: Vec<Vec<u8>> = vec![
            full_bytes[..synced].to_vec(),
            full_bytes[..written].to_vec(),
            full_bytes[..synced + rng.below((written - synced + 1) as u64) as usize].to_vec(),
        ];
        // Each 4 KiB block of the unsynced tail kept or zeroed, as after an ordered-mode crash.
        let mut zeroed = full_bytes[..written].to_vec();
        for block in (synced / 4096 * 4096..written).step_by(4096) {
            if rng.chance(50) {
                for b in &mut zeroed[block.max(synced)..(block + 4096).min(written)] {
                    *b = 0;
                }
            }
        }
        variants.push(zeroed);
        // Garbage after a torn cut.
        let mut garbage =
            full_bytes[..synced + rng.below((written - synced + 1) as u64) as usize].to_vec();
        garbage.extend((0..16).map(|_| rng.below(256) as u8));
        variants.push(garbage);
        for v in variants {
            acknowledged_lost += check_state(&v, acked, &full, scratch.path());
            states += 1;
            acknowledged_checked += acked.len();
        }
    }
    Figures {
        crash_points: points.len(),
        states,
        acknowledged_checked,
        acknowledged_lost,
    }
}

#[test]
fn power_loss_at_every_crash_point_keeps_every_acknowledged_record() {
    if !strace_for_tests() {
        return;
    }
    let mut figures = serde_json::Map::new();
    for mode in ["fsync", "group", "os"] {
        let f = run(mode);
        assert!(f.crash_points > 120, "{mode}: too few crash points");
        if mode == "os" {
            // Acknowledged on reaching the OS, not the disk: the simulation must lose some.
            assert!(
                f.acknowledged_lost > 0,
                "the simulated power loss dropped nothing"
            );
        } else {
            assert_eq!(f.acknowledged_lost, 0, "{mode}: acknowledged records lost");
        }
        let lost_key = if mode == "os" {
            "lost_as_documented"
        } else {
            "acknowledged_lost"
        };
        figures.insert(
            mode.to_owned(),
            json!({ "crash_points": f.crash_points, "crash_states": f.states,
                    "acknowledged_checked": f.acknowledged_checked, lost_key: f.acknowledged_lost }),
        );
    }
    figures.insert("torn_records_read".into(), json!(0));
    figures.insert("repair_not_idempotent".into(), json!(0));
    publish("jsonl.power_loss", Value::Object(figures));
}
