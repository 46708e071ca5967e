//! Logs, task history, decisions and checkpoints through the CLI.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::util::Oc;

#[test]
fn append_query_tail_analyze_history() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    for (level, msg) in [
        ("info", "one"),
        ("warning", "two"),
        ("error", "three"),
        ("debug", "four"),
    ] {
        let out = oc.run(&[
            "logs",
            "append",
            "t1",
            "--level",
            level,
            "--message",
            msg,
            "--data",
            r#"{"k":1}"#,
        ]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let q = oc.json(&["logs", "query", "t1", "--level", "warn"]);
    let msgs: Vec<&str> = q["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        ["two", "three"],
        "warning is read as warn; warn and above"
    );
    let newest = oc.json(&["task-history", "t1", "--newest", "--limit", "1"]);
    assert_eq!(newest["entries"][0]["message"], "four");
    let tail = oc.run(&["logs", "tail", "t1", "-n", "2"]);
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains("[ERROR] three {\"k\":1}") && lines[1].contains("[DEBUG] four"),
        "{lines:?}"
    );
    let a = oc.json(&["logs", "analyze", "t1"]);
    assert_eq!(
        (a["totalLogs"].as_u64(), a["errorCount"].as_u64()),
        (Some(4), Some(1)),
        "the agent's four (transitions are the store's history, not log lines)"
    );
    assert_eq!(a["errorRate"], 25.0);
}

#[test]
fn bad_log_input_is_refused() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    for (args, code, needle) in [
        (
            vec!["logs", "append", "nope", "--message", "m"],
            3,
            "not found",
        ),
        (
            vec!["logs", "append", "../x", "--message", "m"],
            2,
            "invalid task id",
        ),
        (
            vec!["logs", "append", "t1", "--message", "m", "--level", "loud"],
            2,
            "unknown level",
        ),
        (
            vec!["logs", "append", "t1", "--message", "m", "--data", "[1]"],
            2,
            "must be a JSON object",
        ),
        (
            vec!["logs", "query", "t1", "--since", "yesterday"],
            2,
            "RFC 3339",
        ),
        (
            vec!["checkpoint", "restore", "t1", "cp-0000000000000-0"],
            3,
            "not found",
        ),
        (
            vec!["decisions", "add", "nope", "-a", "a", "-d", "d", "-r", "r"],
            3,
            "not found",
        ),
    ] {
        let out = oc.run(&args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    assert!(
        !oc.data_dir().join("tasks").join("nope").exists(),
        "no directory for a missing task"
    );
}

#[test]
fn an_append_retried_with_its_key_is_written_once() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    let append = |key: &str, message: &str| {
        oc.run(&[
            "--json", "logs", "append", "t1", "-m", message, "--key", key,
        ])
    };
    let first = append("step-1", "tests pass").data();
    assert_eq!(first["duplicate"], false, "{first}");
    // The answer was lost (a timeout, a killed shell): the agent runs the same command again.
    let again = append("step-1", "tests pass");
    assert_eq!(again.code, 0, "a duplicate is not an error: {again:?}");
    let again = again.data();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        again["timestamp"], first["timestamp"],
        "the first append's entry"
    );
    let text = oc.run(&[
        "logs",
        "append",
        "t1",
        "-m",
        "tests pass",
        "--key",
        "step-1",
    ]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("duplicate"), "{text:?}");
    assert_eq!(append("step-2", "tests pass").data()["duplicate"], false);
    let tail = oc.json(&["logs", "tail", "t1"]);
    assert_eq!(tail.as_array().unwrap().len(), 2, "{tail}");

    for bad in ["", "a\nb"] {
        let out = oc.run(&["logs", "append", "t1", "-m", "x", "--key", bad]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("--key"), "{out:?}");
    }
    let long = "k".repeat(201);
    let out = oc.run(&["logs", "append", "t1", "-m", "x", "--key", &long]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        oc.json(&["logs", "tail", "t1"]).as_array().unwrap().len(),
        2
    );
}

