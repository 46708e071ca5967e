//! `oc metrics`, `oc db`, `oc health` from a fresh process: the true counts from the database.

use crate::util::Oc;

#[test]
fn metrics_db_and_health_report_the_database() {
    let oc = Oc::new();
    for i in 0..3 {
        oc.run(&["task", "create", &format!("t{i}"), "--id", &format!("t{i}")]);
    }
    oc.run(&["task", "start", "t0", "--agent", "a"]);
    oc.run(&["task", "complete", "t0"]);
    oc.run(&["lock", "acquire", "repo", "--owner", "a"]);
    oc.run(&["lock", "acquire", "repo/x", "--owner", "b"]);
    oc.run(&["logs", "append", "t0", "--level", "info", "-m", "did it"]);
    let text = oc.run(&["metrics"]).stdout;
    for line in [
        "opencode_tasks{status=\"pending\"} 2",
        "opencode_tasks{status=\"completed\"} 1",
        "opencode_tasks_total{status=\"pending\"} 3",
        "opencode_tasks_total{status=\"completed\"} 1",
        "opencode_lock_conflicts_total 1",
        "opencode_locks_active 1",
        "opencode_log_appends_total 1",
        "opencode_task_duration_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let json = oc.json(&["metrics", "--format", "json"]);
    assert_eq!(json["tasks"]["total"], 3);
    assert!(json["storage"]["page_count"].as_u64().unwrap() > 0);
    let st = oc.json(&["db", "stats"]);
    assert!(st["file_bytes"].as_u64().unwrap() > 0 || st["wal_bytes"].as_u64().unwrap() > 0);
    assert_eq!(oc.json(&["db", "check"])["ok"], true);
    let h = oc.json(&["health"]);
    assert_eq!(h["checks"][0]["status"], "healthy");
    assert_eq!(h["checks"][1]["status"], "healthy");
    let files = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "task_files")
        .unwrap();
    assert_eq!(files["status"], "healthy", "{h}");
    let place = oc.data_dir().display().to_string();
    assert!(
        files["message"].as_str().unwrap().starts_with(&place),
        "{h}"
    );
}

#[test]
fn a_corrupt_database_is_unhealthy() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t"]);
    let mut bytes = std::fs::read(oc.db()).unwrap_or_default();
    // Checkpointed or not, overwrite the header: SQLite will refuse the file.
    if bytes.len() < 100 {
        bytes.resize(100, 0);
    }
    bytes[..16].copy_from_slice(b"not a database!!");
    std::fs::write(oc.db(), &bytes).unwrap();
    let _ = std::fs::remove_file(oc.db().with_extension("db-wal"));
    let out = oc.run(&["health"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("database   unhealthy"),
        "{}",
        out.stdout
    );
}
