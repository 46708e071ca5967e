//! Injected I/O faults: `fdatasync` failing with EIO and `write` coming up short (libfiu's
//! preload around a child process), and a file system that fills up (a small tmpfs). Every
//! append returns `Ok` or a typed error, never panics, and nothing after a failed sync is
//! acknowledged; reopened without faults, every acknowledged record is there, whole.

use std::collections::BTreeSet;
use std::process::Command;

use oc_jsonl::{Durability, Error, JsonlReader, JsonlWriter, WriterOptions};
use oc_lincheck::faults::{fill, fiu_for_tests, tmpfs_for_tests, under_fiu};
use oc_lincheck::publish;
use serde_json::{Value, json};

const APPENDS: u64 = 300;

fn opts(durability: Durability) -> WriterOptions {
    WriterOptions {
        durability,
        ..Default::default()
    }
}

/// What one append answered.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Failed(String),
    Broken,
}

fn append_all(w: &JsonlWriter, n: u64) -> Vec<Outcome> {
    (0..n)
        .map(
            |i| match w.append(&json!({ "id": i, "pad": "x".repeat(200) })) {
                Ok(()) => Outcome::Ok,
                Err(Error::WriterBroken { .. }) => Outcome::Broken,
                Err(e) => Outcome::Failed(format!("{e}: {:?}", std::error::Error::source(&e))),
            },
        )
        .collect()
}

/// Child part: appends under whatever faults the parent injected, one line per outcome.
#[test]
fn helper_append_under_faults() {
    let Some(path) = std::env::var_os("OC_CHILD_FAULTS") else {
        return;
    };
    // Evidence that the faults are live in this process: plain `write`s that came up short.
    let short = oc_lincheck::faults::short_write_probe(
        &std::path::Path::new(&path).with_extension("probe"),
    )
    .unwrap();
    println!("result short {short}");
    let w = JsonlWriter::open(&path, opts(Durability::Fsync)).unwrap();
    for (i, o) in append_all(&w, APPENDS).into_iter().enumerate() {
        match o {
            Outcome::Ok => println!("result ok {i}"),
            Outcome::Broken => println!("result broken {i}"),
            Outcome::Failed(e) => println!("result failed {i} {e}"),
        }
    }
}

struct Run {
    short_writes_seen: u64,
    ok: BTreeSet<u64>,
    failed: usize,
    broken: usize,
    first_failure: Option<u64>,
    stdout: String,
}

fn run_child(faults: &[&str]) -> (Run, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "faults::helper_append_under_faults",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("OC_CHILD_FAULTS", &path);
    let out = under_fiu(&cmd, faults).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the child failed (a panic?): {stdout}"
    );
    let mut run = Run {
        short_writes_seen: 0,
        ok: BTreeSet::new(),
        failed: 0,
        broken: 0,
        first_failure: None,
        stdout: stdout.clone(),
    };
    for l in stdout
        .lines()
        .filter_map(|l| l.find("result ").map(|i| &l[i + 7..]))
    {
        let mut it = l.splitn(3, ' ');
        let (kind, i) = (it.next().unwrap(), it.next().unwrap().parse().unwrap());
        match kind {
            "short" => run.short_writes_seen = i,
            "ok" => {
                run.ok.insert(i);
            }
            "failed" => {
                run.failed += 1;
                run.first_failure.get_or_insert(i);
            }
            _ => run.broken += 1,
        }
    }
    assert_eq!(
        run.ok.len() + run.failed + run.broken,
        APPENDS as usize,
        "{stdout}"
    );
    (run, path, dir)
}

/// Reopened without faults: every acknowledged record is there, whole and once, and no line
/// is malformed.
fn verify(path: &std::path::Path, ok: &BTreeSet<u64>) -> usize {
    drop(JsonlWriter::open(path, opts(Durability::Fsync)).unwrap());
    let (records, report) = JsonlReader::open(path).records::<Value>().unwrap();
    assert_eq!(
        report.malformed, 0,
        "a torn record inside the log: {report:?}"
    );
    let ids: Vec<u64> = records.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a record written twice");
    let missing: Vec<&u64> = ok.difference(&unique).collect();
    assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");
    records.len()
}

#[test]
fn io_fault_fdatasync_eio_fails_the_append_and_nothing_after_is_acknowledged() {
    if !fiu_for_tests() {
        return;
    }
    let (run, path, _dir) =
        run_child(&["enable_random name=posix/io/sync/fdatasync,probability=0.05,failinfo=5"]);
    assert!(run.failed >= 1, "no sync failed: {}", run.stdout);
    assert!(
        run.stdout.contains("Input/output error"),
        "the cause is named: {}",
        run.stdout
    );
    let first = run.first_failure.unwrap();
    assert!(
        run.ok.iter().all(|&i| i < first),
        "an append after a failed sync was acknowledged"
    );
    assert_eq!(run.failed, 1, "after the failure the writer is broken");
    let stored = verify(&path, &run.ok);
    publish(
        "jsonl.io_fault.fdatasync_eio",
        json!({ "appends": APPENDS, "acknowledged": run.ok.len(), "eio_injected": run.failed,
                "refused_after": run.broken, "stored": stored, "acknowledged_lost": 0,
                "acknowledged_after_failed_sync": 0, "panics": 0 }),
    );
}

#[test]
fn io_fault_short_writes_never_tear_a_record() {
    if !fiu_for_tests() {
        return;
    }
    let (run, path, _dir) = run_child(&[
        "enable_random name=posix/io/rw/write/reduce,probability=0.3",
        "enable_random name=posix/io/rw/writev/reduce,probability=0.3",
    ]);
    assert!(run.short_writes_seen > 0, "the short writes never happened");
    let stored = verify(&path, &run.ok);
    publish(
        "jsonl.io_fault.short_writes",
        json!({ "appends": APPENDS, "acknowledged": run.ok.len(), "failed": run.failed,
                "short_writes_seen_by_a_probe": run.short_writes_seen,
                "stored": stored, "acknowledged_lost": 0, "panics": 0 }),
    );
}

#[test]
fn io_fault_enospc_fails_appends_with_a_typed_error_and_loses_nothing_acknowledged() {
    let Some(fs) = tmpfs_for_tests(1 << 20) else {
        return;
    };
    let filler = fill(fs.path(), 40 << 10).unwrap();
    let path = fs.path().join("log.jsonl");
    let w = JsonlWriter::open(&path, opts(Durability::Fsync)).unwrap();
    let outcomes = append_all(&w, APPENDS);
    drop(w);
    let ok: BTreeSet<u64> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == Outcome::Ok)
        .map(|(i, _)| i as u64)
        .collect();
    let failed: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(
        !ok.is_empty() && ok.len() < APPENDS as usize,
        "the disk filled mid-run"
    );
    assert_eq!(failed.len(), 1, "one failure, then broken: {failed:?}");
    assert!(
        failed[0].contains("No space left on device"),
        "the cause is named: {}",
        failed[0]
    );
    // Space comes back; the log reopens, repairs and takes appends again.
    std::fs::remove_file(filler).unwrap();
    let stored = verify(&path, &ok);
    let w = JsonlWriter::open(&path, opts(Durability::Fsync)).unwrap();
    w.append(&json!({ "id": 1_000_000 })).unwrap();
    publish(
        "jsonl.io_fault.enospc",
        json!({ "appends": APPENDS, "acknowledged": ok.len(), "enospc_injected": failed.len(),
                "stored": stored, "acknowledged_lost": 0, "panics": 0 }),
    );
}