#[test]
fn decisions_and_checkpoints() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    oc.run(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "a1",
        "-d",
        "use WAL",
        "-r",
        "readers never block",
    ]);
    oc.run(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "a2",
        "-d",
        "add index",
        "-r",
        "queries by status",
    ]);
    let mine = oc.json(&["decisions", "list", "t1", "--agent", "a2"]);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["decision"], "add index");
    oc.run(&["logs", "append", "t1", "-m", "before"]);
    let cp = oc.json(&["checkpoint", "create", "t1", "-d", "safe point"]);
    let id = cp["id"].as_str().unwrap().to_owned();
    oc.run(&["logs", "append", "t1", "-m", "after"]);
    let restored = oc.json(&["checkpoint", "restore", "t1", &id]);
    assert_eq!(restored["description"], "safe point");
    let h = oc.json(&["task-history", "t1"]);
    let msgs: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        ["created: none -> pending", "before"],
        "restored, not appended"
    );
    oc.json(&["checkpoint", "create", "t1"]);
    assert_eq!(
        oc.json(&["checkpoint", "list", "t1"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        oc.json(&["checkpoint", "prune", "t1", "--keep", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let kept = oc.json(&["checkpoint", "list", "t1"]);
    let bytes = kept[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum::<u64>();
    oc.json(&["checkpoint", "create", "t1"]);
    let gone = oc.json(&[
        "checkpoint",
        "prune",
        "t1",
        "--max-bytes",
        &(2 * bytes - 1).to_string(),
    ]);
    assert_eq!(gone, serde_json::json!([kept[0]["id"]]), "the oldest goes");
    assert_eq!(
        oc.json(&["checkpoint", "list", "t1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let refused = oc.run(&["checkpoint", "prune", "t1"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--keep"), "{refused:?}");
}

#[test]
fn tail_follow_prints_new_entries() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    oc.run(&["logs", "append", "t1", "-m", "first"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_oc"))
        .arg("--data-dir")
        .arg(oc.data_dir())
        .args(["logs", "tail", "t1", "--follow", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("first"));
    oc.run(&["logs", "append", "t1", "-m", "second"]);
    assert!(
        lines.next().unwrap().unwrap().contains("second"),
        "follow shows appended entries"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn tail_follow_json_prints_only_entries_never_raw_lines() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    oc.run(&["logs", "append", "t1", "-m", "first"]);
    // A malformed line planted between entries: terminal escapes and a bidi override.
    let log = oc.data_dir().join("tasks/t1/logs.jsonl");
    let mut body = std::fs::read(&log).unwrap();
    body.extend_from_slice("\x1b[31mEVIL\u{202e}x\n".as_bytes());
    std::fs::write(&log, body).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oc"))
        .arg("--data-dir")
        .arg(oc.data_dir())
        .args(["--json", "logs", "tail", "t1", "--follow", "-n", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    oc.run(&["logs", "append", "t1", "-m", "second"]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let l = lines.next().unwrap().unwrap();
        seen.push(l);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for l in &seen {
        assert!(!l.contains('\x1b') && !l.contains('\u{202e}'), "{seen:?}");
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["message"].is_string(), "{l}");
    }
    assert!(
        seen[0].contains("first") && seen[1].contains("second"),
        "{seen:?}"
    );
}

#[test]
fn ship_all_tasks_to_a_local_collector() {
    let oc = Oc::new();
    for t in ["a", "b"] {
        oc.run(&["task", "create", t, "--id", t]);
        for i in 0..3 {
            oc.run(&[
                "logs",
                "append",
                t,
                "-m",
                &format!("{t}{i}"),
                "--level",
                if i == 2 { "error" } else { "info" },
            ]);
        }
    }
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/logs", server.server_addr().to_ip().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            std::io::Read::read_to_string(req.as_reader(), &mut body).unwrap();
            let batch: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            sink.lock().unwrap().extend(
                batch
                    .iter()
                    .map(|e| e["message"].as_str().unwrap().to_owned()),
            );
            let _ = req.respond(tiny_http::Response::empty(204));
        }
    });
    let r = oc.json(&["logs", "ship", "--all", "--to", &url, "--level", "error"]);
    assert_eq!(r.as_array().unwrap().len(), 2);
    assert_eq!(*got.lock().unwrap(), ["a2", "b2"]);
    oc.run(&["logs", "append", "a", "-m", "a3", "--level", "error"]);
    let r = oc.json(&["logs", "ship", "a", "--to", &url]);
    assert_eq!(
        r[0]["report"]["shipped"], 1,
        "only what is new since the last run"
    );
    assert_eq!(*got.lock().unwrap(), ["a2", "b2", "a3"]);
    let bad = oc.run(&["logs", "ship", "a", "--to", "ftp://nowhere"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

/// `{"a":{"a":...}}`, `depth` objects deep.
fn nested_object(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// The issue's case: data and metadata nested 127 deep were acknowledged (exit 0) and then
/// skipped as malformed by every reader. Now refused with exit 2 and nothing written; 63 deep
/// (the record's 64 levels) is written and read back.
#[test]
fn records_too_deep_to_read_back_are_refused_and_nothing_is_written() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    let log = oc.data_dir().join("tasks/t1/logs.jsonl");
    let decisions = oc.data_dir().join("tasks/t1/decisions.jsonl");
    let ok = oc.run(&[
        "logs",
        "append",
        "t1",
        "--message",
        "deepest",
        "--data",
        &nested_object(63),
    ]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let ok = oc.run(&[
        "decisions",
        "add",
        "t1",
        "--agent",
        "a",
        "--decision",
        "d",
        "--reasoning",
        "r",
        "--metadata",
        &nested_object(63),
    ]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let log_before = std::fs::read(&log).unwrap();
    let decisions_before = std::fs::read(&decisions).unwrap();
    for depth in [127, 64] {
        let data = nested_object(depth);
        let out = oc.run(&["logs", "append", "t1", "--message", "deep", "--data", &data]);
        assert_eq!(out.code, 2, "{depth}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(
            out.stderr.contains("nested more than 64 deep"),
            "{depth}: {}",
            out.stderr
        );
        let out = oc.run(&[
            "decisions",
            "add",
            "t1",
            "--agent",
            "a",
            "--decision",
            "d",
            "--reasoning",
            "r",
            "--metadata",
            &data,
        ]);
        assert_eq!(out.code, 2, "{depth}: {out:?}");
        assert!(
            out.stderr.contains("nested more than 64 deep"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(std::fs::read(&log).unwrap(), log_before, "nothing written");
    assert_eq!(std::fs::read(&decisions).unwrap(), decisions_before);
    let tail = oc.json(&["logs", "tail", "t1"]);
    assert_eq!(tail.as_array().unwrap().len(), 1);
    assert_eq!(tail[0]["message"], "deepest");
    let q = oc.json(&["logs", "query", "t1"]);
    assert_eq!(q["read"]["malformed"], 0);
    assert_eq!(
        oc.json(&["decisions", "list", "t1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// One entry on a terminal is cut to 4 KiB of text and says so; `--full` shows it whole, and
/// `--json` always has it whole (scripts read it).
#[test]
fn long_entries_are_cut_on_the_terminal_and_whole_with_full_or_json() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    let long = "x".repeat(100_000);
    let data = format!(r#"{{"blob":"{}"}}"#, "y".repeat(50_000));
    let out = oc.run(&["logs", "append", "t1", "--message", &long, "--data", &data]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.len() < 10_000,
        "the echo is cut: {} bytes",
        out.stdout.len()
    );
    let cut_message = format!("{}… (cut: 100,000 bytes; --full for all)", "x".repeat(4096));
    let cut_data = format!(
        r#"{{"blob":"{}… (cut: 50,011 bytes; --full for all)"#,
        "y".repeat(4096 - 9)
    );
    for args in [
        &["logs", "tail", "t1"][..],
        &["logs", "query", "t1"],
        &["task-history", "t1"],
    ] {
        let shown = oc.run(args);
        assert_eq!(shown.code, 0, "{shown:?}");
        let line = shown.stdout.lines().find(|l| l.contains("xxx")).unwrap();
        assert!(line.contains(&cut_message), "{args:?}: {}", &line[..200]);
        assert!(
            line.ends_with(&cut_data),
            "{args:?}: {}",
            &line[line.len() - 200..]
        );
        assert!(line.len() < 10_000, "{args:?}: {} bytes", line.len());
        let mut full = args.to_vec();
        full.push("--full");
        let whole = oc.run(&full);
        assert!(whole.stdout.contains(&long), "{args:?}");
        assert!(whole.stdout.contains(&data), "{args:?}");
        assert!(!whole.stdout.contains("(cut:"), "{args:?}");
    }
    let tail = oc.json(&["logs", "tail", "t1"]);
    assert_eq!(tail[0]["message"], long.as_str());
    let q = oc.json(&["logs", "query", "t1"]);
    assert_eq!(q["entries"][0]["message"], long.as_str());

    let reasoning = "r".repeat(100_000);
    let out = oc.run(&[
        "decisions",
        "add",
        "t1",
        "--agent",
        "a",
        "--decision",
        "d",
        "--reasoning",
        &reasoning,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let list = oc.run(&["decisions", "list", "t1"]).stdout;
    assert!(
        list.contains(&format!(
            "{}… (cut: 100,000 bytes; --full for all)",
            "r".repeat(4096)
        )),
        "{}",
        &list[..200]
    );
    assert!(list.len() < 10_000);
    let whole = oc.run(&["decisions", "list", "t1", "--full"]).stdout;
    assert!(whole.contains(&reasoning));
    let listed = oc.json(&["decisions", "list", "t1"]);
    assert_eq!(listed[0]["reasoning"], reasoning.as_str());
}

/// An HTTP collector on 127.0.0.1 that acknowledges every batch and records its messages, and
/// how many requests came.
pub(crate) struct Collector {
    pub(crate) url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Collector {
    pub(crate) fn start() -> Collector {
        use std::sync::atomic::Ordering;
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/logs", server.server_addr().to_ip().unwrap());
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (sink, count) = (got.clone(), requests.clone());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                count.fetch_add(1, Ordering::SeqCst);
                let mut body = String::new();
                std::io::Read::read_to_string(req.as_reader(), &mut body).unwrap();
                let batch: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
                sink.lock().unwrap().extend(
                    batch
                        .iter()
                        .map(|e| e["message"].as_str().unwrap().to_owned()),
                );
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
        Collector { url, got, requests }
    }

    /// The messages received, in order.
    pub(crate) fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// The requests received.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The entries an `oc --json logs ship` run says it shipped, in all.
fn shipped(reports: &serde_json::Value) -> u64 {
    reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["report"]["shipped"].as_u64().unwrap())
        .sum()
}

/// `oc logs ship` on host `a` and host `b` (the same data directory, or two on one database):
/// each collector gets every entry once, whichever host appended it and whichever ships; a
/// second ship sends nothing (no request at all); two collectors' cursors are independent.
pub(crate) fn ship_from_two_hosts_to_two_collectors(a: &Oc, b: &Oc) {
    for t in ["x", "y"] {
        a.json(&["task", "create", t, "--id", t]);
    }
    for i in 0..5 {
        a.json(&["logs", "append", "x", "-m", &format!("x{i}")]);
    }
    b.json(&["logs", "append", "y", "-m", "y0", "--level", "error"]);
    // Decisions alone make no log to ship.
    b.json(&["task", "create", "z", "--id", "z"]);
    b.json(&["decisions", "add", "z", "-a", "w", "-d", "d", "-r", "r"]);
    let (c1, c2) = (Collector::start(), Collector::start());

    let r = b.json(&["logs", "ship", "--all", "--to", &c1.url]);
    assert_eq!(shipped(&r), 6, "{r}");
    assert_eq!(c1.messages(), ["x0", "x1", "x2", "x3", "x4", "y0"]);
    let requests = c1.requests();
    for oc in [a, b] {
        let again = oc.json(&["logs", "ship", "--all", "--to", &c1.url]);
        assert_eq!(shipped(&again), 0, "{again}");
        let again = oc.json(&["logs", "ship", "x", "--to", &c1.url]);
        assert_eq!(shipped(&again), 0, "{again}");
    }
    assert_eq!(c1.requests(), requests, "a second ship sends nothing");

    a.json(&["logs", "append", "x", "-m", "x5"]);
    // The second collector has its own cursor: everything, once.
    let r = a.json(&["logs", "ship", "--all", "--to", &c2.url]);
    assert_eq!(shipped(&r), 7, "{r}");
    assert_eq!(c2.messages(), ["x0", "x1", "x2", "x3", "x4", "x5", "y0"]);
    // The first collector only what is new to it, from either host.
    let r = b.json(&["logs", "ship", "--all", "--to", &c1.url]);
    assert_eq!(shipped(&r), 1, "{r}");
    let r = a.json(&["logs", "ship", "--all", "--to", &c1.url]);
    assert_eq!(shipped(&r), 0, "{r}");
    assert_eq!(c1.messages(), ["x0", "x1", "x2", "x3", "x4", "y0", "x5"]);
    let text = a.run(&["logs", "ship", "x", "--to", &c2.url]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout.contains("x: shipped 0 entr(ies)"),
        "{}",
        text.stdout
    );
}

#[test]
fn ship_on_the_data_directory_keeps_a_cursor_per_collector() {
    let oc = Oc::new();
    ship_from_two_hosts_to_two_collectors(&oc, &oc);
}

/// The messages of `task`'s log, oldest first, read by `oc`.
fn messages(oc: &Oc, task: &str) -> Vec<String> {
    oc.json(&["logs", "tail", task, "-n", "100"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

/// `oc logs retain` from host `b` on what host `a` appended (the same data directory, or two on
/// one database): the oldest entries past each bound go, per task and in total, and `a` reads
/// what is left; a second run deletes nothing.
pub(crate) fn retain_from_another_host(a: &Oc, b: &Oc) {
    for t in ["r1", "r2"] {
        a.json(&["task", "create", t, "--id", t]);
    }
    for i in 0..10 {
        a.json(&["logs", "append", "r1", "-m", &format!("m{i}")]);
    }
    for i in 0..3 {
        a.json(&["logs", "append", "r2", "-m", &format!("n{i}")]);
    }
    let r = b.json(&["logs", "retain", "r1", "--max-entries", "4"]);
    assert_eq!(
        r["tasks"],
        serde_json::json!([{"task": "r1", "deleted": 6}])
    );
    assert_eq!(r["total"], serde_json::json!({"tasks": 1, "deleted": 6}));
    assert_eq!(messages(a, "r1"), ["m6", "m7", "m8", "m9"]);

    let r = b.json(&["logs", "retain", "--all", "--max-entries", "2"]);
    assert_eq!(
        r["tasks"],
        serde_json::json!([{"task": "r1", "deleted": 2}, {"task": "r2", "deleted": 1}]),
        "{r}"
    );
    assert_eq!(r["total"], serde_json::json!({"tasks": 2, "deleted": 3}));
    assert_eq!(messages(a, "r1"), ["m8", "m9"]);
    assert_eq!(messages(a, "r2"), ["n1", "n2"]);
    let again = a.json(&[
        "logs",
        "retain",
        "--all",
        "--max-entries",
        "2",
        "--max-bytes",
        "100000",
        "--max-age",
        "1h",
    ]);
    assert_eq!(
        again["total"]["deleted"], 0,
        "a second run deletes nothing: {again}"
    );

    // The largest bounds keep everything, on every store.
    let max = u64::MAX.to_string();
    let huge = b.json(&[
        "logs",
        "retain",
        "--all",
        "--max-entries",
        &max,
        "--max-bytes",
        &max,
        "--max-age",
        "500000000y",
    ]);
    assert_eq!(huge["total"]["deleted"], 0, "{huge}");

    // Older than a millisecond: all of r2.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = b.run(&["logs", "retain", "r2", "--max-age", "1ms"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(
        text.stdout,
        "r2: deleted 2 entr(ies)\nDeleted 2 entr(ies) from the logs of 1 task(s)\n"
    );
    assert!(messages(a, "r2").is_empty());
    assert_eq!(messages(a, "r1"), ["m8", "m9"], "other tasks keep theirs");

    for bad in [
        &["logs", "retain", "r1"][..],
        &["logs", "retain", "r1", "--all", "--max-entries", "1"],
        &["logs", "retain", "--max-entries", "1"],
        &["logs", "retain", "../r1", "--max-entries", "1"],
        &["logs", "retain", "r1", "--max-age", "soon"],
    ] {
        let r = b.run(bad);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    }
    assert_eq!(messages(a, "r1"), ["m8", "m9"]);
}

#[test]
fn retain_on_the_data_directory() {
    let oc = Oc::new();
    retain_from_another_host(&oc, &oc);
}
