//! `oc db import-files`: a data directory's task files moved into a real, throwaway PostgreSQL
//! server, resumably; and the note other commands print about files left behind.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use oc_jsonl::{Decision, Level, LogEntry, TaskFiles, WriterOptions};
use oc_postgres::testkit::{PgServer, postgres_for_tests};
use oc_time::Timestamp;
use serde_json::Value;

use crate::util::{Oc, Run};

static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();

/// A fresh database on the process's server: the server and its URL.
fn database(name: &str) -> Option<(&'static PgServer, String)> {
    let pg = SERVER.get_or_init(postgres_for_tests).as_ref()?;
    pg.psql("postgres", &format!("CREATE DATABASE {name}"))
        .unwrap();
    Some((pg, pg.url(name)))
}

/// `oc` on `local`'s data directory with the database at `url`.
fn on(local: &Oc, url: &str, args: &[&str]) -> Run {
    let out = local
        .command()
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn on_json(local: &Oc, url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    on(local, url, &all).data()
}

fn entry(task: &str, i: usize) -> LogEntry {
    let level = Level::ALL[i % Level::ALL.len()];
    LogEntry::new(
        Timestamp::from_millis(1_790_000_000_000 + i as i64),
        level,
        task,
        format!("step {i}"),
    )
    .with("i", i)
}

fn decision(i: usize) -> Decision {
    Decision {
        timestamp: Timestamp::from_millis(1_790_000_000_000 + i as i64),
        agent: format!("agent-{}", i % 2),
        decision: format!("do {i}"),
        reasoning: "because".to_owned(),
        metadata: Default::default(),
    }
}

/// Appends `lines` raw to `task`'s log (a malformed line, as a crash or a hand could leave).
fn append_raw(local: &Oc, task: &str, lines: &str) {
    use std::io::Write;
    let path = local.data_dir().join("tasks").join(task).join("logs.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(lines.as_bytes()).unwrap();
}

/// A data directory with task `task`: `logs` log entries with a malformed line in the middle,
/// 3 decisions, a state and 2 checkpoints.
fn filled(local: &Oc, task: &str, logs: usize) -> TaskFiles {
    let files = TaskFiles::new(&local.data_dir(), task).unwrap();
    let w = files.log_writer(WriterOptions::default()).unwrap();
    let all: Vec<LogEntry> = (0..logs).map(|i| entry(task, i)).collect();
    let half = logs / 2;
    w.append_batch(&all[..half]).unwrap();
    w.flush().unwrap();
    files.append_decision(&decision(0)).unwrap();
    files.save_state(&serde_json::json!({"step": 1})).unwrap();
    files
        .create_checkpoint("first", Timestamp::from_millis(1_790_000_000_000))
        .unwrap();
    append_raw(local, task, "not json at all\n");
    w.append_batch(&all[half..]).unwrap();
    w.flush().unwrap();
    drop(w);
    files.append_decision(&decision(1)).unwrap();
    files.append_decision(&decision(2)).unwrap();
    files.save_state(&serde_json::json!({"step": 2})).unwrap();
    files
        .create_checkpoint("second", Timestamp::from_millis(1_790_000_000_001))
        .unwrap();
    files
}

/// What a reader sees of `task`'s files, as `--json` prints it: tail, query, analysis,
/// decisions and the checkpoints' manifests. Left out: which lines were malformed (a data
/// directory numbers them by line, PostgreSQL by sequence) and what a level query read on the
/// way (PostgreSQL reads only the rows of its levels, a data directory every line).
fn views(run: &dyn Fn(&[&str]) -> Value, task: &str) -> Vec<Value> {
    let mut query = run(&["logs", "query", task, "--level", "warn"]);
    query["read"] = Value::Null;
    let mut analysis = run(&["logs", "analyze", task]);
    analysis["read"]["malformed_lines"] = Value::Null;
    vec![
        run(&["logs", "tail", task, "-n", "100000"]),
        query,
        analysis,
        run(&["decisions", "list", task]),
        run(&["checkpoint", "list", task]),
    ]
}

fn sha256_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The SHA-256 of `task`'s log as the database holds it: a checkpoint taken there lists it.
fn database_log_hash(local: &Oc, url: &str, task: &str) -> (u64, String) {
    let cp = on_json(local, url, &["checkpoint", "create", task, "-d", "hash"]);
    let f = cp["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "logs.jsonl")
        .unwrap()
        .clone();
    (
        f["bytes"].as_u64().unwrap(),
        f["sha256"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn import_moves_a_data_directory_as_it_is_and_a_second_import_moves_nothing() {
    let Some((_pg, url)) = database("import_all") else {
        return;
    };
    let local = Oc::new();
    local.json(&["task", "create", "one", "--id", "t1"]);
    filled(&local, "t1", 40);
    let before = views(&|a| local.json(a), "t1");
    assert_eq!(before[2]["read"]["malformed"], 1, "{}", before[2]);

    // The task exists on the database too (commands look it up there).
    on_json(&local, &url, &["task", "create", "one", "--id", "t1"]);
    let noted = on(&local, &url, &["logs", "tail", "t1"]);
    assert!(
        noted
            .stderr
            .contains("has 41 log entries and 3 decisions not in the database"),
        "{noted:?}"
    );

    let first = on_json(&local, &url, &["db", "import-files"]);
    let t = &first["tasks"][0];
    assert_eq!(t["task"], "t1", "{first}");
    assert_eq!(t["logs"]["moved"], 41, "{first}");
    assert_eq!(t["decisions"]["moved"], 3, "{first}");
    assert_eq!(t["state"], "moved", "{first}");
    assert_eq!(t["checkpoints"]["moved"], 2, "{first}");
    assert_eq!(first["total"]["problems"], 0, "{first}");

    let after = views(&|a| on_json(&local, &url, a), "t1");
    assert_eq!(before, after);
    assert_eq!(on_json(&local, &url, &["task", "show", "t1"])["id"], "t1");
    // Equal byte for byte: the database's log as a file hashes as the source does.
    let src = local.data_dir().join("tasks/t1/logs.jsonl");
    let (bytes, hash) = database_log_hash(&local, &url, "t1");
    assert_eq!(bytes, std::fs::metadata(&src).unwrap().len());
    assert_eq!(hash, sha256_of(&src));

    let noted = on(&local, &url, &["decisions", "list", "t1"]);
    assert!(
        noted
            .stderr
            .contains("was imported into the database and is no longer read"),
        "{noted:?}"
    );

    let second = on_json(&local, &url, &["db", "import-files", "--task", "t1"]);
    let t = &second["tasks"][0];
    assert_eq!(t["logs"]["moved"], 0, "{second}");
    assert_eq!(t["logs"]["skipped"], 41, "{second}");
    assert_eq!(t["decisions"]["moved"], 0, "{second}");
    assert_eq!(t["state"], "same", "{second}");
    assert_eq!(t["checkpoints"]["present"], 2, "{second}");
    assert_eq!(t["checkpoints"]["moved"], 0, "{second}");
    let again = views(&|a| on_json(&local, &url, a), "t1");
    assert_eq!(after[..4], again[..4], "nothing moved twice");

    // Lines appended since move on their own, after what the database holds.
    TaskFiles::new(&local.data_dir(), "t1")
        .unwrap()
        .append_log(&entry("t1", 1000))
        .unwrap();
    let third = on_json(&local, &url, &["db", "import-files"]);
    assert_eq!(third["tasks"][0]["logs"]["moved"], 1, "{third}");
    assert_eq!(third["tasks"][0]["logs"]["skipped"], 41, "{third}");
    let tail = on_json(&local, &url, &["logs", "tail", "t1", "-n", "1"]);
    assert_eq!(tail[0]["message"], "step 1000", "{tail}");
    // The source is as it was: nothing deleted.
    assert!(local.data_dir().join("tasks/t1/state.json").exists());
    assert_eq!(
        local
            .json(&["checkpoint", "list", "t1"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_killed_import_resumes_and_moves_each_line_once() {
    let Some((pg, url)) = database("import_kill") else {
        return;
    };
    let local = Oc::new();
    let n = 50_000;
    let files = TaskFiles::new(&local.data_dir(), "big").unwrap();
    let w = files.log_writer(WriterOptions::default()).unwrap();
    let all: Vec<LogEntry> = (0..n).map(|i| entry("big", i)).collect();
    w.append_batch(&all).unwrap();
    w.flush().unwrap();
    drop(w);
    on_json(&local, &url, &["task", "create", "big", "--id", "big"]);
    on_json(&local, &url, &["db", "migrate"]);

    let mut child = local
        .command()
        .arg("--database")
        .arg(&url)
        .args(["db", "import-files"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let moved = loop {
        let lines = pg
            .psql(
                "import_kill",
                "SELECT coalesce(max(lines), 0) FROM oc.file_imports",
            )
            .unwrap_or_default();
        let lines: u64 = lines.trim().parse().unwrap_or(0);
        if lines >= 2_000 {
            break lines;
        }
        assert!(Instant::now() < deadline, "no batch committed");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill: u64 = pg
        .psql("import_kill", "SELECT max(lines) FROM oc.file_imports")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        at_kill < n as u64,
        "the import finished before it was killed ({moved} then {at_kill})"
    );
    assert_eq!(at_kill % 1000, 0, "whole batches only: {at_kill}");
    let held: u64 = pg
        .psql("import_kill", "SELECT count(*) FROM oc.log_entries")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(held, at_kill, "each batch commits with its cursor");

    let rerun = on_json(&local, &url, &["db", "import-files"]);
    assert_eq!(
        rerun["tasks"][0]["logs"]["moved"].as_u64().unwrap() + at_kill,
        n as u64,
        "{rerun}"
    );
    let analysis = on_json(&local, &url, &["logs", "analyze", "big"]);
    assert_eq!(analysis["totalLogs"], n, "{analysis}");
    let src = local.data_dir().join("tasks/big/logs.jsonl");
    let (bytes, hash) = database_log_hash(&local, &url, "big");
    assert_eq!(bytes, std::fs::metadata(&src).unwrap().len());
    assert_eq!(
        hash,
        sha256_of(&src),
        "the same lines in the same order, once"
    );
    let last = on_json(&local, &url, &["db", "import-files"]);
    assert_eq!(last["tasks"][0]["logs"]["moved"], 0, "{last}");
}

#[test]
fn conflicts_corruption_and_replaced_logs_are_reported_with_exit_1_and_nothing_deleted() {
    let Some((_pg, url)) = database("import_conflict") else {
        return;
    };
    let local = Oc::new();
    let files = filled(&local, "t2", 10);
    on_json(&local, &url, &["task", "create", "two", "--id", "t2"]);
    // The database already has another state for the task.
    let mcp_state = serde_json::json!({"step": "theirs"});
    let remote = oc_postgres::PgFileStore::open(&url).unwrap();
    oc_jsonl::TaskFileStore::save_state(&remote, "t2", &mcp_state).unwrap();
    // One checkpoint's log is corrupt on disk.
    let cps = files.checkpoints().unwrap();
    let bad = &cps[0];
    let cp_log = local
        .data_dir()
        .join("tasks/t2/checkpoints")
        .join(&bad.id)
        .join("logs.jsonl");
    let mut body = std::fs::read(&cp_log).unwrap();
    body[3] ^= 0x20;
    std::fs::write(&cp_log, &body).unwrap();

    let r = on(&local, &url, &["--json", "db", "import-files"]);
    assert_eq!(r.code, 1, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let t = &doc["data"]["tasks"][0];
    assert_eq!(t["state"], "conflict", "{doc}");
    assert_eq!(t["checkpoints"]["corrupt"], 1, "{doc}");
    assert_eq!(t["checkpoints"]["moved"], 1, "{doc}");
    assert_eq!(t["logs"]["moved"], 11, "{doc}");
    assert!(r.stderr.contains("problem"), "{r:?}");
    assert_eq!(
        oc_jsonl::TaskFileStore::load_state(&remote, "t2").unwrap(),
        Some(mcp_state),
        "the database's state is kept"
    );
    assert_eq!(
        files.load_state().unwrap(),
        Some(serde_json::json!({"step": 2})),
        "nothing deleted"
    );
    assert_eq!(std::fs::read(&cp_log).unwrap(), body);
    let human = on(&local, &url, &["db", "import-files"]);
    assert_eq!(human.code, 1, "{human:?}");
    assert!(human.stdout.contains("state conflict"), "{human:?}");
    assert!(human.stdout.contains("1 corrupt"), "{human:?}");

    // A log replaced since (a shorter one in its place): said, nothing duplicated.
    let log = local.data_dir().join("tasks/t2/logs.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: String = text.lines().skip(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, kept).unwrap();
    let before = on_json(&local, &url, &["logs", "analyze", "t2"]);
    let r = on(&local, &url, &["--json", "db", "import-files"]);
    assert_eq!(r.code, 1, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let problems = doc["data"]["tasks"][0]["problems"].to_string();
    assert!(problems.contains("replaced or rotated"), "{doc}");
    assert_eq!(doc["data"]["tasks"][0]["logs"]["moved"], 0, "{doc}");
    assert_eq!(on_json(&local, &url, &["logs", "analyze", "t2"]), before);
}

#[test]
fn import_needs_a_database() {
    let local = Oc::new();
    let r = local.run(&["db", "import-files"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--database"), "{r:?}");
}

#[test]
fn the_task_page_shows_files_left_in_the_data_directory() {
    let Some((_pg, url)) = database("import_page") else {
        return;
    };
    // `oc serve` on the data directory that holds the files, and the database.
    let oc = Oc::on_database(&url);
    oc.json(&["task", "create", "three", "--id", "t3"]);
    filled(&oc, "t3", 6);
    let s = crate::serve::serve(&oc, "127.0.0.1:0");
    let (status, body) = crate::serve::get(&s.1, "/ui/tasks/t3");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("has 7 log entries and 3 decisions not in the database"),
        "{body}"
    );
    oc.json(&["db", "import-files"]);
    let (_, body) = crate::serve::get(&s.1, "/ui/tasks/t3");
    assert!(
        body.contains("was imported into the database and is no longer read"),
        "{body}"
    );
}
