//! A child appending with group commit or fsync per append is killed with SIGKILL at random
//! moments: every append that returned is in the file, which reopens cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use oc_jsonl::{Durability, JsonlReader, JsonlWriter, WriterOptions};
use serde_json::Value;

/// Child part: append forever from 4 threads, printing each record's id once `append` returned.
#[test]
fn helper_append_forever() {
    let (Some(path), Ok(mode)) = (
        std::env::var_os("OC_CHILD_PATH"),
        std::env::var("OC_CHILD_MODE"),
    ) else {
        return;
    };
    let durability = if mode == "fsync" {
        Durability::Fsync
    } else {
        Durability::GroupCommit
    };
    let spin = if mode == "group-spin" {
        std::time::Duration::from_micros(100)
    } else {
        std::time::Duration::ZERO
    };
    let w = JsonlWriter::open(
        &path,
        WriterOptions {
            durability,
            spin,
            ..Default::default()
        },
    )
    .unwrap();
    let run: u64 = std::env::var("OC_CHILD_RUN").unwrap().parse().unwrap();
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (w, out) = (&w, &out);
            s.spawn(move || {
                for i in 0u64.. {
                    let id = format!("{run}-{t}-{i}");
                    w.append(
                        &serde_json::json!({ "id": id, "pad": "p".repeat((i % 50) as usize) }),
                    )
                    .unwrap();
                    use std::io::Write;
                    let mut o = out.lock().unwrap();
                    writeln!(o, "done {id}").unwrap();
                    o.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn sigkill_never_loses_a_returned_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.jsonl");
    let mut promised = Vec::new();
    for run in 0..20u64 {
        let mode = ["group", "fsync", "group-spin"][run as usize % 3];
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::helper_append_forever",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OC_CHILD_PATH", &path)
            .env("OC_CHILD_MODE", mode)
            .env("OC_CHILD_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = c.stdout.take().unwrap();
        // Kill after a varying number of confirmed appends.
        let target = 5 + (run * 37) % 120;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(i) = line.find("done ") {
                promised.push(line[i + 5..].to_owned());
                seen += 1;
                if seen >= target {
                    break;
                }
            }
        }
        c.kill().unwrap();
        c.wait().unwrap();
        // The reader never fails, and the file reopens cleanly.
        let (records, report) = JsonlReader::open(&path).records::<Value>().unwrap();
        assert_eq!(report.malformed, 0, "run {run}");
        let have: std::collections::HashSet<String> = records
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect();
        for id in &promised {
            assert!(
                have.contains(id),
                "run {run}: append {id} returned but is missing"
            );
        }
        drop(JsonlWriter::open(&path, WriterOptions::default()).unwrap());
        assert_eq!(
            JsonlReader::open(&path)
                .for_each_line(|_, _| true)
                .unwrap()
                .torn_tail_bytes,
            0
        );
    }
}
